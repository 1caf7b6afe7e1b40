//! Manifest streams -> the CLI's YAML reader, with the oracle that what it
//! writes reads back as the same documents.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_defaults_fuzz::checks::yaml_bytes(data));
