//! The metadata volume (256 MiB): the pool database redo log.
//!
//! Two superblocks written alternately (the newest valid one wins), two halves
//! each holding a snapshot (the whole database as opaque bytes) and an
//! append-only delta area. A new snapshot goes to the inactive half and is
//! committed by writing the next superblock; deltas are appended to the
//! active half. Recovery returns the committed snapshot plus the deltas after
//! it, in sequence order, stopping at the first torn or stale record. Every
//! structure carries the volume uuid, a master epoch and a CRC32C; the byte
//! layout is in `docs/on-disk-format.md` ("Metadata volume").
//!
//! Modules: [`layout`] (where things are), [`superblock`], [`snapshot`],
//! [`record`] (encoders and decoders), [`replay`](mod@replay) (the pure replay rule),
//! [`io`] (what a device must offer), [`device`] (that, for `BlockDevice`
//! and the deadline-enforcing `IoThread`), [`volume`] (format, recover; its
//! writer, which appends deltas and writes snapshots, is in `writer`),
//! [`inspect`](mod@inspect) (a read-only report for `dump` and `check`).

#[cfg(feature = "io")]
pub mod device;
pub mod error;
pub mod inspect;
pub mod io;
pub mod layout;
pub mod record;
pub mod replay;
pub mod snapshot;
pub mod superblock;
pub mod volume;
mod writer;

#[cfg(feature = "io")]
pub use device::ThreadedIo;
pub use error::DecodeError;
pub use inspect::{MetadataInspection, inspect};
pub use io::{Deadlines, IoClass, IoFailure, MetaIo};
pub use layout::{BLOCK, Layout, LayoutError, STANDARD_VOLUME_BYTES};
pub use record::DeltaRecord;
pub use replay::{Delta, DeltaSource, Replay, ReplayContext, ReplayStop, replay, replay_slice};
pub use snapshot::{SnapshotHeader, decode_snapshot, encode_snapshot};
pub use superblock::{Superblock, SuperblockPair};
pub use volume::{Appended, MetaError, MetadataVolume, MetadataWriter, Recovered};
