//! Logging of the daemon binaries (`xhad`, `xha-supervisor`): `tracing` to
//! stderr, which journald keeps; level from `RUST_LOG` (default `info`);
//! colours only on a terminal, plain text in files and journals.

use std::io::IsTerminal;

/// Install the subscriber (a second call does nothing).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
