//! `docs/on-disk-format.md` mirrors the `off::` constants: every field of the
//! header, pool block and slot appears in its section's table at the offset
//! the code uses. A layout change that forgets the document fails here.

use sr_heartbeat::statefile::{header, pool, slot};

/// `(offset, field)` rows of the first table after `heading`.
fn table(doc: &str, heading: &str) -> Vec<(usize, String)> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/on-disk-format.md lacks {heading:?}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let offset = cells.get(1)?.parse().ok()?;
            Some((offset, (*cells.get(4)?).to_string()))
        })
        .collect()
}

fn check(heading: &str, expected: &[(usize, &str)]) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/on-disk-format.md");
    let doc = std::fs::read_to_string(path).expect("read docs/on-disk-format.md");
    let rows = table(&doc, heading);
    for (offset, field) in expected {
        assert!(
            rows.iter().any(|(o, f)| o == offset && f == field),
            "{heading}: no row for {field} at offset {offset} (rows: {rows:?})"
        );
    }
}

#[test]
fn statefile_doc_matches_header_offsets() {
    use header::off;
    check(
        "### Header block",
        &[
            (off::MAGIC, "magic"),
            (off::VERSION, "version"),
            (off::SECTOR_SIZE, "sector_size"),
            (off::GENERATION, "generation"),
            (off::SLOT_SIZE, "slot_size"),
            (off::MAX_HOSTS, "max_hosts"),
            (off::POOL_OFFSET, "pool_offset"),
            (off::SLOT0_OFFSET, "slot0_offset"),
            (off::TOTAL_SIZE, "total_size"),
            (off::FORMAT_TIME_MS, "format_time_ms"),
            (off::CRC, "crc"),
        ],
    );
}

#[test]
fn statefile_doc_matches_pool_offsets() {
    use pool::off;
    check(
        "### Pool block",
        &[
            (off::MAGIC, "magic"),
            (off::VERSION, "version"),
            (off::STATE, "state"),
            (off::GENERATION, "generation"),
            (off::MASTER_UUID, "master"),
            (off::MASTER_EPOCH, "master_epoch"),
            (off::UPDATE_SEQ, "update_seq"),
            (off::CRC, "crc"),
        ],
    );
}

#[test]
fn statefile_doc_matches_slot_offsets() {
    use slot::off;
    check(
        "### Host slot",
        &[
            (off::MAGIC, "magic"),
            (off::VERSION, "version"),
            (off::HOST_INDEX, "host_index"),
            (off::FLAGS, "flags"),
            (off::GENERATION, "generation"),
            (off::HOST_UUID, "host_uuid"),
            (off::SEQUENCE, "sequence"),
            (off::HEARD, "heard"),
            (off::SEEN, "seen"),
            (off::LIVESET, "liveset"),
            (off::PROPOSED, "proposed"),
            (off::LOCK_REQUEST, "lock_request"),
            (off::LOCK_GRANT, "lock_grant"),
            (off::MASTER_EPOCH, "master_epoch"),
            (off::FAULT_ROUND, "fault_round"),
            (off::PHASE, "phase"),
            (off::STATUS_LEN, "status_len"),
            (off::DIAG_TIME_MS, "diag_time_ms"),
            (off::NET_ROUND, "net_round"),
            (off::STATUS_TEXT, "status"),
            (off::CRC, "crc"),
        ],
    );
}

#[test]
fn sr_label_doc_matches_label_offsets() {
    use sr_heartbeat::srlabel::label::off;
    check(
        "### Label block",
        &[
            (off::MAGIC, "magic"),
            (off::VERSION, "version"),
            (off::VOLUME_COUNT, "volume_count"),
            (off::BLOCK_SIZE, "block_size"),
            (off::SR_UUID, "sr_uuid"),
            (off::GENERATION, "generation"),
            (off::DEVICE_BYTES, "device_bytes"),
            (off::DATA_OFFSET, "data_offset"),
            (off::ENTRIES, "entries"),
            (off::CRC, "crc"),
        ],
    );
}
