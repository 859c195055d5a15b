//! Fuzz targets for every decoder of `sr_heartbeat`; see `checks`.
pub mod checks;
