//! Helpers shared by the test binaries that run `xhad` as a process.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Kills the daemon if a test fails half-way.
pub struct Guard(pub Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait up to `bound` for `child` to exit.
pub fn wait_exit(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < bound {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
