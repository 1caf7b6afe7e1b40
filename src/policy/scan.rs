//! `secure-defaults scan`'s report: per namespace, what admission will do to
//! the pods of each workload, and whether the namespace can be switched to
//! Pod Security `restricted` once secure-defaults is installed.
//!
//! Pure: objects and namespaces in, a report and its table out. Listing them
//! from a cluster is `cli::scan`'s job.

use crate::config::Config;
use crate::engine::manifest;
use crate::engine::{ContainerChoice, Identity, IdentityChoice, IdentityReason};
use crate::policy::assess::{self, Assessment, Verdict};
use crate::policy::namespace::{self as namespace_policy, NamespaceInfo};
use crate::policy::ModeInForce;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Namespaces the shipped MutatingWebhookConfiguration never sends to the
/// webhook (tests/manifests.rs keeps the two lists equal), and the label that
/// leaves a namespace out where `namespacePolicy.allowOptOut` is true (the
/// chart adds its selector term only then).
pub const EXCLUDED_NAMESPACES: [&str; 4] = ["kube-system", "kube-node-lease", "kube-public", "secure-defaults"];
pub const IGNORE_LABEL: (&str, &str) = ("secure-defaults.io/ignore", "true");

/// The Pod Security label a namespace switches to `restricted`.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// The workload kinds scanned, with their pod template: what creates pods.
pub const KINDS: [&str; 7] = [
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
];

/// Whether `object` is scanned on its own, or through what controls it: a
/// pod made by a ReplicaSet, StatefulSet, DaemonSet or Job is covered by its
/// owner's template, a ReplicaSet of a Deployment by the Deployment, a Job of
/// a CronJob by the CronJob. Pods of other controllers (operators, static
/// pods) are scanned themselves: their template is not one we can read.
pub fn is_scanned(object: &Value) -> bool {
    let kind = object["kind"].as_str().unwrap_or_default();
    let controller = object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["controller"] == Value::Bool(true))
        .and_then(|r| r["kind"].as_str());
    let covered_by: &[&str] = match kind {
        "Pod" => &["ReplicaSet", "StatefulSet", "DaemonSet", "Job"],
        "ReplicaSet" => &["Deployment"],
        "Job" => &["CronJob"],
        _ => &[],
    };
    !controller.is_some_and(|c| covered_by.contains(&c))
}

/// One workload (or bare pod) and what admission will do to its pods.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assessment: Option<Assessment>,
    /// Set when the template cannot be read; the workload counts as needing changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Workload {
    fn needs_changes(&self) -> bool {
        self.verdict != Some(Verdict::Ready)
    }
}

/// One namespace: its workloads and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    pub name: String,
    /// `off` when excluded from the webhook, or switched off.
    pub mode: ModeInForce,
    /// Why secure-defaults does not harden pods here, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
    /// The namespace policy in force (`runAsUser=1000`, ...), and values it ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_warnings: Vec<String>,
    /// The current `pod-security.kubernetes.io/enforce` level, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_security_enforce: Option<String>,
    /// Every workload's pods are admitted under `restricted`: the label
    /// `pod-security.kubernetes.io/enforce=restricted` can be set.
    pub restricted_ready: bool,
    pub workloads: Vec<Workload>,
}

/// Everything scanned.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub namespaces: Vec<Namespace>,
}

impl Report {
    /// Workloads whose pods would still be rejected under `restricted` (or
    /// could not be read).
    pub fn needing_changes(&self) -> usize {
        self.namespaces
            .iter()
            .flat_map(|n| &n.workloads)
            .filter(|w| w.needs_changes())
            .count()
    }

    pub fn workloads(&self) -> usize {
        self.namespaces.iter().map(|n| n.workloads.len()).sum()
    }
}

/// Builds a [`Report`] from namespaces and objects in any order, keeping only
/// the assessment of each object (so a scan holds one page of objects at a time).
#[derive(Debug)]
pub struct Scanner<'a> {
    config: &'a Config,
    namespace_policy: bool,
    namespaces: BTreeMap<String, Namespace>,
    /// The configuration in force per namespace, and whether it is off.
    effective: BTreeMap<String, (Config, bool)>,
}

impl<'a> Scanner<'a> {
    /// `namespace_policy`: read namespace labels and annotations as
    /// `serve --namespace-policy` does (the shipped manifests turn it on).
    pub fn new(config: &'a Config, namespace_policy: bool) -> Scanner<'a> {
        Scanner {
            config,
            namespace_policy,
            namespaces: BTreeMap::new(),
            effective: BTreeMap::new(),
        }
    }

    /// Add a namespace to the report (also one without workloads).
    pub fn namespace(&mut self, ns: &NamespaceInfo) {
        let mut eff = if self.namespace_policy {
            let e = namespace_policy::effective(self.config, ns);
            (e.config.into_owned(), e.off, e.applied, e.warnings)
        } else {
            (self.config.clone(), false, Vec::new(), Vec::new())
        };
        let excluded = if EXCLUDED_NAMESPACES.contains(&ns.name.as_str()) {
            Some("never sent to the webhook (the shipped namespaceSelector)".to_string())
        } else if self.config.namespace_policy.allow_opt_out
            && ns.labels.get(IGNORE_LABEL.0).map(String::as_str) == Some(IGNORE_LABEL.1)
        {
            Some(format!("labelled {}={}", IGNORE_LABEL.0, IGNORE_LABEL.1))
        } else if eff.1 {
            Some(format!("{}=off", namespace_policy::MODE))
        } else {
            None
        };
        eff.1 |= excluded.is_some();
        let mode = if eff.1 { ModeInForce::Off } else { eff.0.mode.into() };
        self.namespaces.insert(
            ns.name.clone(),
            Namespace {
                name: ns.name.clone(),
                mode,
                excluded,
                policy: eff.2,
                policy_warnings: eff.3,
                pod_security_enforce: ns.labels.get(ENFORCE_LABEL).cloned(),
                restricted_ready: true,
                workloads: Vec::new(),
            },
        );
        self.effective.insert(ns.name.clone(), (eff.0, eff.1));
    }

    /// Assess one object of a [`KINDS`] kind; objects [`is_scanned`] skips are ignored.
    pub fn object(&mut self, object: &Value) {
        if !is_scanned(object) || self.controlled_by_extra_kind(object) {
            return;
        }
        let ns = object["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        if !self.namespaces.contains_key(&ns) {
            self.namespace(&NamespaceInfo {
                name: ns.clone(),
                ..NamespaceInfo::default()
            });
        }
        let (config, off) = &self.effective[&ns];
        let (assessment, error) = match assess::assess(object, config, *off) {
            Ok(a) => (a, None),
            Err(e) => (None, Some(e.to_string())),
        };
        if assessment.is_none() && error.is_none() {
            return; // a kind without a pod template
        }
        let workload = Workload {
            kind: object["kind"].as_str().unwrap_or_default().to_string(),
            name: object["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            verdict: assessment.as_ref().map(Assessment::verdict),
            assessment,
            error,
        };
        let namespace = self.namespaces.get_mut(&ns).expect("added above");
        namespace.restricted_ready &= !workload.needs_changes();
        namespace.workloads.push(workload);
    }

    /// A pod or ReplicaSet made by one of the operator's `extraKinds` (an Argo
    /// Rollout's ReplicaSets) is covered by that object's template.
    fn controlled_by_extra_kind(&self, object: &Value) -> bool {
        let controller = object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["controller"] == Value::Bool(true));
        controller.is_some_and(|r| {
            let group = manifest::group(r["apiVersion"].as_str().unwrap_or_default());
            let kind = r["kind"].as_str().unwrap_or_default();
            self.config
                .extra_kinds
                .iter()
                .any(|e| e.group == group && e.kind == kind)
        })
    }

    pub fn finish(self) -> Report {
        let mut namespaces: Vec<Namespace> = self.namespaces.into_values().collect();
        for ns in &mut namespaces {
            ns.workloads
                .sort_by(|a, b| (kind_order(&a.kind), &a.name).cmp(&(kind_order(&b.kind), &b.name)));
        }
        Report { namespaces }
    }
}

fn kind_order(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len())
}

/// The report as tables, one per namespace, and a closing summary.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    for ns in &report.namespaces {
        let total = ns.workloads.len();
        let needing = ns.workloads.iter().filter(|w| w.needs_changes()).count();
        let current = ns.pod_security_enforce.as_deref().unwrap_or("not set");
        let _ = writeln!(
            out,
            "NAMESPACE {} (secure-defaults: {}{}; pod-security enforce: {current})",
            ns.name,
            ns.mode,
            ns.excluded.as_deref().map(|e| format!(", {e}")).unwrap_or_default()
        );
        if !ns.policy.is_empty() {
            let _ = writeln!(out, "  namespace policy: {}", ns.policy.join(", "));
        }
        for w in &ns.policy_warnings {
            let _ = writeln!(out, "  {w}");
        }
        if total > 0 {
            let rows: Vec<[String; 6]> = ns.workloads.iter().map(row).collect();
            let headers = ["WORKLOAD", "ADDED", "IDENTITY", "KEPT", "REMAINING", "VERDICT"].map(String::from);
            let mut widths = headers.clone().map(|h| h.len());
            for r in &rows {
                for (w, cell) in widths.iter_mut().zip(r) {
                    *w = (*w).max(cell.len());
                }
            }
            for r in std::iter::once(&headers).chain(&rows) {
                let mut line = String::from(" ");
                for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
                    if i + 1 == r.len() {
                        line.push_str(&format!(" {cell}"));
                    } else {
                        line.push_str(&format!(" {cell:<w$}"));
                    }
                }
                let _ = writeln!(out, "{}", line.trim_end());
            }
            // What admission cannot fix and Pod Security does not see.
            for w in &ns.workloads {
                for c in w.assessment.iter().flat_map(|a| &a.cautions) {
                    let _ = writeln!(out, "  {}/{}: {}", w.kind.to_lowercase(), w.name, c.message());
                }
            }
        }
        let verdict = match (ns.restricted_ready, total) {
            (true, 0) => "restricted can be enforced: yes (no workloads)".to_string(),
            (true, _) => format!("restricted can be enforced: yes ({total} of {total} workloads ready)"),
            (false, _) => format!("restricted can be enforced: no ({needing} of {total} workloads need changes)"),
        };
        let _ = writeln!(out, "  => {verdict}\n");
    }
    let namespaces = report.namespaces.len();
    let ready = report.namespaces.iter().filter(|n| n.restricted_ready).count();
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        out,
        "{} in {}; {} need changes; restricted can be enforced in {ready} of {}",
        plural(report.workloads(), "workload"),
        plural(namespaces, "namespace"),
        report.needing_changes(),
        plural(namespaces, "namespace"),
    );
    out
}

/// The IDENTITY cell: `uid`, `userns` or `kept`, and the reason when it is
/// not the mode's plain choice (`uid (hostNetwork)`, `userns (explicitRoot)`).
/// In `identity: auto`, what the containers got, each kind once:
/// `auto: image, uid (fallback)`, `auto: userns (hostNetwork)`.
fn identity_cell(identity: Option<&Identity>) -> String {
    let Some(i) = identity else {
        return "-".into();
    };
    let choice = match i.choice {
        IdentityChoice::Uid => "uid",
        IdentityChoice::UserNamespace => "userns",
        IdentityChoice::Kept => "kept",
    };
    let reason = match i.reason {
        IdentityReason::UidMode | IdentityReason::NoIdentitySet | IdentityReason::Images => None,
        reason => serde_json::to_value(reason).ok(),
    };
    let reason = reason.as_ref().map(|r| format!(" ({})", r.as_str().unwrap_or("?")));
    if i.containers.is_empty() {
        return format!("{choice}{}", reason.unwrap_or_default());
    }
    let mut kinds: Vec<&str> = Vec::new();
    for c in &i.containers {
        let kind = match (c.got, c.fallback.is_some()) {
            (ContainerChoice::ImageUser { .. }, _) => "image",
            (ContainerChoice::UserNamespace, false) => "userns",
            (ContainerChoice::UserNamespace, true) => "userns (fallback)",
            (ContainerChoice::Uid, false) => "uid",
            (ContainerChoice::Uid, true) => "uid (fallback)",
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    format!("auto: {}{}", kinds.join(", "), reason.unwrap_or_default())
}

fn row(w: &Workload) -> [String; 6] {
    let name = format!("{}/{}", w.kind.to_lowercase(), w.name);
    let Some(a) = &w.assessment else {
        let error = w.error.clone().unwrap_or_default();
        return [
            name,
            "-".into(),
            "-".into(),
            "-".into(),
            format!("cannot read: {error}"),
            "needs changes".into(),
        ];
    };
    let added = match (a.mode, a.untouched) {
        (_, Some(_)) => "untouched".to_string(),
        (ModeInForce::Audit, _) if !a.would_add.is_empty() => format!("0 (audit; {} would be)", a.would_add.len()),
        _ => a.added.len().to_string(),
    };
    let list = |items: Vec<String>| {
        let mut items = items;
        items.dedup();
        if items.is_empty() {
            "-".to_string()
        } else {
            items.join(",")
        }
    };
    let mut kept: Vec<String> = a.kept.iter().map(|k| k.field.as_str().to_string()).collect();
    kept.sort();
    let mut remaining: Vec<String> = a.remaining.iter().map(|v| v.check.as_str().to_string()).collect();
    remaining.sort();
    let verdict = a.verdict().as_str().to_string();
    [
        name,
        added,
        identity_cell(a.identity.as_ref()),
        list(kept),
        list(remaining),
        verdict,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(name: &str, labels: &[(&str, &str)]) -> NamespaceInfo {
        NamespaceInfo {
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..NamespaceInfo::default()
        }
    }

    fn deployment(ns: &str, name: &str, security_context: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "app", "image": "nginx", "securityContext": security_context}]}}}})
    }

    fn pod(ns: &str, name: &str, owner: Option<&str>) -> Value {
        let owners =
            owner.map(|k| json!([{"apiVersion": "v1", "kind": k, "name": "x", "uid": "u", "controller": true}]));
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": ns, "ownerReferences": owners},
               "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
    }

    #[test]
    fn identity_cell_names_the_fallback_reason() {
        let cell = |choice, reason| {
            identity_cell(Some(&Identity {
                choice,
                reason,
                uid: Some(65532),
                containers: Vec::new(),
            }))
        };
        assert_eq!(cell(IdentityChoice::Uid, IdentityReason::UidMode), "uid");
        assert_eq!(
            cell(IdentityChoice::UserNamespace, IdentityReason::NoIdentitySet),
            "userns"
        );
        assert_eq!(
            cell(IdentityChoice::UserNamespace, IdentityReason::ExplicitRoot),
            "userns (explicitRoot)"
        );
        assert_eq!(
            cell(IdentityChoice::Uid, IdentityReason::HostNetwork),
            "uid (hostNetwork)"
        );
        assert_eq!(identity_cell(None), "-");
    }

    #[test]
    fn owned_objects_are_covered_by_their_owner() {
        assert!(is_scanned(&pod("a", "bare", None)));
        assert!(!is_scanned(&pod("a", "of-rs", Some("ReplicaSet"))));
        assert!(!is_scanned(&pod("a", "of-job", Some("Job"))));
        assert!(is_scanned(&pod("a", "of-an-operator", Some("EtcdCluster"))));
        assert!(is_scanned(&pod("a", "static", Some("Node"))));
        let mut rs = deployment("a", "rs", json!(null));
        rs["kind"] = json!("ReplicaSet");
        assert!(is_scanned(&rs));
        rs["metadata"]["ownerReferences"] = json!([{"kind": "Deployment", "controller": true}]);
        assert!(!is_scanned(&rs));
    }

    #[test]
    fn extra_kinds_are_scanned_and_cover_what_they_make() {
        let config = Config::from_yaml(
            "extraKinds: [{group: argoproj.io, kind: Rollout, templatePath: spec.template}]\n",
            "t",
        )
        .unwrap();
        let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "a"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}}});
        let mut rs = deployment("a", "web-5d9f", json!({}));
        rs["kind"] = json!("ReplicaSet");
        rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "u", "controller": true}]);
        for (config, expected) in [(&config, vec!["Rollout"]), (&Config::default(), vec!["ReplicaSet"])] {
            let mut scanner = Scanner::new(config, false);
            scanner.object(&rollout);
            scanner.object(&rs);
            let report = scanner.finish();
            let kinds: Vec<&str> = report.namespaces[0].workloads.iter().map(|w| w.kind.as_str()).collect();
            assert_eq!(kinds, expected);
        }
    }

    #[test]
    fn a_namespace_is_ready_only_when_every_workload_is() {
        let config = Config::default();
        let mut s = Scanner::new(&config, true);
        s.namespace(&ns("legacy", &[(ENFORCE_LABEL, "baseline")]));
        s.namespace(&ns("empty", &[]));
        s.object(&deployment("legacy", "web", json!(null)));
        s.object(&pod("legacy", "bare", None));
        s.object(&pod("legacy", "owned", Some("ReplicaSet")));
        s.object(&deployment("legacy", "agent", json!({"privileged": true})));
        s.object(&deployment("clean", "web", json!(null)));
        let report = s.finish();
        let names: Vec<&str> = report.namespaces.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["clean", "empty", "legacy"]);
        let legacy = &report.namespaces[2];
        assert!(!legacy.restricted_ready);
        assert_eq!(legacy.pod_security_enforce.as_deref(), Some("baseline"));
        let order: Vec<(&str, &str)> = legacy
            .workloads
            .iter()
            .map(|w| (w.kind.as_str(), w.name.as_str()))
            .collect();
        assert_eq!(order, [("Pod", "bare"), ("Deployment", "agent"), ("Deployment", "web")]);
        assert!(report.namespaces[0].restricted_ready && report.namespaces[1].restricted_ready);
        assert_eq!(report.needing_changes(), 1);

        let text = table(&report);
        assert!(
            text.contains("NAMESPACE legacy (secure-defaults: enforce; pod-security enforce: baseline)"),
            "{text}"
        );
        assert!(
            text.contains("=> restricted can be enforced: no (1 of 3 workloads need changes)"),
            "{text}"
        );
        assert!(
            text.contains("=> restricted can be enforced: yes (no workloads)"),
            "{text}"
        );
        let agent = text.lines().find(|l| l.contains("deployment/agent")).unwrap();
        assert!(
            agent.contains("privileged") && agent.ends_with("needs changes"),
            "{agent}"
        );
        // The identity each workload gets: the privileged agent keeps its own.
        assert!(text.contains("IDENTITY"), "{text}");
        let words = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(words(agent)[2], "kept", "{agent}");
        let bare = text.lines().find(|l| l.contains("pod/bare")).unwrap();
        assert_eq!(words(bare)[2], "uid", "{bare}");
        assert!(
            text.ends_with(
                "4 workloads in 3 namespaces; 1 need changes; restricted can be enforced in 2 of 3 namespaces\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn excluded_and_ignored_namespaces_get_nothing_added() {
        let mut config = Config::default();
        config.namespace_policy.allow_opt_out = true;
        let mut s = Scanner::new(&config, true);
        s.namespace(&ns("kube-system", &[]));
        s.namespace(&ns("opted-out", &[IGNORE_LABEL]));
        s.object(&deployment("kube-system", "dns", json!(null)));
        s.object(&deployment("opted-out", "web", json!(null)));
        let report = s.finish();
        for n in &report.namespaces {
            assert_eq!(n.mode, "off");
            assert!(n.excluded.is_some());
            assert!(!n.restricted_ready, "{n:?}");
            let a = n.workloads[0].assessment.as_ref().unwrap();
            assert!(a.added.is_empty());
        }
    }

    /// The ignore label is a namespace opting out: without allowOptOut the
    /// shipped registration has no term for it, so it exempts nothing.
    #[test]
    fn the_ignore_label_exempts_only_with_allow_opt_out() {
        let config = Config::default();
        let mut s = Scanner::new(&config, true);
        s.namespace(&ns("opted-out", &[IGNORE_LABEL]));
        s.object(&deployment("opted-out", "web", json!(null)));
        let report = s.finish();
        let n = &report.namespaces[0];
        assert_eq!(n.mode, "enforce");
        assert_eq!(n.excluded, None);
        assert!(!n.workloads[0].assessment.as_ref().unwrap().added.is_empty());
    }

    #[test]
    fn the_namespace_policy_applies_only_when_asked() {
        let config = Config::default();
        let audit = ns("audit", &[(namespace_policy::MODE, "audit")]);
        let mut with = Scanner::new(&config, true);
        with.namespace(&audit);
        // Opt-out is not allowed by default: the label is ignored, with a warning.
        assert_eq!(with.finish().namespaces[0].policy_warnings.len(), 1);
        let relaxed = Config {
            namespace_policy: crate::config::namespace::Controls {
                allow_opt_out: true,
                ..Default::default()
            },
            ..Config::default()
        };
        let mut with = Scanner::new(&relaxed, true);
        with.namespace(&audit);
        assert_eq!(with.finish().namespaces[0].mode, "audit");
        let mut without = Scanner::new(&relaxed, false);
        without.namespace(&audit);
        assert_eq!(without.finish().namespaces[0].mode, "enforce");
    }

    /// Issue 18: a port below 1024 the hardened pods cannot bind is said in
    /// words under the table and in JSON; not where nothing is added.
    #[test]
    fn low_ports_the_hardened_pods_cannot_bind_are_said() {
        let relaxed = Config {
            namespace_policy: crate::config::namespace::Controls {
                allow_opt_out: true,
                ..Default::default()
            },
            ..Config::default()
        };
        let mut s = Scanner::new(&relaxed, true);
        s.namespace(&ns("audit", &[(namespace_policy::MODE, "audit")]));
        let mut web = deployment("web", "httpd", json!(null));
        web["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
        let mut quiet = web.clone();
        quiet["metadata"]["namespace"] = json!("audit");
        let mut high = deployment("web", "proxy", json!(null));
        high["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080}]);
        for o in [&web, &quiet, &high] {
            s.object(o);
        }
        let report = s.finish();
        let text = table(&report);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("listens on")).collect();
        assert_eq!(
            lines,
            ["  deployment/httpd: container \"app\" listens on port 80 (<1024): as non-root without NET_BIND_SERVICE it cannot bind it unless net.ipv4.ip_unprivileged_port_start is lower; use a port >= 1024 or set that sysctl in the pod's securityContext.sysctls"]
        );
        let json = serde_json::to_value(&report).unwrap();
        let web = &json["namespaces"][1]["workloads"];
        assert_eq!(web[0]["name"], "httpd");
        assert_eq!(
            web[0]["assessment"]["cautions"],
            json!([{"target": {"level": "container", "kind": "containers", "name": "app"}, "ports": [80]}])
        );
        assert!(web[1]["assessment"].get("cautions").is_none(), "{web}");
    }

    #[test]
    fn an_unreadable_template_needs_changes() {
        let config = Config::default();
        let mut s = Scanner::new(&config, false);
        let mut d = deployment("a", "broken", json!(null));
        d["spec"]["template"]["spec"]["containers"] = json!("nope");
        s.object(&d);
        let report = s.finish();
        assert!(report.namespaces[0].workloads[0].error.is_some());
        assert!(!report.namespaces[0].restricted_ready);
    }
}
