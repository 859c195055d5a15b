//! Simulator and end-to-end tests.
