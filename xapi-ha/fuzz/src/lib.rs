//! Fuzz targets for every decoder of what the pool agent reads from the
//! network; see `wire_checks`.
pub mod wire_checks;
