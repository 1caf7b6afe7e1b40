//! A no-op AdmissionReview endpoint on the webhook's own stack: the same
//! `serve` flags, actix-http on rustls, TLS and HTTP settings, body limits,
//! metrics and log line, and the same allocator, but the review is only read
//! for its uid and answered `allowed`, without the engine. `make bench` loads
//! it beside the webhook; the ratio of the two is what hardening costs on top
//! of HTTP and TLS.
//!
//! With `--read-review` it reads the review as the webhook does (into kube's
//! `AdmissionRequest` and k8s-openapi's types, `admission::parse`) before the
//! same answer: between the two endpoints and the webhook, `make bench` splits
//! the webhook's cost into reading the pod and hardening it.
//!
//! ```console
//! cargo run --release --example noop_webhook -- --self-signed --workers 1
//! cargo run --release --example noop_webhook -- --read-review --self-signed --workers 1
//! ```

use clap::Parser;
use secure_defaults::admission::{self, BodyError, Decision, Outcome, Parsed, Reviewed};
use secure_defaults::cli::serve::{self, ServeArgs};
use secure_defaults::engine::ImageFacts;
use secure_defaults::server::AppState;
use serde::Deserialize;
use std::borrow::Cow;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: secure_defaults::allocator::Allocator = secure_defaults::allocator::Allocator;

/// The `serve` flags of secure-defaults; the endpoint answers every review allowed, untouched.
#[derive(Parser)]
struct Args {
    /// Read the review as the webhook does before answering (no engine).
    #[arg(long)]
    read_review: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let reviewer = if args.read_review { read_then_allow } else { allow };
    match serve::run_with(&args.serve, reviewer) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Read the request's uid (the rest of the body is checked to be JSON and
/// skipped) and allow it.
fn allow(body: &[u8], state: &AppState, _: &ImageFacts) -> Result<Reviewed, BodyError> {
    #[derive(Deserialize)]
    struct Review<'a> {
        #[serde(borrow)]
        request: Option<Request<'a>>,
    }
    #[derive(Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        uid: Cow<'a, str>,
    }
    let review: Review = serde_json::from_slice(body).map_err(|e| BodyError::NotAReview(e.to_string()))?;
    let uid = review.request.ok_or(BodyError::NoRequest)?.uid.into_owned();
    Ok(allowed(uid, state))
}

/// Read the review as the webhook reads it, then answer as [`allow`] does.
fn read_then_allow(body: &[u8], state: &AppState, _: &ImageFacts) -> Result<Reviewed, BodyError> {
    let uid = match admission::parse(body)? {
        Parsed::Request(req) => req.uid.clone(),
        Parsed::Unreadable(request) => request.uid,
    };
    Ok(allowed(uid, state))
}

/// The `allowed` answer to the request `uid`, untouched.
fn allowed(uid: String, state: &AppState) -> Reviewed {
    let mut response = kube::core::admission::AdmissionResponse::invalid("");
    response.uid = uid.clone();
    response.allowed = true;
    response.result = Default::default();
    let outcome = Outcome {
        uid,
        ..Outcome::new(Decision::Skipped, state.config.mode)
    };
    Reviewed { response, outcome }
}
