//! secure-defaults in a real API server: kube-apiserver applies our patches,
//! validates the result and enforces Pod Security; kube-controller-manager
//! creates the pods of workloads. Run with `make e2e`.

use anyhow::{ensure, Context, Result};
use secure_defaults_e2e::injector::{Injector, SIDECAR};
use secure_defaults_e2e::oracle::explicit_violation;
use secure_defaults_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

const FAIL: &str = "Fail";

/// A webhook serving `config`, registered for the namespaces of `scenario`,
/// and one namespace of that scenario at this Pod Security level.
async fn hardened_namespace(
    client: &kube::Client,
    scenario: &str,
    enforce: &str,
    config: &str,
) -> Result<(Webhook, String, String)> {
    let ns = namespace(client, scenario, enforce).await?;
    let hook = Webhook::start(config).await?;
    let name = unique(&format!("sd-{scenario}"));
    let mwc = webhook_configuration(&name, &hook.url(), &hook.tls.ca_pem, scenario, FAIL)?;
    register(client, &mwc, &ns, !config.contains("audit")).await?;
    Ok((hook, ns, name))
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

fn resource_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        "Job" => "jobs",
        "CronJob" => "cronjobs",
        "ReplicaSet" => "replicasets",
        "Pod" => "pods",
        other => panic!("no resource for {other}"),
    }
}

fn legacy_workloads() -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(Env::get().repo.join("e2e/testdata/legacy-workloads.yaml"))?;
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Ok(serde::Deserialize::deserialize(d)?))
        .collect()
}

/// A Job made from the CronJob's template, as `kubectl create job --from=cronjob/...` does.
fn job_from_cronjob(cronjob: &Value, uid: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": format!("{}-manual", cronjob["metadata"]["name"].as_str().unwrap()),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob["metadata"]["name"], "uid": uid}]
        },
        "spec": cronjob["spec"]["jobTemplate"]["spec"],
    })
}

/// A Node for the DaemonSet controller to make a pod for (no kubelet runs).
async fn ensure_node(client: &kube::Client) -> Result<()> {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "e2e-node", "labels": {"kubernetes.io/os": "linux"}}});
    let a = send(client, http::Method::POST, "/api/v1/nodes", "application/json", &node).await?;
    ensure!(a.ok() || a.status == 409, "cannot create node: {}", a.body);
    Ok(())
}

async fn create_workloads(client: &kube::Client, ns: &str, bare_pod: bool) -> Result<()> {
    for w in legacy_workloads()?
        .into_iter()
        .filter(|w| bare_pod || w["kind"] != "Pod")
    {
        let kind = w["kind"].as_str().unwrap().to_string();
        let a = create(client, ns, resource_of(&kind), &w, false).await?;
        ensure!(a.ok(), "creating {kind}: {} {}", a.status, a.body);
        if kind == "CronJob" {
            let uid = a.body["metadata"]["uid"].as_str().unwrap_or_default().to_string();
            let job = job_from_cronjob(&w, &uid);
            let a = create(client, ns, "jobs", &job, false).await?;
            ensure!(a.ok(), "creating the Job from the CronJob: {}", a.body);
        }
    }
    Ok(())
}

/// Scenario 1: legacy workloads into a `restricted` namespace.
#[tokio::test]
async fn legacy_workloads_run_in_restricted_with_the_baseline() -> Result<()> {
    let client = client().await;
    ensure_node(&client).await?;
    let (hook, ns, mwc) = hardened_namespace(&client, "legacy", "restricted", &config("enforce")).await?;
    create_workloads(&client, &ns, true).await?;

    // One pod each: Deployment, StatefulSet, DaemonSet, Job, the CronJob's Job, ReplicaSet, bare Pod.
    let pods = pods(&client, &ns, 7).await.with_context(|| hook.log())?;
    let mut owners: Vec<String> = Vec::new();
    for p in &pods {
        let v = serde_json::to_value(p)?;
        assert_hardened(&v);
        let owner = v["metadata"]["ownerReferences"][0]["kind"]
            .as_str()
            .unwrap_or("(bare)")
            .to_string();
        owners.push(owner);
    }
    owners.sort();
    println!("hardened pods by owner: {owners:?}");
    assert_eq!(
        owners,
        [
            "(bare)",
            "DaemonSet",
            "Job",
            "Job",
            "ReplicaSet",
            "ReplicaSet",
            "StatefulSet"
        ]
    );

    // Negative control: the same workloads without the webhook are rejected by Pod Security.
    let control = namespace(&client, "legacy-control", "restricted").await?;
    let bare = legacy_workloads()?.into_iter().find(|w| w["kind"] == "Pod").unwrap();
    let a = create(&client, &control, "pods", &bare, false).await?;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.message().contains("violates PodSecurity \"restricted"),
        "{}",
        a.message()
    );
    create_workloads(&client, &control, false).await?;
    let rs: kube::Api<k8s_openapi::api::apps::v1::ReplicaSet> = kube::Api::namespaced(client.clone(), &control);
    let failure = wait_for(
        Duration::from_secs(60),
        "ReplicaFailure on a control ReplicaSet",
        || async {
            let list = rs.list(&Default::default()).await.ok()?;
            list.items.iter().find_map(|r| {
                let conditions = r.status.as_ref()?.conditions.as_ref()?;
                conditions
                    .iter()
                    .find(|c| c.type_ == "ReplicaFailure")
                    .and_then(|c| c.message.clone())
            })
        },
    )
    .await?;
    assert!(failure.contains("violates PodSecurity"), "{failure}");
    let control_pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), &control);
    assert!(
        control_pods.list(&Default::default()).await?.items.is_empty(),
        "no control pod may exist"
    );

    unregister(&client, &mwc).await
}

/// Scenario 2: the upstream Pod Security fixtures.
#[tokio::test]
async fn pod_security_fixtures_are_admitted_unless_they_state_a_violation() -> Result<()> {
    let client = client().await;
    let (hook, ns, mwc) = hardened_namespace(&client, "psa", "restricted", &config("enforce")).await?;
    let env = Env::get();
    let dir = std::fs::read_dir(env.psa_testdata.join("restricted"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let minor: u32 = name.strip_prefix("v1.")?.parse().ok()?;
            Some((minor, e.path()))
        })
        .max()
        .map(|(_, p)| p)
        .context("no restricted/v1.N fixtures")?;
    println!("fixtures: {}", dir.display());

    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let mut wrong = Vec::new();
    for (set, expect_admitted_always) in [("fail", false), ("pass", true)] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(set))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)?;
            let mut fixture: Value = serde_yaml::from_str(&text)?;
            if fixture["kind"] != "Pod" {
                continue;
            }
            let name = format!("{set}-{}", fixture["metadata"]["name"].as_str().unwrap_or("x")).replace('_', "-");
            fixture["metadata"]["name"] = json!(name);
            let explicit = explicit_violation(&fixture);
            let a = create(&client, &ns, "pods", &fixture, false).await?;
            let outcome = match (a.ok(), a.message()) {
                (true, _) => "admitted",
                (false, m) if m.contains("violates PodSecurity") => "rejected by PodSecurity",
                (false, _) => "rejected by validation",
            };
            let expected_admitted = expect_admitted_always || explicit.is_none();
            *counts
                .entry(match (set, outcome, expected_admitted) {
                    ("pass", "admitted", _) => "pass fixtures admitted",
                    ("fail", "admitted", _) => "fail fixtures admitted (missing fields filled in)",
                    ("fail", "rejected by PodSecurity", false) => {
                        "fail fixtures rejected by PodSecurity (explicit value kept)"
                    }
                    ("fail", "rejected by validation", false) => {
                        "fail fixtures rejected by API validation (explicit value kept)"
                    }
                    _ => "unexpected",
                })
                .or_default() += 1;
            if a.ok() != expected_admitted {
                wrong.push(format!(
                    "{set}/{}: {outcome}, expected admitted={expected_admitted} (explicit: {explicit:?}): {}",
                    file.file_name().unwrap().to_string_lossy(),
                    a.message()
                ));
                continue;
            }
            if a.ok() {
                assert_hardened_where_not_explicit(&a.body, &fixture);
            } else if outcome == "rejected by PodSecurity" {
                // Our warnings name what was kept and is still rejected.
                let ours: Vec<_> = a
                    .warnings
                    .iter()
                    .filter(|w| w.contains("still violates PodSecurity"))
                    .collect();
                if ours.is_empty() {
                    wrong.push(format!(
                        "{set}/{name}: rejected without a secure-defaults warning; warnings: {:?}",
                        a.warnings
                    ));
                }
            }
        }
    }
    println!("Pod Security fixtures: {counts:#?}");
    println!(
        "webhook log tail:\n{}",
        hook.log().lines().rev().take(3).collect::<Vec<_>>().join("\n")
    );
    assert!(
        wrong.is_empty(),
        "{} fixtures disagree:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        counts
            .get("fail fixtures admitted (missing fields filled in)")
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert!(
        counts
            .get("fail fixtures rejected by PodSecurity (explicit value kept)")
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert_eq!(counts.get("unexpected"), None, "{counts:?}");
    unregister(&client, &mwc).await
}

/// Every value the fixture states is still there after admission.
fn assert_hardened_where_not_explicit(stored: &Value, submitted: &Value) {
    fn walk(sub: &Value, got: &Value, path: &str) {
        match sub {
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(v, &got[k], &format!("{path}/{k}"))),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, &got[i], &format!("{path}/{i}"))),
            Value::Null => {}
            v => assert_eq!(v, got, "explicit value changed at {path}"),
        }
    }
    walk(
        &submitted["spec"]["securityContext"],
        &stored["spec"]["securityContext"],
        "spec/securityContext",
    );
    for kind in ["initContainers", "containers"] {
        walk(&submitted["spec"][kind], &stored["spec"][kind], &format!("spec/{kind}"));
    }
}

/// Scenario 3: explicit values survive the real API server.
#[tokio::test]
async fn explicit_insecure_values_are_admitted_unchanged() -> Result<()> {
    let client = client().await;
    let (_hook, ns, mwc) = hardened_namespace(&client, "explicit", "privileged", &config("enforce")).await?;
    let submitted = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "explicit",
            "annotations": {
                "container.apparmor.security.beta.kubernetes.io/legacy": "unconfined",
                "container.seccomp.security.alpha.kubernetes.io/legacy": "unconfined"
            }
        },
        "spec": {
            "containers": [
                {"name": "privileged", "image": "x", "securityContext": {"privileged": true}},
                {"name": "sysadmin", "image": "x", "securityContext": {"capabilities": {"add": ["CAP_SYS_ADMIN"]}}},
                {"name": "root", "image": "x", "securityContext": {"runAsUser": 0}},
                {"name": "unconfined", "image": "x", "securityContext": {"seccompProfile": {"type": "Unconfined"}, "allowPrivilegeEscalation": true}},
                {"name": "legacy", "image": "x"}
            ]
        }
    });
    let a = create(&client, &ns, "pods", &submitted, false).await?;
    ensure!(a.ok(), "{} {}", a.status, a.body);
    assert_hardened_where_not_explicit(&a.body, &submitted);
    let c = |i: usize| &a.body["spec"]["containers"][i]["securityContext"];
    assert_eq!(
        c(0)["allowPrivilegeEscalation"],
        Value::Null,
        "escalation guard: privileged"
    );
    assert_eq!(
        c(1)["allowPrivilegeEscalation"],
        Value::Null,
        "escalation guard: CAP_SYS_ADMIN"
    );
    assert_eq!(c(1)["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c(2)["runAsNonRoot"], Value::Null, "root guard");
    assert_eq!(c(3)["seccompProfile"]["type"], "Unconfined");
    assert_eq!(
        c(4)["seccompProfile"],
        Value::Null,
        "legacy annotation keeps the container's profile"
    );
    assert_eq!(
        c(4)["appArmorProfile"]["type"],
        "Unconfined",
        "the API server synced the AppArmor annotation"
    );
    assert!(
        a.warnings.iter().any(|w| w.contains("allowPrivilegeEscalation=true")),
        "{:?}",
        a.warnings
    );

    let windows = pod(
        "windows",
        json!({"os": {"name": "windows"}, "containers": [{"name": "w", "image": "mcr.microsoft.com/windows/nanoserver:ltsc2022"}]}),
    );
    let a = create(&client, &ns, "pods", &windows, false).await?;
    ensure!(a.ok(), "windows pod: {}", a.body);
    assert_eq!(
        a.body["spec"]["securityContext"],
        json!({}),
        "nothing added to a Windows pod"
    );
    assert!(a.body["spec"]["containers"][0]["securityContext"].is_null());
    unregister(&client, &mwc).await
}

/// Scenario 5: `kubectl debug` adds a hardened ephemeral container in `restricted`.
#[tokio::test]
async fn ephemeral_debug_container_is_hardened() -> Result<()> {
    let client = client().await;
    let (_hook, ns, mwc) = hardened_namespace(&client, "debug", "restricted", &config("enforce")).await?;
    let a = create(
        &client,
        &ns,
        "pods",
        &pod("target", json!({"containers": [{"name": "app", "image": "x"}]})),
        false,
    )
    .await?;
    ensure!(a.ok(), "{}", a.body);
    let debug = json!({"spec": {"ephemeralContainers": [{"name": "debugger", "image": "busybox", "stdin": true, "tty": true}]}});
    let uri = format!("/api/v1/namespaces/{ns}/pods/target/ephemeralcontainers");
    let a = patch(&client, &uri, "application/strategic-merge-patch+json", &debug).await?;
    ensure!(a.ok(), "adding the ephemeral container: {} {}", a.status, a.body);
    let e = &a.body["spec"]["ephemeralContainers"][0]["securityContext"];
    assert_eq!(e["allowPrivilegeEscalation"], json!(false), "{e}");
    assert_eq!(e["capabilities"]["drop"], json!(["ALL"]), "{e}");
    // The pod's own containers are untouched by the update.
    assert_hardened(&a.body);
    unregister(&client, &mwc).await
}

/// Scenario 6: a sidecar injected after us is hardened on reinvocation.
#[tokio::test]
async fn sidecar_injected_by_a_later_webhook_is_hardened_on_reinvocation() -> Result<()> {
    let client = client().await;
    let (hook, ns, mwc) = hardened_namespace(&client, "reinvoke", "restricted", &config("enforce")).await?;
    let injector = Injector::start().await?;
    // Webhook configurations run in name order: "zz-" runs after ours.
    let inj_name = unique("zz-injector");
    let mut inj = webhook_configuration(&inj_name, &injector.url(), &injector.tls.ca_pem, "reinvoke", FAIL)?;
    // Only the pods webhook of the shipped configuration, not the workload previews.
    if let Some(hooks) = inj.webhooks.as_mut() {
        hooks.retain(|w| w.name == "pods.secure-defaults.io");
    }
    for w in inj.webhooks.iter_mut().flatten() {
        w.name = "inject.e2e.secure-defaults.io".into();
        w.reinvocation_policy = Some("Never".into());
    }
    kube::Api::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>::all(client.clone())
        .create(&Default::default(), &inj)
        .await?;
    let a = wait_for(Duration::from_secs(30), "the injector to be called", || async {
        let name = unique("app");
        let a = create(
            &client,
            &ns,
            "pods",
            &pod(&name, json!({"containers": [{"name": "app", "image": "x"}]})),
            false,
        )
        .await
        .ok()?;
        let injected = a.body["spec"]["containers"]
            .as_array()?
            .iter()
            .any(|c| c["name"] == SIDECAR);
        (injected || !a.ok()).then_some(a)
    })
    .await?;
    ensure!(a.ok(), "pod with injected sidecar rejected: {} {}", a.body, hook.log());
    assert_hardened(&a.body);
    let containers = a.body["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "one sidecar, injected once");
    // Our webhook saw this pod twice: first the whole pod, then, reinvoked
    // after the injector, only the sidecar was new to patch: its identity
    // (which it never inherits from the pod) and the escalation and
    // capabilities fields.
    let name = a.body["metadata"]["name"].as_str().unwrap();
    let added: Vec<String> = hook
        .log()
        .lines()
        .filter(|l| l.contains(&format!("name={name} ")) && l.contains("review"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("added="))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(added, ["8", "5"], "fields added per call for {name}:\n{}", hook.log());
    unregister(&client, &inj_name).await?;
    unregister(&client, &mwc).await
}

/// Scenario 7: updates of a pod are admitted and never patched.
#[tokio::test]
async fn pod_updates_are_admitted_without_a_patch() -> Result<()> {
    let client = client().await;
    let (_hook, ns, mwc) = hardened_namespace(&client, "update", "restricted", &config("enforce")).await?;
    let a = create(
        &client,
        &ns,
        "pods",
        &pod(
            "app",
            json!({"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}),
        ),
        false,
    )
    .await?;
    ensure!(a.ok(), "{}", a.body);
    let before = a.body["spec"]["securityContext"].clone();
    let uri = format!("/api/v1/namespaces/{ns}/pods/app");
    let change = json!({"metadata": {"labels": {"tier": "web"}}, "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:2"}]}});
    let a = patch(&client, &uri, "application/strategic-merge-patch+json", &change).await?;
    ensure!(a.ok(), "update rejected: {} {}", a.status, a.body);
    assert_eq!(a.body["metadata"]["labels"]["tier"], "web");
    assert_eq!(a.body["spec"]["containers"][0]["image"], "registry.example.com/app:2");
    assert_eq!(a.body["spec"]["securityContext"], before);
    unregister(&client, &mwc).await
}

/// Scenario 8: server-side dry run returns the hardened pod; audit mode admits unchanged pods with warnings.
#[tokio::test]
async fn dry_run_shows_the_hardened_pod_and_audit_mode_only_warns() -> Result<()> {
    let client = client().await;
    let (_hook, ns, mwc) = hardened_namespace(&client, "dryrun", "restricted", &config("enforce")).await?;
    let p = pod("dry", json!({"containers": [{"name": "app", "image": "x"}]}));
    let a = create(&client, &ns, "pods", &p, true).await?;
    ensure!(a.ok(), "{}", a.body);
    assert_hardened(&a.body);
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), &ns);
    assert!(pods.get_opt("dry").await?.is_none(), "a dry run stores nothing");

    let (_audit, audit_ns, audit_mwc) = hardened_namespace(&client, "audit", "privileged", &config("audit")).await?;
    let a = create(&client, &audit_ns, "pods", &p, false).await?;
    ensure!(a.ok(), "{}", a.body);
    assert_eq!(
        a.body["spec"]["securityContext"],
        json!({}),
        "audit mode changes nothing"
    );
    assert!(a.body["spec"]["containers"][0]["securityContext"].is_null());
    assert!(
        a.warnings.iter().any(|w| w.starts_with("secure-defaults:")),
        "{:?}",
        a.warnings
    );
    println!("audit warnings: {:#?}", a.warnings);
    unregister(&client, &mwc).await?;
    unregister(&client, &audit_mwc).await
}

/// Scenario 9: failurePolicy with the webhook down, and recovery.
#[tokio::test]
async fn failure_policy_decides_while_the_webhook_is_down() -> Result<()> {
    let client = client().await;
    let (mut hook, ns, mwc) = hardened_namespace(&client, "failclosed", "privileged", &config("enforce")).await?;
    let ignore_ns = namespace(&client, "failopen", "privileged").await?;
    let ignore_name = unique("sd-failopen");
    let ignore = webhook_configuration(&ignore_name, &hook.url(), &hook.tls.ca_pem, "failopen", "Ignore")?;
    register(&client, &ignore, &ignore_ns, true).await?;

    hook.stop();
    let p = |n: &str| pod(n, json!({"containers": [{"name": "app", "image": "x"}]}));
    let a = create(&client, &ns, "pods", &p("while-down"), false).await?;
    assert!(!a.ok(), "Fail must reject while the webhook is down: {}", a.body);
    assert!(
        a.message().contains("failed calling webhook"),
        "clear error: {}",
        a.message()
    );
    println!("Fail, webhook down: {} {}", a.status, a.message());

    let a = create(&client, &ignore_ns, "pods", &p("while-down"), false).await?;
    ensure!(a.ok(), "Ignore must admit while the webhook is down: {}", a.body);
    assert_eq!(a.body["spec"]["securityContext"], json!({}), "admitted unchanged");

    hook.restart().await?;
    let a = wait_for(Duration::from_secs(30), "hardening to resume", || async {
        let a = create(&client, &ns, "pods", &p(&unique("after")), false).await.ok()?;
        a.ok().then_some(a)
    })
    .await?;
    assert_hardened(&a.body);
    unregister(&client, &ignore_name).await?;
    unregister(&client, &mwc).await
}

/// Scenario 10: the answer's encoding (`admission::encode`: kube's
/// AdmissionReview with the patch as base64, where kube-rs writes a JSON
/// array of bytes, kube-rs issue 1781) is accepted by the real API server:
/// the pod comes back with every added field.
#[tokio::test]
async fn kube_admission_patch_encoding_is_accepted_by_the_api_server() -> Result<()> {
    let client = client().await;
    let (_hook, ns, mwc) = hardened_namespace(&client, "encoding", "restricted", &config("enforce")).await?;
    let a = create(
        &client,
        &ns,
        "pods",
        &pod("encoded", json!({"containers": [{"name": "app", "image": "x"}]})),
        false,
    )
    .await?;
    ensure!(a.ok(), "{}", a.body);
    assert_hardened(&a.body);
    unregister(&client, &mwc).await
}

/// Scenario 4: a field the product's API bindings do not know survives.
/// secure-defaults is built with the 1.36 bindings; `spec.evictionResponders`
/// is new in 1.37 (alpha, switched on in this API server).
#[tokio::test]
async fn field_unknown_to_the_bindings_survives() -> Result<()> {
    let client = client().await;
    let (_hook, ns, mwc) = hardened_namespace(&client, "unknown", "restricted", &config("enforce")).await?;
    let responders = json!([{"name": "example.com/drainer", "priority": 10000}]);
    let p = pod(
        "newer",
        json!({"evictionResponders": responders, "containers": [{"name": "app", "image": "x"}]}),
    );
    let a = create(&client, &ns, "pods", &p, false).await?;
    ensure!(a.ok(), "{} {}", a.status, a.body);
    assert_eq!(
        a.body["spec"]["evictionResponders"], responders,
        "the newer field was dropped"
    );
    assert_hardened(&a.body);
    unregister(&client, &mwc).await
}

/// Scenario (issue 19): `identity: userns`. A legacy root-by-default pod and
/// one that explicitly runs as root get `hostUsers: false` and no uid, and
/// the real Pod Security `restricted` admits both (its user-namespace
/// relaxation of runAsNonRoot and runAsUser).
#[tokio::test]
async fn userns_legacy_pods_are_admitted_into_restricted() -> Result<()> {
    let client = client().await;
    let config = "mode: enforce\nbaseline:\n  identity: userns\n";
    let (_hook, ns, mwc) = hardened_namespace(&client, "userns", "restricted", config).await?;
    let legacy = pod(
        "legacy",
        json!({"containers": [{"name": "httpd", "image": "httpd:2.4"}]}),
    );
    let root = pod(
        "root",
        json!({"containers": [{"name": "tool", "image": "alpine:3.20", "securityContext": {"runAsUser": 0}}]}),
    );
    for p in [&legacy, &root] {
        let a = create(&client, &ns, "pods", p, false).await?;
        ensure!(a.ok(), "{} {}", a.status, a.body);
        let name = a.body["metadata"]["name"].clone();
        assert_eq!(a.body["spec"]["hostUsers"], json!(false), "{name}: {}", a.body["spec"]);
        let c = &a.body["spec"]["containers"][0]["securityContext"];
        for field in ["runAsNonRoot", "runAsGroup"] {
            assert!(c.get(field).is_none(), "{name}: {field} added: {c}");
        }
        assert_eq!(
            c.get("runAsUser"),
            p["spec"]["containers"][0]["securityContext"].get("runAsUser")
        );
        assert_eq!(c["allowPrivilegeEscalation"], json!(false), "{name}: {c}");
        assert_eq!(c["capabilities"]["drop"], json!(["ALL"]), "{name}: {c}");
        ensure!(
            a.warnings
                .iter()
                .any(|w| w.contains("identity: user namespace (hostUsers: false)")),
            "{name}: {:?}",
            a.warnings
        );
    }
    unregister(&client, &mwc).await
}
