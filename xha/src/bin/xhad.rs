//! `xhad`: the host HA daemon (see `docs/daemon.md` and `xha::daemon::run`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(xha::daemon::run::main_with_args(&args));
}
