//! `sr-create`: `SR.create` on the host given (or the master) with the
//! device and SM configuration maps.

use std::io::Write;

use xapi_ha::db::Class;
use xapi_ha::rpc::Rpc;

use super::args::{Args, required};
use super::calls::{by_uuid, string_map, uuid_of};
use super::session::Session;
use crate::error::{CliError, UsageError};

/// `sr-create name-label= type= [shared=] [physical-size=] [host-uuid=]
/// [device-config:K=V ...] [sm-config:K=V ...] [--force]`.
pub(super) fn sr_create(
    session: &mut Session,
    args: &Args,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let shared = match args.get("shared") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(UsageError::InvalidValue {
                key: "shared".into(),
                expected: "true or false",
                got: other.to_owned(),
            }
            .into());
        }
    };
    let size = match args.get("physical-size") {
        None => 0,
        Some(s) => s.parse::<i64>().map_err(|_| UsageError::InvalidValue {
            key: "physical-size".into(),
            expected: "a number of bytes",
            got: s.to_owned(),
        })?,
    };
    let host = match args.get("host-uuid") {
        Some(u) => by_uuid(session, Class::Host, u)?,
        None => {
            let pools = session.call("pool.get_all", Vec::new())?;
            let pool = match pools {
                Rpc::Array(mut p) if !p.is_empty() => p.swap_remove(0),
                other => {
                    return Err(CliError::Connect(format!(
                        "pool.get_all returned {other:?}, not one pool"
                    )));
                }
            };
            session.call("pool.get_master", vec![pool])?
        }
    };
    // `--force`: overwrite a device holding someone else's data (block SRs;
    // the agent does not store the key).
    let mut config = args.map("device-config");
    if args.flag("--force") && !config.iter().any(|(k, _)| *k == "force") {
        config.push(("force", "true"));
    }
    let device_config = string_map(config);
    let r = session.call(
        "SR.create",
        vec![
            host,
            device_config,
            Rpc::Int(size),
            Rpc::Str(required(args, "name-label").to_owned()),
            Rpc::Str(args.get("name-description").unwrap_or("").to_owned()),
            Rpc::Str(required(args, "type").to_owned()),
            Rpc::Str(args.get("content-type").unwrap_or("").to_owned()),
            Rpc::Bool(shared),
            string_map(args.map("sm-config")),
        ],
    )?;
    let uuid = uuid_of(session, Class::Sr, r)?;
    writeln!(out, "{uuid}")?;
    Ok(())
}
