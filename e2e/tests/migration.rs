//! Migrating a namespace to Pod Security `restricted`, against the real
//! control plane: `secure-defaults scan` predicts per workload what admission
//! will do, the namespace is switched, the controllers create the pods, and
//! the prediction is checked against what the API server then did. Workload
//! previews appear on `kubectl apply` and never change the workload.

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;
use secure_defaults_e2e::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[path = "../../tests/registry/oci.rs"]
mod registry;

fn migration_workloads() -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(Env::get().repo.join("e2e/testdata/migration.yaml"))?;
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Ok(serde::Deserialize::deserialize(d)?))
        .collect()
}

fn resource_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "Job" => "jobs",
        "CronJob" => "cronjobs",
        other => panic!("no resource for {other}"),
    }
}

/// `secure-defaults scan ARGS` on the test cluster's kubeconfig.
fn scan(args: &[&str]) -> Result<Output> {
    let env = Env::get();
    let out = Command::new(&env.bin)
        .arg("scan")
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running secure-defaults scan")?;
    Ok(out)
}

/// `scan` that must succeed: its standard output, or its standard error as the failure.
fn scan_ok(args: &[&str]) -> Result<String> {
    let out = scan(args)?;
    ensure!(
        out.status.success(),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// `kubectl ARGS` (the control plane's own, first on PATH) with `stdin`.
fn kubectl(args: &[&str], stdin: &str) -> Result<Output> {
    let mut command = Command::new("kubectl");
    command.arg("--kubeconfig").arg(&Env::get().kubeconfig).args(args);
    run_with_stdin(command, stdin).context("running kubectl")
}

/// Run `command` with `stdin` written to it; its whole output.
fn run_with_stdin(mut command: Command, stdin: &str) -> Result<Output> {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().unwrap().write_all(stdin.as_bytes())?;
    Ok(child.wait_with_output()?)
}

/// Verdicts by `Kind/name` from a JSON scan report of one namespace.
fn verdicts(report: &Value, ns: &str) -> Result<(bool, BTreeMap<String, Value>)> {
    let namespace = report["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["name"] == ns)
        .with_context(|| format!("namespace {ns} missing from {report}"))?;
    let workloads = namespace["workloads"]
        .as_array()
        .context("no workloads")?
        .iter()
        .map(|w| {
            (
                format!("{}/{}", w["kind"].as_str().unwrap(), w["name"].as_str().unwrap()),
                w.clone(),
            )
        })
        .collect();
    Ok((namespace["restrictedReady"] == true, workloads))
}

/// The scan predicts what admission does once the namespace enforces
/// `restricted`: the pods of "ready" workloads are created with the fields
/// the scan listed, those of "needs changes" workloads are rejected.
#[tokio::test]
async fn scan_predicts_what_admission_does_after_the_switch() -> Result<()> {
    let client = client().await;
    let scenario = "migrate";
    // Before the switch: Pod Security at "privileged", as legacy namespaces are.
    let ns = namespace(&client, scenario, "privileged").await?;
    let hook = Webhook::start("").await?;
    let mwc = webhook_configuration(&unique("sd-migrate"), &hook.url(), &hook.tls.ca_pem, scenario, "Fail")?;
    register(&client, &mwc, &ns, true).await?;

    let workloads = migration_workloads()?;
    for w in &workloads {
        let kind = w["kind"].as_str().unwrap();
        let a = create(&client, &ns, resource_of(kind), w, false).await?;
        ensure!(a.ok(), "creating {kind}: {}", a.body);
        // The preview: one warning from secure-defaults, and the workload stored as sent.
        let ours: Vec<&String> = a
            .warnings
            .iter()
            .filter(|w| w.starts_with("secure-defaults:"))
            .collect();
        ensure!(
            ours.len() == 1,
            "{kind}: expected one preview warning, got {:?}",
            a.warnings
        );
        ensure!(ours[0].contains(&format!("{kind} preview: ")), "{}", ours[0]);
        let template = |o: &Value| match kind {
            "CronJob" => o["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone(),
            _ => o["spec"]["template"]["spec"].clone(),
        };
        let (sent, stored) = (template(w), template(&a.body));
        let sc = |spec: &Value| match &spec["securityContext"] {
            // The API server defaults an absent pod securityContext to {}.
            Value::Null => json!({}),
            other => other.clone(),
        };
        ensure!(
            sc(&stored) == sc(&sent),
            "{kind}: the preview changed the template: {stored}"
        );
        ensure!(
            stored["containers"][0]["securityContext"] == sent["containers"][0]["securityContext"],
            "{kind}: the preview changed a container: {stored}"
        );
    }

    // The scan, as a team runs it before switching.
    let out = scan(&["-n", &ns, "-o", "json", "--quiet"])?;
    ensure!(
        out.status.success(),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let (ready, by_name) = verdicts(&report, &ns)?;
    let verdict = |name: &str| {
        by_name
            .get(name)
            .map(|w| w["verdict"].as_str().unwrap_or_default().to_string())
    };
    for name in ["Deployment/web", "Job/once", "CronJob/nightly"] {
        assert_eq!(verdict(name).as_deref(), Some("ready"), "{name}: {}", by_name[name]);
    }
    for name in ["Deployment/agent", "Deployment/root-app", "StatefulSet/db"] {
        assert_eq!(
            verdict(name).as_deref(),
            Some("needs-changes"),
            "{name}: {}",
            by_name[name]
        );
    }
    assert_eq!(by_name.len(), 6, "{by_name:?}");
    assert!(!ready, "a namespace with workloads that need changes is not ready");
    let remaining = |name: &str| -> Vec<String> {
        by_name[name]["assessment"]["remaining"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["check"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(remaining("Deployment/agent").contains(&"privileged".to_string()));
    assert!(remaining("Deployment/root-app").contains(&"runAsNonRoot".to_string()));
    assert!(remaining("StatefulSet/db").contains(&"hostPathVolumes".to_string()));

    // Paginated lists (one object per page) give the same report, with -A too.
    let out = scan(&["-A", "-o", "json", "--quiet", "--chunk-size", "1"])?;
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let paged: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(verdicts(&paged, &ns)?, (ready, by_name.clone()), "one object per page");

    // The table, and the CI gate.
    let out = scan(&["-n", &ns, "--quiet"])?;
    let table = String::from_utf8(out.stdout)?;
    ensure!(out.status.success(), "{table}");
    ensure!(
        table.contains("=> restricted can be enforced: no (3 of 6 workloads need changes)"),
        "{table}"
    );
    let gate = scan(&["-n", &ns, "--fail-on", "remaining", "--quiet"])?;
    assert_eq!(
        gate.status.code(),
        Some(3),
        "--fail-on remaining with workloads to change"
    );

    // The switch, then the controllers create the pods.
    let labels = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    Api::<Namespace>::all(client.clone())
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&labels))
        .await?;
    for w in &workloads {
        let (kind, name) = (w["kind"].as_str().unwrap(), w["metadata"]["name"].as_str().unwrap());
        let body = match kind {
            "Deployment" | "StatefulSet" => json!({"spec": {"replicas": 1}}),
            "Job" => json!({"spec": {"suspend": false}}),
            _ => continue,
        };
        let uri = format!(
            "/apis/{}/namespaces/{ns}/{}/{name}",
            w["apiVersion"].as_str().unwrap(),
            resource_of(kind)
        );
        let a = patch(&client, &uri, "application/merge-patch+json", &body).await?;
        ensure!(a.ok(), "scaling {kind}/{name}: {}", a.body);
    }

    // Ready: a pod exists, with every field the scan said would be added.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    for (workload, prefix) in [("Deployment/web", "web-"), ("Job/once", "once-")] {
        let pod = wait_for(Duration::from_secs(60), &format!("a pod of {workload}"), || async {
            let list = pods.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with(prefix)))
        })
        .await?;
        let pod = serde_json::to_value(pod)?;
        assert_hardened(&pod);
        for added in by_name[workload]["assessment"]["added"].as_array().unwrap() {
            let field = added["field"].as_str().unwrap();
            let target = &added["target"];
            let holder = if target["level"] == "pod" {
                pod["spec"]["securityContext"].clone()
            } else {
                let list = target["kind"].as_str().unwrap();
                let container = pod["spec"][list]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["name"] == target["name"]))
                    .with_context(|| format!("{workload}: no {list} {} in {pod}", target["name"]))?;
                container["securityContext"].clone()
            };
            let key = if field == "dropCapabilities" {
                "capabilities"
            } else {
                field
            };
            ensure!(
                !holder[key].is_null(),
                "{workload}: {field} predicted but not on the pod: {added} {pod}"
            );
        }
    }

    // Needs changes: the controller's pod creation is refused by Pod Security.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    for prefix in ["agent-", "root-app-", "db"] {
        let message = wait_for(
            Duration::from_secs(60),
            &format!("a refused pod of {prefix}*"),
            || async {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items.into_iter().find_map(|e| {
                    let involved = e.involved_object.name.as_deref().unwrap_or_default();
                    (e.reason.as_deref() == Some("FailedCreate") && involved.starts_with(prefix))
                        .then(|| e.message.unwrap_or_default())
                })
            },
        )
        .await?;
        ensure!(
            message.contains("violates PodSecurity \"restricted"),
            "{prefix}: {message}"
        );
    }
    let list = pods.list(&ListParams::default()).await?;
    for p in &list.items {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        ensure!(
            !["agent-", "root-app-", "db-"].iter().any(|x| name.starts_with(x)),
            "pod {name} of a workload the scan said needs changes was admitted"
        );
    }

    unregister(&client, &mwc.metadata.name.clone().unwrap()).await?;
    drop(hook);
    Ok(())
}

/// `kubectl apply` of a legacy Deployment shows the preview, and the stored
/// Deployment is what was applied. A hardened one gets no warning from us.
#[tokio::test]
async fn kubectl_apply_shows_the_workload_preview() -> Result<()> {
    let client = client().await;
    let scenario = "preview";
    let ns = namespace(&client, scenario, "restricted").await?;
    let hook = Webhook::start("").await?;
    let mwc = webhook_configuration(&unique("sd-preview"), &hook.url(), &hook.tls.ca_pem, scenario, "Fail")?;
    register(&client, &mwc, &ns, true).await?;

    let legacy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: legacy}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: legacy}}\n  template:\n    metadata: {labels: {app: legacy}}\n    spec:\n      containers: [{name: app, image: registry.example.com/app:1}]\n";
    let out = kubectl(&["apply", "-n", &ns, "-f", "-"], legacy)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "kubectl apply: {stderr}");
    let preview: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Warning: secure-defaults:"))
        .collect();
    ensure!(preview.len() == 1, "one preview warning expected: {stderr}");
    ensure!(
        preview[0].contains("Deployment preview: its pods get ")
            && preview[0].contains("then admitted under \"restricted\""),
        "{}",
        preview[0]
    );
    // Pod Security's own warning about the template is still there: it reads the template as written.
    ensure!(stderr.contains("would violate PodSecurity"), "{stderr}");

    let out = kubectl(&["get", "deployment", "legacy", "-n", &ns, "-o", "json"], "")?;
    let stored: Value = serde_json::from_slice(&out.stdout)?;
    let spec = &stored["spec"]["template"]["spec"];
    ensure!(
        spec["containers"][0]["securityContext"].is_null()
            && spec["securityContext"].as_object().is_none_or(|m| m.is_empty()),
        "the preview changed the Deployment: {spec}"
    );

    // Applying the same manifest again changes no template: no warning from us.
    let out = kubectl(&["apply", "-n", &ns, "-f", "-"], legacy)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "{stderr}");
    ensure!(
        !stderr.contains("secure-defaults:"),
        "unchanged template, yet: {stderr}"
    );

    // A change to the template that leaves a violation: named in the preview.
    let privileged = legacy.replace(
        "[{name: app, image: registry.example.com/app:1}]",
        "[{name: app, image: registry.example.com/app:1, securityContext: {privileged: true}}]",
    );
    let out = kubectl(&["apply", "-n", &ns, "-f", "-"], &privileged)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "{stderr}");
    ensure!(
        stderr
            .lines()
            .any(|l| l.starts_with("Warning: secure-defaults: Deployment preview:") && l.contains("privileged")),
        "{stderr}"
    );

    unregister(&client, &mwc.metadata.name.clone().unwrap()).await?;
    drop(hook);
    Ok(())
}

/// `secure-defaults mutate` reads a chart as kubectl reads it and writes
/// YAML that kubectl reads back as its JSON output, though kubectl reads
/// YAML 1.1: `0644` is octal there, and `on`, `no`, `0644` are a boolean and
/// numbers unless quoted.
#[tokio::test]
async fn mutate_reads_and_writes_yaml_as_kubectl_does() -> Result<()> {
    let chart = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: legacy\n  labels: {app: legacy, feature: \"on\", canary: \"yes\"}\n  annotations: {example.com/enabled: \"true\", example.com/mode: \"0644\", example.com/note: \"a #b\"}\nspec:\n  replicas: 0x2\n  selector: {matchLabels: {app: legacy}}\n  template:\n    metadata: {labels: {app: legacy}}\n    spec:\n      volumes: [{name: scripts, configMap: {name: scripts, defaultMode: 0755}}]\n      containers:\n      - name: app\n        image: registry.example.com/app:1.2.3\n        command: [sh, -c]\n        args: [\"set -e\\necho on\\n\\n\"]\n        env: [{name: DEBUG, value: \"no\"}, {name: V_Y, value: \"y\"}, {name: V_N, value: \"1_000\"}, {name: T, value: \"1:20\"}, {name: E, value: \"\"}, {name: S, value: \" spaced \"}]\n        resources: &resources {requests: {cpu: 100m, memory: 128Mi}}\n        securityContext: {<<: {runAsUser: 1_000, privileged: false}, runAsUser: 2000}\n      - name: sidecar\n        image: busybox\n        resources: *resources\n";
    let mutate = |output: &str| -> Result<String> {
        let mut command = Command::new(&Env::get().bin);
        command.args(["mutate", "-q", "-f", "-", "-o", output]);
        let out = run_with_stdin(command, chart)?;
        ensure!(out.status.success(), "mutate: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?)
    };
    // kubectl's reading of a manifest, out of its current namespace.
    let kubectl_reads = |yaml: &str| -> Result<Value> {
        let out = kubectl(&["create", "--dry-run=client", "-o", "json", "-f", "-"], yaml)?;
        ensure!(
            out.status.success(),
            "kubectl: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut read: Value = serde_json::from_slice(&out.stdout)?;
        read["metadata"].as_object_mut().map(|m| m.remove("namespace"));
        Ok(read)
    };
    let json: Value = serde_json::from_str(&mutate("json")?)?;
    let patch: json_patch::Patch = serde_json::from_str(&mutate("patch")?)?;

    // Reading: the patch, onto kubectl's reading of the chart, gives the JSON output.
    let mut read = kubectl_reads(chart)?;
    let volume = &read["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"];
    ensure!(*volume == 0o755, "kubectl reads 0755 as {volume}");
    json_patch::patch(&mut read, &patch)?;
    ensure!(
        read == json,
        "kubectl read the chart as\n{read:#}\nbut mutate as\n{json:#}"
    );

    // Writing: kubectl reads the YAML output as the JSON output.
    let yaml = mutate("yaml")?;
    let back = kubectl_reads(&yaml)?;
    ensure!(
        back == json,
        "kubectl read\n{back:#}\nfrom\n{yaml}\nbut the JSON output is\n{json:#}"
    );
    ensure!(
        json["spec"]["template"]["spec"]["containers"][1]["securityContext"]["runAsNonRoot"] == true,
        "not hardened: {json:#}"
    );
    Ok(())
}

/// The IDENTITY cell of `kind/name` in a scan table.
fn identity_cell(table: &str, workload: &str) -> Option<String> {
    let header = table.lines().find(|l| l.trim_start().starts_with("WORKLOAD "))?;
    let column = header.find("IDENTITY")?;
    let end = header.find("KEPT")?;
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{workload} ")))?;
    Some(row.get(column..end)?.trim().to_string())
}

/// `scan --resolve-images` on a real API server: the pull secrets of the
/// template's service account are read from the cluster and the image is
/// looked up (a registry on loopback that wants them), so IDENTITY shows
/// what the webhook would decide; a template whose pods have no credentials
/// falls back and is named. Without the flag no request reaches the registry.
// Multi-threaded: the registry answers while the test waits on `scan`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_resolves_images_with_the_pods_pull_secrets_only_when_asked() -> Result<()> {
    let client = client().await;
    let reg = registry::Registry::start_with(registry::Auth::Basic, "127.0.0.1").await;
    let ns = namespace(&client, "scanres", "privileged").await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = json!({"metadata": {"labels": {"secure-defaults.io/identity": "auto"}}});
    namespaces
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&label))
        .await?;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": registry::docker_config(&reg.host())}});
    let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"},
        "imagePullSecrets": [{"name": "regcred"}]});
    let deployment = |name: &str, account: Option<&str>, image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {
                    "serviceAccountName": account, "containers": [{"name": "app", "image": image}]}}}})
    };
    for (resource, body) in [
        ("secrets", secret),
        ("serviceaccounts", account),
        ("deployments", deployment("web", Some("builder"), &reg.image("app"))),
        ("deployments", deployment("anon", None, &reg.image("named"))),
    ] {
        let a = create(&client, &ns, resource, &body, false).await?;
        ensure!(a.ok(), "creating {resource}: {}", a.body);
    }
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("imageLookup: {{insecureRegistries: [\"{}\"]}}\n", reg.host()),
    )?;
    let config = config.to_str().context("config path")?;

    let table = scan_ok(&["-n", &ns, "--config", config, "--quiet"])?;
    ensure!(
        reg.count() == 0,
        "requests without --resolve-images: {:?}",
        reg.requests.lock().unwrap()
    );
    for w in ["deployment/web", "deployment/anon"] {
        ensure!(
            identity_cell(&table, w).as_deref() == Some("auto: uid (fallback)"),
            "{w}: {table}"
        );
    }
    ensure!(
        table.contains("2 container(s) got identityFallback because their images were not looked up"),
        "{table}"
    );

    let table = scan_ok(&[
        "-n",
        &ns,
        "--config",
        config,
        "--quiet",
        "--resolve-images",
        "--resolve-timeout",
        "20s",
    ])?;
    ensure!(
        identity_cell(&table, "deployment/web").as_deref() == Some("auto: image"),
        "the builder account's pull secret was used: {table}"
    );
    ensure!(
        identity_cell(&table, "deployment/anon").as_deref() == Some("auto: uid (fallback)"),
        "no credentials for the default account: {table}"
    );
    ensure!(
        table.contains("identity: auto: 2 images looked up, 1 failed"),
        "{table}"
    );
    let failed = format!("  {}: failed: ", reg.image("named"));
    ensure!(
        table.lines().any(|l| l.starts_with(&failed) && l.contains("401")),
        "the failure and why: {table}"
    );

    let report: Value = serde_json::from_str(&scan_ok(&[
        "-n",
        &ns,
        "--config",
        config,
        "--quiet",
        "--resolve-images",
        "-o",
        "json",
    ])?)?;
    ensure!(report["imageLookup"]["lookedUp"] == 2, "{report}");
    ensure!(
        report["imageLookup"]["failed"][reg.image("named")].is_string(),
        "{report}"
    );
    namespaces.delete(&ns, &Default::default()).await?;
    Ok(())
}
