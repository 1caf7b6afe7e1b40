//! Pods (JSON or built from the bytes) -> the engine, with the add-only,
//! lossless, idempotent and explained-violations oracle.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_defaults_fuzz::checks::engine_bytes(data));
