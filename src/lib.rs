//! secure-defaults: fill in a secure baseline on Kubernetes pods without
//! overriding anything they state.
//!
//! - [`engine`]: the pure hardening engine.
//! - [`config`]: the operator's configuration.
//! - [`manifest`]: Kubernetes objects that carry a pod spec, and patches for them.
//! - [`assess`]: what admission will do to a workload's pods (scan, previews).
//! - [`admission`]: an AdmissionReview request in, the response out (pure).
//! - [`scan`]: `secure-defaults scan`'s per-namespace report.
//! - [`server`]: the webhook's HTTPS server, admin port, TLS and metrics.
//! - [`native_policy`]: the baseline as native admission policies (`secure-defaults policy`).
//! - [`allocator`]: the binary's allocator (mimalloc for small blocks, glibc for large).

pub mod admission;
pub mod allocator;
pub mod assess;
pub mod certs;
pub mod cli;
pub mod config;
pub mod engine;
pub mod manifest;
pub mod messages;
pub mod namespace_policy;
pub mod native_policy;
pub mod scan;
pub mod server;
pub mod yaml;
