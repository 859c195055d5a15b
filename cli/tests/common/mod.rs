//! Runs the real `xe` binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn xe(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_xe"))
        .args(args)
        .output()
        .expect("run xe");
    Output {
        code: output.status.code().expect("xe exited by a signal"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// `pool-file=` argument for an example in docs/examples.
pub fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples")
        .join(name);
    format!("pool-file={}", path.display())
}

/// Runs xe expecting success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = xe(args);
    assert_eq!(out.code, 0, "xe {args:?} failed: {}", out.stderr);
    out.stdout
}

/// Runs xe expecting failure with `code`: exactly one line on stderr,
/// nothing on stdout. Returns the stderr line.
pub fn fails(code: i32, args: &[&str]) -> String {
    let out = xe(args);
    assert_eq!(out.code, code, "xe {args:?}: stderr {:?}", out.stderr);
    assert_eq!(out.stdout, "", "xe {args:?} printed on stdout");
    assert!(out.stderr.starts_with("xe: "), "{:?}", out.stderr);
    assert!(
        out.stderr.ends_with('\n') && out.stderr.matches('\n').count() == 1,
        "not one line: {:?}",
        out.stderr
    );
    out.stderr.trim_end().to_owned()
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
