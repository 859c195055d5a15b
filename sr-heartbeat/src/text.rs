//! Text from outside (slot status strings, host and VM names) shown on a
//! terminal: control characters are escaped, so a name holding `ESC [ 2 J`
//! cannot clear the operator's screen and one holding a newline cannot forge
//! an extra output line.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character (C0, DEL, C1: `char::is_control`)
/// written as an escape: `\n`, `\r`, `\t`, `\xNN` for the others below
/// 0x100. Everything else, including any other Unicode, is kept. Borrowed
/// when there is nothing to escape.
#[must_use]
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Every control character is below 0x100 (C0, DEL, C1).
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_control("vm\u{1b}[2J\nfake line"),
            "vm\\x1b[2J\\nfake line"
        );
        assert_eq!(escape_control("a\tb\rc\u{7f}\u{9b}"), "a\\tb\\rc\\x7f\\x9b");
        assert!(matches!(
            escape_control("plain é ✓"),
            Cow::Borrowed("plain é ✓")
        ));
        assert!(
            !escape_control("\u{0}\u{1f}\u{85}")
                .chars()
                .any(char::is_control)
        );
    }
}
