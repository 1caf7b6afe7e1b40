//! Helpers for the scenarios that run on the node (`SD_NODE=1`): bounded
//! commands, image import into the node's containerd, the node's toleration,
//! and the Helm chart installed the way users install it ([`Chart`]).

use crate::{create, namespace, wait_for, Env, SCENARIO_LABEL};
use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A variable of the node's `STATE_DIR/env` (or of `e2e/run.sh`).
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: this test needs the node (SD_NODE=1, `make e2e`), and the images of e2e/run.sh")
    })
}

/// Run a command, bounded; its stdout, or an error with its output.
pub async fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str], timeout: Duration) -> Result<String> {
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

/// Load an OCI archive into the node's containerd (pods use `imagePullPolicy: Never`).
pub async fn import(archive: &Path) -> Result<()> {
    let address = var("CONTAINERD_ADDRESS");
    let archive = archive.to_string_lossy();
    run(
        var("CTR"),
        &["-a", &address, "-n", "k8s.io", "images", "import", &archive],
        Duration::from_secs(120),
    )
    .await
    .map(drop)
}

/// The toleration of the node's taint (`NODE_TAINT`, `key=value:effect`).
pub fn toleration() -> Value {
    let taint = var("NODE_TAINT");
    let (key, rest) = taint.split_once('=').expect("key=value:effect");
    let (value, effect) = rest.split_once(':').expect("key=value:effect");
    json!({"key": key, "operator": "Equal", "value": value, "effect": effect})
}

/// The node's `kubectl`.
pub fn kubectl() -> PathBuf {
    Path::new(&var("BIN_DIR")).join("kubectl")
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

/// The chart's label on the webhook pods.
pub const WEBHOOK_PODS: &str = "app.kubernetes.io/name=secure-defaults";

/// The Helm chart installed as users install it: the product image
/// (`SD_PRODUCT_IMAGE`, from `make oci-image`) imported into the node, TLS
/// from `secure-defaults certs`, two replicas and a PodDisruptionBudget in a
/// namespace enforcing `restricted`. The API server calls it through its
/// Service (`--enable-aggregator-routing`: an endpoint on the bridge); the
/// pods reach the API server at its address on the bridge
/// (`KUBERNETES_SERVICE_HOST`/`PORT`), so the namespace policy's watch works.
/// It serves only the namespaces labelled with `scenario`.
pub struct Chart {
    /// The release's namespace (also the release name).
    pub ns: String,
    /// The release's full name: Deployment, Service, webhook configuration.
    pub full: String,
    kubeconfig: String,
    dir: tempfile::TempDir,
}

impl Chart {
    /// Install and wait (`helm --wait`) for both replicas to be Ready.
    /// `values` are merged over the test's own (helm `-f`, later wins).
    pub async fn install(client: &kube::Client, scenario: &str, values: Value) -> Result<Chart> {
        let env = Env::get();
        let archive = PathBuf::from(var("SD_PRODUCT_IMAGE"));
        let image = image_name(&archive)?;
        let (repository, tag) = image.rsplit_once(':').context("image name without a tag")?;
        import(&archive).await?;

        let ns = namespace(client, &format!("{scenario}-webhook"), "restricted").await?;
        let full = format!("{ns}-secure-defaults");
        let chart = Chart {
            ns,
            full,
            kubeconfig: env.kubeconfig.to_string_lossy().to_string(),
            dir: tempfile::tempdir()?,
        };
        let d = chart.dir.path().to_string_lossy().to_string();
        run(
            &env.bin,
            &[
                "certs",
                "--namespace",
                &chart.ns,
                "--service",
                &chart.full,
                "--webhook-configuration",
                &chart.full,
                "--secret-name",
                &format!("{}-tls", chart.full),
                "--out-dir",
                &format!("{d}/tls"),
            ],
            Duration::from_secs(30),
        )
        .await?;
        chart.kubectl(&["apply", "-f", &format!("{d}/tls/secret.yaml")]).await?;

        // The API server is on the bridge's address; the ClusterIP the kubelet
        // puts in these variables is routed by nothing here (no kube-proxy).
        let url = var("APISERVER_URL");
        let (host, port) = url
            .trim_start_matches("https://")
            .rsplit_once(':')
            .context("APISERVER_URL without a port")?;
        let base = json!({
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "tolerations": [toleration()],
            "webhook": {"namespaceLabels": {SCENARIO_LABEL: scenario}},
            "env": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": host},
                {"name": "KUBERNETES_SERVICE_PORT", "value": port},
                // Readiness then means the namespaces synced: a replica whose
                // watch cannot reach the API server stays unready and the
                // install fails, instead of serving the cluster defaults
                // after the usual 30 s.
                {"name": "SECURE_DEFAULTS_NAMESPACE_SYNC_TIMEOUT", "value": "10m"},
            ],
        });
        std::fs::write(chart.dir.path().join("base.yaml"), serde_yaml::to_string(&base)?)?;
        std::fs::write(chart.dir.path().join("values.yaml"), serde_yaml::to_string(&values)?)?;
        let path = env.repo.join("charts/secure-defaults");
        let installed = chart
            .helm(
                &[
                    "install",
                    &chart.ns,
                    &path.to_string_lossy(),
                    "--wait",
                    "--timeout",
                    "90s",
                    "-f",
                    &format!("{d}/base.yaml"),
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
        if let Err(e) = installed {
            let why = chart.diagnostics().await;
            let _ = chart.uninstall().await;
            return Err(e.context(why));
        }
        let dep: Api<Deployment> = Api::namespaced(client.clone(), &chart.ns);
        let status = dep.get(&chart.full).await?.status.unwrap_or_default();
        ensure!(
            status.ready_replicas == Some(2),
            "deployment {}: {status:?}",
            chart.full
        );
        Ok(chart)
    }

    /// `kubectl` in the release's namespace, bounded.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["--kubeconfig", &self.kubeconfig, "-n", &self.ns];
        all.extend_from_slice(args);
        run(kubectl(), &all, Duration::from_secs(120)).await
    }

    async fn helm(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let mut all = vec!["--kubeconfig", &self.kubeconfig, "-n", &self.ns];
        all.extend_from_slice(args);
        run(Env::get().repo.join("hack/tools/helm.sh"), &all, timeout).await
    }

    /// The webhook pods' logs (each replica's), for assertions and failure messages.
    pub async fn logs(&self) -> String {
        self.kubectl(&["logs", "-l", WEBHOOK_PODS, "--tail=-1", "--prefix"])
            .await
            .unwrap_or_else(|e| e.to_string())
    }

    /// The webhook pods' last log lines and the namespace's events and pods.
    pub async fn diagnostics(&self) -> String {
        let logs = self
            .kubectl(&["logs", "-l", WEBHOOK_PODS, "--tail=30", "--all-containers"])
            .await
            .unwrap_or_else(|e| e.to_string());
        let events = self
            .kubectl(&["get", "events,pods", "-o", "wide"])
            .await
            .unwrap_or_else(|e| e.to_string());
        format!("webhook logs:\n{logs}\n{events}")
    }

    /// `helm uninstall --wait`.
    pub async fn uninstall(&self) -> Result<()> {
        self.helm(
            &["uninstall", &self.ns, "--wait", "--timeout", "60s"],
            Duration::from_secs(90),
        )
        .await
        .map(drop)
    }
}

/// Wait until the API server sends pods of `ns` to a webhook that hardens
/// them: a dry-run bare pod there comes back with `runAsNonRoot`. Bounded.
pub async fn wait_hardening(client: &kube::Client, ns: &str) -> Result<crate::Answer> {
    let probe = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}
    });
    wait_for(Duration::from_secs(30), "a webhook to harden pods", || async {
        let a = create(client, ns, "pods", &probe, true).await.ok()?;
        (a.body["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] == json!(true)).then_some(a)
    })
    .await
}

/// The webhook pods of a release that are not being deleted.
pub async fn webhook_pods(client: &kube::Client, ns: &str) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(pods
        .list(&ListParams::default().labels(WEBHOOK_PODS))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}
