//! `xe help`, the command index of docs/cli.md and the completion scripts
//! the package installs (`packaging/completions/`) are all generated from
//! the command catalogue (`xe::catalog`). This test fails when a committed
//! copy differs from what the code generates; with `REGENERATE_CLI_DOC=1`
//! it rewrites them instead.

use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- BEGIN generated: xe command index -->\n";
const END: &str = "<!-- END generated: xe command index -->";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn regenerate() -> bool {
    std::env::var_os("REGENERATE_CLI_DOC").is_some_and(|v| v == "1")
}

/// What belongs between the markers: `xe help` as printed, then the index.
fn generated_index() -> String {
    format!(
        "```\n$ xe help\n{}```\n\n{}",
        xe::help::list_text(),
        xe::catalog::index_markdown()
    )
}

/// Compares `path` with `want`, or rewrites it when regenerating.
fn check_file(path: &Path, want: &str) {
    let have = std::fs::read_to_string(path).unwrap_or_default();
    if have == want {
        return;
    }
    if regenerate() {
        std::fs::write(path, want).unwrap();
        eprintln!("rewrote {}", path.display());
        return;
    }
    let first = have
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
    panic!(
        "{} differs from what the command catalogue generates (first at line {}: have {:?}, want {:?}); \
         run REGENERATE_CLI_DOC=1 cargo test -p xe --test cli_doc_sync",
        path.display(),
        first + 1,
        have.lines().nth(first),
        want.lines().nth(first)
    );
}

#[test]
fn docs_command_index_is_generated_from_the_catalogue() {
    let path = repo().join("docs/cli.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find(BEGIN).expect("docs/cli.md has the BEGIN marker") + BEGIN.len();
    let end = start
        + text[start..]
            .find(END)
            .expect("docs/cli.md has the END marker");
    let want = format!("{}{}{}", &text[..start], generated_index(), &text[end..]);
    check_file(&path, &want);
}

#[test]
fn completion_scripts_are_generated_from_the_catalogue() {
    let dir = repo().join("packaging/completions");
    check_file(
        &dir.join("xe.bash"),
        &xe::completion::script("bash").unwrap(),
    );
    check_file(&dir.join("_xe"), &xe::completion::script("zsh").unwrap());
}

#[test]
fn help_lists_every_catalogue_command() {
    let help = xe::help::list_text();
    for entry in xe::catalog::entries() {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&entry.name)),
            "xe help does not list {}",
            entry.name
        );
    }
}
