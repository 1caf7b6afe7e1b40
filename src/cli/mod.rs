//! The command line: one subcommand per use.

pub mod certs;
pub mod mutate;
pub mod policy;
pub mod scan;
pub mod serve;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "secure-defaults",
    version,
    about = "Fill in a secure baseline on Kubernetes pods without overriding what they state"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Harden manifests offline and show what the webhook would change.
    Mutate(mutate::MutateArgs),
    /// Scan a live cluster's workloads: what secure-defaults will add, what stays
    /// as written, what Pod Security `restricted` will still reject, per namespace.
    Scan(scan::ScanArgs),
    /// Run the admission webhook: POST /mutate over TLS, probes and metrics on the admin port.
    Serve(serve::ServeArgs),
    /// Generate the webhook's CA, serving certificate, TLS Secret and caBundle (without cert-manager).
    Certs(certs::CertsArgs),
    /// Write the baseline as native admission policies (MutatingAdmissionPolicy and bindings) instead of running the webhook.
    Policy(policy::PolicyArgs),
}
