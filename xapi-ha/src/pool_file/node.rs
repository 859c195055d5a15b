//! A format-neutral tree of the parsed file. TOML and JSON are both read into
//! it, so that one schema walker validates both with identical messages.
//!
//! Tables keep their entries in order and keep duplicates: `serde_json`'s own
//! `Value` silently keeps the last of two equal keys, which would let a typo
//! in a JSON file change a plan without a word.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The key under which `toml` hands a datetime to a generic visitor.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Table(Vec<(String, Node)>),
    Array(Vec<Node>),
    String(String),
    /// Wide enough for every `i64` and `u64` either format produces.
    Integer(i128),
    Float(f64),
    Bool(bool),
    /// JSON `null`; TOML has none.
    Null,
    /// A TOML datetime, kept only to name it in errors.
    Datetime(String),
}

impl Node {
    /// Describes the value for "got ..." in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Table(_) => "a table".to_owned(),
            Self::Array(_) => "an array".to_owned(),
            Self::String(s) => format!("{:?}", shorten(s)),
            Self::Integer(i) => i.to_string(),
            Self::Float(x) => format!("{x:?}"),
            Self::Bool(b) => b.to_string(),
            Self::Null => "null".to_owned(),
            Self::Datetime(d) => format!("the datetime {d}"),
        }
    }
}

/// Strings quoted in messages are cut to this many characters, so that a
/// stray multi-megabyte value does not become a multi-megabyte error line.
const QUOTE_CHARS_MAX: usize = 60;

pub(crate) fn shorten(s: &str) -> String {
    if s.chars().count() <= QUOTE_CHARS_MAX {
        return s.to_owned();
    }
    let mut short: String = s.chars().take(QUOTE_CHARS_MAX - 3).collect();
    short.push_str("...");
    short
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML or JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Integer(i128::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Integer(i128::from(v)))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Integer(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        i128::try_from(v)
            .map(Node::Integer)
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        if let [(key, Node::String(text))] = entries.as_slice()
            && key == TOML_DATETIME_KEY
        {
            return Ok(Node::Datetime(text.clone()));
        }
        Ok(Node::Table(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_are_shortened_in_messages() {
        let long = Node::String("x".repeat(1000));
        assert_eq!(long.describe(), format!("\"{}...\"", "x".repeat(57)));
        assert_eq!(Node::String("a\nb".into()).describe(), "\"a\\nb\"");
    }

    #[test]
    fn json_duplicates_are_kept() {
        let node: Node = serde_json::from_str(r#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(
            node,
            Node::Table(vec![
                ("a".into(), Node::Integer(1)),
                ("a".into(), Node::Integer(2))
            ])
        );
    }

    #[test]
    fn toml_datetime_is_recognised() {
        let node: Node = toml::from_str("a = 1979-05-27").unwrap();
        let Node::Table(entries) = node else {
            panic!("not a table")
        };
        assert!(matches!(entries[0].1, Node::Datetime(_)));
    }
}
