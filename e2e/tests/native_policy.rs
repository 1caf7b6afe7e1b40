//! Issue 17: the generated native policy (`secure-defaults policy`) against
//! the webhook, on the same real API server. Every pod of the corpus (the
//! golden fixtures' pods and pod templates, the upstream Pod Security
//! fixtures, and seeded generated pods) is created, as a server-side dry run,
//! in a namespace served by the webhook and in one served by the policy; the
//! stored pods must be equal field by field, and so must Pod Security's
//! verdicts in `restricted` namespaces. Sidecars injected by other mutators,
//! before ours (a MutatingAdmissionPolicy) and after ours (a webhook), are
//! part of the corpus, and so are `kubectl debug`'s ephemeral containers.

use anyhow::{bail, ensure, Context, Result};
use secure_defaults_e2e::injector::{Injector, SIDECAR};
use secure_defaults_e2e::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const WEBHOOK: &str = "np-webhook";
const POLICY: &str = "np-policy";
/// Dry-run creates in flight at once (2 cores, shared).
const CONCURRENCY: usize = 8;
/// Generated pods, beside the fixtures.
const GENERATED: usize = 520;
/// Pod label selecting which other mutator injects a sidecar.
const INJECT: &str = "e2e.secure-defaults.io/inject";

/// What legitimately differs between the two stored copies of one pod: the
/// namespace and what the API server makes up per object. The webhook adds
/// nothing to the object but its patch (its audit annotations go to the
/// audit log, not the pod). Everything else must be equal.
fn normalized(mut pod: Value) -> Value {
    if let Some(meta) = pod["metadata"].as_object_mut() {
        for key in [
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            meta.remove(key);
        }
    }
    // The ServiceAccount admission plugin names its token volume with a random suffix.
    let text = pod.to_string();
    let re_suffix = |s: &str| {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find("kube-api-access-") {
            let (head, tail) = rest.split_at(i + "kube-api-access-".len());
            out.push_str(head);
            out.push_str("XXXXX");
            rest = tail.get(5..).unwrap_or("");
        }
        out.push_str(rest);
        out
    };
    serde_json::from_str(&re_suffix(&text)).expect("normalized JSON")
}

/// One admission outcome, comparable across namespaces.
#[derive(Debug, PartialEq)]
enum Outcome {
    Stored(Value),
    Rejected { status: u16, message: String },
}

fn outcome(a: &Answer, ns: &str) -> Outcome {
    if a.ok() {
        Outcome::Stored(normalized(a.body.clone()))
    } else {
        Outcome::Rejected {
            status: a.status,
            message: a.message().replace(ns, "NAMESPACE"),
        }
    }
}

struct Setup {
    client: kube::Client,
    /// (webhook namespace, policy namespace) without Pod Security enforcement.
    open: (String, String),
    /// The same at Pod Security `restricted`.
    restricted: (String, String),
    cluster_objects: Vec<(String, String)>,
    _hook: Webhook,
    _injector: Injector,
}

/// What one comparison runs on: the configuration of both, the namespaces'
/// `secure-defaults.io/*` labels and annotations, other mutators or not.
struct Variant {
    config: &'static str,
    labels: Value,
    annotations: Value,
    injectors: bool,
}

const DEFAULT: Variant = Variant {
    config: "",
    labels: Value::Null,
    annotations: Value::Null,
    injectors: true,
};

async fn setup(variant: &Variant) -> Result<Setup> {
    let client = client().await;
    let env = Env::get();
    // Scenario labels of this setup alone: the tests run at the same time, and
    // one test's webhook, policy or injectors must not reach another's namespaces.
    let (webhook, policy) = (unique(WEBHOOK), unique(POLICY));
    let open = (
        namespace(&client, &webhook, "privileged").await?,
        namespace(&client, &policy, "privileged").await?,
    );
    let restricted = (
        namespace(&client, &webhook, "restricted").await?,
        namespace(&client, &policy, "restricted").await?,
    );
    let mut cluster_objects = Vec::new();
    let namespace_policy = !variant.labels.is_null() || !variant.annotations.is_null();
    if namespace_policy {
        let patch = json!({"metadata": {"labels": variant.labels, "annotations": variant.annotations}});
        for ns in [&open.0, &open.1, &restricted.0, &restricted.1] {
            let a = patch_ns(&client, ns, &patch).await?;
            ensure!(a.ok(), "labelling {ns}: {}", a.message());
        }
    }

    // The webhook, as shipped, for the WEBHOOK namespaces (started after the
    // namespaces are labelled: its first sync sees them).
    let args: &[&str] = if namespace_policy {
        &["--namespace-policy", "--namespace-sync-timeout", "10s"]
    } else {
        &[]
    };
    let hook = Webhook::start_with(variant.config, args).await?;
    let mwc_name = unique("np-sd");
    let mwc = webhook_configuration(&mwc_name, &hook.url(), &hook.tls.ca_pem, &webhook, "Fail")?;
    register(&client, &mwc, &open.0, true).await?;
    cluster_objects.push((
        "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations".into(),
        mwc_name,
    ));

    // The policy, as `secure-defaults policy` writes it, bound to the POLICY namespaces.
    let name = unique("np-sd");
    let config = tempfile::NamedTempFile::new()?;
    std::fs::write(config.path(), variant.config)?;
    let out = std::process::Command::new(&env.bin)
        .args(["policy", "--name", &name, "--config"])
        .arg(config.path())
        .output()
        .context("running secure-defaults policy")?;
    ensure!(out.status.success(), "policy: {}", String::from_utf8_lossy(&out.stderr));
    for doc in serde_yaml::Deserializer::from_str(std::str::from_utf8(&out.stdout)?) {
        let mut object: Value = serde::Deserialize::deserialize(doc)?;
        if object["kind"].as_str().is_some_and(|k| k.ends_with("Binding")) {
            // The shipped exclusions stay; the scenario label narrows it to this test.
            object["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] = json!({SCENARIO_LABEL: policy});
        }
        cluster_objects.push(apply_cluster_object(&client, &object).await?);
    }

    // Other mutators: a policy that runs before ours (MutatingAdmissionPolicy
    // plugin first, and its name sorts first) and a webhook that runs after
    // ours in both namespaces (webhook plugin after policies; name sorts last).
    let injector = Injector::start().await?;
    for object in injectors(&name, &injector, [&webhook, &policy])?
        .into_iter()
        .filter(|_| variant.injectors)
    {
        cluster_objects.push(apply_cluster_object(&client, &object).await?);
    }

    // Wait until the policy answers in its namespaces, and the webhook in its
    // own (with the namespace policy it refuses pods until its first sync).
    let probe = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "probe-"},
        "spec": {"containers": [{"name": "probe", "image": "registry.example.com/probe:1"}]}});
    for ns in [&open.1, &restricted.1, &open.0, &restricted.0] {
        wait_for(
            Duration::from_secs(60),
            "the policy and the webhook to be active",
            || async {
                let a = create(&client, ns, "pods", &probe, true).await.ok()?;
                // Not runAsNonRoot: a pod in a user namespace gets no IDs.
                (a.body["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] == json!(false))
                    .then_some(())
            },
        )
        .await?;
        // The deny policy takes effect on its own: wait for it to refuse a privileged pod.
        if variant.config.contains("privileged") {
            let mut privileged = probe.clone();
            privileged["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
            wait_for(Duration::from_secs(60), "the deny list to be active", || async {
                let a = create(&client, ns, "pods", &privileged, true).await.ok()?;
                (!a.ok()).then_some(())
            })
            .await?;
        }
    }
    Ok(Setup {
        client,
        open,
        restricted,
        cluster_objects,
        _hook: hook,
        _injector: injector,
    })
}

/// The two sidecar injectors, selected by the pod label [`INJECT`].
fn injectors(name: &str, injector: &Injector, scenarios: [&str; 2]) -> Result<Vec<Value>> {
    let selector = json!({"matchExpressions": [{"key": SCENARIO_LABEL, "operator": "In", "values": scenarios}]});
    let before = format!("aaa-{name}-inject");
    let after = format!("zzz-{name}-inject");
    use base64::Engine as _;
    Ok(vec![
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": before},
            "spec": {
                "failurePolicy": "Fail", "reinvocationPolicy": "IfNeeded",
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["pods"]}]},
                "matchConditions": [{"name": "asked", "expression":
                    format!("object.metadata.?labels[?'{INJECT}'].orValue('') == 'before'")}],
                "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": format!(
                    "object.spec.containers.exists(c, c.name == '{SIDECAR}') ? [] : \
                     [JSONPatch{{op: 'add', path: '/spec/containers/-', \
                     value: {{'name': '{SIDECAR}', 'image': 'registry.example.com/sidecar:1'}}}}]")}}]
            }
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": before},
            "spec": {"policyName": before, "matchResources": {"namespaceSelector": selector}}
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": after},
            "webhooks": [{
                "name": "inject.e2e.secure-defaults.io",
                "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
                "reinvocationPolicy": "IfNeeded", "timeoutSeconds": 5,
                "clientConfig": {"url": injector.url(),
                    "caBundle": base64::engine::general_purpose::STANDARD.encode(&injector.tls.ca_pem)},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
                "namespaceSelector": selector,
                "objectSelector": {"matchLabels": {INJECT: "after"}}
            }]
        }),
    ])
}

/// Create a cluster-scoped object; returns its collection path and name for cleanup.
async fn apply_cluster_object(client: &kube::Client, object: &Value) -> Result<(String, String)> {
    let plural = match object["kind"].as_str().unwrap_or_default() {
        "MutatingAdmissionPolicy" => "mutatingadmissionpolicies",
        "MutatingAdmissionPolicyBinding" => "mutatingadmissionpolicybindings",
        "ValidatingAdmissionPolicy" => "validatingadmissionpolicies",
        "ValidatingAdmissionPolicyBinding" => "validatingadmissionpolicybindings",
        "MutatingWebhookConfiguration" => "mutatingwebhookconfigurations",
        other => bail!("unexpected kind {other}"),
    };
    let collection = format!("/apis/{}/{plural}", object["apiVersion"].as_str().unwrap_or_default());
    let a = send(client, http::Method::POST, &collection, "application/json", object).await?;
    ensure!(a.ok(), "creating {collection}: {} {}", a.status, a.body);
    Ok((
        collection,
        object["metadata"]["name"].as_str().unwrap_or_default().to_string(),
    ))
}

async fn cleanup(s: &Setup) {
    for (collection, name) in s.cluster_objects.iter().rev() {
        let _ = send(
            &s.client,
            http::Method::DELETE,
            &format!("{collection}/{name}"),
            "application/json",
            &json!({}),
        )
        .await;
    }
}

/// The corpus: (origin, pod).
fn corpus() -> Result<Vec<(String, Value)>> {
    let env = Env::get();
    let mut pods = Vec::new();
    // The golden fixtures hardened with the default configuration, and the e2e's own workloads.
    let mut files: Vec<_> = std::fs::read_dir(env.repo.join("tests/fixtures/mutate"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy().to_string();
            n.ends_with(".yaml")
                && !n.ends_with(".out.yaml")
                && !n.ends_with(".config.yaml")
                && !p.with_file_name(n.replace(".yaml", ".config.yaml")).exists()
        })
        .collect();
    files.sort();
    files.push(env.repo.join("e2e/testdata/legacy-workloads.yaml"));
    files.push(env.repo.join("e2e/testdata/migration.yaml"));
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let Ok(v) = <Value as serde::Deserialize>::deserialize(doc) else {
                continue;
            };
            let origin = format!("{}#{i}", file.file_name().unwrap_or_default().to_string_lossy());
            collect_pods(&v, &origin, &mut pods);
        }
    }
    // The upstream Pod Security fixtures of the newest policy version.
    let dir = std::fs::read_dir(env.psa_testdata.join("restricted"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let minor: u32 = e.file_name().to_string_lossy().strip_prefix("v1.")?.parse().ok()?;
            Some((minor, e.path()))
        })
        .max()
        .map(|(_, p)| p)
        .context("no restricted/v1.N fixtures")?;
    for set in ["fail", "pass"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(set))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for f in files {
            let v: Value = serde_yaml::from_str(&std::fs::read_to_string(&f)?)?;
            if v["kind"] == "Pod" {
                pods.push((
                    format!("psa/{set}/{}", f.file_name().unwrap_or_default().to_string_lossy()),
                    v,
                ));
            }
        }
    }
    let fixtures = pods.len();
    pods.extend(generated(0x5ecd_efa1_7000_0017));
    // The API server's own decoding before admission: empty lists and
    // contexts, nulls.
    for (i, spec) in decoding_cases().into_iter().enumerate() {
        pods.push((
            format!("decoding/{i}"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": spec}),
        ));
    }
    println!(
        "corpus: {fixtures} fixture pods, {GENERATED} generated, {} decoding cases",
        pods.len() - fixtures - GENERATED
    );
    Ok(named(pods))
}

/// [`GENERATED`] pods from this seed.
fn generated(seed: u64) -> Vec<(String, Value)> {
    let mut g = Gen(seed);
    (0..GENERATED).map(|i| (format!("generated/{i}"), g.pod(i))).collect()
}

/// Unique names, and a sidecar from another mutator for every third pod.
fn named(mut pods: Vec<(String, Value)>) -> Vec<(String, Value)> {
    for (i, (_, pod)) in pods.iter_mut().enumerate() {
        pod["apiVersion"] = json!("v1");
        pod["kind"] = json!("Pod");
        let mut meta = pod["metadata"].take();
        if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
            m.remove("generateName");
        } else {
            meta = json!({});
        }
        meta["name"] = json!(format!("p{i}"));
        match i % 3 {
            1 => meta["labels"][INJECT] = json!("before"),
            2 => meta["labels"][INJECT] = json!("after"),
            _ => {}
        }
        pod["metadata"] = meta;
    }
    pods
}

/// A non-default configuration with namespace overrides and a deny list:
/// the policy's namespace-dependent values (`namespaceObject`) and its deny
/// policy against the webhook's namespace policy and deny list.
#[tokio::test]
async fn overrides_and_deny_list_match_the_webhook_too() -> Result<()> {
    let s = Arc::new(
        setup(&Variant {
            config: "baseline:\n  supplementalGroups: [2000]\n  fsGroupChangePolicy: Always\n\
                     deny: [privileged, hostNamespaces, hostPathVolumes, hostPorts, allowPrivilegeEscalation]\n",
            labels: json!({"secure-defaults.io/run-as-user": "1000", "secure-defaults.io/read-only-root-filesystem": "true",
                "secure-defaults.io/run-as-group": "0002000", "secure-defaults.io/identity": "userns"}),
            annotations: json!({"secure-defaults.io/fs-group": " 3000 ", "secure-defaults.io/run-as-user": "7", "secure-defaults.io/fs-group-typo": "+12",
                "secure-defaults.io/apparmor": "RuntimeDefault", "secure-defaults.io/mode": "off"}),
            injectors: false,
        })
        .await?,
    );
    let mut pods = generated(0x0017_0017_5eed_0002);
    pods.extend(
        decoding_cases()
            .into_iter()
            .map(|spec| ("decoding".to_string(), json!({"metadata": {}, "spec": spec}))),
    );
    let result = compare_corpus(&s, named(pods), false).await;
    cleanup(&s).await;
    result
}

/// `identity: userns` from the configuration, with explicit root kept on
/// the host and fsGroup beside a pinned user (the other way round from the
/// defaults the namespace override in the test above runs with): the
/// pod-level `hostUsers: false` decision and its fallbacks against the webhook's.
#[tokio::test]
async fn user_namespace_identity_matches_the_webhook_too() -> Result<()> {
    let s = Arc::new(
        setup(&Variant {
            config:
                "baseline:\n  identity: userns\n  userNamespaceForExplicitRoot: false\n  fsGroupBesideRunAsUser: true\n",
            labels: Value::Null,
            annotations: Value::Null,
            injectors: false,
        })
        .await?,
    );
    let result = compare_corpus(&s, named(generated(0x0019_0019_5eed_0003)), false).await;
    cleanup(&s).await;
    result
}

async fn patch_ns(client: &kube::Client, ns: &str, patch: &Value) -> Result<Answer> {
    patch_uri(client, &format!("/api/v1/namespaces/{ns}"), patch).await
}

async fn patch_uri(client: &kube::Client, uri: &str, body: &Value) -> Result<Answer> {
    send(client, http::Method::PATCH, uri, "application/merge-patch+json", body).await
}

/// Pods, List items, and the pod templates of workloads (as Pods).
fn collect_pods(v: &Value, origin: &str, out: &mut Vec<(String, Value)>) {
    match v["kind"].as_str().unwrap_or_default() {
        "Pod" => out.push((origin.into(), v.clone())),
        "List" => {
            for (i, item) in v["items"].as_array().into_iter().flatten().enumerate() {
                collect_pods(item, &format!("{origin}/{i}"), out);
            }
        }
        "CronJob" => collect_template(&v["spec"]["jobTemplate"]["spec"]["template"], origin, out),
        _ => collect_template(&v["spec"]["template"], origin, out),
    }
}

fn collect_template(t: &Value, origin: &str, out: &mut Vec<(String, Value)>) {
    if t["spec"].is_object() {
        out.push((
            format!("{origin}/template"),
            json!({"metadata": t.get("metadata").cloned().unwrap_or(json!({})), "spec": t["spec"]}),
        ));
    }
}

/// Inputs the API server changes while decoding, before any admission.
fn decoding_cases() -> Vec<Value> {
    let c = |sc: Value| json!({"containers": [{"name": "app", "image": "app:1", "securityContext": sc}]});
    vec![
        c(json!({"capabilities": {"drop": []}})),
        c(json!({"capabilities": {"drop": [], "add": []}})),
        c(json!({"capabilities": {}})),
        c(json!({})),
        c(json!({"windowsOptions": {}})),
        c(json!({"runAsUser": null, "allowPrivilegeEscalation": null})),
        json!({"securityContext": {"supplementalGroups": [], "sysctls": []}, "containers": [{"name": "a", "image": "a:1"}]}),
        json!({"securityContext": {}, "containers": [{"name": "a", "image": "a:1"}], "initContainers": []}),
    ]
}

/// A small seeded generator (xorshift64*): deterministic across runs.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// One of `options`, or nothing (absent) about half the time.
    fn maybe(&mut self, options: &[Value]) -> Option<Value> {
        (self.below(2) == 0).then(|| options[self.below(options.len() as u64) as usize].clone())
    }

    fn container(&mut self, name: String) -> Value {
        let mut sc = serde_json::Map::new();
        let mut put = |g: &mut Gen, key: &str, options: &[Value]| {
            if g.below(3) == 0 {
                if let Some(v) = g.maybe(options) {
                    sc.insert(key.into(), v);
                }
            }
        };
        put(self, "runAsUser", &[json!(0), json!(1000), json!(65532)]);
        put(self, "runAsNonRoot", &[json!(true), json!(false)]);
        put(self, "runAsGroup", &[json!(0), json!(3000)]);
        put(self, "privileged", &[json!(true), json!(false)]);
        put(self, "allowPrivilegeEscalation", &[json!(true), json!(false)]);
        put(self, "readOnlyRootFilesystem", &[json!(true), json!(false)]);
        put(
            self,
            "seccompProfile",
            &[
                json!({"type": "RuntimeDefault"}),
                json!({"type": "Unconfined"}),
                json!({"type": "Localhost", "localhostProfile": "p.json"}),
            ],
        );
        put(
            self,
            "capabilities",
            &[
                json!({}),
                json!({"drop": []}),
                json!({"drop": ["ALL"]}),
                json!({"drop": ["NET_RAW"]}),
                json!({"add": ["SYS_ADMIN"]}),
                json!({"add": ["cap_sys_admin"], "drop": ["ALL"]}),
                json!({"add": ["NET_BIND_SERVICE"]}),
            ],
        );
        put(
            self,
            "appArmorProfile",
            &[json!({"type": "RuntimeDefault"}), json!({"type": "Unconfined"})],
        );
        let mut c = json!({"name": name, "image": "registry.example.com/app:1"});
        match self.below(4) {
            0 => {}
            1 => c["securityContext"] = json!({}),
            _ => c["securityContext"] = Value::Object(sc),
        }
        if self.below(8) == 0 {
            c["ports"] = json!([{"containerPort": 8080, "hostPort": 8080}]);
        }
        c
    }

    fn pod(&mut self, i: usize) -> Value {
        let mut spec = json!({});
        let mut names = Vec::new();
        for (list, max) in [("initContainers", 2), ("containers", 3)] {
            let n = if list == "containers" {
                1 + self.below(max)
            } else {
                self.below(max + 1)
            };
            let cs: Vec<Value> = (0..n)
                .map(|k| {
                    let name = format!("{}{k}", &list[..4]);
                    names.push(name.clone());
                    self.container(name)
                })
                .collect();
            if !cs.is_empty() {
                spec[list] = json!(cs);
            }
        }
        let mut psc = serde_json::Map::new();
        for (key, options) in [
            ("runAsUser", vec![json!(0), json!(1000)]),
            ("runAsNonRoot", vec![json!(true), json!(false)]),
            ("runAsGroup", vec![json!(0), json!(2000)]),
            ("fsGroup", vec![json!(0), json!(2000)]),
            ("fsGroupChangePolicy", vec![json!("Always")]),
            ("supplementalGroups", vec![json!([]), json!([4000])]),
            (
                "seccompProfile",
                vec![json!({"type": "RuntimeDefault"}), json!({"type": "Unconfined"})],
            ),
            ("appArmorProfile", vec![json!({"type": "RuntimeDefault"})]),
        ] {
            if self.below(4) == 0 {
                if let Some(v) = self.maybe(&options) {
                    psc.insert(key.into(), v);
                }
            }
        }
        if !psc.is_empty() || self.below(4) == 0 {
            spec["securityContext"] = Value::Object(psc);
        }
        let mut annotations = serde_json::Map::new();
        let pick = |g: &mut Gen| names[g.below(names.len() as u64) as usize].clone();
        match self.below(16) {
            0 => _ = annotations.insert("secure-defaults.io/skip".into(), json!(" true ")),
            1 => _ = annotations.insert("secure-defaults.io/skip".into(), json!("false")),
            2 | 3 => {
                let fields = [
                    "runAsUser",
                    "capabilities",
                    "seccompProfile",
                    "fsGroup",
                    "runAsNonRoot",
                    "bogus",
                    "fsGroupChangePolicy",
                    "hostUsers",
                ];
                let chosen: Vec<&str> = fields.iter().copied().filter(|_| self.below(2) == 0).collect();
                annotations.insert("secure-defaults.io/skip-fields".into(), json!(chosen.join(" , ")));
            }
            4 => {
                _ = annotations.insert(
                    "seccomp.security.alpha.kubernetes.io/pod".into(),
                    json!("runtime/default"),
                )
            }
            5 => _ = annotations.insert("seccomp.security.alpha.kubernetes.io/pod".into(), json!("unconfined")),
            6 | 7 => {
                let value =
                    ["unconfined", "runtime/default", "docker/default", "localhost/p.json"][self.below(4) as usize];
                annotations.insert(
                    format!("container.seccomp.security.alpha.kubernetes.io/{}", pick(self)),
                    json!(value),
                );
            }
            8 => {
                let value = ["unconfined", "runtime/default"][self.below(2) as usize];
                annotations.insert(
                    format!("container.apparmor.security.beta.kubernetes.io/{}", pick(self)),
                    json!(value),
                );
            }
            _ => {}
        }
        match self.below(24) {
            0 => spec["os"] = json!({"name": "windows"}),
            1 => spec["os"] = json!({"name": "linux"}),
            2 => spec["nodeSelector"] = json!({"kubernetes.io/os": "windows"}),
            3 => {
                spec["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}]}}]}})
            }
            4 => spec["containers"][0]["securityContext"]["windowsOptions"] = json!({"runAsUserName": "ContainerUser"}),
            5 => spec["hostNetwork"] = json!(true),
            _ => {}
        }
        // What decides `identity: userns` (issue 19): the pod's own hostUsers,
        // what the API server refuses in a user namespace.
        match self.below(16) {
            0 => spec["hostUsers"] = json!(false),
            1 => spec["hostUsers"] = json!(true),
            2 => spec["hostPID"] = json!(true),
            3 => spec["hostIPC"] = json!(true),
            4 => {
                spec["volumes"] = json!([{"name": "block", "persistentVolumeClaim": {"claimName": "block"}}]);
                spec["containers"][0]["volumeDevices"] = json!([{"name": "block", "devicePath": "/dev/xvda"}]);
            }
            _ => {}
        }
        json!({"metadata": {"name": format!("g{i}"), "annotations": annotations}, "spec": spec})
    }
}

/// Create `pod` (dry run) in both namespaces of a pair; the two outcomes.
async fn both(client: &kube::Client, pair: &(String, String), pod: &Value) -> Result<(Outcome, Outcome)> {
    let (a, b) = tokio::try_join!(
        create(client, &pair.0, "pods", pod, true),
        create(client, &pair.1, "pods", pod, true)
    )?;
    Ok((outcome(&a, &pair.0), outcome(&b, &pair.1)))
}

#[tokio::test]
async fn the_policy_stores_the_same_pods_as_the_webhook() -> Result<()> {
    let s = Arc::new(setup(&DEFAULT).await?);
    let result = compare_corpus(&s, corpus()?, true).await;
    let ephemeral = if result.is_ok() {
        match ephemeral_containers(&s).await {
            Ok(()) => kept_values_are_warned(&s).await,
            e => e,
        }
    } else {
        Ok(())
    };
    cleanup(&s).await;
    result.and(ephemeral)
}

/// Every pod in both namespace pairs; `same_messages`: rejections must also
/// have the same status and message. Not with a deny list: the webhook
/// denies while mutating, before the API server's validation and Pod
/// Security, the deny policy while validating, after them; an invalid pod on
/// the deny list is a 403 from the webhook and a 422 on the policy's path.
/// Rejected must then still be rejected, admitted stored the same.
async fn compare_corpus(s: &Arc<Setup>, pods: Vec<(String, Value)>, same_messages: bool) -> Result<()> {
    let total = pods.len();
    let started = std::time::Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (origin, pod) in pods {
        let s = s.clone();
        let permit = limit.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let _permit = permit;
            let open = both(&s.client, &s.open, &pod).await?;
            let restricted = both(&s.client, &s.restricted, &pod).await?;
            anyhow::Ok((origin, pod, open, restricted))
        });
    }
    let mut differ = Vec::new();
    let (mut changed, mut admitted_restricted, mut rejected_restricted, mut rejected_open) = (0, 0, 0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (origin, pod, mut open, mut restricted) = joined??;
        if !same_messages {
            for o in [&mut open.0, &mut open.1, &mut restricted.0, &mut restricted.1] {
                if let Outcome::Rejected { message, status } = o {
                    message.clear();
                    *status = 0;
                }
            }
        }
        match &open.0 {
            Outcome::Stored(stored) if stored["spec"] != pod["spec"] => changed += 1,
            Outcome::Stored(_) => {}
            Outcome::Rejected { .. } => rejected_open += 1,
        }
        match &restricted.0 {
            Outcome::Stored(_) => admitted_restricted += 1,
            Outcome::Rejected { .. } => rejected_restricted += 1,
        }
        for (what, (webhook, policy)) in [("stored", open), ("restricted", restricted)] {
            if webhook != policy {
                differ.push(format!(
                    "{origin} ({what}):\n  webhook: {webhook:?}\n  policy:  {policy:?}"
                ));
            }
        }
    }
    println!(
        "{total} pods in {:?}: {changed} changed by admission, {rejected_open} rejected without Pod Security, \
         restricted: {admitted_restricted} admitted, {rejected_restricted} rejected",
        started.elapsed()
    );
    ensure!(
        differ.is_empty(),
        "{} of {total} pods differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    // Not vacuous: many pods were hardened, and both verdicts occur.
    // (The deny list rejects most generated pods: count among those admitted.)
    ensure!(
        changed > (total - rejected_open) / 3,
        "only {changed} of {total} pods were changed: is anything bound?"
    );
    ensure!(
        admitted_restricted > 20 && rejected_restricted > 20,
        "restricted verdicts too one-sided"
    );
    ensure!(total >= 500, "corpus too small: {total}");
    Ok(())
}

/// The warning policy: an explicit weak value is kept and said, once.
async fn kept_values_are_warned(s: &Setup) -> Result<()> {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1",
            "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": true}}]}});
    let a = create(&s.client, &s.open.1, "pods", &pod, true).await?;
    ensure!(a.ok(), "{}", a.message());
    let ours: Vec<&String> = a.warnings.iter().filter(|w| w.contains("secure-defaults:")).collect();
    ensure!(
        ours.len() == 2
            && ours.iter().any(|w| w.contains("runAsUser kept"))
            && ours.iter().any(|w| w.contains("allowPrivilegeEscalation kept")),
        "expected the policy's two warnings, got {:?}",
        a.warnings
    );
    Ok(())
}

/// `kubectl debug`: real pods, then an ephemeral container added through the
/// subresource, twice; only the new one is hardened, identically.
async fn ephemeral_containers(s: &Setup) -> Result<()> {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug-target"},
        "spec": {"securityContext": {"runAsNonRoot": true},
                 "containers": [{"name": "app", "image": "registry.example.com/app:1"}]}});
    let mut stored = Vec::new();
    for ns in [&s.open.0, &s.open.1] {
        let a = create(&s.client, ns, "pods", &pod, false).await?;
        ensure!(a.ok(), "create in {ns}: {}", a.message());
        let uri = format!("/api/v1/namespaces/{ns}/pods/debug-target/ephemeralcontainers");
        for (name, sc) in [("debug", json!(null)), ("debug-root", json!({"runAsUser": 0}))] {
            let mut c = json!({"name": name, "image": "registry.example.com/debug:1", "targetContainerName": "app"});
            if !sc.is_null() {
                c["securityContext"] = sc;
            }
            let patch = json!([{"op": "add", "path": "/spec/ephemeralContainers/-", "value": c}]);
            let first = name == "debug";
            let patch = if first {
                json!([{"op": "add", "path": "/spec/ephemeralContainers", "value": [c]}])
            } else {
                patch
            };
            let a = send(
                &s.client,
                http::Method::PATCH,
                &uri,
                "application/json-patch+json",
                &patch,
            )
            .await?;
            ensure!(a.ok(), "ephemeral {name} in {ns}: {} {}", a.status, a.message());
        }
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(s.client.clone(), ns);
        let pod = serde_json::to_value(api.get("debug-target").await?)?;
        stored.push(normalized(pod)["spec"].clone());
    }
    ensure!(
        stored[0] == stored[1],
        "ephemeral containers differ:\n webhook: {}\n policy:  {}",
        stored[0],
        stored[1]
    );
    // Hardened, and no uid: the pod's `runAsNonRoot: true` runs the image's user (ImageUser).
    let debug = &stored[1]["ephemeralContainers"][0]["securityContext"];
    ensure!(
        debug["allowPrivilegeEscalation"] == json!(false) && debug["runAsUser"].is_null(),
        "debug not hardened as the engine does: {debug}"
    );
    Ok(())
}

/// `make bench` (bench/native_policy.sh), not `make test`: pod-create latency
/// (server-side dry run) on one API server in three namespaces, with no
/// mutation, with the policy and with the webhook; sequential and with 16
/// concurrent clients; p50 and p99 on the client, and the API server's own
/// admission metrics (mean per call, from the histograms' sums and counts).
#[tokio::test]
#[ignore = "a benchmark: bench/native_policy.sh"]
async fn bench_pod_create_latency() -> Result<()> {
    let s = Arc::new(
        setup(&Variant {
            injectors: false,
            ..DEFAULT
        })
        .await?,
    );
    let none = namespace(&s.client, "np-none", "privileged").await?;
    let result = bench(&s, &none).await;
    cleanup(&s).await;
    result
}

fn bench_pod() -> Value {
    // A legacy pod as charts write them: nothing about security, an init
    // container, two containers, the usual env, ports and resources.
    let c = |name: &str| {
        json!({"name": name, "image": format!("registry.example.com/{name}:1.2.3"),
            "ports": [{"containerPort": 8080, "name": "http"}],
            "env": [{"name": "MODE", "value": "production"}, {"name": "LOG_LEVEL", "value": "info"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}})
    };
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "bench-", "labels": {"app": "bench"}},
        "spec": {"initContainers": [c("migrate")], "containers": [c("app"), c("proxy")]}})
}

async fn bench(s: &Arc<Setup>, none: &str) -> Result<()> {
    let seq: usize = std::env::var("BENCH_SEQUENTIAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let conc: usize = std::env::var("BENCH_CONCURRENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1600);
    let clients = 16;
    let pod = Arc::new(bench_pod());
    let namespaces = [
        ("none", none.to_string()),
        ("policy", s.open.1.clone()),
        ("webhook", s.open.0.clone()),
    ];
    // Warm-up: connections, caches, the webhook's first TLS handshakes.
    for (_, ns) in &namespaces {
        for _ in 0..50 {
            let a = create(&s.client, ns, "pods", &pod, true).await?;
            ensure!(a.ok(), "{ns}: {}", a.message());
        }
    }
    let mut rows = Vec::new();
    for (mode, n, parallel) in [("sequential", seq, 1), ("16 clients", conc, clients)] {
        for (what, ns) in &namespaces {
            let before = metrics(&s.client).await?;
            let started = std::time::Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..parallel {
                let (client, ns, pod) = (s.client.clone(), ns.clone(), pod.clone());
                tasks.spawn(async move {
                    let mut times = Vec::with_capacity(n / parallel);
                    for _ in 0..n / parallel {
                        let t = std::time::Instant::now();
                        let a = create(&client, &ns, "pods", &pod, true).await?;
                        times.push(t.elapsed().as_secs_f64() * 1e3);
                        ensure!(a.ok(), "{ns}: {}", a.message());
                    }
                    anyhow::Ok(times)
                });
            }
            let mut times = Vec::new();
            while let Some(t) = tasks.join_next().await {
                times.extend(t??);
            }
            let wall = started.elapsed().as_secs_f64();
            let after = metrics(&s.client).await?;
            times.sort_by(|a, b| a.total_cmp(b));
            let pct = |p: f64| times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
            let mean = |family: &str, filter: &str| {
                let d = |suffix: &str| sum_of(&after, family, suffix, filter) - sum_of(&before, family, suffix, filter);
                let count = d("_count");
                if count > 0.0 {
                    format!("{:.3} ms ×{:.1}", d("_sum") / count * 1e3, count / times.len() as f64)
                } else {
                    "–".into()
                }
            };
            rows.push(format!(
                "| {mode} | {what} | {} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {} |",
                times.len(),
                pct(0.50),
                pct(0.99),
                times.len() as f64 / wall,
                mean(
                    "apiserver_request_duration_seconds",
                    "resource=\"pods\",scope=\"resource\",subresource=\"\",verb=\"POST\""
                ),
                mean("apiserver_admission_step_admission_duration_seconds", "type=\"admit\""),
                mean("apiserver_mutating_admission_policy_check_duration_seconds", ""),
                mean(
                    "apiserver_admission_webhook_admission_duration_seconds",
                    "type=\"admit\""
                ),
            ));
        }
    }
    println!(
        "| clients | mutation | pods | p50 ms | p99 ms | pods/s | API server: POST pods (mean, calls/pod) | admit step | MutatingAdmissionPolicy check | webhook call |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

async fn metrics(client: &kube::Client) -> Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

/// The sum of a histogram's `_sum` or `_count` series whose labels contain `filter`.
fn sum_of(text: &str, family: &str, suffix: &str, filter: &str) -> f64 {
    let name = format!("{family}{suffix}");
    text.lines()
        .filter(|l| l.starts_with(&name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(filter))
        .filter(|l| l.contains("resource=\"pods\"") || !l.contains("resource="))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
