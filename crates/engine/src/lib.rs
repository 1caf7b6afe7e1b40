//! The hardening engine: a pod spec in, an add-only patch and a report out.
//!
//! Pure: no I/O, no clock, no global state. The same input always gives the
//! same patch and report, in the same order.
//!
//! - `baseline.rs`: the values secure-defaults fills in.
//! - `rules.rs`: where and when each value is filled in, top to bottom;
//!   `rules/identity.rs`: who the processes run as.
//! - `restricted.rs`: what Pod Security `restricted` still rejects afterwards.
//! - `cautions.rs`: what the hardened pod cannot do at run time (low ports).
//! - `patch.rs`: the rules' result as RFC 6902 `add` operations.
//! - `input.rs`: reading a pod spec with only the fields the above look at.
//! - `manifest.rs`: Kubernetes objects that carry a pod spec, and the patch
//!   with paths for the whole object.
//! - `images.rs`: who each image runs as, for `identity: auto`.
//! - `decode.rs`: a manifest's pod template as the API server stores it.

#![forbid(unsafe_code)]

pub mod annotations;
pub mod baseline;
mod cautions;
mod containers;
pub mod decode;
pub mod images;
mod input;
pub mod manifest;
mod patch;
pub mod report;
mod restricted;
mod rules;

pub use annotations::OptOut;
pub use baseline::Baseline;
pub use images::{ImageFacts, ImageLookup, ImageUser};
pub use input::{read_spec, SpecInput};
pub use report::{
    Added, Caution, Check, ContainerChoice, ContainerIdentity, ContainerKind, Field, Guard, Identity, IdentityChoice,
    IdentityReason, ImageFact, Kept, Report, Target, Untouched, Violation,
};

use annotations::Annotations;
use containers::Slot;
use json_patch::PatchOperation;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// A rule tried to change or remove a value. Never expected; the patch is
    /// withheld rather than made to replace anything.
    #[error("internal error: the hardened pod differs from the original at {0} by more than an addition")]
    NotAddOnly(String),
    #[error("internal error: cannot serialize the securityContext: {0}")]
    Serialize(String),
}

/// Which containers the engine may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A new pod: pod-level fields and every container.
    Pod,
    /// An update of `pods/ephemeralcontainers`: only the ephemeral containers
    /// with these names (the new ones); the rest of the pod is immutable.
    EphemeralContainers(Vec<String>),
}

/// How the engine is asked to harden.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub baseline: &'a Baseline,
    /// Honour the pod's `secure-defaults.io/skip` and `skip-fields` annotations.
    pub allow_opt_out: bool,
    /// The containers' images, looked up for `identity: auto`; empty when
    /// nothing was looked up (every other mode ignores them).
    pub images: &'a ImageFacts,
}

/// The engine's answer for one pod spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Hardening {
    /// `add` operations with paths relative to the pod spec (prefix them with
    /// `/spec` for a Pod, `/spec/template/spec` for a Deployment, ...).
    pub ops: Vec<PatchOperation>,
    pub report: Report,
    /// The pod's opt-out request, and whether it was honoured.
    pub opt_out: OptOut,
    pub opt_out_honoured: bool,
}

/// Harden one pod spec (of a Pod or of a workload's pod template).
pub fn harden(metadata: &ObjectMeta, spec: &PodSpec, scope: &Scope, policy: Policy) -> Result<Hardening, EngineError> {
    let annotations = Annotations(metadata.annotations.as_ref());
    let opt_out = annotations.opt_out();
    let honoured = policy.allow_opt_out && !opt_out.is_empty();
    let in_scope: Vec<Slot> = containers::all(spec)
        .filter(|(slot, c)| match scope {
            Scope::Pod => true,
            Scope::EphemeralContainers(names) => {
                slot.kind == ContainerKind::EphemeralContainers && names.iter().any(|n| n == c.name())
            }
        })
        .map(|(slot, _)| slot)
        .collect();
    let opted_out: &[Field] = if honoured { &opt_out.fields } else { &[] };
    let ctx = rules::Ctx {
        orig: spec,
        annotations,
        baseline: policy.baseline,
        images: policy.images,
        opted_out,
        in_scope,
        pod_level: *scope == Scope::Pod,
    };

    let mut report = Report::default();
    let untouched = rules::untouched(&ctx).or((honoured && opt_out.whole_pod).then_some(Untouched::OptedOut));
    let ops = match untouched {
        Some(reason) => {
            report.untouched = Some(reason);
            report.remaining = restricted::violations(spec, annotations);
            Vec::new()
        }
        None => {
            let mut hardened = spec.clone();
            rules::apply(&ctx, &mut hardened, &mut report);
            report.remaining = restricted::violations(&hardened, annotations);
            report.cautions = cautions::low_ports(&hardened, &ctx.in_scope);
            patch::add_only(spec, &hardened)?
        }
    };
    Ok(Hardening {
        ops,
        report,
        opt_out,
        opt_out_honoured: honoured,
    })
}

/// What Pod Security `restricted` rejects in a pod spec as written, before
/// any hardening (what a pod meets where secure-defaults adds nothing).
pub fn violations(metadata: &ObjectMeta, spec: &PodSpec) -> Vec<Violation> {
    restricted::violations(spec, Annotations(metadata.annotations.as_ref()))
}

#[cfg(test)]
mod tests;
