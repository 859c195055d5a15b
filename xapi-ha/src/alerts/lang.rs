//! The mail texts of each language, from the files in `xapi-ha/lang/`
//! (built in). A text is a template with `{placeholder}`s
//! ([`Template::fill`]).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// The languages built in (`mail-language`).
pub const LANGUAGES: &[&str] = &["en-US"];

const FILES: &[(&str, &str)] = &[("en-US", include_str!("../../lang/en-US.toml"))];

/// A subject and a body.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Pair {
    pub subject: String,
    pub body: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Extra {
    pub body: String,
}

/// One language's texts.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// `HA_HOST_FAILED`.
    pub ha_host_failed: Pair,
    /// Every other message: the field table.
    pub generic: Pair,
    /// Added to a mail that stands for several identical alerts.
    pub coalesced: Extra,
    /// `pool.send_test_email`.
    pub test: Pair,
}

static PARSED: LazyLock<HashMap<&'static str, Language>> = LazyLock::new(|| {
    FILES
        .iter()
        .filter_map(|(name, text)| match toml::from_str::<Language>(text) {
            Ok(l) => Some((*name, l)),
            Err(e) => {
                // A test parses every file; a release never gets here.
                tracing::error!(language = name, error = %e, "language file does not parse");
                None
            }
        })
        .collect()
});

impl Language {
    /// The language called `name` (`en-US`).
    #[must_use]
    pub fn get(name: &str) -> Option<&'static Language> {
        PARSED.get(name)
    }
}

/// Fills `{key}` placeholders from `values` in one pass (a value that
/// contains braces is not expanded again).
#[must_use]
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => match values.iter().find(|(k, _)| *k == &after[..end]) {
                Some((_, v)) => {
                    out.push_str(v);
                    rest = &after[end + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            },
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_file_parses() {
        for name in LANGUAGES {
            assert!(Language::get(name).is_some(), "{name} does not parse");
        }
        assert_eq!(FILES.len(), LANGUAGES.len());
    }

    #[test]
    fn fill_replaces_known_placeholders_once() {
        assert_eq!(
            fill("[{pool}] {x} {body}", &[("pool", "p{body}"), ("body", "b")]),
            "[p{body}] {x} b"
        );
    }
}
