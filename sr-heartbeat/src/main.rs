fn main() {
    eprintln!("sr-heartbeat: not yet built");
    std::process::exit(2);
}
