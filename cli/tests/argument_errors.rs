//! Every argument error: one clear line on stderr, nothing on stdout, the
//! documented exit code (1 usage, 2 pool file, 3 does not fit the pool).

mod common;

use common::{example, fails};

const MAX: &str = "pool-ha-compute-max-host-failures-to-tolerate";
const HYPO: &str = "pool-ha-compute-hypothetical-max-host-failures-to-tolerate";
const PLAN: &str = "pool-ha-compute-vm-failover-plan";

#[test]
fn unknown_command_suggests_the_nearest() {
    assert_eq!(
        fails(
            1,
            &[
                "pool-ha-compute-max-host-failure-to-tolerate",
                "pool-file=x.toml"
            ]
        ),
        format!(
            "xe: unknown command \"pool-ha-compute-max-host-failure-to-tolerate\"; did you mean \"{MAX}\"?"
        )
    );
    assert_eq!(
        fails(1, &["hlep"]),
        "xe: unknown command \"hlep\"; did you mean \"help\"?"
    );
    assert_eq!(
        fails(1, &["frobnicate"]),
        "xe: unknown command \"frobnicate\"; run \"xe help\" for the list of commands"
    );
    assert_eq!(
        fails(1, &[]),
        "xe: no command given; run \"xe help\" for the list of commands"
    );
    assert_eq!(
        fails(1, &["help", "pool-ha-compute-vm-failovr-plan"]),
        format!(
            "xe: no help for unknown command \"pool-ha-compute-vm-failovr-plan\"; did you mean \"{PLAN}\"?"
        )
    );
    assert_eq!(
        fails(1, &["help", PLAN, "extra"]),
        "xe: unexpected argument \"extra\""
    );
}

#[test]
fn unknown_missing_and_duplicate_keys() {
    let file = example("small-healthy.toml");
    assert_eq!(
        fails(1, &[MAX, "pool_file=x.toml"]),
        format!("xe: {MAX} does not take the parameter \"pool_file\"; did you mean \"pool-file\"?")
    );
    assert_eq!(
        fails(1, &[MAX, &file, "colour=red"]),
        format!("xe: {MAX} does not take the parameter \"colour\"; run \"xe help {MAX}\"")
    );
    // Without pool-file= the planner commands ask the live pool.
    assert_eq!(
        fails(7, &[MAX, "--socket", "/nonexistent/xapi-ha.sock"]),
        "xe: cannot connect to /nonexistent/xapi-ha.sock: No such file or directory (os error 2)"
    );
    assert_eq!(
        fails(1, &[PLAN, &file]),
        format!("xe: {PLAN} needs the parameter host-uuids=...; run \"xe help {PLAN}\"")
    );
    assert_eq!(
        fails(1, &[MAX, &file, &file]),
        "xe: parameter \"pool-file\" given more than once"
    );
}

#[test]
fn flags() {
    let file = example("small-healthy.toml");
    assert_eq!(
        fails(1, &[MAX, &file, "--jsn"]),
        format!("xe: {MAX} does not take the flag \"--jsn\"; did you mean \"--json\"?")
    );
    assert_eq!(
        fails(1, &[MAX, &file, "--json", "--minimal"]),
        "xe: --json and --minimal cannot be used together"
    );
    assert_eq!(
        fails(1, &[MAX, &file, "--json", "--json"]),
        "xe: flag \"--json\" given more than once"
    );
    assert_eq!(
        fails(1, &[PLAN, &file, "host-uuids=h1", "--explain"]),
        format!("xe: {PLAN} does not take the flag \"--explain\"; run \"xe help {PLAN}\"")
    );
}

#[test]
fn malformed_arguments_and_values() {
    let file = example("overcommitted.json");
    assert_eq!(
        fails(1, &[MAX, "small-healthy.toml"]),
        "xe: expected key=value or a --flag, got \"small-healthy.toml\""
    );
    assert_eq!(
        fails(1, &[MAX, "=x"]),
        "xe: expected key=value or a --flag, got \"=x\""
    );
    assert_eq!(
        fails(1, &[MAX, "pool-file="]),
        "xe: pool-file must be the path of a .toml or .json pool description, got \"\""
    );
    assert_eq!(
        fails(1, &[HYPO, &file, "vm-uuid=erp1", "restart-priority=always"]),
        "xe: restart-priority must be restart, best-effort or empty, got \"always\""
    );
    assert_eq!(
        fails(1, &[PLAN, &file, "host-uuids=xs1,,xs2"]),
        "xe: host-uuids must be a comma-separated list of host uuids or names without empty items, got \"xs1,,xs2\""
    );
    assert_eq!(
        fails(1, &[MAX, "pool-file:a=b"]),
        "xe: pool-file:a must be written as key=value (this parameter has no sub-keys), got \"pool-file:a=b\""
    );
}

#[test]
fn unpaired_hypothetical_arguments() {
    let file = example("overcommitted.json");
    assert_eq!(
        fails(1, &[HYPO, &file, "vm-uuid=erp1"]),
        "xe: unpaired arguments: 1 vm-uuid but 0 restart-priority; give them in pairs (vm-uuid=... restart-priority=...)"
    );
    assert_eq!(
        fails(
            1,
            &[
                HYPO,
                &file,
                "vm-uuid=erp1",
                "restart-priority=restart",
                "restart-priority=restart"
            ]
        ),
        "xe: unpaired arguments: 1 vm-uuid but 2 restart-priority; give them in pairs (vm-uuid=... restart-priority=...)"
    );
    assert_eq!(
        fails(1, &[HYPO, &file]),
        format!("xe: {HYPO} needs the parameter vm-uuid=...; run \"xe help {HYPO}\"")
    );
}

#[test]
fn references_that_do_not_fit_the_pool() {
    let file = example("overcommitted.json");
    assert_eq!(
        fails(
            3,
            &[HYPO, &file, "vm-uuid=erp9", "restart-priority=restart"]
        ),
        "xe: vm-uuid \"erp9\" is not the uuid or name of any VM in the pool file"
    );
    assert_eq!(
        fails(
            3,
            &[
                HYPO,
                &file,
                "vm-uuid=erp1",
                "restart-priority=restart",
                "vm-uuid=b2d7c3f1-6e4a-4d2b-8c8f-000000000001",
                "restart-priority="
            ]
        ),
        "xe: vm-uuid names VM \"erp1\" more than once"
    );
    assert_eq!(
        fails(3, &[PLAN, &file, "host-uuids=xs1,xs9"]),
        "xe: host-uuids \"xs9\" is not the uuid or name of any host in the pool file"
    );
    assert_eq!(
        fails(3, &[PLAN, &file, "host-uuids=xs1,xs1"]),
        "xe: host-uuids lists host \"xs1\" more than once"
    );
}

#[test]
fn pool_file_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[host]]\nname = \"h1\"\nmemory-total = \"1GiB\"\n[[vm]]\nname = \"db1\"\nmemory = \"1GiB\"\nha-restart-priority = \"always\"\n",
    )
    .unwrap();
    let arg = format!("pool-file={}", bad.display());
    assert_eq!(
        fails(2, &[MAX, &arg]),
        format!(
            "xe: pool-file {}: vm \"db1\": ha-restart-priority must be restart, best-effort or empty, got \"always\"",
            bad.display()
        )
    );
    let syntax = dir.path().join("syntax.json");
    std::fs::write(&syntax, "{\n  \"host\": [\n").unwrap();
    let line = fails(2, &[MAX, &format!("pool-file={}", syntax.display())]);
    assert!(line.contains("invalid JSON at line 3"), "{line}");
    let missing = dir.path().join("missing.toml");
    let line = fails(2, &[MAX, &format!("pool-file={}", missing.display())]);
    assert!(
        line.starts_with(&format!(
            "xe: pool-file: cannot read {}: ",
            missing.display()
        )),
        "{line}"
    );
    let yaml = dir.path().join("pool.yaml");
    std::fs::write(&yaml, "").unwrap();
    assert_eq!(
        fails(2, &[MAX, &format!("pool-file={}", yaml.display())]),
        format!(
            "xe: pool-file: {}: unsupported file extension (expected .toml or .json)",
            yaml.display()
        )
    );
}

#[test]
fn non_live_host_in_failure_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pool.toml");
    std::fs::write(
        &file,
        "[[host]]\nname = \"h1\"\nmemory-total = \"8GiB\"\n[[host]]\nname = \"h2\"\nmemory-total = \"8GiB\"\nlive = false\n",
    )
    .unwrap();
    assert_eq!(
        fails(
            3,
            &[
                PLAN,
                &format!("pool-file={}", file.display()),
                "host-uuids=h2"
            ]
        ),
        "xe: host \"h2\" is not live, so it cannot be in a failure set"
    );
}

#[test]
fn non_utf8_argument() {
    use std::os::unix::ffi::OsStrExt;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xe"))
        .arg(MAX)
        .arg(std::ffi::OsStr::from_bytes(b"pool-file=\xff.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "xe: argument 2 is not valid UTF-8\n"
    );
}

#[test]
fn output_write_failure_exits_4() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("skipping: /dev/full is not available on this machine");
        return;
    };
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xe"))
        .arg("help")
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("xe: cannot write the output: "),
        "{stderr}"
    );
    assert_eq!(stderr.matches('\n').count(), 1, "{stderr}");
}
