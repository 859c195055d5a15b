fn main() {
    eprintln!("xe: no commands yet");
    std::process::exit(2);
}
