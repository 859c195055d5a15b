//! Fuzz checks for the stamp record decoder (what the checker reads from
//! shared disks, written by guests we do not trust to be intact).

use xapi_vm::stamp::record::{BLOCK_BYTES, decode};

/// Decodes `data` as given (any length) and zero-padded to a block: never
/// panics, and a block that decodes re-encodes to exactly itself (the format
/// has one text per record).
pub fn check_stamp_block(data: &[u8]) {
    let _ = decode(data);
    let mut block = vec![0u8; BLOCK_BYTES];
    let n = data.len().min(BLOCK_BYTES);
    block[..n].copy_from_slice(&data[..n]);
    if let Ok(Some(r)) = decode(&block) {
        let again = r.encode().expect("a decoded record encodes");
        assert_eq!(
            &again[..],
            &block[..],
            "decode then encode changed the block"
        );
    }
}
