//! Fuzz targets for every decoder of what `xhad` (and its clients and
//! supervisor) read from the network or a socket; see `checks`.
pub mod checks;
