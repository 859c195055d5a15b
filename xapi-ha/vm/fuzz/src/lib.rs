//! The checks the fuzz target runs; also replayed by
//! `tests/fuzz_corpus_replay.rs` without cargo-fuzz.
pub mod checks;
