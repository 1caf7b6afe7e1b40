//! The webhook installed as users install it: the Helm chart, the product
//! image (`make oci-image`) imported into the node's containerd, two replicas
//! and a PodDisruptionBudget, TLS from `secure-defaults certs`. The API
//! server reaches it through its Service: there is no kube-proxy, so up.sh
//! runs the apiserver with `--enable-aggregator-routing=true`, which resolves
//! a webhook Service to one of its endpoints (a pod on the node's bridge).
//! The webhook reaches the API server at its address on the bridge, so its
//! namespace watch (the per-namespace policy) works.
//! The webhook's own pods run in a namespace enforcing `restricted`.
//! Needs the node (`SD_NODE=1`) and `SD_PRODUCT_IMAGE` (the archive path).

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::Api;
use secure_defaults_e2e::node::{var, wait_hardening, webhook_pods, Chart, WEBHOOK_PODS};
use secure_defaults_e2e::*;
use serde_json::json;
use std::time::Duration;

/// The chart, installed into a `restricted` namespace, serves pods of the
/// namespaces it selects through its Service, with their namespace policy;
/// helm uninstall removes it.
#[tokio::test]
async fn helm_chart_on_the_node_serves_through_its_service() -> Result<()> {
    let client = client().await;
    // Only the target namespaces are sent to it: other scenarios run beside this one.
    let target = namespace(&client, "install-target", "restricted").await?;
    let chart = Chart::install(&client, "install-target", json!({})).await?;
    let result = async {
        let ns = &chart.ns;
        // Two replicas Ready (Chart::install), on the node, admitted under `restricted`.
        let pods = webhook_pods(&client, ns).await?;
        ensure!(pods.len() == 2, "want 2 webhook pods, got {}", pods.len());
        for p in pods {
            ensure!(
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(var("NODE_NAME").as_str()),
                "webhook pod not on the node"
            );
        }
        // Ready means the namespace cache synced (the chart's sync timeout is
        // 10 minutes here): each replica reached the API server from the bridge.
        let logs = chart.logs().await;
        let synced = logs.lines().filter(|l| l.contains("namespaces synced")).count();
        ensure!(
            synced == 2 && !logs.contains("namespace watch failed"),
            "want both replicas' namespace watch synced and never failed:\n{logs}"
        );
        // The disruption controller fills in the budget's status.
        let pdb: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
        wait_for(
            Duration::from_secs(30),
            "the PodDisruptionBudget to allow 1 disruption",
            || async {
                let p = pdb.get(&chart.full).await.ok()?;
                (p.status?.disruptions_allowed == Some(1)).then_some(())
            },
        )
        .await?;

        // A bare pod in the target namespace: the API server calls the
        // Service, and the pod comes back hardened (a dry run, so nothing runs).
        let a = wait_hardening(&client, &target).await?;
        // No other webhook selects this scenario's namespaces.
        assert_hardened(&a.body);
        // The namespace the chart does not select is left alone.
        let other = create(&client, ns, "pods", &bare(0), true).await?;
        ensure!(
            !other.ok() && other.message().contains("violates PodSecurity"),
            "the release namespace is excluded, so a bare pod there is rejected: {} {}",
            other.status,
            other.body
        );
        namespace_policy(&client, &target).await?;
        unready_when_cut_off(&client, &chart).await?;
        availability(&client, &chart, &target).await
    }
    .await;
    let why = match &result {
        Err(_) => chart.diagnostics().await,
        Ok(()) => String::new(),
    };
    let uninstall = chart.uninstall().await;
    result.with_context(|| why)?;
    uninstall
}

/// A bare pod, as a legacy chart writes it.
fn bare(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("load-{i}")},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}
    })
}

/// The installed webhook applies the target namespace's own policy, read
/// from its watch: an annotation set now changes what the next pod gets.
async fn namespace_policy(client: &kube::Client, target: &str) -> Result<()> {
    let annotate = json!({"metadata": {"annotations": {"secure-defaults.io/run-as-user": "12345"}}});
    let p = patch(
        client,
        &format!("/api/v1/namespaces/{target}"),
        "application/merge-patch+json",
        &annotate,
    )
    .await?;
    ensure!(p.ok(), "annotating {target}: {} {}", p.status, p.body);
    wait_for(
        Duration::from_secs(30),
        "the installed webhook to add the namespace's runAsUser 12345",
        || async {
            let a = create(client, target, "pods", &bare(1), true).await.ok()?;
            (a.body["spec"]["containers"][0]["securityContext"]["runAsUser"] == json!(12345)).then_some(())
        },
    )
    .await
}

/// Readiness reflects the namespace cache, the other way round: a replica
/// whose API server is out of reach (the chart's pod, pointed at a closed
/// port) runs but stays unready, and says why in its log.
async fn unready_when_cut_off(client: &kube::Client, chart: &Chart) -> Result<()> {
    let dep: Api<Deployment> = Api::namespaced(client.clone(), &chart.ns);
    let template = dep.get(&chart.full).await?.spec.context("no spec")?.template;
    let mut spec = serde_json::to_value(template.spec.context("no pod spec")?)?;
    for e in spec["containers"][0]["env"].as_array_mut().context("no env")? {
        if e["name"] == "KUBERNETES_SERVICE_PORT" {
            e["value"] = json!("9");
        }
    }
    // Labels of its own: the webhook's Service must not select it.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "cut-off", "labels": {"e2e.secure-defaults.io/role": "cut-off"}},
        "spec": spec,
    });
    let a = create(client, &chart.ns, "pods", &pod, false).await?;
    ensure!(a.ok(), "cut-off pod: {} {}", a.status, a.body);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &chart.ns);
    let running = || async {
        let p = pods.get("cut-off").await.ok()?;
        let c = p.status?.container_statuses?.into_iter().next()?;
        c.state?.running.map(|_| c.ready)
    };
    wait_for(Duration::from_secs(60), "the cut-off replica to run", running).await?;
    // Its readiness probe runs every 5 s: three rounds, and still unready.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let ready = running().await.context("the cut-off replica stopped running")?;
    let log = chart.kubectl(&["logs", "cut-off"]).await?;
    pods.delete("cut-off", &Default::default()).await?;
    ensure!(!ready, "a replica that cannot reach the API server is Ready:\n{log}");
    ensure!(
        log.contains("namespace watch failed"),
        "the cut-off replica's log does not say why:\n{log}"
    );
    Ok(())
}

/// Pods created continuously (300 over 30 s, `failurePolicy: Fail`) while
/// the webhook's Deployment is rolled and then one replica is killed: every
/// create succeeds and every pod is hardened. Then with no replica at all,
/// `Fail` refuses pods and `Ignore` admits them unhardened, as the README says.
async fn availability(client: &kube::Client, chart: &Chart, target: &str) -> Result<()> {
    let load = {
        let client = client.clone();
        let target = target.to_string();
        tokio::spawn(async move {
            let mut failed = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for i in 0..300 {
                tick.tick().await;
                match create(&client, &target, "pods", &bare(i), false).await {
                    Ok(a) if a.ok() => {
                        if a.body["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] != json!(true) {
                            failed.push(format!("load-{i}: admitted unhardened"));
                        }
                    }
                    Ok(a) => failed.push(format!("load-{i}: {} {}", a.status, a.message())),
                    Err(e) => failed.push(format!("load-{i}: {e}")),
                }
            }
            failed
        })
    };
    let dep = format!("deployment/{}", chart.full);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // One replica killed: its pod deleted without a grace period.
    let victim = webhook_pods(client, &chart.ns)
        .await?
        .into_iter()
        .find_map(|p| p.metadata.name)
        .context("no webhook pod")?;
    chart
        .kubectl(&["delete", "pod", &victim, "--grace-period=0", "--force", "--wait=false"])
        .await?;
    ensure!(!load.is_finished(), "the kill came after the load");
    // Then the Deployment rolled, while pods are still being created.
    tokio::time::sleep(Duration::from_secs(2)).await;
    chart.kubectl(&["rollout", "restart", &dep]).await?;
    ensure!(!load.is_finished(), "the rollout came after the load");
    chart.kubectl(&["rollout", "status", &dep, "--timeout=90s"]).await?;
    let failed = tokio::time::timeout(Duration::from_secs(90), load)
        .await
        .context("load: timed out")??;
    ensure!(
        failed.is_empty(),
        "{} of 300 creates failed or unhardened:\n{}",
        failed.len(),
        failed.join("\n")
    );

    // Every replica gone.
    chart.kubectl(&["scale", &dep, "--replicas=0"]).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &chart.ns);
    wait_for(Duration::from_secs(60), "no webhook pods", || async {
        let l = pods.list(&ListParams::default().labels(WEBHOOK_PODS)).await.ok()?;
        l.items.is_empty().then_some(())
    })
    .await?;
    let a = create(client, target, "pods", &bare(1000), true).await?;
    ensure!(
        !a.ok()
            && a.message()
                .contains("failed calling webhook \"pods.secure-defaults.io\""),
        "failurePolicy Fail, no replica: want a refusal, got {} {}",
        a.status,
        a.body
    );
    let patch_ignore = json!([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]);
    let uri = format!(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{}",
        chart.full
    );
    let p = patch(client, &uri, "application/json-patch+json", &patch_ignore).await?;
    ensure!(p.ok(), "patching failurePolicy: {} {}", p.status, p.body);
    // The namespace enforces restricted: an unhardened bare pod is refused by
    // Pod Security, not by the webhook.
    let a = wait_for(Duration::from_secs(30), "failurePolicy Ignore to apply", || async {
        let a = create(client, target, "pods", &bare(1001), true).await.ok()?;
        a.message().contains("violates PodSecurity").then_some(a)
    })
    .await?;
    ensure!(
        a.status == 403,
        "failurePolicy Ignore, no replica: {} {}",
        a.status,
        a.body
    );
    Ok(())
}
