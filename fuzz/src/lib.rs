//! The fuzz targets' bodies (shared with tests/fuzz_corpus.rs).
pub mod checks;
