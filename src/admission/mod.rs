//! The admission layer: an AdmissionReview's request in, the response and
//! what happened (the [`Outcome`]) out.
//!
//! Pure: no I/O, no clock, no logging. The server reads the body, measures
//! time and turns the outcome into a log line and metrics, so every decision
//! made here is testable without HTTP.
//!
//! Handled: Pod CREATE (the whole pod) and UPDATE of `pods/ephemeralcontainers`
//! (only the ephemeral containers that are new, as `kubectl debug` adds them).
//! Workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob)
//! get a preview: allowed unchanged, with one warning saying what their pods
//! will get and what `restricted` will still reject. Anything else is
//! allowed untouched.
//!
//! One review through the files:
//! 1. `parse.rs`: [`parse`] reads the body into a [`Request`] (its object an
//!    [`Object`], a Pod's spec read straight into the engine's input), or an
//!    [`Unreadable`] review still worth an answer, or a [`BodyError`] (400).
//! 2. `decide.rs`: [`review`] picks the subject (a new Pod, new ephemeral
//!    containers, a workload, or nothing to do), runs the engine on a pod and
//!    decides under the mode and the deny list.
//! 3. `previews.rs`: a workload gets its preview warning instead.
//! 4. `encode.rs`: the response's warnings, status and audit annotations
//!    ([`keys`]); [`encode`] writes the review around it, the patch as base64.
//! 5. `outcome.rs`: the [`Outcome`] returned beside the response, for the
//!    server's log line and metrics.
//!
//! [`namespace`] wraps [`review`] with the namespace policy.

mod decide;
mod encode;
pub mod namespace;
mod outcome;
mod parse;
mod previews;

pub use decide::{review, review_with, unreadable};
pub use encode::{encode, is_valid_annotation_key, keys};
pub use outcome::{problem, redact, Decision, Outcome, Problem, Reviewed};
pub use parse::{parse, BodyError, Object, Parsed, Request, Unreadable, API_VERSION, KIND};
