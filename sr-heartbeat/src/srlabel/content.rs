//! What the first sectors of a device hold, before it is labelled: nothing
//! (all zero), our SR label, or someone else's data. `sr-create` refuses
//! the last without `force` (docs/api.md); the message names a known
//! filesystem or partition table when one of their magics is found.

use super::label::{LABEL_BLOCK, SrLabel};

/// How many bytes [`classify`] looks at: the label's two slots and the
/// places where common filesystems keep their superblocks (btrfs: 64 KiB).
pub const PROBE_BYTES: usize = 128 << 10;

/// What a device holds at its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// The probed bytes are all zero.
    Blank,
    /// Our label (the newest valid slot).
    Label(SrLabel),
    /// Anything else; the string says what, as far as it is known.
    Foreign(String),
}

/// Known signatures: (what, byte offset, bytes).
const MAGICS: &[(&str, usize, &[u8])] = &[
    ("an HA statefile", 0, b"XHASTATE"),
    ("a metadata volume", 0, b"XHAMETA\0"),
    ("an XFS filesystem", 0, b"XFSB"),
    ("an LVM physical volume", 512, b"LABELONE"),
    ("a GPT partition table", 512, b"EFI PART"),
    ("an ext2/3/4 filesystem", 1080, &[0x53, 0xef]),
    ("a swap area", 4086, b"SWAPSPACE2"),
    ("a btrfs filesystem", 65600, b"_BHRfS_M"),
    ("an MBR partition table", 510, &[0x55, 0xaa]),
];

/// Classifies the first bytes of a device (up to [`PROBE_BYTES`]; fewer
/// for a device that is smaller). Never panics.
#[must_use]
pub fn classify(first: &[u8]) -> Content {
    let first = &first[..first.len().min(PROBE_BYTES)];
    if first.iter().all(|&b| b == 0) {
        return Content::Blank;
    }
    if first.len() >= 2 * LABEL_BLOCK
        && let Ok(label) =
            SrLabel::newest(&first[..LABEL_BLOCK], &first[LABEL_BLOCK..2 * LABEL_BLOCK])
    {
        return Content::Label(label);
    }
    for (what, at, magic) in MAGICS {
        if first.get(*at..*at + magic.len()) == Some(*magic) {
            return Content::Foreign((*what).to_owned());
        }
    }
    let at = first.iter().position(|&b| b != 0).unwrap_or(0);
    Content::Foreign(format!(
        "unknown data (the first non-zero byte is at offset {at})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn blank_label_and_foreign() {
        let mut dev = vec![0u8; PROBE_BYTES];
        assert_eq!(classify(&dev), Content::Blank);
        let l = SrLabel::new(Uuid::from_u128(1), 1 << 30);
        dev[LABEL_BLOCK..2 * LABEL_BLOCK].copy_from_slice(&l.to_bytes());
        assert_eq!(classify(&dev), Content::Label(l));
        let mut ext = vec![0u8; PROBE_BYTES];
        ext[1080..1082].copy_from_slice(&[0x53, 0xef]);
        assert_eq!(
            classify(&ext),
            Content::Foreign("an ext2/3/4 filesystem".into())
        );
        let mut other = vec![0u8; 4096];
        other[3000] = 1;
        assert!(matches!(classify(&other), Content::Foreign(s) if s.contains("3000")));
        assert!(matches!(classify(&[1, 2]), Content::Foreign(_)));
    }
}
