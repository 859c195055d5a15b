//! `user-password-change old= new=`: `session.change_password` for the
//! user logged in (docs/api.md). A wrong `old=` is the agent's
//! `SESSION_AUTHENTICATION_FAILED` (exit 6, "Authentication failed"); the
//! session goes on working either way.

use xapi_ha::rpc::Rpc;

use super::args::{Args, required};
use super::session::Session;
use crate::error::CliError;

/// `user-password-change old=OLD new=NEW`.
pub(super) fn user_password_change(session: &mut Session, args: &Args) -> Result<(), CliError> {
    session.call(
        "session.change_password",
        vec![
            Rpc::Str(required(args, "old").to_owned()),
            Rpc::Str(required(args, "new").to_owned()),
        ],
    )?;
    Ok(())
}
