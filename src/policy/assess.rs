//! What admission will do to the pods of a workload: the shared core of
//! `secure-defaults scan` and the webhook's workload previews.
//!
//! Pure: an object and the configuration in force in its namespace in, an
//! [`Assessment`] out. It answers the question a team asks before switching
//! a namespace to Pod Security `restricted`: what will secure-defaults add,
//! what stays as written, and what will still be rejected.

use crate::config::{Config, Mode};
use crate::engine::manifest::{self, ManifestError};
use crate::engine::{self, Added, Caution, Check, Identity, Kept, Policy, Scope, Untouched, Violation};
use crate::policy::ModeInForce;
use serde::Serialize;
use serde_json::Value;

/// Whether the pods of a workload are admitted under `restricted` once
/// secure-defaults is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ready,
    NeedsChanges,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ready => "ready",
            Verdict::NeedsChanges => "needs changes",
        }
    }
}

/// What admission does to a pod of this template, in the mode in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// `off` when the namespace switched secure-defaults off.
    pub mode: ModeInForce,
    /// Why the engine leaves the whole pod alone (Windows, mirror pod, opt-out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untouched: Option<Untouched>,
    /// Which identity the pods get and why (what enforce mode does, also in
    /// audit mode); `None` where secure-defaults is off or leaves the pod alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Fields admission adds. Empty in audit mode and where it is off.
    pub added: Vec<Added>,
    /// In audit mode: the fields enforce mode would add (nothing is added).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_add: Vec<Added>,
    /// Explicit values weaker than the baseline, kept as written.
    pub kept: Vec<Kept>,
    /// `restricted` checks the admitted pod still fails: Pod Security rejects
    /// the pod in a namespace enforcing `restricted`.
    pub remaining: Vec<Violation>,
    /// The checks of `remaining` on this cluster's deny list: secure-defaults
    /// itself refuses the pod in enforce mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<Check>,
    /// Ports below 1024 the admitted pod cannot bind (enforce mode only:
    /// elsewhere the pod runs as written).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cautions: Vec<Caution>,
}

impl Assessment {
    pub fn verdict(&self) -> Verdict {
        if self.remaining.is_empty() {
            Verdict::Ready
        } else {
            Verdict::NeedsChanges
        }
    }
}

/// Assess the pod (template) of `object` under `config`, the configuration
/// in force in its namespace; `off` when the namespace switched
/// secure-defaults off. `Ok(None)` for kinds without a pod spec.
pub fn assess(object: &Value, config: &Config, off: bool) -> Result<Option<Assessment>, ManifestError> {
    let Some(template) = manifest::template_with(object, &config.extra_kinds)? else {
        return Ok(None);
    };
    if off {
        return Ok(Some(Assessment {
            mode: ModeInForce::Off,
            untouched: None,
            identity: None,
            added: Vec::new(),
            would_add: Vec::new(),
            kept: Vec::new(),
            remaining: engine::violations(&template.metadata, &template.spec),
            denied: Vec::new(),
            cautions: Vec::new(),
        }));
    }
    let policy = Policy {
        baseline: &config.baseline,
        allow_opt_out: config.allow_pod_opt_out,
        images: &crate::engine::ImageFacts::default(),
    };
    let report = engine::harden(&template.metadata, &template.spec, &Scope::Pod, policy)?.report;
    let (mode, added, would_add, remaining) = match config.mode {
        Mode::Enforce => (ModeInForce::Enforce, report.added, Vec::new(), report.remaining),
        // Nothing is added: the pod meets Pod Security as written.
        Mode::Audit => (
            ModeInForce::Audit,
            Vec::new(),
            report.added,
            engine::violations(&template.metadata, &template.spec),
        ),
    };
    let mut denied: Vec<Check> = remaining
        .iter()
        .map(|v| v.check)
        .filter(|c| config.deny.contains(c))
        .collect();
    denied.sort();
    denied.dedup();
    let mut cautions = report.cautions;
    if config.mode == Mode::Audit {
        denied.clear();
        cautions.clear();
    }
    Ok(Some(Assessment {
        mode,
        untouched: report.untouched,
        identity: report.identity,
        added,
        would_add,
        kept: report.kept,
        remaining,
        denied,
        cautions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(container: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"metadata": {}, "spec": {"containers": [container]}}}
        })
    }

    #[test]
    fn a_legacy_template_is_ready_once_fields_are_added() {
        let config = Config::default();
        let a = assess(&deployment(json!({"name": "app", "image": "nginx"})), &config, false)
            .unwrap()
            .unwrap();
        assert_eq!(a.mode, "enforce");
        assert!(!a.added.is_empty());
        assert!(a.remaining.is_empty(), "{:?}", a.remaining);
        assert_eq!(a.verdict(), Verdict::Ready);
    }

    #[test]
    fn an_explicit_privileged_container_still_needs_changes() {
        let config = Config::default();
        let c = json!({"name": "agent", "image": "agent", "securityContext": {"privileged": true}});
        let a = assess(&deployment(c), &config, false).unwrap().unwrap();
        assert_eq!(a.verdict(), Verdict::NeedsChanges);
        assert!(a.remaining.iter().any(|v| v.check == Check::Privileged));
    }

    #[test]
    fn audit_mode_and_off_add_nothing_so_the_template_is_judged_as_written() {
        let audit = Config {
            mode: Mode::Audit,
            ..Config::default()
        };
        let object = deployment(json!({"name": "app", "image": "nginx"}));
        let a = assess(&object, &audit, false).unwrap().unwrap();
        assert!(a.added.is_empty());
        assert!(!a.would_add.is_empty());
        assert_eq!(a.verdict(), Verdict::NeedsChanges);
        let off = assess(&object, &Config::default(), true).unwrap().unwrap();
        assert_eq!((off.mode.as_str(), off.added.len()), ("off", 0));
        assert_eq!(off.remaining, a.remaining);
    }

    #[test]
    fn denied_checks_are_the_remaining_ones_on_the_deny_list() {
        let config = Config {
            deny: [Check::Privileged].into_iter().collect(),
            ..Config::default()
        };
        let c = json!({"name": "agent", "image": "agent", "securityContext": {"privileged": true}});
        let a = assess(&deployment(c), &config, false).unwrap().unwrap();
        assert_eq!(a.denied, vec![Check::Privileged]);
    }

    #[test]
    fn kinds_without_a_pod_spec_are_not_assessed() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(assess(&cm, &Config::default(), false).unwrap().is_none());
    }
}
