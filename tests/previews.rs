//! Workload previews: a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or
//! CronJob is allowed exactly as sent, with at most one warning saying what
//! its pods will get at admission and what `restricted` still rejects.

use rstest::rstest;
use secure_defaults::admission::{self, Decision, Parsed};
use secure_defaults::config::{Config, Mode};
use secure_defaults::engine::Check;
use serde_json::{json, Value};

fn review(operation: &str, group: &str, resource: &str, kind: &str, object: &Value, old: Option<&Value>) -> Value {
    let version = "v1";
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "7c4b2f6e-0000-4000-8000-000000000001",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": "web",
            "namespace": "legacy",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {}
        }
    })
}

fn answer(review: &Value, config: &Config) -> admission::Reviewed {
    let Parsed::Request(req) = admission::parse(&serde_json::to_vec(review).unwrap()).unwrap() else {
        panic!("not parsed as a request");
    };
    admission::review(&req, config)
}

fn pod_template(containers: Value) -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
}

fn workload(api_version: &str, kind: &str, containers: Value) -> Value {
    let spec = match kind {
        "CronJob" => json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": pod_template(containers)}}}),
        _ => json!({"selector": {"matchLabels": {"app": "web"}}, "template": pod_template(containers)}),
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "web", "namespace": "legacy"}, "spec": spec})
}

fn legacy() -> Value {
    json!([{"name": "app", "image": "nginx:1.27"}])
}

#[rstest]
#[case("apps", "deployments", "Deployment")]
#[case("apps", "statefulsets", "StatefulSet")]
#[case("apps", "daemonsets", "DaemonSet")]
#[case("apps", "replicasets", "ReplicaSet")]
#[case("batch", "jobs", "Job")]
#[case("batch", "cronjobs", "CronJob")]
fn each_workload_kind_gets_one_warning_and_no_patch(#[case] group: &str, #[case] resource: &str, #[case] kind: &str) {
    let object = workload(&format!("{group}/v1"), kind, legacy());
    let r = answer(
        &review("CREATE", group, resource, kind, &object, None),
        &Config::default(),
    );
    assert!(r.response.allowed);
    assert!(r.response.patch.is_none(), "a preview never mutates");
    assert_eq!(r.outcome.decision, Decision::Previewed);
    let warnings = r.response.warnings.unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert!(
        w.starts_with(&format!("secure-defaults: {kind} preview: its pods get ")),
        "{w}"
    );
    assert!(w.contains(" fields at admission (runAsNonRoot, "), "names fit: {w}");
    for field in [
        "runAsNonRoot",
        "seccompProfile",
        "allowPrivilegeEscalation",
        "capabilities",
    ] {
        assert!(w.contains(field), "{field} missing in {w}");
    }
    assert!(w.ends_with("then admitted under \"restricted\""), "{w}");
    assert!(w.len() <= 256);
}

#[test]
fn what_stays_rejected_is_named() {
    let containers = json!([{"name": "agent", "image": "agent", "securityContext": {"privileged": true}}]);
    let object = workload("apps/v1", "DaemonSet", containers);
    let r = answer(
        &review("CREATE", "apps", "daemonsets", "DaemonSet", &object, None),
        &Config::default(),
    );
    let w = &r.response.warnings.unwrap()[0];
    let rejected = w.split("still rejected by \"restricted\": ").nth(1).expect(w);
    assert!(rejected.split(", ").any(|c| c == "privileged"), "{w}");
    assert!(!w.contains("denied by secure-defaults"), "{w}");

    let deny = Config {
        deny: [Check::Privileged].into_iter().collect(),
        ..Config::default()
    };
    let r = answer(
        &review("CREATE", "apps", "daemonsets", "DaemonSet", &object, None),
        &deny,
    );
    assert!(r.response.allowed, "a workload is never denied: its pods are");
    assert!(r.response.warnings.unwrap()[0].contains("(denied by secure-defaults here)"));
}

#[test]
fn a_hardened_template_gets_no_warning() {
    let containers = json!([{"name": "app", "image": "nginx", "securityContext": {
        "runAsNonRoot": true, "runAsUser": 1000, "allowPrivilegeEscalation": false,
        "seccompProfile": {"type": "RuntimeDefault"}, "capabilities": {"drop": ["ALL"]}
    }}]);
    let mut object = workload("apps/v1", "Deployment", containers);
    object["spec"]["template"]["spec"]["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
               "seccompProfile": {"type": "RuntimeDefault"}});
    let r = answer(
        &review("CREATE", "apps", "deployments", "Deployment", &object, None),
        &Config::default(),
    );
    assert_eq!(r.response.warnings, None);
    assert_eq!(r.outcome.decision, Decision::Skipped);
}

#[test]
fn an_update_that_keeps_the_template_gets_no_warning() {
    let old = workload("apps/v1", "Deployment", legacy());
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    let r = answer(
        &review("UPDATE", "apps", "deployments", "Deployment", &scaled, Some(&old)),
        &Config::default(),
    );
    assert_eq!(r.response.warnings, None);

    let mut changed = old.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    let r = answer(
        &review("UPDATE", "apps", "deployments", "Deployment", &changed, Some(&old)),
        &Config::default(),
    );
    assert_eq!(r.response.warnings.map(|w| w.len()), Some(1));
    assert!(r.response.patch.is_none());
}

#[test]
fn audit_mode_says_nothing_is_changed() {
    let object = workload("apps/v1", "Deployment", legacy());
    let audit = Config {
        mode: Mode::Audit,
        ..Config::default()
    };
    let r = answer(
        &review("CREATE", "apps", "deployments", "Deployment", &object, None),
        &audit,
    );
    let w = &r.response.warnings.unwrap()[0];
    assert!(
        w.contains("audit mode: its pods are not changed; enforce would add "),
        "{w}"
    );
    assert!(w.contains("; still rejected by \"restricted\": "), "{w}");
    assert!(w.len() <= 256, "{w}");
}

#[rstest]
#[case::status_subresource("UPDATE", "apps", "deployments", "Deployment", Some("status"))]
#[case::scale_subresource("UPDATE", "apps", "deployments", "Scale", Some("scale"))]
#[case::delete("DELETE", "apps", "deployments", "Deployment", None)]
#[case::other_group("CREATE", "example.com", "deployments", "Deployment", None)]
#[case::replication_controller("CREATE", "", "replicationcontrollers", "ReplicationController", None)]
fn other_requests_are_not_previewed(
    #[case] operation: &str,
    #[case] group: &str,
    #[case] resource: &str,
    #[case] kind: &str,
    #[case] sub_resource: Option<&str>,
) {
    let object = workload("apps/v1", "Deployment", legacy());
    let mut body = review(operation, group, resource, kind, &object, Some(&object));
    if let Some(sub) = sub_resource {
        body["request"]["subResource"] = json!(sub);
    }
    let r = answer(&body, &Config::default());
    assert_eq!(r.outcome.decision, Decision::Skipped);
    assert_eq!(r.response.warnings, None);
    assert!(r.response.patch.is_none());
}

#[test]
fn an_unreadable_template_is_left_to_the_api_server_silently() {
    let mut object = workload("apps/v1", "Deployment", legacy());
    object["spec"]["template"]["spec"]["containers"] = json!("not a list");
    let r = answer(
        &review("CREATE", "apps", "deployments", "Deployment", &object, None),
        &Config::default(),
    );
    assert!(r.response.allowed);
    assert_eq!(r.response.warnings, None);
}
