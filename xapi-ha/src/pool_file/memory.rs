//! Memory sizes in pool files: an integer number of bytes, or a string with a
//! unit (`512MiB`, `16 GiB`, `1.5GiB`, `4000MB`).
//!
//! Binary units (`KiB`, `MiB`, `GiB`, `TiB`, `PiB`) are powers of 1024, decimal
//! units (`KB`, `MB`, `GB`, `TB`, `PB`) powers of 1000, `B` (or no unit) is
//! bytes. Units are case-sensitive: `gb` or `Gb` is rejected rather than
//! guessed, because a wrong guess silently changes a plan by 7%. A decimal
//! fraction is accepted only when it comes out as a whole number of bytes.

use std::fmt;

/// The units accepted after a number, with their size in bytes.
const UNITS: &[(&str, u128)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("PB", 1_000_000_000_000_000),
];

/// The list of units, as shown in error messages.
pub const UNIT_LIST: &str = "B, KiB, MiB, GiB, TiB, PiB, KB, MB, GB, TB, PB";

/// More digits than this cannot be a `u64` number of bytes with any unit;
/// the cap keeps the `u128` arithmetic below from overflowing.
const DIGITS_MAX: usize = 24;

/// Why a memory size was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryError {
    /// The string was empty or only spaces.
    Empty,
    /// A leading minus sign: sizes cannot be negative.
    Negative,
    /// The text does not start with a decimal number (digits, optionally one
    /// `.` and more digits).
    NotANumber,
    /// The text after the number is not one of the accepted units.
    UnknownUnit(String),
    /// The size is not a whole number of bytes (`0.5B`, `1.1KiB`).
    Fractional,
    /// The size does not fit in 64 bits of bytes.
    Overflow,
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "is empty"),
            Self::Negative => write!(f, "must not be negative"),
            Self::NotANumber => write!(
                f,
                "must be a number of bytes or a number with a unit ({UNIT_LIST})"
            ),
            Self::UnknownUnit(unit) => {
                write!(f, "has unknown unit \"{unit}\" (units: {UNIT_LIST})")
            }
            Self::Fractional => write!(f, "is not a whole number of bytes"),
            Self::Overflow => write!(f, "is too large (more than 2^64 - 1 bytes)"),
        }
    }
}

/// Parses a memory size given as a string, e.g. `"16GiB"`, `"1.5 GiB"`,
/// `"4096"` (bytes).
pub fn parse_memory(text: &str) -> Result<u64, MemoryError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(MemoryError::Empty);
    }
    if text.starts_with('-') {
        return Err(MemoryError::Negative);
    }
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let unit = unit.trim_start();
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(MemoryError::NotANumber);
    }
    let multiplier = match unit {
        "" => 1,
        _ => UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, size)| *size)
            .ok_or_else(|| MemoryError::UnknownUnit(unit.to_owned()))?,
    };
    // Leading zeros do not change the value; strip them so that "0000001"
    // is not mistaken for an overflow.
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    if whole.len() > DIGITS_MAX || fraction.len() > DIGITS_MAX {
        return Err(MemoryError::Overflow);
    }
    // value = (whole . fraction) * multiplier
    //       = (whole * 10^k + fraction) * multiplier / 10^k, k = fraction digits.
    let scale = 10u128.pow(fraction.len() as u32);
    let digits = |s: &str| -> u128 {
        s.bytes()
            .fold(0u128, |acc, b| acc * 10 + u128::from(b - b'0'))
    };
    let scaled = digits(whole)
        .checked_mul(scale)
        .and_then(|v| v.checked_add(digits(fraction)))
        .and_then(|v| v.checked_mul(multiplier))
        .ok_or(MemoryError::Overflow)?;
    if scaled % scale != 0 {
        return Err(MemoryError::Fractional);
    }
    u64::try_from(scaled / scale).map_err(|_| MemoryError::Overflow)
}

/// Formats bytes in the largest binary unit that represents them exactly
/// (`16 GiB`, `1536 MiB`, `1000 B`), so that messages show round numbers the
/// way the operator wrote them.
#[must_use]
pub fn format_bytes(bytes: u64) -> String {
    format_bytes_wide(u128::from(bytes))
}

/// [`format_bytes`] for sums that may exceed `u64` (the memory of several
/// VMs): exact, never clamped, so "need X but only Y" never shows X = Y.
#[must_use]
pub fn format_bytes_wide(bytes: u128) -> String {
    const BINARY: &[(&str, u128)] = &[
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    if bytes == 0 {
        return "0 B".to_owned();
    }
    for (name, size) in BINARY {
        if bytes.is_multiple_of(*size) {
            return format!("{} {name}", bytes / size);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_fractions() {
        assert_eq!(parse_memory("512MiB"), Ok(512 << 20));
        assert_eq!(parse_memory("16 GiB"), Ok(16 << 30));
        assert_eq!(parse_memory("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_memory("4KB"), Ok(4000));
        assert_eq!(parse_memory("4096"), Ok(4096));
        assert_eq!(parse_memory("0007B"), Ok(7));
        assert_eq!(parse_memory("2.50KB"), Ok(2500));
        assert_eq!(
            parse_memory("16EiB"),
            Err(MemoryError::UnknownUnit("EiB".into()))
        );
        assert_eq!(
            parse_memory("16gib"),
            Err(MemoryError::UnknownUnit("gib".into()))
        );
        assert_eq!(parse_memory("0.5B"), Err(MemoryError::Fractional));
        assert_eq!(parse_memory("-1GiB"), Err(MemoryError::Negative));
        assert_eq!(parse_memory(""), Err(MemoryError::Empty));
        assert_eq!(parse_memory("GiB"), Err(MemoryError::NotANumber));
        assert_eq!(parse_memory("1.GiB"), Err(MemoryError::NotANumber));
        assert_eq!(parse_memory("1.2.3GiB"), Err(MemoryError::NotANumber));
        assert_eq!(parse_memory("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_memory("18446744073709551616"),
            Err(MemoryError::Overflow)
        );
        assert_eq!(parse_memory("16384PiB"), Err(MemoryError::Overflow));
        assert_eq!(
            parse_memory("99999999999999999999999999999999TB"),
            Err(MemoryError::Overflow)
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(format_bytes(16 << 30), "16 GiB");
        assert_eq!(format_bytes(1536 << 20), "1536 MiB");
        assert_eq!(format_bytes(1000), "1000 B");
        assert_eq!(format_bytes(0), "0 B");
    }
}
