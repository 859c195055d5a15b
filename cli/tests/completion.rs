//! The bash completion that `xe completion shell=bash` prints (and the
//! package installs), run in a real bash: command names, parameter names,
//! map keys, fixed values, and object UUIDs from a real agent on its Unix
//! socket. zsh's script is checked for syntax when zsh is installed.

mod live_support;

use std::path::Path;
use std::process::Command;

use live_support::Agent;

fn script(shell: &str) -> tempfile::NamedTempFile {
    let out = Command::new(env!("CARGO_BIN_EXE_xe"))
        .args(["completion", &format!("shell={shell}")])
        .output()
        .expect("run xe completion");
    assert!(out.status.success(), "{out:?}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &out.stdout).unwrap();
    file
}

/// What bash's completion function offers for `line` (cursor at its end),
/// with `xe` and `XE_SOCKET` taken from `env`.
fn complete(script: &Path, line: &str, env: &[(&str, &str)]) -> Vec<String> {
    let out = Command::new("bash")
        .args([
            "--norc",
            "-c",
            r#"source "$1"; COMP_LINE=$2; COMP_POINT=${#2}; _xe; printf '%s\n' "${COMPREPLY[@]}""#,
            "bash",
        ])
        .arg(script)
        .arg(line)
        .envs(env.iter().copied())
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{out:?}");
    let mut words: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    words.sort();
    words
}

#[test]
fn bash_completes_names_parameters_and_values() {
    let s = script("bash");
    let c = |line: &str| complete(s.path(), line, &[]);
    assert_eq!(c("xe pool-ha-en"), ["pool-ha-enable"]);
    assert_eq!(c("xe help vm-sta"), ["vm-start"]);
    // Connection options before the command are skipped.
    assert_eq!(c("xe -s host1 -pw x vm-sta"), ["vm-start"]);
    assert_eq!(c("xe pool-ha-enable heart"), ["heartbeat-sr-uuids="]);
    // Map keys: bash replaces only what follows the last ':' or '='.
    assert_eq!(c("xe pool-ha-enable ha-config:"), ["timeout="]);
    assert_eq!(c("xe sr-create type="), ["block", "file"]);
    assert_eq!(
        c("xe vm-shutdown --"),
        [
            "--fingerprint=",
            "--force",
            "--multiple",
            "--socket",
            "--trust-new"
        ]
    );
    assert_eq!(
        c("xe pool-ha-compute-hypothetical-max-host-failures-to-tolerate restart-priority=b"),
        ["best-effort"]
    );
    assert!(c("xe nosuch-command ").is_empty());
}

#[test]
fn bash_completes_uuids_from_the_live_pool() {
    if !nix::unistd::geteuid().is_root() {
        println!(
            "skipped: UUIDs come from the agent's Unix socket, which takes a password-less login only from root"
        );
        return;
    }
    let agent = Agent::start_drivers(&["process"]);
    let mut vms: Vec<String> = ["a", "b"]
        .iter()
        .map(|name| {
            agent
                .xe(&[
                    "vm-create",
                    &format!("name-label={name}"),
                    "memory=64MiB",
                    "driver=process",
                    "driver-config:command=sleep 1000",
                ])
                .ok()
                .trim()
                .to_owned()
        })
        .collect();
    vms.sort();
    let host = agent.xe(&["host-list", "--minimal"]).ok().trim().to_owned();
    let s = script("bash");
    let bin = Path::new(env!("CARGO_BIN_EXE_xe")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let socket = agent.unix.to_str().unwrap().to_owned();
    let env = [("PATH", path.as_str()), ("XE_SOCKET", socket.as_str())];
    let c = |line: &str| complete(s.path(), line, &env);
    assert_eq!(c("xe vm-param-list uuid="), vms);
    assert_eq!(
        c(&format!("xe vm-destroy uuid={}", &vms[0][..8])),
        [vms[0].as_str()]
    );
    assert_eq!(c("xe vm-start on="), [host.as_str()]);
    assert_eq!(c("xe pool-eject host-uuid="), [host]);
    // No agent there: nothing, quickly, and no error.
    let none = [
        ("PATH", path.as_str()),
        ("XE_SOCKET", "/nonexistent/xapi-ha.sock"),
    ];
    assert!(complete(s.path(), "xe vm-param-list uuid=", &none).is_empty());
}

/// What the zsh script offers for the words `line` (cursor at the end of
/// the last), with zsh's completion builtins replaced by stand-ins:
/// `compadd` prints the candidates that start with `PREFIX`, `compset -P`
/// drops the prefix up to `=`.
fn complete_zsh(script: &Path, line: &[&str]) -> Vec<String> {
    let stubs = r#"compadd() { while [[ $1 != -- ]]; do shift; done; shift
  local w; for w in "$@"; do [[ $w == ${PREFIX}* ]] && print -r -- "$w"; done; return 0 }
compset() { PREFIX=${PREFIX#*=} }
_files() { }
words=("${@:2}"); CURRENT=$(( $# - 1 )); PREFIX=${@[-1]}
source "$1""#;
    let out = Command::new("zsh")
        .args(["-f", "-c", stubs, "zsh"])
        .arg(script)
        .args(line)
        .output()
        .expect("run zsh");
    assert!(out.status.success(), "{out:?}");
    let mut words: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    words.sort();
    words
}

#[test]
fn zsh_completes_names_parameters_and_values() {
    if Command::new("zsh").arg("--version").output().is_err() {
        println!("skipped: zsh is not installed (.ci/run installs it)");
        return;
    }
    let s = script("zsh");
    let out = Command::new("zsh")
        .arg("-n")
        .arg(s.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let c = |line: &[&str]| complete_zsh(s.path(), line);
    assert_eq!(c(&["xe", "pool-ha-en"]), ["pool-ha-enable"]);
    assert_eq!(c(&["xe", "-s", "h", "vm-sta"]), ["vm-start"]);
    assert_eq!(
        c(&["xe", "pool-ha-enable", "heart"]),
        ["heartbeat-sr-uuids="]
    );
    assert_eq!(c(&["xe", "sr-create", "type="]), ["block", "file"]);
    assert_eq!(c(&["xe", "help", "pool-ej"]), ["pool-eject"]);
}
