//! The install manifests (manifests/, charts/) checked against the code they
//! deploy: the ConfigMap carries config/default.yaml, the webhook registration
//! has the rules the server handles, and the webhook's own Deployment is
//! something secure-defaults itself has nothing to add to.
//!
//! `rendered_helm_matches_kustomize` compares the Helm chart with the
//! kustomize overlays object by object. It needs the renderings, made by
//! `hack/check-install.sh` (helm and kubectl are not part of `cargo test`),
//! so it is ignored unless that script runs it.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::api::core::v1::PodSpec;
use pretty_assertions::assert_eq;
use secure_defaults::config::{Config, DEFAULT_YAML};
use secure_defaults::engine::manifest;
use secure_defaults::engine::{Baseline, Policy};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every non-empty document of a YAML stream.
fn documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .enumerate()
        .map(|(i, d)| Value::deserialize(d).unwrap_or_else(|e| panic!("{origin} document {i}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(text: &str, origin: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{origin}: {e}"))
}

fn default_config() -> Value {
    yaml(DEFAULT_YAML, "config/default.yaml")
}

#[test]
fn configmap_config_is_config_default_yaml() {
    let base = read("manifests/base/config.yaml");
    assert_eq!(
        yaml(&base, "manifests/base/config.yaml"),
        default_config(),
        "manifests/base/config.yaml differs from config/default.yaml: copy it over"
    );
    assert_eq!(Config::from_yaml(&base, "base").unwrap(), Config::default());

    // ... and the kustomization puts exactly that file in the ConfigMap the Deployment mounts.
    let kustomization = yaml(&read("manifests/base/kustomization.yaml"), "kustomization");
    let generators = kustomization["configMapGenerator"].as_array().unwrap();
    assert_eq!(generators.len(), 1);
    assert_eq!(generators[0]["name"], "secure-defaults-config");
    assert_eq!(generators[0]["files"], serde_json::json!(["config.yaml"]));
}

#[test]
fn chart_default_config_is_config_default_yaml() {
    let values = yaml(&read("charts/secure-defaults/values.yaml"), "values.yaml");
    assert_eq!(
        values["config"],
        default_config(),
        "charts/secure-defaults/values.yaml `config` differs from config/default.yaml"
    );
    assert_eq!(values["configYaml"], "");
}

fn base_object(file: &str) -> Value {
    let docs = documents(&read(&format!("manifests/base/{file}")), file);
    assert_eq!(docs.len(), 1, "{file}");
    docs.into_iter().next().unwrap()
}

#[test]
fn webhook_registration_matches_what_the_server_handles() {
    let mwc: MutatingWebhookConfiguration =
        serde_json::from_value(base_object("mutatingwebhookconfiguration.yaml")).unwrap();
    assert_eq!(mwc.metadata.name.as_deref(), Some("secure-defaults"));
    let [hook, previews] = mwc.webhooks.as_deref().unwrap() else {
        panic!("two webhooks expected: pods, and workload previews")
    };
    assert_eq!(hook.name, "pods.secure-defaults.io");
    assert_eq!(hook.side_effects, "None");
    assert_eq!(hook.admission_review_versions, ["v1"]);
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.match_policy.as_deref(), Some("Equivalent"));
    assert_eq!(hook.reinvocation_policy.as_deref(), Some("IfNeeded"));
    assert_eq!(hook.timeout_seconds, Some(5));
    let service = hook.client_config.service.as_ref().unwrap();
    assert_eq!(
        (
            service.namespace.as_str(),
            service.name.as_str(),
            service.path.as_deref(),
            service.port
        ),
        ("secure-defaults", "secure-defaults", Some("/mutate"), Some(443))
    );
    assert!(hook.client_config.ca_bundle.is_none(), "the overlays add the caBundle");

    assert_eq!(
        serde_json::to_value(hook.rules.as_ref().unwrap()).unwrap(),
        serde_json::json!([
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
             "resources": ["pods"], "scope": "Namespaced"},
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
             "resources": ["pods/ephemeralcontainers"], "scope": "Namespaced"},
        ])
    );
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let selector = hook.namespace_selector.as_ref().unwrap();
    assert!(selector.match_labels.is_none());
    let exprs: Vec<(String, String, Vec<String>)> = selector
        .match_expressions
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.key.clone(), e.operator.clone(), e.values.clone().unwrap_or_default()))
        .collect();
    // No ignore-label term: the shipped configuration does not let namespaces
    // opt out (namespacePolicy.allowOptOut), and a label anyone who may edit a
    // namespace can set would exempt it all the same.
    assert!(!Config::default().namespace_policy.allow_opt_out);
    assert_eq!(
        exprs,
        [(
            "kubernetes.io/metadata.name".to_string(),
            "NotIn".to_string(),
            s(&["kube-system", "kube-node-lease", "kube-public", "secure-defaults"])
        )]
    );

    // `secure-defaults scan` treats the same namespaces as never sent.
    assert_eq!(exprs[0].2, s(&secure_defaults::policy::scan::EXCLUDED_NAMESPACES));

    // Previews: never block a rollout, never mutate, same namespaces and service.
    assert_eq!(previews.name, "workloads.secure-defaults.io");
    assert_eq!(previews.side_effects, "None");
    assert_eq!(previews.admission_review_versions, ["v1"]);
    assert_eq!(previews.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!(previews.reinvocation_policy.as_deref(), Some("Never"));
    assert!(previews.timeout_seconds.is_some_and(|t| t <= 5));
    assert_eq!(previews.client_config, hook.client_config);
    assert_eq!(previews.namespace_selector, hook.namespace_selector);
    assert_eq!(
        serde_json::to_value(previews.rules.as_ref().unwrap()).unwrap(),
        serde_json::json!([
            {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
             "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"], "scope": "Namespaced"},
            {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
             "resources": ["jobs", "cronjobs"], "scope": "Namespaced"},
        ])
    );
}

#[test]
fn own_deployment_gets_nothing_from_the_webhook_and_passes_restricted() {
    let deployment = base_object("deployment.yaml");
    // The default baseline, and the strictest one the config allows.
    let strict: Baseline = serde_yaml::from_str(
        "readOnlyRootFilesystem: true\nappArmorProfile: null\nsupplementalGroups: []\nrunAsUser: 65532\n",
    )
    .unwrap();
    for baseline in [Baseline::default(), strict] {
        let policy = Policy {
            baseline: &baseline,
            allow_opt_out: false,
            images: &secure_defaults::engine::ImageFacts::default(),
        };
        let h = manifest::harden_object(&deployment, policy).unwrap().unwrap();
        assert_eq!(h.patch.0, vec![], "the webhook's own pod lacks a baseline field");
        assert_eq!(h.hardening.report.remaining, vec![], "violates Pod Security restricted");
        assert_eq!(h.hardening.report.kept, vec![], "weaker than the baseline");
    }
}

#[test]
fn deployment_mounts_what_the_server_reads() {
    // The parts on their own: whether `spec` is optional differs between
    // k8s-openapi's Kubernetes versions.
    let d = base_object("deployment.yaml");
    let spec: DeploymentSpec = serde_json::from_value(d["spec"].clone()).unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod: PodSpec = serde_json::from_value(d["spec"]["template"]["spec"].clone()).unwrap();
    let [c] = pod.containers.as_slice() else {
        panic!("one container")
    };
    assert_eq!(
        c.args.clone().unwrap(),
        [
            "serve",
            "--tls-cert",
            "/tls/tls.crt",
            "--tls-key",
            "/tls/tls.key",
            "--config",
            "/config/config.yaml",
            "--log-format",
            "json",
            "--namespace-policy",
            // Not one thread per CPU of the node: see docs/install.md.
            "--workers",
            "2"
        ]
    );
    let ports: BTreeMap<String, i32> = c
        .ports
        .clone()
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        BTreeMap::from([("webhook".into(), 8443), ("admin".into(), 8080)])
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        (get.path.clone().unwrap(), serde_json::to_value(&get.port).unwrap())
    };
    assert_eq!(probe_path(&c.readiness_probe), ("/readyz".into(), "admin".into()));
    assert_eq!(probe_path(&c.liveness_probe), ("/healthz".into(), "admin".into()));

    let mounts: BTreeMap<String, String> = c
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.mount_path))
        .collect();
    assert_eq!(
        mounts,
        BTreeMap::from([("tls".into(), "/tls".into()), ("config".into(), "/config".into())])
    );
    let volumes = pod.volumes.unwrap();
    let secret = volumes
        .iter()
        .find(|v| v.name == "tls")
        .unwrap()
        .secret
        .clone()
        .unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("secure-defaults-tls"));
    assert_eq!(secret.default_mode, Some(0o440));
    let cm = volumes
        .iter()
        .find(|v| v.name == "config")
        .unwrap()
        .config_map
        .clone()
        .unwrap();
    assert_eq!(cm.name, "secure-defaults-config");

    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert!(pod.termination_grace_period_seconds.unwrap() > 10);
    assert!(pod.topology_spread_constraints.is_some() && pod.affinity.is_some());
    let resources = c.resources.clone().unwrap();
    assert!(resources.requests.unwrap().contains_key("memory"));
    assert!(resources.limits.unwrap().contains_key("memory"));
}

#[test]
fn deployment_args_are_what_serve_accepts_and_grace_outlasts_shutdown() {
    use clap::Parser;
    use secure_defaults::cli::{Cli, Command};
    let d = base_object("deployment.yaml");
    let args: Vec<String> =
        serde_json::from_value(d["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap();
    let cli = Cli::try_parse_from(std::iter::once("secure-defaults".to_string()).chain(args))
        .unwrap_or_else(|e| panic!("the Deployment's args are refused by `secure-defaults serve`: {e}"));
    let Command::Serve(serve) = cli.command else {
        panic!("the Deployment does not run `serve`")
    };
    assert_eq!(serve.tls_cert.as_deref(), Some(Path::new("/tls/tls.crt")));
    assert_eq!(serve.config.as_deref(), Some(Path::new("/config/config.yaml")));
    assert_eq!((serve.listen.port(), serve.admin_listen.port()), (8443, 8080));
    assert!(serve.namespace_policy, "the shipped webhook reads namespace policy");
    // The pod must outlive the server's shutdown: the delay while the endpoint
    // is removed, then the requests in flight.
    let grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    let shutdown = serve.shutdown_delay + serve.shutdown_timeout;
    assert!(
        std::time::Duration::from_secs(grace) > shutdown,
        "terminationGracePeriodSeconds {grace} <= shutdown delay + timeout {shutdown:?}"
    );
}

#[test]
fn namespace_enforces_restricted() {
    let ns = base_object("namespace.yaml");
    assert_eq!(ns["metadata"]["name"], "secure-defaults");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn rbac_reads_namespaces_only() {
    let docs = documents(&read("manifests/base/rbac.yaml"), "rbac.yaml");
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    assert_eq!(
        role["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}])
    );
    assert!(docs.iter().all(|d| d["kind"] != "Role"));
}

#[test]
fn network_policy_admits_the_webhook_port_and_only_the_scraper_to_admin() {
    let np = base_object("networkpolicy.yaml");
    let deployment = base_object("deployment.yaml");
    assert_eq!(np["metadata"]["namespace"], deployment["metadata"]["namespace"]);
    // It selects the webhook's pods, by the labels the Deployment's pods carry.
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = np["spec"]["podSelector"]["matchLabels"].as_object().unwrap();
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(&pod_labels[k], v, "podSelector {k}");
    }
    assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    // Port names exist on the container, with the ports serve listens on.
    let ports: BTreeMap<String, u64> = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports.get("webhook"), Some(&8443));
    assert_eq!(ports.get("admin"), Some(&8080));
    let rules = np["spec"]["ingress"].as_array().unwrap();
    let rule_for = |port: &str| {
        let found: Vec<&Value> = rules
            .iter()
            .filter(|r| r["ports"].as_array().unwrap().iter().any(|p| p["port"] == port))
            .collect();
        assert_eq!(found.len(), 1, "one rule for {port}");
        assert_eq!(
            found[0]["ports"].as_array().unwrap().len(),
            1,
            "{port} rule opens one port"
        );
        found[0].clone()
    };
    assert_eq!(rules.len(), 2, "only the two ports are open");
    // The API server's address varies by distribution: the webhook port is open to all.
    assert!(rule_for("webhook").get("from").is_none());
    // The admin port: only the metrics scraper's namespace.
    let admin = rule_for("admin");
    let from = admin["from"].as_array().expect("admin restricted");
    assert_eq!(from.len(), 1);
    assert_eq!(
        from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert!(from[0].get("ipBlock").is_none() && from[0].get("podSelector").is_none());
    // The chart's defaults are the same peers.
    let values = yaml(&read("charts/secure-defaults/values.yaml"), "values.yaml");
    assert_eq!(values["networkPolicy"]["enabled"], true);
    assert_eq!(values["networkPolicy"]["webhookFrom"], serde_json::json!([]));
    assert_eq!(&values["networkPolicy"]["metricsFrom"], &admin["from"]);
}

#[test]
fn kustomization_lists_every_file_in_base() {
    let kustomization = yaml(&read("manifests/base/kustomization.yaml"), "kustomization");
    let mut listed: Vec<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    listed.push("config.yaml".into());
    listed.push("kustomization.yaml".into());
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(repo("manifests/base"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(listed, present);
}

// ------------------------------------------------------------ Helm vs kustomize

/// The object as both tools should render it: without what only Helm adds
/// (its bookkeeping labels, the config checksum) and with kustomize's hashed
/// ConfigMap name and the config text compared as YAML.
fn normalise(mut v: Value) -> Value {
    fn strip_labels(meta: &mut Value) {
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            for k in [
                "helm.sh/chart",
                "app.kubernetes.io/managed-by",
                "app.kubernetes.io/version",
            ] {
                labels.remove(k);
            }
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove("checksum/config");
            if annotations.is_empty() {
                meta.as_object_mut().unwrap().remove("annotations");
            }
        }
    }
    fn unhash(name: &mut Value) {
        if let Some(s) = name.as_str() {
            if let Some((stem, hash)) = s.rsplit_once('-') {
                if stem.ends_with("-config") && hash.len() == 10 {
                    *name = Value::String(stem.to_string());
                }
            }
        }
    }
    strip_labels(&mut v["metadata"]);
    if v.pointer("/spec/template/metadata").is_some() {
        strip_labels(&mut v["spec"]["template"]["metadata"]);
        if let Some(volumes) = v
            .pointer_mut("/spec/template/spec/volumes")
            .and_then(Value::as_array_mut)
        {
            for vol in volumes {
                if let Some(name) = vol.pointer_mut("/configMap/name") {
                    unhash(name);
                }
            }
        }
    }
    if v["kind"] == "ConfigMap" {
        unhash(&mut v["metadata"]["name"]);
        if let Some(text) = v.pointer("/data/config.yaml").and_then(Value::as_str) {
            let parsed = yaml(text, "ConfigMap config.yaml");
            v["data"]["config.yaml"] = parsed;
        }
    }
    v
}

fn by_key(docs: Vec<Value>) -> BTreeMap<String, Value> {
    docs.into_iter()
        .filter(|d| d["kind"] != "Secret")
        .map(normalise)
        .map(|d| {
            let key = format!(
                "{} {}/{}",
                d["kind"].as_str().unwrap_or("?"),
                d["metadata"]["namespace"].as_str().unwrap_or(""),
                d["metadata"]["name"].as_str().unwrap_or("?")
            );
            (key, d)
        })
        .collect()
}

/// At least `min` objects in each rendering, the same set, equal one by one.
fn compare(dir: &Path, kustomize: &str, helm: &str, min: usize) {
    let k = by_key(documents(
        &std::fs::read_to_string(dir.join(kustomize)).unwrap(),
        kustomize,
    ));
    let h = by_key(documents(&std::fs::read_to_string(dir.join(helm)).unwrap(), helm));
    assert!(k.len() >= min, "{kustomize}: only {} objects", k.len());
    assert_eq!(
        k.keys().collect::<Vec<_>>(),
        h.keys().collect::<Vec<_>>(),
        "kinds/names: {kustomize} (left) vs {helm} (right)"
    );
    for (key, kv) in &k {
        assert_eq!(kv, &h[key], "{key}: {kustomize} (left) vs {helm} (right)");
    }
}

#[test]
#[ignore = "needs the renderings of hack/check-install.sh (SD_RENDERED_DIR)"]
fn rendered_helm_matches_kustomize() {
    let dir = PathBuf::from(std::env::var("SD_RENDERED_DIR").expect("SD_RENDERED_DIR: run hack/check-install.sh"));
    compare(&dir, "kustomize-plain.yaml", "helm-secret.yaml", 9);
    compare(&dir, "kustomize-cert-manager.yaml", "helm-cert-manager.yaml", 9);
    // Two policies and their bindings, nothing else.
    compare(&dir, "kustomize-native-policy.yaml", "helm-native-policy.yaml", 4);
}

#[test]
fn normalise_drops_only_what_helm_adds() {
    let helm = yaml(
        "kind: ConfigMap\nmetadata:\n  name: secure-defaults-config\n  labels: {app.kubernetes.io/name: x, helm.sh/chart: c}\ndata:\n  config.yaml: |\n    mode: enforce\n",
        "t",
    );
    let kustomize = yaml(
        "kind: ConfigMap\nmetadata:\n  name: secure-defaults-config-chfgmtcbct\n  labels: {app.kubernetes.io/name: x}\ndata:\n  config.yaml: |\n    # comment\n    mode:   enforce\n",
        "t",
    );
    assert_eq!(normalise(helm.clone()), normalise(kustomize));
    let other = yaml(
        "kind: ConfigMap\nmetadata:\n  name: secure-defaults-config\n  labels: {app.kubernetes.io/name: y}\ndata:\n  config.yaml: |\n    mode: enforce\n",
        "t",
    );
    assert_ne!(normalise(helm), normalise(other));
}

#[test]
fn certs_defaults_fit_the_manifests() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
        .arg("certs")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs = documents(&String::from_utf8(out.stdout).unwrap(), "certs output");
    let [secret, patch] = docs.as_slice() else {
        panic!(
            "certs prints the Secret and the caBundle patch, got {} documents",
            docs.len()
        )
    };
    let deployment = base_object("deployment.yaml");
    let volumes = deployment["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let tls = volumes.iter().find(|v| v["name"] == "tls").unwrap();
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], tls["secret"]["secretName"]);
    assert_eq!(secret["metadata"]["namespace"], deployment["metadata"]["namespace"]);
    let mwc = base_object("mutatingwebhookconfiguration.yaml");
    assert_eq!(patch["metadata"]["name"], mwc["metadata"]["name"]);
    assert_eq!(patch["webhooks"][0]["name"], mwc["webhooks"][0]["name"]);
    assert_eq!(patch["webhooks"][1]["name"], mwc["webhooks"][1]["name"]);
    let service = &mwc["webhooks"][0]["clientConfig"]["service"];
    assert_eq!(
        (
            service["name"].as_str().unwrap(),
            service["namespace"].as_str().unwrap()
        ),
        ("secure-defaults", "secure-defaults"),
        "certs' default --service/--namespace"
    );
}

/// config/default.yaml says where each baseline field goes (`# Pod level`,
/// `# Container level`); the README's baseline table says the same, from the
/// rules. The shipped copy is the same text, comments included.
#[test]
fn default_yaml_levels_match_the_readme() {
    assert_eq!(
        read("manifests/base/config.yaml"),
        DEFAULT_YAML,
        "manifests/base/config.yaml: copy config/default.yaml over"
    );
    let mut documented = BTreeMap::new();
    let mut level = None;
    for line in DEFAULT_YAML.lines() {
        let t = line.trim();
        if t.starts_with("# Pod level") {
            level = Some("pod");
        } else if t.starts_with("# Container level") {
            level = Some("container");
        } else if let (Some(l), Some(key)) = (level, line.strip_prefix("  ").and_then(|r| r.split_once(':'))) {
            documented.insert(key.0.trim().to_string(), l);
        } else if !line.starts_with(' ') && !t.is_empty() && !t.starts_with('#') && !t.starts_with("baseline:") {
            level = None;
        }
    }
    let readme = read("README.md");
    let mut compared = 0;
    for row in readme
        .lines()
        .filter(|l| l.starts_with("| pod |") || l.starts_with("| container |"))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let field = cells[2].trim_matches('`');
        if let Some(l) = documented.get(field) {
            assert_eq!(
                *l, cells[1],
                "{field}: config/default.yaml says {l}, the README {}",
                cells[1]
            );
            compared += 1;
        }
    }
    assert!(compared >= 9, "{compared} fields compared: {documented:?}");
}
