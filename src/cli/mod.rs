//! The command line: one subcommand per use.

pub mod mutate;

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
}
