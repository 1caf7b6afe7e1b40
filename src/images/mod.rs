//! placeholder
pub mod cache;
pub mod credentials;
pub mod guard;
pub mod vet;
