//! VDIs on a `type=block` SR: each is a region of the SR's device, an entry
//! of the label's volume table (docs/on-disk-format.md, "Block SR label";
//! docs/vm-drivers.md, "VM disks").
//!
//! The VDI record says where its region is, in `sm_config` (our keys):
//! - `region_offset`: bytes from the start of the device (a multiple of
//!   4096, after the label's first MiB);
//! - `region_size`: bytes (a multiple of 4096).
//!
//! `location` is the VDI's uuid, which is also the volume's uuid in the
//! label. The allocation is decided here, purely: first fit over the
//! regions the database records for the SR (the label's rules, with
//! `SrLabel::first_fit`), and the server writes exactly that entry to the
//! label ([`Effect::CreateRegion`]) under the database lock, before the
//! record commits. If the label on the device disagrees (a region the
//! database does not know, or a device too small) the write is refused and
//! nothing is committed.

use sr_heartbeat::srlabel::label::VOLUME_ALIGN;
use sr_heartbeat::srlabel::{SrLabel, Volume, VolumeKind};
use uuid::Uuid;

use crate::db::{Change, Class, Database};
use crate::value::{Key, Ref, Value};

use super::coerce::to_text;
use super::ids::Fresh;
use super::vdi::sr_config;
use super::{ApiError, Caller, Effect, Outcome};

/// `sm_config` key: the region's offset on the device, bytes.
pub const REGION_OFFSET_KEY: &str = "region_offset";
/// `sm_config` key: the region's size, bytes.
pub const REGION_SIZE_KEY: &str = "region_size";

/// The region `(offset, size)` the record of `vdi` names, if any.
#[must_use]
pub fn region_of(db: &Database, vdi: Ref) -> Option<(u64, u64)> {
    let Some(Value::Map(pairs)) = db.field(Class::Vdi, vdi, "sm_config") else {
        return None;
    };
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.to_wire() == key)
            .and_then(|(_, v)| to_text(v).parse::<u64>().ok())
    };
    Some((get(REGION_OFFSET_KEY)?, get(REGION_SIZE_KEY)?))
}

fn kind_of(db: &Database, vdi: Ref) -> VolumeKind {
    match db
        .field(Class::Vdi, vdi, "type")
        .map(|v| to_text(&v))
        .as_deref()
    {
        Some("ha_statefile") => VolumeKind::Statefile,
        Some("redo_log") => VolumeKind::Metadata,
        _ => VolumeKind::Disk,
    }
}

/// The volumes the database records on block SR `sr`, sorted by offset.
#[must_use]
pub fn sr_volumes(db: &Database, sr: Ref) -> Vec<Volume> {
    let mut out: Vec<Volume> = db
        .objects(Class::Vdi)
        .filter(|(vdi, _)| db.field(Class::Vdi, *vdi, "SR") == Some(Value::Ref(sr)))
        .filter_map(|(vdi, _)| {
            let (offset, size) = region_of(db, vdi)?;
            let uuid = Uuid::parse_str(&to_text(&db.field(Class::Vdi, vdi, "uuid")?)).ok()?;
            Some(Volume {
                uuid,
                kind: kind_of(db, vdi),
                offset,
                size,
            })
        })
        .collect();
    out.sort_by_key(|v| v.offset);
    out
}

/// Where a new volume of `size` bytes goes on block SR `sr`: first fit
/// over the recorded volumes. The device's size is not known here; the
/// label write refuses a region past its end.
pub fn place(db: &Database, sr: Ref, uuid: Uuid, size: u64) -> Result<Volume, ApiError> {
    let mirror = SrLabel {
        sr_uuid: Uuid::nil(),
        generation: 1,
        device_bytes: u64::MAX - u64::MAX % VOLUME_ALIGN,
        volumes: sr_volumes(db, sr),
    };
    if let Err(e) = mirror.validate() {
        return Err(ApiError::internal(&format!(
            "the VDI records of SR {sr} overlap: {e}"
        )));
    }
    let (offset, size) = mirror
        .first_fit(size)
        .map_err(|e| backend("SR_FULL", &e.to_string()))?;
    Ok(Volume {
        uuid,
        kind: VolumeKind::Disk,
        offset,
        size,
    })
}

/// `SR_BACKEND_FAILURE [code, "", message]`, as the storage effects say it.
pub fn backend(code: &str, message: &str) -> ApiError {
    ApiError::new("SR_BACKEND_FAILURE", [code, "", message])
}

/// `VDI.create` on block SR `sr`, after the record's fields were read
/// (`given`): `virtual_size` must be positive and a multiple of 4096
/// (`INVALID_VALUE ["virtual_size"; v]` otherwise).
pub fn create(
    db: &Database,
    caller: &Caller,
    sr: Ref,
    size: i64,
    mut given: Vec<(String, Value)>,
) -> Result<Outcome, ApiError> {
    let bytes = u64::try_from(size)
        .ok()
        .filter(|b| *b > 0 && b.is_multiple_of(VOLUME_ALIGN))
        .ok_or_else(|| ApiError::invalid_value("virtual_size", &size.to_string()))?;
    let Some(device) = sr_config(db, sr, "device") else {
        return Err(ApiError::invalid_value("SR", &sr.to_string()));
    };
    let mut fresh = Fresh::new(db, caller);
    let r = fresh.r#ref();
    let uuid = fresh.uuid();
    let volume_uuid =
        Uuid::parse_str(&uuid).map_err(|e| ApiError::internal(&format!("fresh uuid: {e}")))?;
    let volume = place(db, sr, volume_uuid, bytes)?;
    let mut sm_config = match given.iter().position(|(n, _)| n == "sm_config") {
        Some(i) => match given.remove(i).1 {
            Value::Map(pairs) => pairs,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    sm_config.retain(|(k, _)| {
        let k = k.to_wire();
        k != REGION_OFFSET_KEY && k != REGION_SIZE_KEY
    });
    sm_config.push((
        Key::String(REGION_OFFSET_KEY.into()),
        Value::String(volume.offset.to_string()),
    ));
    sm_config.push((
        Key::String(REGION_SIZE_KEY.into()),
        Value::String(volume.size.to_string()),
    ));
    sm_config.sort_by(|a, b| a.0.cmp(&b.0));
    given.push(("sm_config".to_owned(), Value::Map(sm_config)));
    given.push(("uuid".to_owned(), Value::String(uuid.clone())));
    given.push(("location".to_owned(), Value::String(uuid)));
    given.push((
        "physical_utilisation".to_owned(),
        Value::Int(i64::try_from(volume.size).unwrap_or(i64::MAX)),
    ));
    Ok(Outcome {
        changes: vec![Change::Create {
            class: Class::Vdi,
            r#ref: r,
            fields: given,
        }],
        effects: vec![Effect::CreateRegion {
            device: device.into(),
            volume,
        }],
        ..Outcome::value(Value::Ref(r))
    })
}
