//! A review in its namespace: the namespace policy (`policy::namespace`)
//! applied around [`admission::review`].

use crate::admission::{self, Decision, Outcome, Request, Reviewed};
use crate::config::{Config, Mode};
use crate::engine::ImageFacts;
use crate::policy::messages;
use crate::policy::namespace::{effective, NamespaceInfo, AUDIT_KEY, MODE};
use kube::core::admission::{AdmissionResponse, Operation};

/// Answer one request in its namespace: [`admission::review`] on the
/// effective configuration, the namespace's warnings added to the response
/// (and logged), `off` answered untouched.
pub fn review(req: &Request, config: &Config, ns: Option<&NamespaceInfo>) -> Reviewed {
    review_with(req, config, ns, &ImageFacts::default())
}

/// [`review`] with the images looked up for `identity: auto`.
pub fn review_with(req: &Request, config: &Config, ns: Option<&NamespaceInfo>, images: &ImageFacts) -> Reviewed {
    let Some(ns) = ns else {
        return admission::review_with(req, config, images);
    };
    let eff = effective(config, ns);
    if !eff.warnings.is_empty() {
        tracing::warn!(namespace = %ns.name, uid = %req.uid, warnings = ?eff.warnings, "namespace policy values ignored");
    }
    let mut reviewed = if eff.off {
        let mut response = AdmissionResponse::from(req);
        response.warnings = Some(vec![ns.warning(&format!("{MODE}=off: pods here are not hardened"))]);
        Reviewed {
            response,
            outcome: skipped(req, config.mode),
        }
    } else {
        admission::review_with(req, &eff.config, images)
    };
    let response = &mut reviewed.response;
    if !eff.warnings.is_empty() {
        let mut warnings = eff.warnings;
        warnings.extend(response.warnings.take().unwrap_or_default());
        response.warnings = Some(messages::bound(warnings));
    }
    if !eff.applied.is_empty() {
        response
            .audit_annotations
            .insert(AUDIT_KEY.to_string(), eff.applied.join(","));
    }
    reviewed
}

fn skipped(req: &Request, mode: Mode) -> Outcome {
    Outcome {
        decision: Decision::Skipped,
        mode,
        uid: req.uid.clone(),
        namespace: req.namespace.clone().unwrap_or_default(),
        name: req.name.clone(),
        operation: match req.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        },
        dry_run: req.dry_run,
        added: Vec::new(),
        kept: Vec::new(),
        remaining: Vec::new(),
        denied: Vec::new(),
        problem: None,
    }
}
