//! secure-defaults: fill in a secure baseline on Kubernetes pods without
//! overriding anything they state.
//!
//! - [`engine`]: the pure hardening engine.
//! - [`config`]: the operator's configuration.
//! - [`manifest`]: Kubernetes objects that carry a pod spec, and patches for them.

pub mod cli;
pub mod config;
pub mod engine;
pub mod manifest;
pub mod messages;
