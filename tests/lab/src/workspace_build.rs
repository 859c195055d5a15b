//! The tests' one build of the workspace's programs. A test that runs
//! another package's binary (`xhad` from the agent's tests, `xapi-ha` from
//! `xe`'s) calls [`build_workspace_bins`], which runs
//! `cargo build --workspace --bins` once per test process (and once per
//! `cargo nextest` run, through a marker file) and returns the directory
//! that holds them.
//!
//! One command everywhere keeps one set of artifacts: the feature pins in
//! `tests/Cargo.toml` make this build's units the ones `cargo test
//! --workspace` already built, so after the test build it is a no-op
//! (0.3 s), and CI builds the workspace once, not once per package subset.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Builds every binary of the workspace (a no-op when current) and returns
/// the directory holding them: the directory of `any_bin`, a binary of the
/// calling package (`env!("CARGO_BIN_EXE_...")`). `manifest_dir` is the
/// caller's `env!("CARGO_MANIFEST_DIR")`.
///
/// # Panics
/// When cargo cannot be run or the build fails: the calling test cannot
/// run without the programs.
pub fn build_workspace_bins(manifest_dir: &str, any_bin: &str) -> PathBuf {
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(dir) = built.as_ref() {
        return dir.clone();
    }
    let dir = Path::new(any_bin)
        .parent()
        .expect("a binary's path has a directory")
        .to_path_buf();
    // Under nextest every test is its own process: one build per run is
    // enough (the run's id names the marker).
    let marker = std::env::var("NEXTEST_RUN_ID")
        .ok()
        .map(|id| dir.join(format!(".xha-bins-built-{id}")));
    if !marker.as_ref().is_some_and(|m| m.exists()) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(&cargo);
        command
            .args(["build", "--workspace", "--bins"])
            .current_dir(manifest_dir);
        // The variables cargo sets for a running test describe the test's
        // package; build scripts that watch them (ring's reads
        // CARGO_PKG_NAME) would see a change and rebuild half the tree.
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(is_test_runtime_var) {
                command.env_remove(&key);
            }
        }
        let status = command
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cargo} build --workspace --bins: {e}"));
        assert!(
            status.success(),
            "cargo build --workspace --bins failed: {status}"
        );
        if let Some(m) = &marker {
            // Best effort: without the marker the next test builds again.
            let _ = std::fs::write(m, b"");
        }
    }
    *built = Some(dir.clone());
    dir
}

/// Whether `key` is one of the variables cargo (or nextest) sets for a
/// running test rather than one the user set for the whole build.
fn is_test_runtime_var(key: &str) -> bool {
    ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "NEXTEST"]
        .iter()
        .any(|p| key.starts_with(p))
        || matches!(
            key,
            "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
        )
}

#[cfg(test)]
mod tests {
    use super::is_test_runtime_var;

    #[test]
    fn only_the_test_runtime_variables_are_dropped() {
        for k in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "NEXTEST_RUN_ID",
            "OUT_DIR",
        ] {
            assert!(is_test_runtime_var(k), "{k}");
        }
        for k in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "RUSTFLAGS",
            "PATH",
            "CARGO",
        ] {
            assert!(!is_test_runtime_var(k), "{k}");
        }
    }
}
