//! Which requests are hardened and how: the subject of a request (a new
//! Pod, new ephemeral containers, a workload), the engine call, and the
//! decision under the configured mode and deny list.

use super::encode::{deny, finish_unreadable, Answer};
use super::outcome::{problem, Decision, Outcome, Problem, Reviewed};
use super::parse::{without_position, Object, Request, Unreadable};
use super::previews::preview;
use crate::config::{Config, Mode};
use crate::engine::manifest::into_prefixed;
use crate::engine::report::{ContainerKind, Target};
use crate::engine::{self, Hardening, ImageFacts, Policy, Scope, Violation};
use jsonptr::PointerBuf;
use kube::core::admission::{AdmissionResponse, Operation};
use std::collections::BTreeSet;

/// Answer a review whose request could not be read
/// ([`Parsed::Unreadable`](super::Parsed::Unreadable)):
/// allowed, untouched, with a warning saying why.
pub fn unreadable(request: &Unreadable, config: &Config) -> Reviewed {
    let mut response = AdmissionResponse::invalid("");
    response.uid = request.uid.clone();
    response.allowed = true;
    response.result = Default::default();
    let outcome = Outcome {
        uid: request.uid.clone(),
        operation: request.operation,
        namespace: request.namespace.clone(),
        name: request.name.clone(),
        ..Outcome::new(Decision::Invalid, config.mode)
    };
    finish_unreadable(response, outcome, config, &request.reason)
}

/// Answer one admission request.
pub fn review(req: &Request, config: &Config) -> Reviewed {
    review_with(req, config, &ImageFacts::default())
}

/// [`review`] with the images looked up for `identity: auto` (the server
/// looks them up before, as the engine does no I/O).
pub fn review_with(req: &Request, config: &Config, images: &ImageFacts) -> Reviewed {
    let outcome = Outcome::of(req, config.mode);
    let response = AdmissionResponse::from(req);
    match subject(req) {
        None => Reviewed {
            response,
            outcome: Outcome {
                decision: Decision::Skipped,
                ..outcome
            },
        },
        Some(Subject::WorkloadPreview) => preview(req, config, outcome),
        Some(Subject::Pod(change)) => match harden(req, change, config, images) {
            Ok(Some(hardened)) => decide(req, config, hardened, outcome),
            Ok(None) => Reviewed {
                response,
                outcome: Outcome {
                    decision: Decision::Unchanged,
                    ..outcome
                },
            },
            Err(problem) => {
                let decision = match problem.kind {
                    problem::INVALID_OBJECT => Decision::Invalid,
                    _ => Decision::Error,
                };
                let reason = problem.reason.clone();
                let outcome = Outcome {
                    decision,
                    problem: Some(problem),
                    ..outcome
                };
                finish_unreadable(response, outcome, config, &reason)
            }
        },
    }
}

/// The requests this webhook handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// Hardened.
    Pod(PodChange),
    /// CREATE or UPDATE of a workload with a pod template: never patched
    /// (its pods are hardened when they are created; GitOps sees no drift).
    WorkloadPreview,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodChange {
    Create,
    /// `kubectl debug`: the only change to a running pod that adds containers.
    EphemeralContainersUpdate,
}

/// The workloads previewed, as `(group, resource, kind)`.
const WORKLOADS: [(&str, &str, &str); 6] = [
    ("apps", "deployments", "Deployment"),
    ("apps", "statefulsets", "StatefulSet"),
    ("apps", "daemonsets", "DaemonSet"),
    ("apps", "replicasets", "ReplicaSet"),
    ("batch", "jobs", "Job"),
    ("batch", "cronjobs", "CronJob"),
];

fn subject(req: &Request) -> Option<Subject> {
    let pods = req.resource.group.is_empty()
        && req.resource.version == "v1"
        && req.resource.resource == "pods"
        && req.kind.kind == "Pod";
    let workload = req.resource.version == "v1"
        && WORKLOADS.iter().any(|&(group, resource, kind)| {
            req.resource.group == group && req.resource.resource == resource && req.kind.kind == kind
        });
    match (&req.operation, req.sub_resource.as_deref().filter(|s| !s.is_empty())) {
        (Operation::Create, None) if pods => Some(Subject::Pod(PodChange::Create)),
        (Operation::Update, Some("ephemeralcontainers")) if pods => {
            Some(Subject::Pod(PodChange::EphemeralContainersUpdate))
        }
        (Operation::Create | Operation::Update, None) if workload => Some(Subject::WorkloadPreview),
        _ => None,
    }
}

struct Hardened {
    scope: Scope,
    hardening: Hardening,
}

/// Run the engine on the request's pod. `Ok(None)`: nothing in scope
/// (an ephemeral-containers update that adds none).
fn harden(req: &Request, change: PodChange, config: &Config, images: &ImageFacts) -> Result<Option<Hardened>, Problem> {
    let invalid = |reason: String| Problem {
        kind: problem::INVALID_OBJECT,
        reason,
        quotes_pod: false,
    };
    let object = req
        .object
        .as_ref()
        .ok_or_else(|| invalid("the request has no object".into()))?;
    let spec = match object.pod_spec() {
        Some(Ok(spec)) => spec,
        None => return Err(invalid("the Pod has no spec".into())),
        Some(Err(e)) => {
            return Err(Problem {
                quotes_pod: true,
                ..invalid(format!("the Pod's spec cannot be read: {}", without_position(&e)))
            })
        }
    };
    let scope = match change {
        PodChange::Create => Scope::Pod,
        PodChange::EphemeralContainersUpdate => {
            let old = req
                .old_object
                .as_ref()
                .ok_or_else(|| invalid("the update has no oldObject".into()))?;
            let before = old_ephemeral_names(old);
            let before: BTreeSet<&str> = before.iter().map(String::as_str).collect();
            let new: Vec<String> = spec
                .ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.clone())
                .filter(|name| !before.contains(name.as_str()))
                .collect();
            if new.is_empty() {
                return Ok(None);
            }
            Scope::EphemeralContainers(new)
        }
    };
    let policy = Policy {
        baseline: &config.baseline,
        allow_opt_out: config.allow_pod_opt_out,
        images,
    };
    let hardening = engine::harden(&object.metadata, &spec, &scope, policy).map_err(|e| Problem {
        kind: problem::ENGINE,
        reason: e.to_string(),
        quotes_pod: false,
    })?;
    Ok(Some(Hardened { scope, hardening }))
}

/// The names of the ephemeral containers the pod had before the update. An
/// old object without a readable spec counts as having none, so every
/// ephemeral container of the new object is hardened.
fn old_ephemeral_names(old: &Object) -> Vec<String> {
    let Some(Ok(spec)) = old.pod_spec() else {
        return Vec::new();
    };
    spec.ephemeral_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect()
}

fn decide(req: &Request, config: &Config, Hardened { scope, hardening }: Hardened, outcome: Outcome) -> Reviewed {
    let audit = config.mode == Mode::Audit;
    let mut report = hardening.report;
    if let Scope::EphemeralContainers(names) = &scope {
        // The rest of the pod is immutable here and was admitted before:
        // warn and deny only about the containers being added.
        report.remaining.retain(|v| is_new_ephemeral(&v.target, names));
    }
    if audit {
        // Nothing is added: the pod runs as written, not as hardened.
        report.cautions.clear();
    }
    let denied: Vec<&Violation> = report
        .remaining
        .iter()
        .filter(|v| config.deny.contains(&v.check))
        .collect();
    let decision = if !denied.is_empty() {
        Decision::Denied
    } else if !hardening.ops.is_empty() {
        Decision::Patched
    } else {
        Decision::Unchanged
    };

    let added_now = decision == Decision::Patched || (audit && !report.added.is_empty());
    let base = AdmissionResponse::from(req);
    let mut outcome = Outcome {
        decision,
        added: if added_now { report.added.clone() } else { Vec::new() },
        kept: report.kept.iter().map(|k| k.field).collect(),
        remaining: report.remaining.iter().map(|v| v.check).collect(),
        denied: denied.iter().map(|v| v.check).collect(),
        ..outcome
    };
    let mut response = match (decision, audit) {
        (Decision::Denied, false) => deny(base, &denied),
        (Decision::Patched, false) => {
            let patch = into_prefixed(&PointerBuf::from_tokens(["spec"]), hardening.ops);
            match base.clone().with_patch(patch) {
                Ok(r) => r,
                Err(e) => {
                    // Never a patchType without a patch: answer unpatched.
                    let reason = format!("cannot serialize the patch: {e}");
                    outcome.decision = Decision::Error;
                    outcome.added.clear();
                    outcome.problem = Some(Problem {
                        kind: problem::PATCH,
                        reason: reason.clone(),
                        quotes_pod: false,
                    });
                    return finish_unreadable(base, outcome, config, &reason);
                }
            }
        }
        _ => base,
    };
    Answer {
        mode: config.mode,
        report: &report,
        denied: &denied,
        opt_out: &hardening.opt_out,
        opt_out_honoured: hardening.opt_out_honoured,
        added_now,
    }
    .write(&mut response);
    Reviewed { response, outcome }
}

fn is_new_ephemeral(target: &Target, names: &[String]) -> bool {
    matches!(target, Target::Container { kind: ContainerKind::EphemeralContainers, name } if names.contains(name))
}
