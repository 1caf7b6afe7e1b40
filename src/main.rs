use clap::Parser;
use secure_defaults::cli::{self, Cli, Command};
use std::process::ExitCode;

/// The review path makes many small, short-lived allocations (the parsed
/// request, the patch, the answer): mimalloc serves them faster than glibc's
/// malloc. See BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
