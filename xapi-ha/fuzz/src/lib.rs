//! Fuzz targets for the pool agent's decoders: the pool database's
//! snapshots and deltas (`checks`) and the API's wire decoders
//! (`wire_checks`).
pub mod checks;
pub mod wire_checks;
