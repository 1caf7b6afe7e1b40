//! The suite's registry (`e2e/registry`, started with the node) as the node
//! uses it: containerd pulls a public image from it over loopback; a pod of
//! the image under `private/` fails to pull without an `imagePullSecret`
//! (the registry answers 401; the kubelet's event says `authorization
//! failed: no basic auth credentials`) and runs with one.
//! Needs the node (`SD_NODE=1`), which exports `SD_REGISTRY` and the account.

use anyhow::{ensure, Context, Result};
use base64::Engine;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::Api;
use secure_defaults_e2e::node::{logs_tail, toleration, var};
use secure_defaults_e2e::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const SCENARIO: &str = "registry";
/// The logs whose last lines a failure message shows.
const LOGS: &[&str] = &["registry", "kubelet", "containerd"];

/// A pod that pulls `image` (always: the node must not use a cached copy).
fn pod(name: &str, image: &str, pull_secret: Option<&str>) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "tolerations": [toleration()],
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "app", "image": image, "imagePullPolicy": "Always",
                "command": ["sleep", "3600"],
            }],
        }
    });
    if let Some(s) = pull_secret {
        p["spec"]["imagePullSecrets"] = json!([{"name": s}]);
    }
    p
}

async fn running(api: &Api<Pod>, name: &str) -> Result<()> {
    wait_for(Duration::from_secs(90), &format!("pod {name} Running"), || async {
        let p = api.get(name).await.ok()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await
}

#[tokio::test]
async fn node_pulls_public_and_private_images() -> Result<()> {
    let client = client().await;
    let registry = var("SD_REGISTRY");
    let ns = namespace(&client, SCENARIO, "privileged").await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let result = async {
        // Public: anonymous pull.
        let a = create(
            &client,
            &ns,
            "pods",
            &pod("public", &format!("{registry}/e2e/busybox:1"), None),
            false,
        )
        .await?;
        ensure!(a.ok(), "public: {} {}", a.status, a.body);
        running(&api, "public").await?;

        // Private without a secret: the registry's 401 reaches the pod's events.
        let private = format!("{registry}/private/busybox:1");
        let a = create(&client, &ns, "pods", &pod("denied", &private, None), false).await?;
        ensure!(a.ok(), "denied: {} {}", a.status, a.body);
        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        let lp = ListParams::default().fields("involvedObject.name=denied");
        let failed = wait_for(Duration::from_secs(60), "a Failed pull event for denied", || async {
            let list = events.list(&lp).await.ok()?;
            list.items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("Failed"))
                .filter_map(|e| e.message)
                .find(|m| m.contains(&private))
        })
        .await?;
        // containerd's words for the registry's 401 with a Basic challenge
        // (the registry's log below shows the 401 itself).
        ensure!(
            failed.contains("pull access denied") && failed.contains("authorization failed: no basic auth credentials"),
            "the pull of {private} failed, but not for want of credentials: {failed}"
        );
        let status = api.get("denied").await?.status.context("status")?;
        ensure!(
            status.phase.as_deref() == Some("Pending"),
            "denied: phase {:?}",
            status.phase
        );
        println!("without a pull secret: {failed}");

        // With a secret of the registry's account: pulled and running.
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            var("SD_REGISTRY_USER"),
            var("SD_REGISTRY_PASSWORD")
        ));
        let config = json!({"auths": {registry.as_str(): {"auth": auth}}});
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "pull"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config.to_string())},
        });
        let a = create(&client, &ns, "secrets", &secret, false).await?;
        ensure!(a.ok(), "secret: {} {}", a.status, a.body);
        let a = create(&client, &ns, "pods", &pod("allowed", &private, Some("pull")), false).await?;
        ensure!(a.ok(), "allowed: {} {}", a.status, a.body);
        running(&api, "allowed").await?;

        // The registry saw both: a 401 without credentials and a pull with them.
        let log = std::fs::read_to_string(Path::new(&var("CONTROLPLANE_STATE_DIR")).join("logs/registry.log"))?;
        ensure!(
            log.lines()
                .any(|l| l.contains("/v2/private/busybox/manifests/1 -> 401")),
            "no 401 for private/busybox in the registry's log"
        );
        ensure!(
            log.lines()
                .any(|l| l.contains("/v2/private/busybox/manifests/1 -> 200") && l.contains("auth=true")),
            "no authenticated pull of private/busybox in the registry's log"
        );
        Ok(())
    }
    .await;
    result.with_context(|| logs_tail(LOGS))
}
