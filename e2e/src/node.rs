//! Helpers for the tests that run pods on the real node (`SD_NODE=1`):
//! bounded commands, the test images' catalog and their import into the
//! node's containerd, the node's taint, how a pod ended up (Ready, or what
//! the node shows), `kubectl exec`, README tables written by the suite
//! between markers, and the Helm chart installed the way users install it
//! ([`Chart`]).

use crate::{create, namespace, wait_for, Env, SCENARIO_LABEL};
use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{ListParams, LogParams};
use kube::Api;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One image of `catalog.json` (written by `e2e/images/build.sh`).
#[derive(Deserialize)]
pub struct Image {
    /// `localhost/e2e/NAME:TAG`, as imported with `ctr`.
    pub image: String,
    pub archive: PathBuf,
    pub health: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl Image {
    /// The same image in the suite's registry (`SD_REGISTRY`, seeded by
    /// `e2e/registry/up.sh` as `e2e/NAME:TAG`).
    pub fn in_registry(&self) -> String {
        format!("{}/{}", var("SD_REGISTRY"), self.image.trim_start_matches("localhost/"))
    }
}

/// What the node showed for one workload.
pub struct Outcome {
    pub started: bool,
    pub ready: bool,
    /// The waiting reason and message, or the exit code and last log line.
    pub shows: String,
    /// A failed container's output over all its runs, from the node's log
    /// files (empty when Ready).
    pub log: String,
}

/// A variable of the node's `STATE_DIR/env` (exported by `up.sh`) or of `e2e/run.sh`.
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

fn images_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("SD_IMAGES_DIR") {
        return Ok(d.into());
    }
    let script = Env::get().repo.join("e2e/images/build.sh");
    let out = std::process::Command::new(&script).arg("--print-dir").output()?;
    ensure!(out.status.success(), "{} --print-dir: {}", script.display(), out.status);
    Ok(String::from_utf8(out.stdout)?.trim().into())
}

/// The test images by name.
pub fn catalog() -> Result<BTreeMap<String, Image>> {
    let path = images_dir()?.join("catalog.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: build the test images with e2e/images/build.sh", path.display()))?;
    let v: Value = serde_json::from_str(&text)?;
    Ok(serde_json::from_value(v["images"].clone())?)
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

/// The toleration of the node's taint (only the node tests' pods land there).
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

/// The container as a legacy chart writes it: image, env, a readiness probe
/// running the image's own health check; no securityContext.
pub fn container(img: &Image, image: &str, pull_policy: &str) -> Value {
    let env: Vec<Value> = img.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
    json!({
        "name": "app",
        "image": image,
        "imagePullPolicy": pull_policy,
        "env": env,
        "readinessProbe": {
            "exec": {"command": img.health},
            "periodSeconds": 2,
            "timeoutSeconds": 5,
        },
    })
}

/// A bare pod on the node with this container and pod securityContext.
pub fn pod(name: &str, container: Value, security_context: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "tolerations": [toleration()],
            "terminationGracePeriodSeconds": 1,
            "securityContext": security_context,
            "containers": [container],
        }
    })
}

/// Wait until the pod is Ready or has shown how it fails: a waiting reason
/// that will not clear by itself, or a container that exited. Bounded.
pub async fn outcome(client: &kube::Client, ns: &str, name: &str) -> Result<Outcome> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let status = wait_for(
        Duration::from_secs(120),
        &format!("pod {ns}/{name} to run or fail"),
        || async {
            let p = api.get(name).await.ok()?;
            let uid = p.metadata.uid.clone()?;
            let c: ContainerStatus = p.status?.container_statuses?.into_iter().next()?;
            let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
            let stuck = waiting.is_some_and(|w| {
                matches!(
                    w.reason.as_deref(),
                    Some(
                        "CreateContainerConfigError"
                            | "CreateContainerError"
                            | "ErrImageNeverPull"
                            | "ErrImagePull"
                            | "ImagePullBackOff"
                            | "RunContainerError"
                    )
                )
            });
            // Once restarted, the exited run's log stays readable (`previous`).
            let exited = c.last_state.as_ref().is_some_and(|s| s.terminated.is_some());
            (c.ready || stuck || exited).then_some((uid, c))
        },
    )
    .await?;
    let (uid, status) = (status.0, status.1);
    if status.ready {
        return Ok(Outcome {
            started: true,
            ready: true,
            shows: String::new(),
            log: String::new(),
        });
    }
    let state = status.state.clone().unwrap_or_default();
    let restarted = status.last_state.as_ref().is_some_and(|s| s.terminated.is_some());
    if let Some(w) = state.waiting.as_ref().filter(|_| !restarted) {
        // The kubelet's message ends with the pod's UID: not for the table.
        let msg = w.message.as_deref().unwrap_or("");
        let msg = msg.split(" (pod: ").next().unwrap_or(msg);
        return Ok(Outcome {
            started: false,
            ready: false,
            shows: format!("{}: {msg}", w.reason.as_deref().unwrap_or("waiting")),
            log: String::new(),
        });
    }
    // The kubelet serves an exited container's log as the current one until
    // it restarts, and as `previous` only after that.
    let (term, previous) = match (state.terminated, status.last_state.and_then(|s| s.terminated)) {
        (Some(t), _) => (t, false),
        (None, Some(t)) => (t, true),
        (None, None) => anyhow::bail!("{name}: no terminated state"),
    };
    // Every run's log file on the node (we are on its host), for matching:
    // a log read through the API may race with the next run.
    let output = node_log(ns, name, &uid).await;
    let lp = LogParams {
        previous,
        tail_lines: Some(20),
        ..Default::default()
    };
    // Right after a restart the kubelet may not find the exited run's log
    // yet (or has just removed it for a newer one): ask again, bounded.
    let mut log = String::new();
    for _ in 0..10 {
        log = match tokio::time::timeout(Duration::from_secs(30), api.logs(name, &lp)).await {
            Ok(Ok(log)) => log,
            Ok(Err(e)) => format!("(log: {e})"),
            Err(_) => "(log: timed out)".into(),
        };
        // The kubelet answers with this text, not an error, when the run it
        // points to was just removed by a restart.
        if !log.starts_with("(log: ") && !log.starts_with("unable to retrieve container logs") {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)");
    Ok(Outcome {
        started: true,
        ready: false,
        shows: format!("exit code {}: {}", term.exit_code, strip_timestamp(last.trim())),
        log: output,
    })
}

/// The text of every run of container `app` that the kubelet still keeps,
/// from its log files under the state dir (CRI format: `TIME STREAM TAG
/// text`). The runtime may still be copying an exited run's stderr when the
/// status says it exited: read again, bounded, until it stops growing.
async fn node_log(ns: &str, pod: &str, uid: &str) -> String {
    let dir = Path::new(&var("CONTROLPLANE_STATE_DIR"))
        .join("n/pod-logs")
        .join(format!("{ns}_{pod}_{uid}"))
        .join("app");
    let read = || {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect::<String>()
    };
    let mut text = read();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = read();
        if again.len() == text.len() {
            break;
        }
        text = again;
    }
    text.lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Log lines that start with a date and time (nginx, postgres) lose them, so
/// a table is the same on every run.
fn strip_timestamp(line: &str) -> &str {
    let b = line.as_bytes();
    let starts_with_date = b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && matches!(b[4], b'-' | b'/');
    if starts_with_date {
        line.splitn(3, ' ').nth(2).unwrap_or(line)
    } else {
        line
    }
}

/// The last lines of these node component logs (`kubelet`, `containerd`,
/// `registry`...), for a failure message.
pub fn logs_tail(names: &[&str]) -> String {
    let logs = Path::new(&var("CONTROLPLANE_STATE_DIR")).join("logs");
    let mut out = String::new();
    for name in names {
        let text = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("\n===== last lines of {name}.log =====\n"));
        out.push_str(&lines[lines.len().saturating_sub(30)..].join("\n"));
    }
    out
}

/// `kubectl exec` in container `app`, bounded; stdout.
pub async fn exec(ns: &str, pod: &str, cmd: &[&str]) -> Result<String> {
    let kubeconfig = Env::get().kubeconfig.to_string_lossy().to_string();
    let mut args = vec![
        "--kubeconfig",
        &kubeconfig,
        "--request-timeout=30s",
        "-n",
        ns,
        "exec",
        pod,
        "-c",
        "app",
        "--",
    ];
    args.extend_from_slice(cmd);
    run(kubectl(), &args, Duration::from_secs(40)).await
}

/// Write `text` to `e2e/results/FILE`, and compare it with the README
/// between `begin` and `end` (under `SD_UPDATE_README=1`, write it there).
pub fn publish(file: &str, begin: &str, end: &str, text: &str) -> Result<()> {
    let repo = Env::get().repo;
    let results = repo.join("e2e/results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join(file), text)?;
    let readme_path = repo.join("README.md");
    let readme = std::fs::read_to_string(&readme_path)?;
    let (head, rest) = readme
        .split_once(begin)
        .with_context(|| format!("README: no {begin} marker"))?;
    let (current, tail) = rest
        .split_once(end)
        .with_context(|| format!("README: no {end} marker"))?;
    if std::env::var("SD_UPDATE_README").as_deref() == Ok("1") {
        std::fs::write(&readme_path, format!("{head}{begin}\n{text}{end}{tail}"))?;
        return Ok(());
    }
    ensure!(
        current.trim() == text.trim(),
        "README's table between {begin} and {end} differs from what the node showed \
         (SD_UPDATE_README=1 rewrites it):\n{text}"
    );
    Ok(())
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
