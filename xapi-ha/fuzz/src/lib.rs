//! Fuzz targets for the pool database's decoders; see `checks`.
pub mod checks;
