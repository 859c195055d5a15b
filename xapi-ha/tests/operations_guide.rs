//! ops: docs/operations.md is tested. Every fenced block of the guide
//! carries a marker comment on the line before it (the convention is at
//! the top of the guide):
//!
//! - `<!-- ops-test: run -->`: run here, in document order, as one
//!   `bash -euo pipefail` script per block, against a real pool of two
//!   HA-ready agents (`pool_support::ha::HaPool`), with `xe` (and
//!   `sr-heartbeat`) of this build first on `PATH`; `xe` is a shell
//!   function adding the connection options. Placeholders the test learns
//!   (`<SR uuid>`) and host paths (`/dev/mapper/`, `/etc/xhad/`, mapped into
//!   a scratch directory) are substituted; any other `<placeholder>` fails.
//!   Every block must exit 0.
//! - `<!-- ops-test: elsewhere PATH -->`: run by the test in PATH; checked:
//!   PATH exists and names every `xe` command of the block.
//! - `<!-- ops-test: not-run REASON -->`: cannot run in a test (installs a
//!   package, needs systemd, reads a terminal); REASON must be given.
//! - `<!-- ops-test: output -->`: not commands, what a program prints.
//!
//! An unmarked block fails the test, and so does any `xe COMMAND` the
//! guide names (in a block or in inline code, the emergency runbook
//! included) that `xe help` does not list.

mod api_support;
mod pool_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use api_support::{PASSWORD, USER};
use pool_support::ha::{HaPool, xhad_dir};
use pool_support::xe_binary;
use serde_json::json;

const MARK: &str = "<!-- ops-test:";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    Run,
    Elsewhere(String),
    NotRun(String),
    Output,
}

#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    marker: Marker,
    body: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn guide() -> String {
    std::fs::read_to_string(repo().join("docs/operations.md")).expect("docs/operations.md")
}

fn parse_marker(line: &str) -> Result<Marker, String> {
    let inner = line
        .trim()
        .strip_prefix(MARK)
        .and_then(|r| r.strip_suffix("-->"))
        .ok_or_else(|| "no `<!-- ops-test: ... -->` marker on the line before".to_owned())?
        .trim();
    let (kind, rest) = inner.split_once(' ').unwrap_or((inner, ""));
    let rest = rest.trim();
    match kind {
        "run" if rest.is_empty() => Ok(Marker::Run),
        "output" if rest.is_empty() => Ok(Marker::Output),
        "elsewhere" if !rest.is_empty() => Ok(Marker::Elsewhere(rest.to_owned())),
        "not-run" if !rest.is_empty() => Ok(Marker::NotRun(rest.to_owned())),
        _ => Err(format!(
            "bad marker `{inner}` (run, output, elsewhere PATH, not-run REASON)"
        )),
    }
}

/// The fenced blocks with their markers, and the text outside them; or
/// the problems (unmarked blocks, bad markers, unclosed fences).
fn blocks(text: &str) -> (Vec<Block>, String, Vec<String>) {
    let mut out = Vec::new();
    let mut prose = String::new();
    let mut errors = Vec::new();
    let mut prev = "";
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let t = line.trim_start();
        if !t.starts_with("```") {
            prose.push_str(line);
            prose.push('\n');
            if !t.is_empty() {
                prev = line;
            }
            continue;
        }
        let indent = line.len() - t.len();
        let mut body = String::new();
        let mut closed = false;
        for (_, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                closed = true;
                break;
            }
            body.push_str(l.get(indent..).unwrap_or(l.trim_start()));
            body.push('\n');
        }
        if !closed {
            errors.push(format!("line {}: fence never closed", i + 1));
        }
        match parse_marker(prev) {
            Ok(marker) => out.push(Block {
                line: i + 1,
                marker,
                body,
            }),
            Err(e) => errors.push(format!("line {}: {e}", i + 1)),
        }
        prev = "";
    }
    (out, prose, errors)
}

/// The `xe` commands named in `code`: the first word after `xe` and its
/// connection options (`-s HOST`, `-p PORT`, `-u`, `-pw`, flags).
fn xe_commands(code: &str) -> Vec<String> {
    let words: Vec<&str> = code.split_whitespace().collect();
    let mut names = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let is_xe = *w == "xe" || w.ends_with("/xe") || *w == "(xe";
        if !is_xe {
            continue;
        }
        let mut j = i + 1;
        while let Some(opt) = words.get(j).filter(|o| o.starts_with('-')) {
            j += if matches!(*opt, "-s" | "-p" | "-u" | "-pw") {
                2
            } else {
                1
            };
        }
        if let Some(name) = words.get(j) {
            let name = name.trim_end_matches(['`', ',', '.', ';', ')']);
            if !name.is_empty()
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// Every `xe` command the guide names: in its non-output blocks and in
/// inline code (`...`) of the prose.
fn named_xe_commands(blocks: &[Block], prose: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for b in blocks.iter().filter(|b| b.marker != Marker::Output) {
        for l in b.body.lines() {
            let cmd = l.split(" #").next().unwrap_or("");
            if !cmd.trim_start().starts_with('#') {
                all.extend(xe_commands(cmd));
            }
        }
    }
    for code in prose.split('`').skip(1).step_by(2) {
        all.extend(xe_commands(code));
    }
    all
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xapi-ha"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

/// `sr-heartbeat` (its `cli` feature is a default one), built next to
/// `xapi-ha`.
fn sr_heartbeat_binary() -> PathBuf {
    api_support::workspace_bins().join("sr-heartbeat")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

#[test]
fn every_block_of_the_guide_is_marked_and_names_real_xe_commands() {
    let (blocks, prose, errors) = blocks(&guide());
    assert!(
        errors.is_empty(),
        "docs/operations.md: {}",
        errors.join("\n")
    );
    assert!(blocks.len() >= 8, "{} blocks", blocks.len());
    let named = named_xe_commands(&blocks, &prose);
    assert!(named.len() >= 15, "{named:?}");
    // `xe help` lists every command (the catalogue, docs/cli.md), one per
    // line, indented.
    let list = Command::new(xe_binary())
        .arg("help")
        .output()
        .expect("run xe help");
    assert!(list.status.success(), "{}", text(&list));
    let known: BTreeSet<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .chain(["help".to_owned()])
        .collect();
    assert!(known.contains("pool-ha-enable"), "{known:?}");
    let unknown: Vec<&String> = named.iter().filter(|n| !known.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "docs/operations.md names xe commands that do not exist: {unknown:?}"
    );
    // A block run elsewhere is run there: the file names its xe commands.
    for b in &blocks {
        if let Marker::Elsewhere(path) = &b.marker {
            let file = std::fs::read_to_string(repo().join(path))
                .unwrap_or_else(|e| panic!("line {}: {path}: {e}", b.line));
            for name in named_xe_commands(std::slice::from_ref(b), "") {
                assert!(
                    file.contains(&name),
                    "line {}: {path} does not run `xe {name}`",
                    b.line
                );
            }
        }
    }
}

#[test]
fn the_guides_runnable_blocks_run_against_a_real_pool() {
    let started = Instant::now();
    let (blocks, _, errors) = blocks(&guide());
    assert!(errors.is_empty(), "{errors:?}");
    let xe = xe_binary();
    sr_heartbeat_binary();
    let mut p = HaPool::new(2, &[]);
    let sr_uuid = p.call("SR.get_uuid", json!([p.sr]));
    let sr_uuid = sr_uuid.as_str().expect("SR uuid").to_owned();
    let work = tempfile::tempdir().expect("scratch dir");
    let w = work.path();
    for d in ["dev-mapper", "etc-xhad"] {
        std::fs::create_dir(w.join(d)).expect("scratch subdir");
    }
    // The planner's pool description: the guide's `pool.toml` is the
    // small healthy example (hosts h1..h3, VM db1).
    std::fs::copy(
        repo().join("docs/examples/small-healthy.toml"),
        w.join("pool.toml"),
    )
    .expect("pool.toml");
    let subs = [
        ("<SR uuid>".to_owned(), sr_uuid.clone()),
        (
            "/dev/mapper/".to_owned(),
            format!("{}/dev-mapper/", w.display()),
        ),
        (
            "/etc/xhad/".to_owned(),
            format!("{}/etc-xhad/", w.display()),
        ),
    ];
    let preamble = format!(
        "set -x\nexport PATH='{bin}':\"$PATH\"\nexport XE_KNOWN_HOSTS='{w}/known_hosts'\n\
         xe() {{ command '{xe}' -s {addr} -p {port} -u {USER} -pw '{PASSWORD}' --trust-new \"$@\"; }}\n\
         cd '{w}'\n",
        bin = bin_dir().display(),
        w = w.display(),
        xe = xe.display(),
        addr = p.master().address,
        port = p.hosts.port,
    );
    let root = running_as_root();
    let mut ran = 0;
    for b in blocks.iter().filter(|b| b.marker == Marker::Run) {
        let mut body = b.body.clone();
        for (from, to) in &subs {
            body = body.replace(from, to);
        }
        if let Some(at) = body.find('<').filter(|&at| {
            body[at + 1..].starts_with(|c: char| c.is_ascii_alphabetic())
                && body[at..].contains('>')
        }) {
            panic!(
                "line {}: a placeholder the test does not know: {}",
                b.line,
                &body[at..]
            );
        }
        if !root && body.contains("chown ") {
            eprintln!("skipped the block at line {}: chown needs root", b.line);
            continue;
        }
        let t = Instant::now();
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c"])
            .arg(format!("{preamble}{body}"))
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "docs/operations.md line {}: the block failed:\n{body}\n{}",
            b.line,
            text(&out)
        );
        eprintln!("FIGURE block at line {} ran in {:?}", b.line, t.elapsed());
        if body.contains("pool-ha-enable") {
            // The guide's enable started the daemons: stop them with the
            // pool, whatever happens next.
            p.daemons = p
                .hosts
                .hosts
                .iter()
                .map(|h| xha_lab::agent::StopDaemons::new(xhad_dir(h)))
                .collect();
        }
        ran += 1;
    }
    assert!(ran >= 4, "{ran} blocks ran");
    // What the blocks made is what the guide says.
    let secret = w.join("etc-xhad/pool-secret");
    if root {
        let meta = std::fs::metadata(&secret).expect("the pool secret");
        assert_eq!(meta.len(), 32);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    for f in ["ha-statefile", "ha-metadata"] {
        assert!(w.join("dev-mapper").join(f).is_file(), "{f}");
    }
    assert_eq!(p.call("pool.get_ha_enabled", json!([p.pool])), json!(true));
    assert_eq!(
        p.call("pool.get_ha_configuration", json!([p.pool]))["timeout"],
        json!("30")
    );
    p.call("pool.disable_ha", json!([]));
    eprintln!(
        "FIGURE the_guides_runnable_blocks_run_against_a_real_pool: {ran} blocks, {:?}",
        started.elapsed()
    );
}
