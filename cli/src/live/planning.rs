//! The pool as the planner sees it, fetched from the live pool
//! (`pool.ha_get_planning_pool`), for the planner commands run without
//! `pool-file=`: the same planner, the same output, on the live pool.

use xapi_ha::model::Pool;
use xapi_ha::rpc::Rpc;

use super::options::ConnectOptions;
use super::session::Session;
use crate::error::CliError;

/// Logs in, fetches the planning pool and logs out.
pub fn fetch_pool(opts: &ConnectOptions) -> Result<Pool, CliError> {
    let mut session = Session::open(opts)?;
    let answer = session.call("pool.ha_get_planning_pool", Vec::new());
    session.close();
    let Rpc::Str(text) = answer? else {
        return Err(CliError::Request(
            "pool.ha_get_planning_pool did not return a string".to_owned(),
        ));
    };
    serde_json::from_str(&text).map_err(|e| {
        CliError::Request(format!(
            "pool.ha_get_planning_pool returned a pool that does not decode: {e}"
        ))
    })
}
