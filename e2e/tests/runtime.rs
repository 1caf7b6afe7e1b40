//! Hardened pods on a real node: kube-scheduler places them, the kubelet runs
//! them with containerd and runc, and the checks read the kernel's view from
//! inside the containers (`kubectl exec`, through the API server and the
//! kubelet's authenticated API): the user and groups, no capabilities,
//! seccomp in filter mode, no_new_privs, the fsGroup on an emptyDir.
//! Needs the node of `up.sh` with `SD_NODE=1` (`make e2e` starts it).

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::Api;
use secure_defaults_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

const SCENARIO: &str = "runtime";
/// IDs unlike the shipped defaults, so the test sees the configuration reach the kernel.
const UID: u32 = 10001;
const GID: u32 = 10002;
const FS_GROUP: u32 = 10003;
const CONFIG: &str = "mode: enforce
baseline:
  runAsUser: 10001
  runAsGroup: 10002
  fsGroup: 10003
  readOnlyRootFilesystem: true
";

/// What up.sh wrote for the node.
struct Node {
    name: String,
    image: String,
    /// The taint only the runtime tests tolerate: `key=value:effect`.
    taint: String,
    logs: std::path::PathBuf,
}

fn node() -> Node {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the runtime tests need the node of `SD_NODE=1 e2e/controlplane/up.sh` (make e2e)"
            )
        })
    };
    Node {
        name: var("NODE_NAME"),
        image: var("NODE_TEST_IMAGE"),
        taint: var("NODE_TAINT"),
        logs: std::path::Path::new(&var("CONTROLPLANE_STATE_DIR")).join("logs"),
    }
}

impl Node {
    fn toleration(&self) -> Value {
        let (key, rest) = self.taint.split_once('=').expect("key=value:effect");
        let (value, effect) = rest.split_once(':').expect("key=value:effect");
        json!({"key": key, "operator": "Equal", "value": value, "effect": effect})
    }

    fn container(&self, name: &str, script: &str) -> Value {
        json!({
            "name": name,
            "image": self.image,
            "imagePullPolicy": "Never",
            "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        })
    }

    /// A pod for this node: no security context of its own, so every field
    /// the checks look at comes from the webhook.
    fn pod(&self, name: &str, init: Vec<Value>, containers: Vec<Value>) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "tolerations": [self.toleration()],
                // sleep as PID 1 ignores SIGTERM.
                "terminationGracePeriodSeconds": 1,
                "automountServiceAccountToken": false,
                "initContainers": init,
                "containers": containers,
                "volumes": [{"name": "data", "emptyDir": {}}],
            }
        })
    }

    /// The last lines of the node's component logs, for a failure message.
    fn logs_tail(&self) -> String {
        let mut out = String::new();
        for name in ["kubelet", "containerd", "kube-scheduler"] {
            let text = std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("\n===== last lines of {name}.log =====\n"));
            out.push_str(&lines[lines.len().saturating_sub(30)..].join("\n"));
        }
        out
    }
}

/// `kubectl exec` of a command in a container, bounded; stdout.
async fn exec(ns: &str, pod: &str, container: &str, cmd: &[&str]) -> Result<String> {
    let env = Env::get();
    let kubectl = std::env::var_os("BIN_DIR")
        .map(|d| std::path::PathBuf::from(d).join("kubectl"))
        .unwrap_or_else(|| "kubectl".into());
    let mut c = tokio::process::Command::new(kubectl);
    c.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["--request-timeout=30s", "-n", ns, "exec", pod, "-c", container, "--"])
        .args(cmd)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(40), c.output())
        .await
        .with_context(|| format!("kubectl exec {pod}/{container} {cmd:?} timed out"))??;
    ensure!(
        out.status.success(),
        "kubectl exec {pod}/{container} {cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The value of `Field:` in a /proc/PID/status text, whitespace collapsed.
fn status_field(status: &str, field: &str) -> Result<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .with_context(|| format!("no {field} in:\n{status}"))
}

/// The kernel's view of a hardened process: IDs, no capabilities in any set,
/// no_new_privs, seccomp filter mode (2). `groups` are the supplementary groups.
fn check_confined(what: &str, status: &str, uid: u32, gid: u32, groups: &[u32]) -> Result<()> {
    let ids = |id: u32| format!("{id} {id} {id} {id}");
    ensure!(
        status_field(status, "Uid")? == ids(uid),
        "{what}: want uid {uid} in:\n{status}"
    );
    ensure!(
        status_field(status, "Gid")? == ids(gid),
        "{what}: want gid {gid} in:\n{status}"
    );
    let mut got: Vec<u32> = status_field(status, "Groups")?
        .split_whitespace()
        .map(|g| g.parse())
        .collect::<Result<_, _>>()?;
    got.sort();
    ensure!(got == groups, "{what}: want groups {groups:?} in:\n{status}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        ensure!(
            status_field(status, set)? == "0000000000000000",
            "{what}: want no {set} in:\n{status}"
        );
    }
    ensure!(
        status_field(status, "NoNewPrivs")? == "1",
        "{what}: want NoNewPrivs 1 in:\n{status}"
    );
    ensure!(
        status_field(status, "Seccomp")? == "2",
        "{what}: want Seccomp 2 (filter) in:\n{status}"
    );
    Ok(())
}

/// Wait until the pod runs with every container (native sidecars included)
/// started and ready; its status and events on timeout.
async fn wait_running(client: &kube::Client, ns: &str, name: &str) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let r = wait_for(Duration::from_secs(90), &format!("pod {ns}/{name} running"), || async {
        let p = api.get(name).await.ok()?;
        let s = p.status.as_ref()?;
        let ready = |list: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
            list.iter()
                .flatten()
                .all(|c| c.ready || c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
        };
        (s.phase.as_deref() == Some("Running")
            && s.container_statuses.as_ref().is_some_and(|c| !c.is_empty())
            && ready(&s.container_statuses)
            && ready(&s.init_container_statuses))
        .then_some(p)
    })
    .await;
    match r {
        Ok(p) => Ok(p),
        Err(e) => {
            let status = api
                .get(name)
                .await
                .map(|p| serde_json::to_string_pretty(&p.status).unwrap_or_default());
            let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
            let events = events
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .map(|e| {
                            format!(
                                "{} {}: {}",
                                e.reason.as_deref().unwrap_or(""),
                                e.involved_object.name.as_deref().unwrap_or(""),
                                e.message.as_deref().unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            bail!("{e}\nstatus: {status:?}\nevents:\n{events}")
        }
    }
}

/// A namespace of the runtime scenario with the webhook registered for it.
/// Create `pod` through the webhook; the webhook's log is the failure's context.
async fn create_pod(client: &kube::Client, ns: &str, pod: &Value, hook: &Webhook) -> Result<Answer> {
    let a = create(client, ns, "pods", pod, false).await?;
    ensure!(
        a.ok(),
        "creating the pod: {} {}\nwebhook log:\n{}",
        a.status,
        a.body,
        hook.log()
    );
    Ok(a)
}

async fn setup(client: &kube::Client, enforce: &str) -> Result<(Webhook, String, String)> {
    let ns = namespace(client, SCENARIO, enforce).await?;
    let hook = Webhook::start(CONFIG).await?;
    let name = unique("sd-runtime");
    let mwc = webhook_configuration(&name, &hook.url(), &hook.tls.ca_pem, SCENARIO, "Fail")?;
    register(client, &mwc, &ns, true).await?;
    Ok((hook, ns, name))
}

/// In a namespace enforcing Pod Security `restricted`, a pod without any
/// security context is admitted once hardened, scheduled onto the node, and
/// its init container, native sidecar and container all run confined.
#[tokio::test]
async fn hardened_pod_runs_confined_on_the_node() -> Result<()> {
    let client = client().await;
    let node = node();
    let (hook, ns, mwc) = setup(&client, "restricted").await?;
    let checks = "grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs|Seccomp):' /proc/self/status";
    let pod = node.pod(
        "hardened",
        vec![node.container("init", &format!("{checks} && touch /data/from-init")), {
            let mut c = node.container("sidecar", "exec sleep 3600");
            c["restartPolicy"] = json!("Always");
            c
        }],
        vec![node.container("app", "exec sleep 3600")],
    );
    let a = create_pod(&client, &ns, &pod, &hook).await?;
    assert_hardened_with(&a.body);

    let result = async {
        let p = wait_running(&client, &ns, "hardened").await?;
        let spec = p.spec.as_ref().context("spec")?;
        ensure!(
            spec.node_name.as_deref() == Some(node.name.as_str()),
            "scheduled on {:?}",
            spec.node_name
        );

        // The sidecar and the app: their PID 1 is their own process.
        for c in ["sidecar", "app"] {
            let status = exec(&ns, "hardened", c, &["cat", "/proc/1/status"]).await?;
            check_confined(c, &status, UID, GID, &[GID, FS_GROUP])?;
            let root = exec(&ns, "hardened", c, &["sh", "-c", "touch /x 2>&1 || true"]).await?;
            ensure!(
                root.contains("Read-only file system"),
                "{c}: root filesystem writable: {root}"
            );
        }
        // The emptyDir belongs to the fsGroup, setgid; files made in it too.
        let data = exec(&ns, "hardened", "app", &["stat", "-c", "%g %A", "/data"]).await?;
        ensure!(data.trim() == format!("{FS_GROUP} drwxrwsrwx"), "/data: {data}");
        let files = exec(
            &ns,
            "hardened",
            "app",
            &[
                "sh",
                "-c",
                "touch /data/from-app && stat -c '%n %u %g' /data/from-init /data/from-app",
            ],
        )
        .await?;
        let want = format!("/data/from-init {UID} {FS_GROUP}\n/data/from-app {UID} {FS_GROUP}");
        ensure!(files.trim() == want, "files in the emptyDir: {files}");

        // The pod's network: an address on the suite's bridge and a route to
        // that /24 only, no default route (nothing can leave the host).
        let routes = exec(&ns, "hardened", "app", &["cat", "/proc/net/route"]).await?;
        let dests: Vec<&str> = routes
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        ensure!(
            !dests.is_empty() && !dests.contains(&"00000000"),
            "routes in the pod:\n{routes}"
        );

        // The init container has exited; it printed its own status.
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let lp = LogParams {
            container: Some("init".into()),
            ..Default::default()
        };
        let init_status = tokio::time::timeout(Duration::from_secs(30), api.logs("hardened", &lp))
            .await
            .context("init container log: timed out")?
            .context("init container log")?;
        check_confined("init", &init_status, UID, GID, &[GID, FS_GROUP])?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let result = result.with_context(|| node.logs_tail());
    unregister(&client, &mwc).await?;
    result
}

/// A container that explicitly runs as root keeps its user (the webhook's
/// root guard) and still starts, in a namespace where Pod Security allows
/// root; it gets the rest of the baseline, so it has no capabilities and a
/// seccomp filter.
#[tokio::test]
async fn explicit_root_container_still_runs() -> Result<()> {
    let client = client().await;
    let node = node();
    let (hook, ns, mwc) = setup(&client, "baseline").await?;
    let mut root = node.container("root", "exec sleep 3600");
    root["securityContext"] = json!({"runAsUser": 0});
    let pod = node.pod("root", vec![], vec![root]);
    let a = create_pod(&client, &ns, &pod, &hook).await?;
    let csc = &a.body["spec"]["containers"][0]["securityContext"];
    assert_eq!(csc["runAsNonRoot"], Value::Null, "root guard: {csc}");
    assert_eq!(csc["runAsGroup"], Value::Null, "root guard: {csc}");

    let result = async {
        wait_running(&client, &ns, "root").await?;
        let status = exec(&ns, "root", "root", &["cat", "/proc/1/status"]).await?;
        // Group 0 from the image's default; the fsGroup as supplementary group.
        check_confined("root", &status, 0, 0, &[0, FS_GROUP])?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let result = result.with_context(|| node.logs_tail());
    unregister(&client, &mwc).await?;
    result
}

/// The pod as admitted carries what this configuration adds.
fn assert_hardened_with(pod: &Value) {
    let sc = &pod["spec"]["securityContext"];
    assert_eq!(sc["fsGroup"], json!(FS_GROUP), "{sc}");
    assert_eq!(sc["seccompProfile"]["type"], json!("RuntimeDefault"), "{sc}");
    for kind in ["initContainers", "containers"] {
        for c in pod["spec"][kind].as_array().into_iter().flatten() {
            let csc = &c["securityContext"];
            assert_eq!(csc["runAsUser"], json!(UID), "{}: {csc}", c["name"]);
            assert_eq!(csc["runAsGroup"], json!(GID), "{}: {csc}", c["name"]);
            assert_eq!(csc["runAsNonRoot"], json!(true), "{}: {csc}", c["name"]);
            assert_eq!(csc["readOnlyRootFilesystem"], json!(true), "{}: {csc}", c["name"]);
        }
    }
}
