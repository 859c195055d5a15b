//! The one escaping helper of the status page: every text from the
//! database goes through [`esc`] (element content and quoted attributes).

use std::fmt::Write as _;

/// `s` escaped for HTML text and double- or single-quoted attributes.
#[must_use]
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Builds a page: raw markup by [`Page::raw`], text by [`Page::text`].
#[derive(Default)]
pub struct Page {
    out: String,
}

impl Page {
    /// Appends markup written in this crate (never data).
    pub fn raw(&mut self, markup: &str) -> &mut Page {
        self.out.push_str(markup);
        self
    }

    /// Appends text, escaped.
    pub fn text(&mut self, s: &str) -> &mut Page {
        self.out.push_str(&esc(s));
        self
    }

    /// `<tag>text</tag>`, the text escaped (`tag` is ours).
    pub fn el(&mut self, tag: &str, s: &str) -> &mut Page {
        let _ = write!(self.out, "<{tag}>{}</{tag}>", esc(s));
        self
    }

    /// `<td class="cls">text</td>`.
    pub fn td_class(&mut self, cls: &str, s: &str) -> &mut Page {
        let _ = write!(self.out, "<td class=\"{}\">{}</td>", esc(cls), esc(s));
        self
    }

    /// One table row of header cells.
    pub fn head_row(&mut self, cells: &[&str]) -> &mut Page {
        self.raw("<tr>");
        for c in cells {
            self.el("th", c);
        }
        self.raw("</tr>")
    }

    /// The page.
    #[must_use]
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("plain ünïcode"), "plain ünïcode");
    }
}
