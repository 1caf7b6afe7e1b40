//! AdmissionReview bytes -> admission::parse + admission::review.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_defaults_fuzz::checks::review_bytes(data));
