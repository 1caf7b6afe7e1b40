//! The webhook installed as users install it: the Helm chart, the product
//! image (`make oci-image`) imported into the node's containerd, two replicas
//! and a PodDisruptionBudget, TLS from `secure-defaults certs`. The API
//! server reaches it through its Service: there is no kube-proxy, so up.sh
//! runs the apiserver with `--enable-aggregator-routing=true`, which resolves
//! a webhook Service to one of its endpoints (a pod on the node's bridge).
//! The webhook's own pods run in a namespace enforcing `restricted`.
//! Needs the node (`SD_NODE=1`) and `SD_PRODUCT_IMAGE` (the archive path).

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::Api;
use secure_defaults_e2e::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: this test needs the node (SD_NODE=1) and SD_PRODUCT_IMAGE=$(make -s oci-image | tail -n 1)")
    })
}

/// Run a command, bounded; stdout, or an error with its stderr.
async fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str], timeout: Duration) -> Result<String> {
    let mut c = tokio::process::Command::new(program.as_ref());
    c.args(args).kill_on_drop(true);
    let what = format!("{} {}", program.as_ref().to_string_lossy(), args.join(" "));
    let out = tokio::time::timeout(timeout, c.output())
        .await
        .with_context(|| format!("{what}: timed out"))??;
    ensure!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The image name the archive's index gives (`io.containerd.image.name`).
fn image_name(archive: &Path) -> Result<String> {
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg("index.json")
        .output()?;
    ensure!(out.status.success(), "tar -xOf {} index.json", archive.display());
    let index: Value = serde_json::from_slice(&out.stdout)?;
    index["manifests"][0]["annotations"]["io.containerd.image.name"]
        .as_str()
        .map(str::to_string)
        .context("no io.containerd.image.name in the archive's index.json")
}

/// The chart, installed into a `restricted` namespace, serves pods of the
/// namespaces it selects through its Service; helm uninstall removes it.
#[tokio::test]
async fn helm_chart_on_the_node_serves_through_its_service() -> Result<()> {
    let client = client().await;
    let env = Env::get();
    let archive = PathBuf::from(var("SD_PRODUCT_IMAGE"));
    let image = image_name(&archive)?;
    let (repository, tag) = image.rsplit_once(':').context("image name without a tag")?;
    run(
        var("CTR"),
        &[
            "-a",
            &var("CONTAINERD_ADDRESS"),
            "-n",
            "k8s.io",
            "images",
            "import",
            &archive.to_string_lossy(),
        ],
        Duration::from_secs(120),
    )
    .await?;

    let ns = namespace(&client, "install", "restricted").await?;
    let target = namespace(&client, "install-target", "restricted").await?;
    let release = ns.clone();
    let full = format!("{release}-secure-defaults");
    let dir = tempfile::tempdir()?;
    let d = dir.path().to_string_lossy().to_string();
    run(
        &env.bin,
        &[
            "certs",
            "--namespace",
            &ns,
            "--service",
            &full,
            "--webhook-configuration",
            &full,
            "--secret-name",
            &format!("{full}-tls"),
            "--out-dir",
            &format!("{d}/tls"),
        ],
        Duration::from_secs(30),
    )
    .await?;
    let kubectl = Path::new(&var("BIN_DIR")).join("kubectl");
    let kc = env.kubeconfig.to_string_lossy().to_string();
    run(
        &kubectl,
        &["--kubeconfig", &kc, "apply", "-f", &format!("{d}/tls/secret.yaml")],
        Duration::from_secs(30),
    )
    .await?;

    // Only the target namespace is sent to it: other scenarios run beside this one.
    let (key, rest) = var("NODE_TAINT")
        .split_once('=')
        .map(|(k, r)| (k.to_string(), r.to_string()))
        .context("taint")?;
    let (value, effect) = rest.split_once(':').context("taint")?;
    let values = json!({
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "tolerations": [{"key": key, "operator": "Equal", "value": value, "effect": effect}],
        "webhook": {"namespaceLabels": {SCENARIO_LABEL: "install-target"}},
    });
    std::fs::write(dir.path().join("values.yaml"), serde_yaml::to_string(&values)?)?;
    let helm = env.repo.join("hack/tools/helm.sh");
    let chart = env.repo.join("charts/secure-defaults");
    let install = run(
        &helm,
        &[
            "--kubeconfig",
            &kc,
            "install",
            &release,
            &chart.to_string_lossy(),
            "-n",
            &ns,
            "--wait",
            "--timeout",
            "90s",
            "-f",
            &format!("{d}/values.yaml"),
            "--set",
            "certificates.mode=secret",
            "--set-file",
            &format!("certificates.caBundle={d}/tls/ca-bundle.pem"),
        ],
        Duration::from_secs(120),
    )
    .await;
    let result = async {
        install?;
        // Two replicas Ready, on the node, admitted under `restricted`.
        let deploy: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let dep = deploy.get(&full).await?;
        let status = dep.status.clone().unwrap_or_default();
        ensure!(status.ready_replicas == Some(2), "deployment {full}: {status:?}");
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let list = pods.list(&ListParams::default()).await?;
        for p in &list.items {
            ensure!(
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(var("NODE_NAME").as_str()),
                "webhook pod not on the node"
            );
        }
        // The disruption controller fills in the budget's status.
        let pdb: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
        wait_for(
            Duration::from_secs(30),
            "the PodDisruptionBudget to allow 1 disruption",
            || async {
                let p = pdb.get(&full).await.ok()?;
                (p.status?.disruptions_allowed == Some(1)).then_some(())
            },
        )
        .await?;

        // A bare pod in the target namespace: the API server calls the
        // Service, and the pod comes back hardened (a dry run, so nothing runs).
        let probe = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "bare"},
            "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}
        });
        let a = wait_for(
            Duration::from_secs(30),
            "a hardened pod from the installed webhook",
            || async {
                let a = create(&client, &target, "pods", &probe, true).await.ok()?;
                a.ok().then_some(a)
            },
        )
        .await?;
        // No other webhook selects this scenario's namespaces.
        assert_hardened(&a.body);
        // The namespace the chart does not select is left alone.
        let other = create(&client, &ns, "pods", &probe, true).await?;
        ensure!(
            !other.ok() && other.message().contains("violates PodSecurity"),
            "the release namespace is excluded, so a bare pod there is rejected: {} {}",
            other.status,
            other.body
        );
        availability(&client, &ns, &target, &full, &kubectl, &kc).await
    }
    .await;
    let logs = if result.is_err() {
        run(
            &kubectl,
            &[
                "--kubeconfig",
                &kc,
                "-n",
                &ns,
                "logs",
                "-l",
                "app.kubernetes.io/name=secure-defaults",
                "--tail=30",
                "--all-containers",
            ],
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| e.to_string())
            + &run(
                &kubectl,
                &["--kubeconfig", &kc, "-n", &ns, "get", "events,pods", "-o", "wide"],
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|e| e.to_string())
    } else {
        String::new()
    };
    let uninstall = run(
        &helm,
        &[
            "--kubeconfig",
            &kc,
            "uninstall",
            &release,
            "-n",
            &ns,
            "--wait",
            "--timeout",
            "60s",
        ],
        Duration::from_secs(90),
    )
    .await;
    result.with_context(|| logs)?;
    uninstall?;
    Ok(())
}

/// Pods created continuously (300 over 30 s, `failurePolicy: Fail`) while
/// the webhook's Deployment is rolled and then one replica is killed: every
/// create succeeds and every pod is hardened. Then with no replica at all,
/// `Fail` refuses pods and `Ignore` admits them unhardened, as the README says.
async fn availability(
    client: &kube::Client,
    ns: &str,
    target: &str,
    full: &str,
    kubectl: &Path,
    kc: &str,
) -> Result<()> {
    let bare = |i: usize| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("load-{i}")},
            "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}
        })
    };
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
    let deploy = ["--kubeconfig", kc, "-n", ns];
    let k = |args: Vec<&str>| {
        let mut all: Vec<&str> = deploy.to_vec();
        all.extend(args);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run_k = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(kubectl, &refs, Duration::from_secs(120)).await
    };
    let dep = format!("deployment/{full}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // One replica killed: its pod deleted without a grace period.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let victim = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=secure-defaults"))
        .await?
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .and_then(|p| p.metadata.name)
        .context("no webhook pod")?;
    run_k(k(vec![
        "delete",
        "pod",
        &victim,
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]))
    .await?;
    ensure!(!load.is_finished(), "the kill came after the load");
    // Then the Deployment rolled, while pods are still being created.
    tokio::time::sleep(Duration::from_secs(2)).await;
    run_k(k(vec!["rollout", "restart", &dep])).await?;
    ensure!(!load.is_finished(), "the rollout came after the load");
    run_k(k(vec!["rollout", "status", &dep, "--timeout=90s"])).await?;
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
    run_k(k(vec!["scale", &dep, "--replicas=0"])).await?;
    wait_for(Duration::from_secs(60), "no webhook pods", || async {
        let l = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=secure-defaults"))
            .await
            .ok()?;
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
    let uri = format!("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{full}");
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
