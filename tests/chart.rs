//! The Helm chart against the code it deploys: its values schema is the
//! configuration's (generated from `Config`), every configuration example in
//! the README and docs/ renders, and each chart toggle renders what it says.
//!
//! The tests that run helm are ignored unless `hack/check-install.sh` (part of
//! `make e2e`, so of `make test`) runs them with `SD_HELM`, the helm binary of
//! `hack/tools/helm.sh`:
//! `SD_HELM=$(hack/tools/helm.sh --print-path) cargo test --test chart -- --include-ignored`.

use pretty_assertions::assert_eq;
use secure_defaults::config::schema::config_schema;
use secure_defaults::config::{Config, DEFAULT_YAML};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const SCHEMA: &str = "charts/secure-defaults/values.schema.json";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The chart's schema with `properties.config` as generated now.
fn regenerated_schema() -> Value {
    let mut schema: Value = serde_json::from_str(&read(SCHEMA)).unwrap();
    schema["properties"]["config"] = config_schema();
    schema
}

#[test]
fn values_schema_config_is_generated_from_config() {
    let expected = regenerated_schema();
    let text = serde_json::to_string_pretty(&expected).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(repo(SCHEMA), &text).unwrap();
    }
    assert_eq!(
        read(SCHEMA),
        text,
        "{SCHEMA} is not the configuration's schema: run `make schema` and review the diff"
    );
}

/// The fenced ```yaml blocks of a Markdown file.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed == "```yaml" => current = Some((line.len() - trimmed.len(), String::new())),
            None => {}
            Some(_) if trimmed == "```" => blocks.push(current.take().unwrap().1),
            Some((indent, text)) => {
                text.push_str(line.get(*indent..).unwrap_or("").trim_end());
                text.push('\n');
            }
        }
    }
    blocks
}

/// A block is a configuration example when its top-level keys are all
/// configuration keys; a chart values example when it has a `config` key or
/// only chart values keys.
#[derive(Debug, PartialEq)]
enum Example {
    Config(Value),
    Values(Value),
    Other,
}

fn classify(block: &str) -> Example {
    let Ok(value) = serde_yaml::from_str::<Value>(block) else {
        return Example::Other;
    };
    let Some(map) = value.as_object() else {
        return Example::Other;
    };
    let config_keys = config_schema()["properties"].as_object().unwrap().clone();
    let values_keys = regenerated_schema()["properties"].as_object().unwrap().clone();
    if !map.is_empty() && map.keys().all(|k| config_keys.contains_key(k)) {
        Example::Config(value)
    } else if !map.is_empty() && map.keys().all(|k| values_keys.contains_key(k)) && !map.contains_key("kind") {
        Example::Values(value)
    } else {
        Example::Other
    }
}

/// Every configuration and chart values example in README.md and docs/.
fn documented_examples() -> Vec<(String, Example)> {
    let mut files = vec![repo("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(repo("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut examples = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, block) in yaml_blocks(&text).iter().enumerate() {
            let name = format!("{} block {i}", file.file_name().unwrap().to_string_lossy());
            match classify(block) {
                Example::Other => {}
                example => examples.push((name, example)),
            }
        }
    }
    examples.push((
        "config/default.yaml".into(),
        Example::Config(serde_yaml::from_str(DEFAULT_YAML).unwrap()),
    ));
    examples
}

#[test]
fn examples_are_found() {
    let blocks =
        yaml_blocks("a\n```yaml\nmode: audit\n```\n  ```yaml\n  deny: [privileged]\n  ```\n```console\nx\n```\n");
    assert_eq!(blocks, ["mode: audit\n", "deny: [privileged]\n"]);
    assert_eq!(classify("mode: audit\n"), Example::Config(json!({"mode": "audit"})));
    assert_eq!(
        classify("replicaCount: 3\n"),
        Example::Values(json!({"replicaCount": 3}))
    );
    assert_eq!(classify("apiVersion: v1\nkind: Pod\n"), Example::Other);
    let found = documented_examples();
    let configs = found.iter().filter(|(_, e)| matches!(e, Example::Config(_))).count();
    // README's Configuration section, docs/namespace-policy.md, config/default.yaml at least.
    assert!(configs >= 3, "{found:?}");
    // docs/install.md's --client-ca values at least.
    let values = found.iter().filter(|(_, e)| matches!(e, Example::Values(_))).count();
    assert!(values >= 1, "{found:?}");
}

/// Every documented configuration is one the webhook loads.
#[test]
fn documented_configurations_load() {
    for (name, example) in documented_examples() {
        if let Example::Config(value) = example {
            Config::from_yaml(&value.to_string(), &name).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

// ------------------------------------------------------------------ helm

fn helm() -> PathBuf {
    PathBuf::from(std::env::var("SD_HELM").expect("SD_HELM: the helm of hack/tools/helm.sh --print-path"))
}

/// `helm template` with these values: the rendered documents, or helm's error.
fn template(values: &Value) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, serde_yaml::to_string(values).unwrap()).unwrap();
    let out = Command::new(helm())
        .args(["template", "secure-defaults"])
        .arg(repo("charts/secure-defaults"))
        .args(["--namespace", "secure-defaults", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect())
}

fn rendered(values: Value) -> Vec<Value> {
    template(&values).unwrap_or_else(|e| panic!("helm template {values}: {e}"))
}

fn object<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn has_kind(docs: &[Value], kind: &str) -> bool {
    docs.iter().any(|d| d["kind"] == kind)
}

#[test]
#[ignore = "needs helm (SD_HELM): hack/check-install.sh runs it"]
fn documented_examples_pass_helm_template() {
    for (name, example) in documented_examples() {
        let values = match example {
            Example::Config(config) => json!({ "config": config }),
            Example::Values(values) => values,
            Example::Other => continue,
        };
        let docs = template(&values).unwrap_or_else(|e| panic!("{name}: helm template refused it: {e}"));
        // ... and the ConfigMap it renders is a configuration the webhook loads.
        let config = object(&docs, "ConfigMap")["data"]["config.yaml"].as_str().unwrap();
        Config::from_yaml(config, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The schema refuses what the webhook refuses, with the field named.
#[test]
#[ignore = "needs helm (SD_HELM): hack/check-install.sh runs it"]
fn schema_refuses_invalid_configuration() {
    let cases = [
        (
            json!({"config": {"namespacePolicy": {"allowOptout": true}}}),
            "allowOptout",
        ),
        (json!({"config": {"deny": ["hostProbes"]}}), "deny"),
        (json!({"config": {"baseline": {"runAsUser": 0}}}), "runAsUser"),
        (
            json!({"config": {"baseline": {"allowPrivilegeEscalation": true}}}),
            "allowPrivilegeEscalation",
        ),
        (json!({"config": {"mode": "warn"}}), "mode"),
    ];
    for (values, field) in cases {
        let err = template(&values).expect_err(&values.to_string());
        assert!(err.contains(field), "{values}: {err}");
        let config = values["config"].to_string();
        assert!(
            Config::from_yaml(&config, "t").is_err(),
            "{config} loads but the chart refuses it"
        );
    }
}

/// The namespaceSelector terms of each webhook, by key.
fn selector_keys(docs: &[Value]) -> Vec<Vec<String>> {
    object(docs, "MutatingWebhookConfiguration")["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            w["namespaceSelector"]["matchExpressions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["key"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// The ignore label is a namespace exempting itself: honoured only where the
/// operator lets namespaces opt out, whichever way the configuration is given.
#[test]
#[ignore = "needs helm (SD_HELM): hack/check-install.sh runs it"]
fn ignore_label_only_with_allow_opt_out() {
    let name = "kubernetes.io/metadata.name".to_string();
    let ignore = "secure-defaults.io/ignore".to_string();
    let cases = [
        (json!({}), false),
        (json!({"config": {"namespacePolicy": {"allowOptOut": false}}}), false),
        (json!({"config": {"namespacePolicy": {"allowOptOut": true}}}), true),
        (json!({"configYaml": "namespacePolicy:\n  allowOptOut: true\n"}), true),
        (json!({"configYaml": "mode: audit\n"}), false),
    ];
    for (values, honoured) in cases {
        let keys = selector_keys(&rendered(values.clone()));
        let expected = if honoured {
            vec![name.clone(), ignore.clone()]
        } else {
            vec![name.clone()]
        };
        assert_eq!(keys, vec![expected.clone(), expected], "{values}");
    }
    // The label itself is configurable.
    let docs = rendered(json!({
        "config": {"namespacePolicy": {"allowOptOut": true}},
        "webhook": {"ignoreLabel": {"key": "example.com/exempt", "value": "exempt"}},
    }));
    let term =
        &object(&docs, "MutatingWebhookConfiguration")["webhooks"][0]["namespaceSelector"]["matchExpressions"][1];
    assert_eq!(
        term,
        &json!({"key": "example.com/exempt", "operator": "NotIn", "values": ["exempt"]})
    );
}

fn webhook_container(docs: &[Value]) -> &Value {
    &object(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<String> {
    serde_json::from_value(webhook_container(docs)["args"].clone()).unwrap()
}

/// The chart's own settings of the webhook pod: extra args, env, volumes
/// (so `--client-ca` can be used from Helm), and the worker count.
#[test]
#[ignore = "needs helm (SD_HELM): hack/check-install.sh runs it"]
fn pod_toggles_render() {
    let defaults = rendered(json!({}));
    let a = args(&defaults);
    assert!(a.windows(2).any(|w| w == ["--workers", "2"]), "{a:?}");
    assert!(webhook_container(&defaults).get("env").is_none());

    let docs = rendered(json!({
        "workers": "",
        "extraArgs": ["--client-ca", "/client-ca/ca.crt"],
        "env": [{"name": "SECURE_DEFAULTS_LOG_LEVEL", "value": "debug"}],
        "extraVolumes": [{"name": "client-ca", "secret": {"secretName": "secure-defaults-client-ca"}}],
        "extraVolumeMounts": [{"name": "client-ca", "mountPath": "/client-ca", "readOnly": true}],
    }));
    let a = args(&docs);
    assert!(!a.contains(&"--workers".to_string()), "{a:?}");
    assert_eq!(a[a.len() - 2..], ["--client-ca", "/client-ca/ca.crt"]);
    let c = webhook_container(&docs);
    assert_eq!(
        c["env"],
        json!([{"name": "SECURE_DEFAULTS_LOG_LEVEL", "value": "debug"}])
    );
    assert_eq!(
        c["volumeMounts"].as_array().unwrap().last().unwrap(),
        &json!({"name": "client-ca", "mountPath": "/client-ca", "readOnly": true})
    );
    let volumes = &object(&docs, "Deployment")["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        volumes.as_array().unwrap().last().unwrap(),
        &json!({"name": "client-ca", "secret": {"secretName": "secure-defaults-client-ca"}})
    );

    let err = template(&json!({"workers": 0})).unwrap_err();
    assert!(err.contains("workers"), "{err}");
    let err = template(&json!({"extraArgs": "--workers 4"})).unwrap_err();
    assert!(err.contains("extraArgs"), "{err}");
}

/// Prometheus Operator: a ServiceMonitor or a PodMonitor on the admin port.
#[test]
#[ignore = "needs helm (SD_HELM): hack/check-install.sh runs it"]
fn monitor_toggles_render() {
    let defaults = rendered(json!({}));
    assert!(!has_kind(&defaults, "ServiceMonitor") && !has_kind(&defaults, "PodMonitor"));

    let docs = rendered(
        json!({"metrics": {"serviceMonitor": {"enabled": true, "interval": "30s", "labels": {"release": "prom"}}}}),
    );
    let sm = object(&docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "metrics", "path": "/metrics", "interval": "30s"}])
    );
    let service = object(&docs, "Service");
    assert!(service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "metrics"));
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
            .as_object()
            .map(|l| json!({
                "app.kubernetes.io/name": l["app.kubernetes.io/name"],
                "app.kubernetes.io/instance": l["app.kubernetes.io/instance"],
            }))
            .unwrap()
    );
    assert!(!has_kind(&docs, "PodMonitor"));

    let docs = rendered(json!({"metrics": {"podMonitor": {"enabled": true}}}));
    let pm = object(&docs, "PodMonitor");
    assert_eq!(
        pm["spec"]["podMetricsEndpoints"],
        json!([{"port": "admin", "path": "/metrics"}])
    );
    assert_eq!(
        pm["spec"]["selector"]["matchLabels"],
        object(&docs, "Deployment")["spec"]["selector"]["matchLabels"]
    );
    assert!(!has_kind(&docs, "ServiceMonitor"));
}

#[test]
#[ignore = "needs helm (SD_HELM): hack/check-install.sh runs it"]
fn pull_secret_rbac_only_with_identity_auto() {
    let reads_secrets = |values: Value| {
        let docs = rendered(values);
        let rules = object(&docs, "ClusterRole")["rules"].as_array().unwrap().clone();
        rules
            .iter()
            .any(|r| r["resources"].as_array().unwrap().iter().any(|x| x == "secrets"))
    };
    assert!(!reads_secrets(json!({})), "default: identity uid");
    assert!(reads_secrets(json!({"config": {"baseline": {"identity": "auto"}}})));
    assert!(!reads_secrets(
        json!({"config": {"baseline": {"identity": "auto"}, "imageLookup": {"pullSecrets": false}}})
    ));
    assert!(reads_secrets(json!({"configYaml": "baseline: {identity: auto}\n"})));
}
