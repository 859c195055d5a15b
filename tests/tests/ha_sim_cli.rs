//! The `ha-sim` command: one summary line on stdout (or one JSON object),
//! progress on stderr, exit 0 without violations, 2 on bad arguments.

use std::process::Command;

fn ha_sim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ha-sim"))
        .args(args)
        .output()
        .expect("run ha-sim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn summary_line_for_a_few_seeds() {
    let (code, stdout, stderr) = ha_sim(&["--seeds", "4", "--seed-start", "7", "--hosts", "3"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {stdout}");
    let line = lines[0];
    assert!(
        line.starts_with("seeds: 4, violations: 0, fences: "),
        "{line}"
    );
    assert!(
        line.contains(", max fault-to-shrink: ") && line.contains(" s, p50: "),
        "{line}"
    );
    assert!(stderr.contains("done: 4 seeds"), "{stderr}");
}

#[test]
fn json_object_with_the_same_fields() {
    let (code, stdout, _) = ha_sim(&["--seeds", "3", "--hosts", "2", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(v["seeds"], 3);
    assert_eq!(v["violations"], 0);
    assert!(v["fences"].is_u64());
    assert!(v["failing_seeds"].as_array().is_some_and(|a| a.is_empty()));
    assert!(v.get("max_fault_to_shrink_s").is_some() && v.get("p50_fault_to_shrink_s").is_some());
}

#[test]
fn bad_arguments_fail_clearly() {
    for args in [
        &["--seeds", "0"][..],
        &["--seeds", "1", "--hosts", "65"],
        &["--seeds", "1", "--timeout", "fast"],
        &["--seeds", "1", "--timeout", "0.1"],
        &["--seeds", "2", "--seed-start", "18446744073709551615"],
        &["--frobnicate"],
        &[],
    ] {
        let (code, stdout, stderr) = ha_sim(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.contains("error") || stderr.contains("overflows"),
            "{args:?}: {stderr}"
        );
    }
}
