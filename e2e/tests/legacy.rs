//! Legacy workloads on the real node: each real-server image of
//! `e2e/images`, deployed from a manifest with no securityContext at all into
//! a namespace enforcing `restricted`. Without the webhook Pod Security
//! rejects it; with the webhook installed as users install it (the Helm
//! chart on the node, called through its Service) the pod is admitted, and
//! the node shows whether it starts and serves (a readiness probe that
//! talks to the server). The expectations and their explanations are
//! `testdata/legacy-images.yaml`; the outcome is written to `e2e/results/legacy-workloads.md`, and the README's
//! table must match it (`SD_UPDATE_README=1` rewrites it).
//! Needs the node (`SD_NODE=1`), the image archives (`e2e/images/build.sh`)
//! and the product image (`SD_PRODUCT_IMAGE`, `make oci-image`).

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use secure_defaults_e2e::node::*;
use secure_defaults_e2e::*;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const SCENARIO: &str = "legacy";
/// The namespaces of the table's workloads: only the installed webhook selects them.
const INSTALLED: &str = "legacy-installed";
const README_BEGIN: &str = "<!-- legacy-workloads:begin (written by e2e/tests/legacy.rs) -->";
const README_END: &str = "<!-- legacy-workloads:end -->";
/// The node's logs whose last lines a failure message shows.
const NODE_LOGS: &[&str] = &["kubelet", "containerd"];

/// One entry of `testdata/legacy-images.yaml`.
#[derive(Deserialize)]
struct Expect {
    serves: bool,
    #[serde(default)]
    shows: Option<String>,
    why: String,
}

/// A table of `testdata/FILE` (image name → expectation) and its images
/// from the catalog, imported into the node.
async fn table<'c, T: DeserializeOwned>(
    catalog: &'c BTreeMap<String, Image>,
    file: &str,
) -> Result<(BTreeMap<String, T>, Vec<&'c Image>)> {
    let path = Env::get().repo.join("e2e/testdata").join(file);
    let entries: BTreeMap<String, T> = serde_yaml::from_str(&std::fs::read_to_string(&path)?)?;
    let images: Vec<&Image> = entries
        .keys()
        .map(|n| catalog.get(n).with_context(|| format!("no image {n} in the catalog")))
        .collect::<Result<_>>()?;
    for img in &images {
        import(&img.archive).await?;
    }
    Ok((entries, images))
}

/// How an outcome differs from what its table says (`None`: as expected).
fn mismatch(name: &str, o: &Outcome, ready: bool, shows: Option<&str>) -> Option<String> {
    (o.ready != ready || shows.is_some_and(|s| !o.shows.contains(s))).then(|| {
        format!(
            "{name}: ready {} (want {ready}), shows {:?} (want {shows:?})",
            o.ready, o.shows
        )
    })
}

/// The README's table, produced from what the node showed.
/// Every row was rejected without the webhook and admitted with it (the
/// test asserts both before the pod runs).
fn table_md(rows: &[(String, Outcome, &Expect)]) -> String {
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    let mut t = String::from(
        "| image | without the webhook | with it | starts | serves | what the node shows | why, and what to do |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (name, o, e) in rows {
        let shows = if o.shows.is_empty() {
            "Ready".to_string()
        } else {
            format!("`{}`", o.shows.replace('|', "\\|").replace('`', "'"))
        };
        t.push_str(&format!(
            "| {name} | rejected | admitted | {} | {} | {shows} | {} |\n",
            yes(o.started),
            yes(o.ready),
            e.why.replace('|', "\\|"),
        ));
    }
    t
}

/// Each server image: rejected without the webhook, admitted with the
/// installed one, and then as `testdata/legacy-images.yaml` says.
#[tokio::test]
async fn legacy_images_under_restricted() -> Result<()> {
    let client = client().await;
    let catalog = catalog()?;
    let (expect, images) = table::<Expect>(&catalog, "legacy-images.yaml").await?;
    let control = namespace(&client, "legacy-control", "restricted").await?;
    let ns = namespace(&client, INSTALLED, "restricted").await?;
    let chart = Chart::install(&client, INSTALLED, json!({})).await?;

    let result = async {
        wait_hardening(&client, &ns).await?;
        for (name, img) in expect.keys().zip(&images) {
            let p = pod(name, container(img, &img.image, "Never"), json!({}));
            let a = create(&client, &control, "pods", &p, false).await?;
            ensure!(
                a.status == 403 && a.message().contains("violates PodSecurity \"restricted:latest\""),
                "{name} without the webhook: {} {}",
                a.status,
                a.body
            );
            let a = create(&client, &ns, "pods", &p, false).await?;
            ensure!(a.ok(), "{name} with the webhook: {} {}", a.status, a.body);
        }
        // The pods run side by side; waiting on them in turn costs no more.
        let mut rows = Vec::new();
        let mut wrong = Vec::new();
        for (name, e) in &expect {
            let o = outcome(&client, &ns, name).await?;
            wrong.extend(mismatch(name, &o, e.serves, e.shows.as_deref()));
            rows.push((name.clone(), o, e));
        }
        let t = table_md(&rows);
        ensure!(
            wrong.is_empty(),
            "not as testdata/legacy-images.yaml says:\n{}\n{t}",
            wrong.join("\n")
        );
        publish("legacy-workloads.md", README_BEGIN, README_END, &t)
    }
    .await;
    let why = match &result {
        Err(_) => chart.diagnostics().await + &logs_tail(NODE_LOGS),
        Ok(()) => String::new(),
    };
    let uninstall = chart.uninstall().await;
    result.with_context(|| why)?;
    uninstall
}

/// `secure-defaults serve` on loopback with this configuration, registered
/// for this file's namespaces (`SCENARIO`) until [`Local::stop`].
struct Local {
    hook: Webhook,
    registration: String,
}

impl Local {
    /// Start it and wait until the API server calls it for pods of `ns`.
    async fn start(client: &kube::Client, cfg: &str, ns: &str) -> Result<Local> {
        let hook = Webhook::start(cfg).await?;
        let registration = unique("sd-legacy");
        let mwc = webhook_configuration(&registration, &hook.url(), &hook.tls.ca_pem, SCENARIO, "Fail")?;
        register(client, &mwc, ns, true).await?;
        Ok(Local { hook, registration })
    }

    async fn stop(self, client: &kube::Client) -> Result<()> {
        unregister(client, &self.registration).await?;
        drop(self.hook);
        Ok(())
    }
}

/// One entry of `testdata/identity-patterns.yaml`.
#[derive(Deserialize)]
struct Pattern {
    #[serde(rename = "securityContext")]
    security_context: Value,
    works: bool,
    #[serde(default)]
    shows: Option<String>,
}

/// Patterns (a) and (b): the image's own identity, deployed with only the
/// fields charts set, under `restricted` with the webhook.
#[tokio::test]
async fn identity_patterns_with_the_default_baseline() -> Result<()> {
    let client = client().await;
    let catalog = catalog()?;
    let (patterns, images) = table::<Pattern>(&catalog, "identity-patterns.yaml").await?;
    let ns = namespace(&client, SCENARIO, "restricted").await?;
    let local = Local::start(&client, &config("enforce"), &ns).await?;
    let result = async {
        for ((name, p), img) in patterns.iter().zip(&images) {
            let a = create(
                &client,
                &ns,
                "pods",
                &pod(name, container(img, &img.image, "Never"), p.security_context.clone()),
                false,
            )
            .await?;
            ensure!(a.ok(), "{name}: {} {}", a.status, a.body);
        }
        let mut wrong = Vec::new();
        for (name, p) in &patterns {
            let o = outcome(&client, &ns, name).await?;
            println!("{name}: ready {}, shows {:?}", o.ready, o.shows);
            wrong.extend(mismatch(name, &o, p.works, p.shows.as_deref()));
        }
        ensure!(
            wrong.is_empty(),
            "not as testdata/identity-patterns.yaml says:\n{}",
            wrong.join("\n")
        );
        Ok(())
    }
    .await;
    let result = result.with_context(|| logs_tail(NODE_LOGS));
    local.stop(&client).await?;
    result
}

/// The pinned uid of pattern (c): nonroot-owner's own user.
const STS_UID: u32 = 10001;

/// Pattern (c): a StatefulSet with a pinned `runAsUser` whose persistent
/// volume (a local PersistentVolume under the state dir) already holds data
/// owned by that uid. Hardened with the default baseline (which adds an
/// `fsGroup` with `OnRootMismatch`) and with `fsGroup: null`, the app still
/// reads and writes it, also after its pod is replaced. The ownership the
/// node shows for both goes to `e2e/results/statefulset-ownership.md`.
#[tokio::test]
async fn statefulset_keeps_its_volume_data() -> Result<()> {
    let client = client().await;
    let catalog = catalog()?;
    let img = catalog.get("nonroot-owner").context("no nonroot-owner image")?;
    import(&img.archive).await?;
    let mut report = String::from(
        "StatefulSet, `runAsUser: 10001` only, local PersistentVolume holding 10001:10001 data (dir 0755, file 0644):\n\n",
    );
    for (label, cfg) in [
        (
            "default baseline (adds fsGroup 65532, OnRootMismatch)",
            "mode: enforce\n",
        ),
        ("fsGroup: null", "mode: enforce\nbaseline:\n  fsGroup: null\n"),
    ] {
        let seen = statefulset_case(&client, img, cfg)
            .await
            .with_context(|| format!("{label}{}", logs_tail(NODE_LOGS)))?;
        report.push_str(&format!("{label}:\n\n```\n{seen}```\n\n"));
    }
    println!("{report}");
    let results = Env::get().repo.join("e2e/results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("statefulset-ownership.md"), report)?;
    Ok(())
}

/// One run of pattern (c) under this webhook configuration; what `id` and
/// `stat` show inside the pod, before and after the pod is replaced.
async fn statefulset_case(client: &kube::Client, img: &Image, cfg: &str) -> Result<String> {
    let ns = namespace(client, SCENARIO, "restricted").await?;
    let local = Local::start(client, cfg, &ns).await?;
    let result = async {
        // The volume as an earlier release left it: the pinned uid's data.
        let class = unique("sd-local");
        let dir = Path::new(&var("CONTROLPLANE_STATE_DIR")).join("pv").join(&class);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("existing"), "written by the previous release\n")?;
        let chown = std::process::Command::new("chown")
            .args(["-R", &format!("{STS_UID}:{STS_UID}")])
            .arg(&dir)
            .status()?;
        ensure!(chown.success(), "chown {}", dir.display());
        let pv = json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": class},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": class,
                "local": {"path": dir},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [var("NODE_NAME")]}
                ]}]}},
            }
        });
        let a = send(client, http::Method::POST, "/api/v1/persistentvolumes", "application/json", &pv).await?;
        ensure!(a.ok(), "PersistentVolume: {} {}", a.status, a.body);
        let mut c = container(img, &img.image, "Never");
        c["volumeMounts"] = json!([{"name": "data", "mountPath": "/srv/app/data"}]);
        let sts = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {
                        "tolerations": [toleration()],
                        "terminationGracePeriodSeconds": 1,
                        "securityContext": {"runAsUser": STS_UID},
                        "containers": [c],
                    }
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": class,
                        "resources": {"requests": {"storage": "1Gi"}},
                    }
                }],
            }
        });
        let a = create(client, &ns, "statefulsets", &sts, false).await?;
        ensure!(a.ok(), "StatefulSet: {} {}", a.status, a.body);
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let look = "id; stat -c '%u:%g %A %n' /srv/app/data /srv/app/data/*; cat /srv/app/data/existing; echo appended >> /srv/app/data/existing";
        let mut seen = String::new();
        let mut last_uid = None;
        for round in ["first pod", "after the pod was replaced"] {
            let p = wait_for(Duration::from_secs(90), "the StatefulSet's pod", || async {
                let p = api.get_opt("db-0").await.ok().flatten()?;
                (p.metadata.uid != last_uid && p.metadata.deletion_timestamp.is_none()).then_some(p)
            })
            .await?;
            last_uid = p.metadata.uid.clone();
            let o = outcome(client, &ns, "db-0").await?;
            ensure!(o.ready, "{round}: db-0 not ready: {}", o.shows);
            let out = exec(&ns, "db-0", &["sh", "-c", look]).await?;
            ensure!(out.contains("written by the previous release"), "{round}: old data unreadable:\n{out}");
            // The first pod's append is there for the second.
            ensure!(
                round == "first pod" || out.contains("appended"),
                "{round}: the first pod's write is gone:\n{out}"
            );
            seen.push_str(&format!("# {round}\n{out}"));
            api.delete("db-0", &Default::default()).await?;
        }
        Ok::<_, anyhow::Error>(seen)
    }
    .await;
    local.stop(client).await?;
    result
}

/// `secure-defaults scan` of a namespace whose pods run on the node: a bare
/// pod that was hardened at admission needs nothing more; a Deployment's
/// row says what a new pod of it gets (its template is unhardened), and its
/// running pod carries each of those fields. Owned pods are not rows.
#[tokio::test]
async fn scan_of_running_workloads() -> Result<()> {
    let client = client().await;
    let ns = namespace(&client, SCENARIO, "restricted").await?;
    let local = Local::start(&client, &config("enforce"), &ns).await?;
    let result = async {
        let c = json!({"name": "app", "image": var("NODE_TEST_IMAGE"), "imagePullPolicy": "Never", "command": ["sleep", "3600"]});
        let bare = pod("bare", c.clone(), json!({}));
        let a = create(&client, &ns, "pods", &bare, false).await?;
        ensure!(a.ok(), "bare: {} {}", a.status, a.body);
        let web = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"tolerations": [toleration()], "terminationGracePeriodSeconds": 0, "containers": [c]},
                },
            }
        });
        let a = create(&client, &ns, "deployments", &web, false).await?;
        ensure!(a.ok(), "web: {} {}", a.status, a.body);
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let running = wait_for(Duration::from_secs(90), "both pods Running", || async {
            let list = api.list(&Default::default()).await.ok()?;
            let running: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .collect();
            (running.len() == 2).then_some(running)
        })
        .await?;
        let web_pod = running
            .iter()
            .find(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with("web-")))
            .context("no running pod of web")?;
        let web_pod = serde_json::to_value(web_pod)?;

        let out = std::process::Command::new(Env::get().bin)
            .arg("scan")
            .arg("--kubeconfig")
            .arg(Env::get().kubeconfig)
            .args(["-n", &ns, "-o", "json", "--quiet"])
            .output()?;
        ensure!(out.status.success(), "scan: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout)?;
        let rows: BTreeMap<String, Value> = report["namespaces"][0]["workloads"]
            .as_array()
            .context("no workloads")?
            .iter()
            .map(|w| (format!("{}/{}", w["kind"].as_str().unwrap_or(""), w["name"].as_str().unwrap_or("")), w.clone()))
            .collect();
        ensure!(
            rows.keys().map(String::as_str).collect::<Vec<_>>() == ["Deployment/web", "Pod/bare"],
            "rows: {:?}",
            rows.keys()
        );
        for (name, row) in &rows {
            ensure!(row["verdict"] == "ready", "{name}: {row}");
        }
        let bare_added = rows["Pod/bare"]["assessment"]["added"].as_array().map_or(0, Vec::len);
        ensure!(bare_added == 0, "the running bare pod is already hardened: {}", rows["Pod/bare"]);
        let added = rows["Deployment/web"]["assessment"]["added"].as_array().context("added")?;
        ensure!(!added.is_empty(), "a new pod of web gets fields: {}", rows["Deployment/web"]);
        for a in added {
            let field = a["field"].as_str().unwrap_or("");
            let key = if field == "dropCapabilities" { "capabilities" } else { field };
            let holder = if a["target"]["level"] == "pod" {
                &web_pod["spec"]["securityContext"]
            } else {
                &web_pod["spec"]["containers"][0]["securityContext"]
            };
            ensure!(!holder[key].is_null(), "scan says a new web pod gets {field}; the running one lacks it: {holder}");
        }
        Ok(())
    }
    .await;
    let result = result.with_context(|| logs_tail(NODE_LOGS));
    local.stop(&client).await?;
    result
}
