#![forbid(unsafe_code)]

use clap::Parser;
use secure_defaults::cli::{self, Cli, Command};
use secure_defaults::error::Chain;
use std::process::ExitCode;

/// mimalloc for the review path's many small allocations, glibc for large
/// bodies (see the module, and BENCHMARKS.md).
#[global_allocator]
static GLOBAL: secure_defaults::allocator::Allocator = secure_defaults::allocator::Allocator;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Mutate(args) => cli::mutate::run(args),
        Command::Scan(args) => match cli::scan::run(args) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(cli::scan::EXIT_REMAINING),
            Err(e) => Err(e),
        },
        Command::Serve(args) => cli::serve::run(args),
        Command::Certs(args) => cli::certs::run(args),
        Command::Policy(args) => cli::policy::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Each layer once, also where another crate's message repeats its cause.
            eprintln!("error: {}", Chain(&*e));
            ExitCode::FAILURE
        }
    }
}
