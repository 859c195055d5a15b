//! Plain-text output: tables (a header row and left-aligned columns
//! separated by two spaces, no trailing spaces) and XenServer records
//! (`name ( RO): value`, laid out as xe does: [`record`]).
//!
//! Every cell and value goes through [`escape_control`]: names come from pool
//! files and daemons, and a control character in one (an escape sequence, a
//! newline) must not reach the terminal raw.

use std::io::{self, Write};

pub use sr_heartbeat::text::escape_control;

/// How a record field may be used, as XenServer prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `RO`: read-only.
    ReadOnly,
    /// `RW`: read-write.
    ReadWrite,
    /// `SRO`: read-only set.
    SetReadOnly,
    /// `SRW`: read-write set.
    SetReadWrite,
    /// `MRO`: read-only map.
    MapReadOnly,
    /// `MRW`: read-write map.
    MapReadWrite,
}

impl Access {
    fn tag(self) -> &'static str {
        match self {
            Self::ReadOnly => " RO",
            Self::ReadWrite => " RW",
            Self::SetReadOnly => "SRO",
            Self::SetReadWrite => "SRW",
            Self::MapReadOnly => "MRO",
            Self::MapReadWrite => "MRW",
        }
    }
}

/// Writes one record as xe does (`cli_printer.ml` `multi_line_record`):
/// each label is the name and its access tag (`name ( RO)`); the width is 4
/// plus the longest label; the first label is padded on the right, the
/// others on the left; then `: ` and the value.
pub fn record(out: &mut dyn Write, fields: &[(&str, Access, String)]) -> io::Result<()> {
    let labels: Vec<String> = fields
        .iter()
        .map(|(name, access, _)| format!("{name} ({})", access.tag()))
        .collect();
    let width = 4 + labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    for (i, (label, (_, _, value))) in labels.iter().zip(fields).enumerate() {
        let value = escape_control(value);
        if i == 0 {
            writeln!(out, "{label:<width$}: {value}")?;
        } else {
            writeln!(out, "{label:>width$}: {value}")?;
        }
    }
    Ok(())
}

/// Writes `header` and `rows` as aligned columns.
pub fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape_control(c).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Access;

    #[test]
    fn record_layout() {
        let mut out = Vec::new();
        super::record(
            &mut out,
            &[
                ("uuid", Access::ReadOnly, "1234".into()),
                ("ha-restart-priority", Access::ReadWrite, "restart".into()),
                ("tags", Access::SetReadWrite, String::new()),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "uuid ( RO)                   : 1234\n\
             \x20   ha-restart-priority ( RW): restart\n\
             \x20                  tags (SRW): \n"
        );
    }
    #[test]
    fn aligned() {
        let mut out = Vec::new();
        super::table(
            &mut out,
            &["A", "BB"],
            &[vec!["xyz".into(), "1".into()], vec!["q".into(), "".into()]],
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A    BB\nxyz  1\nq\n");
    }
}
