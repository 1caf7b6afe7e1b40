//! Harness for the end-to-end suite: a real control plane (started by
//! `e2e/run.sh`), `secure-defaults serve` as a local process, and helpers
//! that read like the scenarios they serve.
//!
//! Every scenario works in namespaces of its own and registers its own
//! webhook configurations, whose namespaceSelector matches only those
//! namespaces, so scenarios run in parallel without seeing each other.

#![forbid(unsafe_code)]

pub mod injector;
pub mod node;
pub mod oracle;

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The label each scenario's namespaces carry; webhooks select on it.
pub const SCENARIO_LABEL: &str = "e2e.secure-defaults.io/scenario";

/// What `e2e/run.sh` hands the tests.
pub struct Env {
    pub kubeconfig: PathBuf,
    /// The `secure-defaults` binary under test.
    pub bin: PathBuf,
    pub repo: PathBuf,
    /// `test/testdata` of k8s.io/pod-security-admission at the control plane's version.
    pub psa_testdata: PathBuf,
}

impl Env {
    pub fn get() -> Env {
        let var = |name: &str| {
            std::env::var_os(name).map(PathBuf::from).unwrap_or_else(|| {
                panic!("{name} is not set: run the end-to-end suite with `make e2e`, which starts a real control plane")
            })
        };
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repo root")
            .to_path_buf();
        Env {
            kubeconfig: var("KUBECONFIG"),
            bin: var("SECURE_DEFAULTS_BIN"),
            repo,
            psa_testdata: var("PSA_TESTDATA"),
        }
    }
}

/// A client for the admin kubeconfig. One per test: a client belongs to the
/// runtime it was made on.
pub async fn client() -> Client {
    let env = Env::get();
    let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// A unique, DNS-safe name with this prefix.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 10000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Create a namespace for `scenario`, at this Pod Security enforce level.
pub async fn namespace(client: &Client, scenario: &str, enforce: &str) -> Result<String> {
    let name = unique(scenario);
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                SCENARIO_LABEL: scenario,
                "pod-security.kubernetes.io/enforce": enforce,
                "pod-security.kubernetes.io/enforce-version": "latest",
            }
        }
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    // Pods need the namespace's default ServiceAccount, made by the controller manager.
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), &name);
    wait_for(Duration::from_secs(30), "default ServiceAccount", || async {
        sa.get_opt("default").await.ok().flatten()
    })
    .await?;
    Ok(name)
}

/// Poll `f` until it returns `Some`, at most `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A serving certificate for 127.0.0.1, signed by a CA of its own.
pub struct Tls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Tls {
    pub fn for_loopback() -> Tls {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "secure-defaults e2e CA");
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let key = KeyPair::generate().expect("key");
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        leaf.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let cert = leaf.signed_by(&key, &issuer).expect("leaf");
        Tls {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// `secure-defaults serve` as a local process on loopback.
pub struct Webhook {
    child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub tls: Tls,
    dir: tempfile::TempDir,
    /// Further `serve` flags, e.g. `--namespace-policy`.
    args: Vec<String>,
}

impl Webhook {
    /// Start with this configuration (YAML) and wait until `/readyz` answers.
    pub async fn start(config: &str) -> Result<Webhook> {
        Webhook::start_with(config, &[]).await
    }

    /// [`Webhook::start`] with further `serve` flags.
    pub async fn start_with(config: &str, args: &[&str]) -> Result<Webhook> {
        let dir = tempfile::tempdir()?;
        let tls = Tls::for_loopback();
        std::fs::write(dir.path().join("tls.crt"), &tls.cert_pem)?;
        std::fs::write(dir.path().join("tls.key"), &tls.key_pem)?;
        std::fs::write(dir.path().join("config.yaml"), config)?;
        let mut w = Webhook {
            child: None,
            port: free_port(),
            admin_port: free_port(),
            tls,
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        w.spawn().await?;
        Ok(w)
    }

    async fn spawn(&mut self) -> Result<()> {
        let env = Env::get();
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("webhook.log"))?;
        let child = Command::new(&env.bin)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", self.admin_port))
            .arg("--tls-cert")
            .arg(d.join("tls.crt"))
            .arg("--tls-key")
            .arg(d.join("tls.key"))
            .arg("--config")
            .arg(d.join("config.yaml"))
            .arg("--shutdown-delay")
            .arg("0s")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", env.bin.display()))?;
        self.child = Some(child);
        let url = format!("http://127.0.0.1:{}/readyz", self.admin_port);
        wait_for(Duration::from_secs(20), "webhook /readyz", || async {
            let ok = tokio::task::spawn_blocking({
                let url = url.clone();
                move || http_get_ok(&url)
            })
            .await
            .unwrap_or(false);
            ok.then_some(())
        })
        .await
        .with_context(|| format!("webhook log:\n{}", self.log()))
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/mutate", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("webhook.log")).unwrap_or_default()
    }

    /// Kill the process (as a crash would) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same ports with the same certificate.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn().await
    }

    /// The admin port's `/metrics` text.
    pub fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.admin_port)).unwrap_or_default()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain-HTTP GET on loopback without pulling in an HTTP client.
fn http_get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/')?;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn http_get_ok(url: &str) -> bool {
    http_get(url).is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

/// The webhook of `manifests/` (the one we ship), pointed at a local URL and
/// narrowed to the namespaces of one scenario.
pub fn webhook_configuration(
    name: &str,
    url: &str,
    ca_pem: &str,
    scenario: &str,
    failure_policy: &str,
) -> Result<MutatingWebhookConfiguration> {
    let mut mwc = shipped_webhook_configuration()?;
    mwc["metadata"] = json!({"name": name});
    let hooks = mwc["webhooks"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("shipped configuration has no webhooks"))?;
    use base64::Engine as _;
    for hook in hooks {
        hook["clientConfig"] =
            json!({"url": url, "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem)});
        // The shipped exclusions stay; the scenario label narrows it to this scenario.
        hook["namespaceSelector"]["matchLabels"] = json!({SCENARIO_LABEL: scenario});
        hook["failurePolicy"] = json!(failure_policy);
    }
    Ok(serde_json::from_value(mwc)?)
}

/// The MutatingWebhookConfiguration in `manifests/base`, as JSON.
pub fn shipped_webhook_configuration() -> Result<Value> {
    let dir = Env::get().repo.join("manifests/base");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path)?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v: Value = serde::Deserialize::deserialize(doc)?;
                if v["kind"] == "MutatingWebhookConfiguration" {
                    return Ok(v);
                }
            }
        }
    }
    bail!("no MutatingWebhookConfiguration in {}", dir.display())
}

/// Register a webhook configuration and wait until the API server calls it:
/// `probe_ns` is a namespace it selects; a dry-run pod there must come back
/// changed (or, with `expect_patch` false, with a warning from us). The
/// probe is a bare pod, admitted once hardened even under `restricted`.
pub async fn register(
    client: &Client,
    mwc: &MutatingWebhookConfiguration,
    probe_ns: &str,
    expect_patch: bool,
) -> Result<()> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    api.create(&PostParams::default(), mwc).await?;
    let probe = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "probe-"},
        "spec": {"containers": [{"name": "probe", "image": "registry.example.com/probe:1"}]}
    });
    wait_for(
        Duration::from_secs(30),
        "the API server to call the webhook",
        || async {
            let r = create(client, probe_ns, "pods", &probe, true).await.ok()?;
            let called = if expect_patch {
                // `identity: uid` adds runAsNonRoot, `identity: userns` hostUsers.
                r.body["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] == json!(true)
                    || r.body["spec"]["hostUsers"] == json!(false)
            } else {
                r.warnings.iter().any(|w| w.starts_with("secure-defaults:"))
            };
            called.then_some(())
        },
    )
    .await
}

pub async fn unregister(client: &Client, name: &str) -> Result<()> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    api.delete(name, &DeleteParams::default()).await?;
    Ok(())
}

/// An API answer with the parts the typed client hides: status and warnings.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// `Warning` headers, decoded.
    pub warnings: Vec<String>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `message` of a Status answer.
    pub fn message(&self) -> String {
        self.body["message"].as_str().unwrap_or_default().to_string()
    }
}

/// POST an object of `resource` (for example `pods`) into `ns`, optionally as a server-side dry run.
pub async fn create(client: &Client, ns: &str, resource: &str, body: &Value, dry_run: bool) -> Result<Answer> {
    let group = api_path(body);
    let mut uri = format!("{group}/namespaces/{ns}/{resource}");
    if dry_run {
        uri.push_str("?dryRun=All");
    }
    send(client, http::Method::POST, &uri, "application/json", body).await
}

/// PATCH (strategic merge, or JSON merge / JSON patch by content type) a path under the API.
pub async fn patch(client: &Client, uri: &str, content_type: &str, body: &Value) -> Result<Answer> {
    send(client, http::Method::PATCH, uri, content_type, body).await
}

pub async fn send(
    client: &Client,
    method: http::Method,
    uri: &str,
    content_type: &str,
    body: &Value,
) -> Result<Answer> {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(body)?))?;
    let res = client.send(req).await?;
    let status = res.status().as_u16();
    let warnings = res
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(decode_warning)
        .collect();
    let bytes = res.into_body().collect_bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok(Answer { status, body, warnings })
}

fn api_path(object: &Value) -> String {
    match object["apiVersion"].as_str().unwrap_or("v1") {
        "v1" => "/api/v1".to_string(),
        gv => format!("/apis/{gv}"),
    }
}

/// `299 - "text"` → `text`.
fn decode_warning(h: &str) -> String {
    let text = h.splitn(3, ' ').nth(2).unwrap_or(h);
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    text.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// The pods in `ns`, once there are at least `n`.
pub async fn pods(client: &Client, ns: &str, n: usize) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(Duration::from_secs(60), &format!("{n} pods in {ns}"), || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        (list.items.len() >= n).then_some(list.items)
    })
    .await
}

/// Assert that a pod (as JSON) carries the default baseline on every
/// container: the identity on each container (the webhook never puts it at
/// pod level), the rest where the baseline puts it.
pub fn assert_hardened(pod: &Value) {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let sc = &pod["spec"]["securityContext"];
    assert_eq!(sc["fsGroup"], json!(65532), "{name}: fsGroup in {sc}");
    assert_eq!(
        sc["seccompProfile"]["type"],
        json!("RuntimeDefault"),
        "{name}: seccompProfile in {sc}"
    );
    for kind in ["initContainers", "containers", "ephemeralContainers"] {
        for c in pod["spec"][kind].as_array().into_iter().flatten() {
            let csc = &c["securityContext"];
            for (field, value) in [
                ("runAsNonRoot", json!(true)),
                ("runAsUser", json!(65532)),
                ("runAsGroup", json!(65532)),
            ] {
                assert_eq!(csc[field], value, "{name}/{}: {field} in {csc}", c["name"]);
            }
            assert_eq!(
                csc["allowPrivilegeEscalation"],
                json!(false),
                "{name}/{}: {csc}",
                c["name"]
            );
            assert_eq!(
                csc["capabilities"]["drop"],
                json!(["ALL"]),
                "{name}/{}: {csc}",
                c["name"]
            );
        }
    }
}

/// The shipped default configuration, with `mode` changed.
pub fn config(mode: &str) -> String {
    format!("mode: {mode}\n")
}
