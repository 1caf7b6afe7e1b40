//! secure-defaults: fill in a secure baseline on Kubernetes pods without
//! overriding anything they state.
//!
//! Dependencies run one way (a test, `tests/module_graph.rs`, keeps it so):
//!
//! - [`engine`]: the pure hardening engine, its own crate
//!   (`crates/engine`, no kube, tokio or actix).
//! - [`config`]: the operator's configuration, namespace controls included.
//! - [`policy`]: pure policy over the engine: assessments, messages, the
//!   namespace policy and `scan`'s report.
//! - [`admission`]: an AdmissionReview request in, the response out (pure).
//! - [`cluster`]: all cluster I/O (namespace cache, `scan`'s listers).
//! - [`server`] and [`cli`]: the webhook's HTTPS server and the command line,
//!   thin on top.
//! - [`yaml`]: reading and writing manifests as kubectl does (`mutate`).
//! - [`certs`]: the webhook's CA and serving certificate (`certs`).
//! - [`native_policy`]: the configuration as native admission policies (`policy`).
//! - [`error`]: how errors print their causes (each layer once).
//! - [`allocator`]: the binary's allocator (mimalloc for small blocks, glibc for large).

// Only the allocator needs unsafe (GlobalAlloc is an unsafe trait); every
// other module is refused it.
#![deny(unsafe_code)]

pub use secure_defaults_engine as engine;

pub mod admission;
#[allow(unsafe_code)]
pub mod allocator;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod error;
pub mod images;
pub mod native_policy;
pub mod policy;
pub mod server;
pub mod yaml;
