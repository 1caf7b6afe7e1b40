//! Per-namespace policy against a real API server: `secure-defaults serve
//! --namespace-policy` watches the namespaces of the test control plane (its
//! KUBECONFIG) and applies their `secure-defaults.io/*` labels and annotations.

use anyhow::{ensure, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams};
use kube::Api;
use secure_defaults_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

const ARGS: &[&str] = &["--namespace-policy", "--namespace-sync-timeout", "10s"];

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}})
}

async fn set_metadata(client: &kube::Client, ns: &str, labels: Value, annotations: Value) -> Result<()> {
    let patch = json!({"metadata": {"labels": labels, "annotations": annotations}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// A namespace of `scenario` (Pod Security `privileged`, so unhardened pods are
/// admitted too) with these labels and annotations.
async fn namespace_with(client: &kube::Client, scenario: &str, labels: Value, annotations: Value) -> Result<String> {
    let ns = namespace(client, scenario, "privileged").await?;
    set_metadata(client, &ns, labels, annotations).await?;
    Ok(ns)
}

/// A webhook on `config` with the namespace policy on, started after the
/// namespaces are labelled (its first sync sees them), registered for `scenario`.
async fn webhook(client: &kube::Client, scenario: &str, config: &str, probe_ns: &str) -> Result<(Webhook, String)> {
    let hook = Webhook::start_with(config, ARGS).await?;
    let name = unique(&format!("sd-{scenario}"));
    let mwc = webhook_configuration(&name, &hook.url(), &hook.tls.ca_pem, scenario, "Fail")?;
    register(client, &mwc, probe_ns, true).await?;
    Ok((hook, name))
}

fn untouched(a: &Answer) -> bool {
    a.body["spec"]["securityContext"] == json!({}) && a.body["spec"]["containers"][0]["securityContext"].is_null()
}

fn has_warning(a: &Answer, fragment: &str) -> bool {
    a.warnings.iter().any(|w| w.contains(fragment))
}

/// Default controls (allowOptOut: false): a namespace cannot exempt itself;
/// overrides apply; invalid values are ignored with a warning.
#[tokio::test]
async fn namespace_cannot_exempt_itself_but_may_override_ids() -> Result<()> {
    let client = client().await;
    let s = "nspol-strict";
    let plain = namespace_with(&client, s, json!({}), json!({})).await?;
    let audit = namespace_with(&client, s, json!({"secure-defaults.io/mode": "audit"}), json!({})).await?;
    let off = namespace_with(&client, s, json!({"secure-defaults.io/mode": "off"}), json!({})).await?;
    let uid = namespace_with(&client, s, json!({}), json!({"secure-defaults.io/run-as-user": "1000"})).await?;
    let root = namespace_with(&client, s, json!({}), json!({"secure-defaults.io/run-as-user": "0"})).await?;
    let (hook, mwc) = webhook(&client, s, "", &plain).await?;

    for ns in [&audit, &off] {
        let a = create(&client, ns, "pods", &pod("p"), true).await?;
        ensure!(a.ok(), "{}", a.body);
        assert_hardened(&a.body);
        assert!(
            has_warning(&a, "does not allow namespaces to opt out"),
            "{ns}: {:?}",
            a.warnings
        );
    }

    let a = create(&client, &uid, "pods", &pod("p"), false).await?;
    ensure!(a.ok(), "{}", a.body);
    assert_eq!(
        a.body["spec"]["containers"][0]["securityContext"]["runAsUser"],
        json!(1000),
        "{}",
        a.body
    );
    assert_eq!(
        a.body["spec"]["containers"][0]["securityContext"]["runAsGroup"],
        json!(65532)
    );

    let a = create(&client, &root, "pods", &pod("p"), true).await?;
    ensure!(a.ok(), "{}", a.body);
    assert_hardened(&a.body);
    assert!(has_warning(&a, "root is never a default"), "{:?}", a.warnings);
    assert!(hook.log().contains("namespace policy values ignored"), "{}", hook.log());
    unregister(&client, &mwc).await
}

/// allowOptOut: true: audit and off are honoured, and a label change is seen
/// by the running webhook within seconds, without a restart.
#[tokio::test]
async fn opt_out_where_allowed_and_label_changes_without_restart() -> Result<()> {
    let client = client().await;
    let s = "nspol-optout";
    let plain = namespace_with(&client, s, json!({}), json!({})).await?;
    let audit = namespace_with(&client, s, json!({"secure-defaults.io/mode": "audit"}), json!({})).await?;
    let off = namespace_with(&client, s, json!({"secure-defaults.io/mode": "off"}), json!({})).await?;
    let changing = namespace_with(&client, s, json!({}), json!({})).await?;
    let config = "namespacePolicy:\n  allowOptOut: true\n";
    let (_hook, mwc) = webhook(&client, s, config, &plain).await?;

    let a = create(&client, &audit, "pods", &pod("p"), false).await?;
    ensure!(a.ok(), "{}", a.body);
    assert!(untouched(&a), "audit: no patch: {}", a.body);
    assert!(has_warning(&a, "audit mode: would add"), "{:?}", a.warnings);

    let a = create(&client, &off, "pods", &pod("p"), false).await?;
    ensure!(a.ok(), "{}", a.body);
    assert!(untouched(&a), "off: untouched: {}", a.body);
    assert!(has_warning(&a, "mode=off"), "{:?}", a.warnings);

    let a = create(&client, &changing, "pods", &pod("p"), true).await?;
    assert_hardened(&a.body);
    set_metadata(&client, &changing, json!({"secure-defaults.io/mode": "off"}), json!({})).await?;
    wait_for(Duration::from_secs(5), "mode=off to apply", || async {
        let a = create(&client, &changing, "pods", &pod("p"), true).await.ok()?;
        untouched(&a).then_some(())
    })
    .await?;
    set_metadata(&client, &changing, json!({"secure-defaults.io/mode": null}), json!({})).await?;
    wait_for(Duration::from_secs(5), "the label's removal to apply", || async {
        let a = create(&client, &changing, "pods", &pod("p"), true).await.ok()?;
        (a.body["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] == json!(true)).then_some(())
    })
    .await?;
    unregister(&client, &mwc).await
}
