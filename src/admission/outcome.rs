//! What one review decided and why, as the server logs and counts it.

use super::parse::{operation_str, Request};
use crate::config::Mode;
use crate::engine::report::Added;
use crate::engine::{Check, Field};
use kube::core::admission::AdmissionResponse;

/// What the webhook decided, as the metric label `outcome`. In audit mode it
/// is what enforce mode would have done; nothing is patched or denied then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Baseline fields added (a JSONPatch in enforce mode).
    Patched,
    /// A pod with nothing to add.
    Unchanged,
    /// The hardened pod fails a check on the deny list.
    Denied,
    /// Not a request this webhook handles (kind, operation, subresource).
    Skipped,
    /// A workload: allowed unchanged, with a warning previewing its pods.
    Previewed,
    /// The object cannot be read as a Pod: allowed untouched, with a warning.
    Invalid,
    /// An internal error: allowed untouched, with a warning.
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Patched => "patched",
            Decision::Unchanged => "unchanged",
            Decision::Denied => "denied",
            Decision::Skipped => "skipped",
            Decision::Previewed => "previewed",
            Decision::Invalid => "invalid",
            Decision::Error => "error",
        }
    }
}

/// Everything the server logs and counts about one review. No object content
/// beyond names: logs must not carry secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub decision: Decision,
    pub mode: Mode,
    pub uid: String,
    pub namespace: String,
    /// The object's name; `generateName*` before the API server picks one.
    pub name: String,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`, or `unknown` for an unreadable request.
    pub operation: &'static str,
    pub dry_run: bool,
    /// Fields added; in audit mode, fields that would be added.
    pub added: Vec<Added>,
    /// Explicit values weaker than the baseline, kept as written.
    pub kept: Vec<Field>,
    /// Pod Security `restricted` checks the result still fails.
    pub remaining: Vec<Check>,
    /// The checks of `remaining` on the deny list.
    pub denied: Vec<Check>,
    /// For `Invalid` and `Error`: a short kind (a metric label) and the reason.
    pub problem: Option<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// One of [`problem`]'s kinds.
    pub kind: &'static str,
    pub reason: String,
    /// The reason quotes the pod: a decoder's message, which names the
    /// values it could not read (`invalid type: string "..."`). Logs keep
    /// such a reason without the quoted values; every other reason is ours
    /// and logged as it is.
    pub quotes_pod: bool,
}

impl Problem {
    /// The reason as logs may keep it.
    pub fn loggable(&self) -> std::borrow::Cow<'_, str> {
        if self.quotes_pod {
            redact(&self.reason).into()
        } else {
            self.reason.as_str().into()
        }
    }
}

/// A decoder's message without the values it quotes (between `"` or
/// backticks, as serde writes them): what a log may keep of a message about
/// the pod.
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            None if c == '"' || c == '`' => {
                out.push(c);
                out.push_str("...");
                open = Some(c);
            }
            None => out.push(c),
            Some(q) if c == q => {
                out.push(c);
                open = None;
            }
            Some(_) => {}
        }
    }
    if let Some(q) = open {
        out.push(q);
    }
    out
}

/// Kinds of [`Problem`] (the `kind` label of `secure_defaults_errors_total`).
pub mod problem {
    /// The object cannot be read as a Pod (or the request as a review).
    pub const INVALID_OBJECT: &str = "invalid_object";
    /// The engine refused to produce a patch.
    pub const ENGINE: &str = "engine";
    /// The patch could not be serialized.
    pub const PATCH: &str = "patch";
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub response: AdmissionResponse,
    pub outcome: Outcome,
}

impl Outcome {
    pub fn new(decision: Decision, mode: Mode) -> Outcome {
        Outcome {
            decision,
            mode,
            uid: String::new(),
            namespace: String::new(),
            name: String::new(),
            operation: "unknown",
            dry_run: false,
            added: Vec::new(),
            kept: Vec::new(),
            remaining: Vec::new(),
            denied: Vec::new(),
            problem: None,
        }
    }

    pub(super) fn of(req: &Request, mode: Mode) -> Outcome {
        let generate_name = req
            .object
            .as_ref()
            .and_then(|o| o.metadata.generate_name.as_deref())
            .filter(|_| req.name.is_empty());
        Outcome {
            uid: req.uid.clone(),
            namespace: req.namespace.clone().unwrap_or_default(),
            name: match generate_name {
                Some(g) => format!("{g}*"),
                None => req.name.clone(),
            },
            operation: operation_str(req.operation.clone()),
            dry_run: req.dry_run,
            ..Outcome::new(Decision::Skipped, mode)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::string(
        r#"invalid type: string "hunter2", expected a sequence"#,
        r#"invalid type: string "...", expected a sequence"#
    )]
    #[case::variant(
        "unknown variant `Hunter2`, expected `Always`",
        "unknown variant `...`, expected `...`"
    )]
    #[case::unterminated(r#"open "quote"#, r#"open "...""#)]
    #[case::nothing_quoted("the Pod has no spec", "the Pod has no spec")]
    fn redact_removes_quoted_values(#[case] message: &str, #[case] logged: &str) {
        assert_eq!(redact(message), logged);
    }

    /// Logs redact what came from the pod, and keep what is ours.
    #[test]
    fn problems_are_logged_redacted_only_where_they_quote_the_pod() {
        let reason = r#"the Pod's spec cannot be read: invalid type: string "hunter2", expected a sequence"#;
        let decoding = Problem {
            kind: problem::INVALID_OBJECT,
            reason: reason.into(),
            quotes_pod: true,
        };
        assert_eq!(
            decoding.loggable(),
            r#"the Pod's spec cannot be read: invalid type: string "...", expected a sequence"#
        );
        let ours = Problem {
            kind: problem::PATCH,
            reason: r#"cannot serialize the patch: key "a""#.into(),
            quotes_pod: false,
        };
        assert_eq!(ours.loggable(), ours.reason);
    }
}
