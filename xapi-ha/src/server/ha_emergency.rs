//! `host.emergency_ha_disable(soft)` (docs/operations.md, "Emergency
//! runbook"): on this host only, whatever the pool can be reached: ask
//! `xhad` to disarm fencing, leave the liveset as excluded and stop (each
//! failure logged and passed over, as xapi does), wait for the daemon and
//! its supervisor. Unless `soft`, also clear the armed flag: the database
//! (as this host holds it in memory; the metadata volume may be out of
//! reach) goes back to the local file with HA recorded off in that copy,
//! `ha-state.toml` is removed (the commit point) and `xhad`'s local files
//! with it. The statefiles and metadata volume on the SR are left alone:
//! other hosts may still use them.

use sr_heartbeat::metadata::Layout;
use xha_control::Request;
use xha_control::client::{self, REQUEST_TIMEOUT};

use super::agent::{Agent, LOCAL_DB_FILE};
use super::ha_ops::{STOP_TIMEOUT, lock};
use super::xhad_launcher::{self, XhadPaths};
use crate::api::ApiError;
use crate::api::ha_enable::{self, DisableRequest};
use crate::api::pool as pool_api;
use crate::db::store::Store;
use crate::ha_link::files;
use crate::ha_link::state::HaState;

impl Agent {
    /// `host.emergency_ha_disable(soft)`: `HA_NOT_ENABLED` when this host
    /// is not armed (nothing when `soft`).
    pub(crate) fn emergency_ha_disable(&self, soft: bool) -> Result<(), ApiError> {
        let ha = self.ha();
        let _busy = ha.begin("disable")?;
        let data_dir = self.facts().data_dir.clone();
        let running = lock(&ha.running).take();
        let state = running
            .as_ref()
            .map(|r| r.state.clone())
            .or_else(|| HaState::load(&data_dir).ok().flatten());
        let Some(state) = state else {
            return if soft {
                Ok(())
            } else {
                Err(ApiError::new("HA_NOT_ENABLED", Vec::<String>::new()))
            };
        };
        tracing::warn!(soft, "emergency HA disable on this host");
        if let Some(r) = &running {
            r.follower.stop();
        }
        let socket = &state.control_socket;
        for req in [Request::DisarmFencing, Request::SetExcluded, Request::Stop] {
            if let Err(e) = client::request(socket, req, REQUEST_TIMEOUT) {
                tracing::warn!(request = req.name(), error = %e, "xhad did not accept the request (ignored)");
            }
        }
        let paths = match (&running, ha.ctx.get()) {
            (Some(r), _) => Some(r.paths.clone()),
            (None, Some(ctx)) => Some(XhadPaths::new(&ctx.launcher, &ctx.config_dir)),
            (None, None) => None,
        };
        let daemon = running.and_then(|r| r.daemon).or_else(|| {
            let ctx = ha.ctx.get()?;
            xhad_launcher::find(&ctx.launcher, &ctx.xhad_path, paths.as_ref()?)
        });
        if let Some(d) = daemon
            && !d.finish(STOP_TIMEOUT)
        {
            tracing::warn!("xhad or its supervisor had to be killed");
        }
        tracing::info!("xhad stopped");
        self.pool.emergency.set_ha_failure(None);
        if soft {
            // Still armed: a restarted agent expects HA (and is in
            // emergency mode while its daemon does not run).
            return Ok(());
        }
        self.disarm_database(&data_dir)?;
        if let Some(p) = paths {
            files::remove_all(&p.created_files());
        }
        tracing::warn!("HA disabled on this host by an emergency disable (armed flag cleared)");
        Ok(())
    }

    /// The database copy in memory, with HA recorded off, to the local
    /// file; then `ha-state.toml` removed; then writes go there.
    fn disarm_database(&self, data_dir: &std::path::Path) -> Result<(), ApiError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "{what}");
            ApiError::internal(&format!("{what}: {e}"))
        };
        let mut store = self.store();
        let mut db = store.database().clone();
        if let Some(pool) = pool_api::the_pool(&db) {
            let changes = ha_enable::disabled_changes(&db, &DisableRequest { pool });
            let _kept = db
                .apply(&changes)
                .map_err(|e| fail("recording HA off in the local copy failed", &e))?;
        }
        let path = data_dir.join(LOCAL_DB_FILE);
        let (mut local, _) = Store::open_file(&path, Layout::standard(), 0)
            .map_err(|e| fail("opening the local database file failed", &e))?;
        local
            .install(db)
            .map_err(|e| fail("writing the database to the local file failed", &e))?;
        HaState::remove(data_dir).map_err(|e| fail("removing the HA state record failed", &e))?;
        *store = local;
        self.publish(store.database().generation());
        Ok(())
    }
}
