//! secure-defaults: fill in a secure baseline on Kubernetes pods without
//! overriding anything they state.
//!
//! - [`engine`]: the pure hardening engine.
//! - [`config`]: the operator's configuration.
//! - [`manifest`]: Kubernetes objects that carry a pod spec, and patches for them.
//! - [`admission`]: an AdmissionReview request in, the response out (pure).
//! - [`server`]: the webhook's HTTPS server, admin port, TLS and metrics.

pub mod admission;
pub mod certs;
pub mod cli;
pub mod config;
pub mod engine;
pub mod manifest;
pub mod messages;
pub mod namespace_policy;
pub mod server;
