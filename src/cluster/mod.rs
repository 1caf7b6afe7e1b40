//! All cluster I/O: the namespace cache the webhook reads on every review,
//! and the listers `scan` reads the cluster's workloads with. Only the server
//! and the CLI use this module; the policy sees plain values.

pub mod listers;
pub mod namespaces;
pub mod pull_secrets;
