//! Writing the answer: the AdmissionResponse's warnings, status and audit
//! annotations, and the review around it as bytes (the patch as base64).

use super::outcome::{problem, Decision, Outcome, Problem, Reviewed};
use crate::config::{Config, Mode};
use crate::engine::annotations::{SKIP, SKIP_FIELDS};
use crate::engine::report::{ContainerKind, Target};
use crate::engine::{Field, OptOut, Report, Violation};
use crate::policy::messages;
use kube::core::admission::AdmissionResponse;
use kube::core::response::StatusSummary;
use serde::Serialize;
use std::collections::BTreeSet;

/// Audit annotation keys. The API server prefixes them with the webhook's
/// name, so each must be a valid qualified name of at most 63 characters.
pub mod keys {
    pub const MODE: &str = "mode";
    pub const ADDED: &str = "added";
    pub const WOULD_ADD: &str = "would-add";
    pub const DENIED: &str = "denied";
    pub const WOULD_DENY: &str = "would-deny";
    pub const OPT_OUT: &str = "opt-out";
    pub const ERROR: &str = "error";
    pub const ALL: [&str; 7] = [MODE, ADDED, WOULD_ADD, DENIED, WOULD_DENY, OPT_OUT, ERROR];
}

const PREFIX: &str = "secure-defaults: ";
/// Audit annotation values and the deny message are cut here: the audit log
/// and `kubectl` output stay readable, and the warnings carry the rest.
const MAX_VALUE: usize = 2048;

/// The body of the answer: the AdmissionReview around `response`, with the
/// patch as base64, the encoding of Go's `[]byte` that the API server
/// documents. kube's own serialization writes the patch as a JSON array of
/// numbers (kube-rs issue 1781): also accepted, but about 3.5 bytes per patch
/// byte instead of 1.33, and a number to format for each.
pub fn encode(mut response: AdmissionResponse) -> serde_json::Result<Vec<u8>> {
    use base64::Engine as _;

    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'a str,
        kind: &'a str,
        response: &'a AdmissionResponse,
    }

    // `patchType` stays on the response, set by `with_patch`.
    let patch = response.patch.take();
    // Sized for the whole answer up front rather than grown by doubling.
    let strings = |v: Option<&Vec<String>>| v.into_iter().flatten().map(|s| s.len() + 3).sum::<usize>();
    let estimate = 256
        + response.uid.len()
        + strings(response.warnings.as_ref())
        + response
            .audit_annotations
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>()
        + response.result.message.len()
        + patch.as_ref().map_or(0, |p| p.len() / 3 * 4 + 16);
    let mut body = Vec::with_capacity(estimate);
    serde_json::to_writer(
        &mut body,
        &Body {
            api_version: &response.types.api_version,
            kind: &response.types.kind,
            response: &response,
        },
    )?;
    if let Some(patch) = patch {
        // The patch goes last in `response`, written straight into the body:
        // base64 needs no JSON escaping, and a serializer would look at each
        // of its bytes for some.
        debug_assert!(body.ends_with(b"}}"));
        body.truncate(body.len() - 2);
        body.extend_from_slice(br#","patch":""#);
        let start = body.len();
        body.resize(
            start + base64::encoded_len(patch.len(), true).expect("no overflow below isize::MAX"),
            0,
        );
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(&patch, &mut body[start..])
            .expect("sized by encoded_len");
        body.truncate(start + written);
        body.extend_from_slice(br#""}}"#);
    }
    Ok(body)
}

/// What a hardened pod's answer says besides its patch or denial: warnings
/// and audit annotations, worded for enforce or audit mode.
pub(super) struct Answer<'a> {
    pub mode: Mode,
    pub report: &'a Report,
    /// The checks of `report.remaining` on the deny list.
    pub denied: &'a [&'a Violation],
    pub opt_out: &'a OptOut,
    pub opt_out_honoured: bool,
    /// Fields are added (a patch in enforce mode) or would be (audit mode).
    pub added_now: bool,
}

impl Answer<'_> {
    /// Set the response's warnings and audit annotations.
    pub(super) fn write(&self, response: &mut AdmissionResponse) {
        let warnings = self.warnings();
        response.warnings = (!warnings.is_empty()).then_some(warnings);
        response.audit_annotations = self
            .annotations()
            .into_iter()
            .map(|(k, v)| (k.to_string(), cut(v, MAX_VALUE)))
            .collect();
    }

    fn warnings(&self) -> Vec<String> {
        let (audit, report, denied, opt_out) = (self.mode == Mode::Audit, self.report, self.denied, self.opt_out);
        let mut lines = Vec::new();
        if audit && !denied.is_empty() {
            lines.push(format!(
                "audit mode: this pod would be denied: {}",
                join_violations(denied)
            ));
        }
        if !opt_out.is_empty() && !self.opt_out_honoured {
            lines.push(format!(
                "{SKIP} and {SKIP_FIELDS} ignored: this cluster does not allow pods to opt out"
            ));
        }
        if !opt_out.unknown.is_empty() {
            let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
            lines.push(format!(
                "unknown field names in {SKIP_FIELDS} ignored: {} (known: {})",
                opt_out.unknown.join(", "),
                known.join(", ")
            ));
        }
        if audit {
            lines.extend(would_add(report));
        }
        let mut warnings: Vec<String> = lines.into_iter().map(|l| format!("{PREFIX}{l}")).collect();
        warnings.extend(messages::warnings(report));
        messages::bound(warnings)
    }

    fn annotations(&self) -> Vec<(&'static str, String)> {
        let audit = self.mode == Mode::Audit;
        let mut annotations = vec![(keys::MODE, self.mode.as_str().to_string())];
        if self.added_now {
            let key = if audit { keys::WOULD_ADD } else { keys::ADDED };
            annotations.push((key, added_list(self.report)));
        }
        if !self.denied.is_empty() {
            let checks: BTreeSet<&str> = self.denied.iter().map(|v| v.check.as_str()).collect();
            let key = if audit { keys::WOULD_DENY } else { keys::DENIED };
            annotations.push((key, checks.into_iter().collect::<Vec<_>>().join(",")));
        }
        if !self.opt_out.is_empty() {
            let value = if self.opt_out_honoured { "honoured" } else { "ignored" };
            annotations.push((keys::OPT_OUT, value.to_string()));
        }
        annotations
    }
}

/// The denial of a pod that fails checks on the deny list: 403 Forbidden,
/// naming them.
pub(super) fn deny(base: AdmissionResponse, denied: &[&Violation]) -> AdmissionResponse {
    let mut r = base.deny(cut(
        format!(
            "violates Pod Security \"restricted\" checks this cluster denies: {}",
            join_violations(denied)
        ),
        MAX_VALUE,
    ));
    r.result.status = Some(StatusSummary::Failure);
    r.result.code = 403;
    r.result.reason = "Forbidden".into();
    r
}

/// An allowed, unpatched answer with a warning saying why the pod was not
/// hardened. The API server has decoded the object already, so one this
/// webhook cannot read means version skew, not an attack; refusing it would
/// break an admissible pod. The outcome makes it visible in metrics and logs.
pub(super) fn finish_unreadable(
    mut response: AdmissionResponse,
    outcome: Outcome,
    config: &Config,
    reason: &str,
) -> Reviewed {
    let what = match outcome.decision {
        Decision::Error => "internal error",
        _ => "cannot read the request",
    };
    response.warnings = Some(messages::bound(vec![format!(
        "{PREFIX}pod not hardened ({what}): {reason}"
    )]));
    response.audit_annotations = [
        (keys::MODE.to_string(), config.mode.as_str().to_string()),
        (keys::ERROR.to_string(), cut(format!("{what}: {reason}"), MAX_VALUE)),
    ]
    .into_iter()
    .collect();
    let outcome = Outcome {
        problem: outcome.problem.or_else(|| {
            Some(Problem {
                kind: problem::INVALID_OBJECT,
                reason: reason.to_string(),
                quotes_pod: true,
            })
        }),
        ..outcome
    };
    Reviewed { response, outcome }
}

fn join_violations(violations: &[&Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `pod.runAsNonRoot,container/app.allowPrivilegeEscalation,...`, written
/// into one string (a review adds a dozen or more).
fn added_list(report: &Report) -> String {
    let mut list = String::with_capacity(report.added.len() * 40);
    for (i, a) in report.added.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        match &a.target {
            Target::Pod => list.push_str("pod"),
            Target::Container { kind, name } => {
                list.push_str(match kind {
                    ContainerKind::InitContainers => "initContainer/",
                    ContainerKind::Containers => "container/",
                    ContainerKind::EphemeralContainers => "ephemeralContainer/",
                });
                list.push_str(name);
            }
        }
        list.push('.');
        list.push_str(a.field.as_str());
    }
    list
}

/// One warning per target: `audit mode: would add to container "app": allowPrivilegeEscalation, capabilities`.
fn would_add(report: &Report) -> Vec<String> {
    let mut by_target: Vec<(&Target, Vec<&str>)> = Vec::new();
    for a in &report.added {
        match by_target.iter_mut().find(|(t, _)| *t == &a.target) {
            Some((_, fields)) => fields.push(a.field.as_str()),
            None => by_target.push((&a.target, vec![a.field.as_str()])),
        }
    }
    by_target
        .into_iter()
        .map(|(target, fields)| format!("audit mode: would add to {target}: {}", fields.join(", ")))
        .collect()
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str("...");
    s
}

/// Whether `key` is valid as the name part of a qualified name (what the API
/// server requires of `<webhook name>/<key>`).
pub fn is_valid_annotation_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::TypeMeta;
    use serde_json::Value;

    #[test]
    fn audit_annotation_keys_are_valid_qualified_names() {
        for key in keys::ALL {
            assert!(is_valid_annotation_key(key), "{key}");
        }
        assert!(!is_valid_annotation_key("-x"));
        assert!(!is_valid_annotation_key(&"a".repeat(64)));
        assert!(!is_valid_annotation_key("a/b"));
    }

    #[test]
    fn cut_keeps_char_boundaries() {
        assert_eq!(cut("abcdef".into(), 6), "abcdef");
        assert_eq!(cut("abcdefg".into(), 6), "abc...");
        assert_eq!(cut("ééééé".into(), 6), "é...");
    }

    #[test]
    fn the_answer_is_kubes_review_with_a_base64_patch() {
        use base64::Engine as _;
        let patch = json_patch::Patch(vec![json_patch::PatchOperation::Add(json_patch::AddOperation {
            path: jsonptr::PointerBuf::from_tokens(["spec", "securityContext"]),
            value: serde_json::json!({"runAsNonRoot": true}),
        })]);
        let mut response = AdmissionResponse::invalid("");
        response.types = TypeMeta {
            api_version: "admission.k8s.io/v1".into(),
            kind: "AdmissionReview".into(),
        };
        response.uid = "u".into();
        response.allowed = true;
        response.result = Default::default();
        response.warnings = Some(vec!["w".into()]);
        response.audit_annotations.insert("k".into(), "v".into());
        let response = response.with_patch(patch).unwrap();

        let ours: Value = serde_json::from_slice(&encode(response.clone()).unwrap()).unwrap();
        let mut kubes = serde_json::to_value(response.clone().into_review()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(response.patch.as_ref().unwrap());
        kubes["response"]["patch"] = Value::String(b64);
        assert_eq!(ours, kubes);
        assert_eq!(ours["response"]["patchType"], "JSONPatch");

        let mut unpatched = response;
        unpatched.patch = None;
        let ours: Value = serde_json::from_slice(&encode(unpatched.clone()).unwrap()).unwrap();
        assert_eq!(ours, serde_json::to_value(unpatched.into_review()).unwrap());
        assert_eq!(ours["response"].get("patch"), None);
    }
}
