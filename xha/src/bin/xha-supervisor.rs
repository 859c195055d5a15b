//! `xha-supervisor`: the external watchdog of a host. It kills the host's
//! process group when the daemon stops kicking it (see `docs/daemon.md` and
//! `xha::daemon::supervisor`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(xha::daemon::supervisor::main_with_args(&args));
}
