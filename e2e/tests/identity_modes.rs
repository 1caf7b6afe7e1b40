//! The identity modes on the real node (issue #19, "Proof on the node"):
//! each real-server and identity-pattern image, pulled from the suite's
//! registry and deployed from a manifest with no securityContext into a
//! namespace that enforces `restricted`, hardened by the webhook with
//! `secure-defaults.io/identity` set on the namespace. Per mode, a table of
//! image → admitted, what identity it got, starts, serves (the image's own
//! health check as readiness probe) and what the node shows, checked against
//! `testdata/identity-modes.yaml` and written into the README between markers
//! (`SD_UPDATE_README=1` rewrites it). Inside a `userns` container the kernel
//! shows a user namespace with root inside and an idmapped emptyDir.
//! Needs the node and the registry (`SD_NODE=1`) and the image archives.

use anyhow::{ensure, Context, Result};
use base64::Engine;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::Api;
use secure_defaults_e2e::node::*;
use secure_defaults_e2e::*;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

// One scenario label per test: a webhook registered for a label serves every
// namespace carrying it, so tests running in parallel must not share one.
const SCENARIO: &str = "idmodes";
const SCENARIO_USERNS: &str = "idmodes-userns";
const SCENARIO_AUTO: &str = "idmodes-auto";
const README_BEGIN: &str = "<!-- identity-modes:begin (written by e2e/tests/identity_modes.rs) -->";
const README_END: &str = "<!-- identity-modes:end -->";
const ARGS: &[&str] = &["--namespace-policy", "--namespace-sync-timeout", "10s"];
const LOGS: &[&str] = &["kubelet", "containerd", "registry"];

/// One cell of `testdata/identity-modes.yaml`: image × mode.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    serves: bool,
    /// Text the node shows when it does not serve.
    #[serde(default)]
    shows: Option<String>,
    why: String,
    /// `auto` only: why it does not serve where `uid` or `userns` does (the
    /// test fails once it no longer falls behind).
    #[serde(default)]
    behind: Option<String>,
}

/// The webhook's configuration: `auto` looks images up in the suite's
/// registry (plain HTTP on loopback); the rest is the shipped default.
fn hook_config() -> String {
    format!(
        "mode: enforce\nimageLookup:\n  insecureRegistries: [\"{}\"]\n",
        var("SD_REGISTRY")
    )
}

/// What the webhook decided for the pod's identity, in the table's words.
fn identity_of(pod: &Value) -> String {
    let c = &pod["spec"]["containers"][0]["securityContext"];
    if pod["spec"]["hostUsers"] == json!(false) {
        "user namespace".into()
    } else if let Some(uid) = c["runAsUser"].as_i64() {
        format!("uid {uid}")
    } else if c["runAsNonRoot"] == json!(true) {
        "the image's user".into()
    } else {
        "unchanged".into()
    }
}

struct Row<'a> {
    image: String,
    admitted: bool,
    identity: String,
    outcome: Outcome,
    expect: &'a Expect,
}

fn table(mode: &str, rows: &[Row]) -> String {
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    let mut t = format!(
        "#### `identity: {mode}`\n\n\
         | image | admitted | identity | starts | serves | what the node shows | why |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        // The expected words where the node showed them: the full last log
        // line varies from run to run (how far the app got before it exited).
        let shows = match (&r.expect.shows, r.outcome.shows.as_str()) {
            (_, "") => "Ready".to_string(),
            (Some(e), seen) if seen.contains(e.as_str()) || r.outcome.log.contains(e.as_str()) => {
                format!("`{}`", e.replace('|', "\\|").replace('`', "'"))
            }
            (_, seen) => format!("`{}`", seen.replace('|', "\\|").replace('`', "'")),
        };
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {shows} | {} |\n",
            r.image,
            if r.admitted { "yes" } else { "**no**" },
            r.identity,
            yes(r.outcome.started),
            yes(r.outcome.ready),
            match &r.expect.behind {
                Some(b) => format!("{} **Behind the better mode:** {b}", r.expect.why).replace('|', "\\|"),
                None => r.expect.why.replace('|', "\\|"),
            },
        ));
    }
    t
}

/// A `restricted` namespace of `scenario` with the identity mode set.
async fn mode_namespace(client: &kube::Client, scenario: &str, mode: &str) -> Result<String> {
    let ns = namespace(client, scenario, "restricted").await?;
    let patch = json!({"metadata": {"labels": {"secure-defaults.io/identity": mode}}});
    Api::<Namespace>::all(client.clone())
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(ns)
}

/// The modes, in table order.
const MODES: &[&str] = &["uid", "userns", "auto"];

#[tokio::test]
async fn identity_modes_on_the_node() -> Result<()> {
    let client = client().await;
    let catalog = catalog()?;
    let expect: BTreeMap<String, BTreeMap<String, Expect>> = serde_yaml::from_str(&std::fs::read_to_string(
        Env::get().repo.join("e2e/testdata/identity-modes.yaml"),
    )?)?;
    for (image, modes) in &expect {
        ensure!(catalog.contains_key(image), "no image {image} in the catalog");
        for m in MODES {
            ensure!(modes.contains_key(*m), "identity-modes.yaml: {image} has no {m}");
        }
    }
    // Namespaces first: the webhook's first namespace sync sees their labels.
    let mut namespaces = Vec::new();
    for mode in MODES {
        namespaces.push(mode_namespace(&client, SCENARIO, mode).await?);
    }
    let hook = Webhook::start_with(&hook_config(), ARGS).await?;
    let mwc_name = unique("sd-idmodes");
    let mwc = webhook_configuration(&mwc_name, &hook.url(), &hook.tls.ca_pem, SCENARIO, "Fail")?;
    register(&client, &mwc, &namespaces[0], true).await?;

    let result = async {
        let mut tables = String::new();
        let mut wrong = Vec::new();
        let mut served: BTreeMap<(String, &str), bool> = BTreeMap::new();
        // One mode at a time: ten servers at once are enough for two cores.
        for (mode, ns) in MODES.iter().zip(&namespaces) {
            let mut admitted = BTreeMap::new();
            for name in expect.keys() {
                let img = &catalog[name];
                let p = pod(name, container(img, &img.in_registry(), "IfNotPresent"), json!({}));
                let a = create(&client, ns, "pods", &p, false).await?;
                ensure!(
                    a.ok(),
                    "{mode}/{name}: {} {}\nwebhook log:\n{}",
                    a.status,
                    a.body,
                    hook.log()
                );
                admitted.insert(name.clone(), identity_of(&a.body));
            }
            let mut rows = Vec::new();
            for (name, modes) in &expect {
                let e = &modes[*mode];
                let o = outcome(&client, ns, name).await?;
                // The expected words in the status, the last log line, or any run's output.
                let shown = |s: &str| o.shows.contains(s) || o.log.contains(s);
                if o.ready != e.serves || e.shows.as_deref().is_some_and(|s| !shown(s)) {
                    wrong.push(format!(
                        "{mode}/{name}: ready {} (want {}), shows {:?} (want {:?})",
                        o.ready, e.serves, o.shows, e.shows
                    ));
                }
                served.insert((name.clone(), *mode), o.ready);
                rows.push(Row {
                    image: name.clone(),
                    admitted: true,
                    identity: admitted[name].clone(),
                    outcome: o,
                    expect: e,
                });
            }
            tables.push_str(&table(mode, &rows));
            tables.push('\n');
            // Free the node for the next mode; deletion goes on in the background.
            Api::<Namespace>::all(client.clone())
                .delete(ns, &DeleteParams::default())
                .await?;
        }
        // auto does at least as well as the better of uid and userns, on
        // every image, unless the testdata says why not (and then it must be behind).
        for (name, modes) in &expect {
            let best = served[&(name.clone(), "uid")] || served[&(name.clone(), "userns")];
            let behind = best && !served[&(name.clone(), "auto")];
            match (&modes["auto"].behind, behind) {
                (None, true) => wrong.push(format!("auto/{name}: does not serve, but uid or userns does")),
                (Some(_), false) => wrong.push(format!("auto/{name}: no longer behind; drop `behind`")),
                _ => {}
            }
        }
        ensure!(
            wrong.is_empty(),
            "not as testdata/identity-modes.yaml says:\n{}\n{tables}",
            wrong.join("\n")
        );
        publish("identity-modes.md", README_BEGIN, README_END, &tables)
    }
    .await;
    let result = result.with_context(|| logs_tail(LOGS));
    unregister(&client, &mwc_name).await?;
    drop(hook);
    result
}

/// Inside a container the `userns` mode hardened: root inside, a non-zero
/// host range in `/proc/self/uid_map`, no capabilities, and an emptyDir it
/// can write (an idmapped mount: root's file is root's on the host's disk too).
#[tokio::test]
async fn userns_container_is_root_inside_an_unprivileged_range() -> Result<()> {
    let client = client().await;
    let ns = mode_namespace(&client, SCENARIO_USERNS, "userns").await?;
    let hook = Webhook::start_with(&config("enforce"), ARGS).await?;
    let mwc_name = unique("sd-idmodes-userns");
    let mwc = webhook_configuration(&mwc_name, &hook.url(), &hook.tls.ca_pem, SCENARIO_USERNS, "Fail")?;
    register(&client, &mwc, &ns, true).await?;
    let result = async {
        let c = json!({
            "name": "app",
            "image": format!("{}/e2e/busybox:1", var("SD_REGISTRY")),
            "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        });
        let mut p = pod("userns", c, json!({}));
        p["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
        let a = create(&client, &ns, "pods", &p, false).await?;
        ensure!(a.ok(), "{} {}", a.status, a.body);
        ensure!(
            a.body["spec"]["hostUsers"] == json!(false),
            "no hostUsers: false: {}",
            a.body
        );
        let uid = a.body["metadata"]["uid"].as_str().context("uid")?.to_string();
        let o = outcome_running(&client, &ns, "userns").await?;
        ensure!(o, "the userns pod did not run");

        let out = exec(
            &ns,
            "userns",
            &[
                "sh",
                "-c",
                "cat /proc/self/uid_map; id -u; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; \
                 echo hi > /data/f && stat -c 'file %u:%g' /data/f; \
                 cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
            ],
        )
        .await?;
        println!("inside the userns container:\n{out}");
        let mut lines = out.lines();
        let map: Vec<u64> = lines
            .next()
            .context("uid_map")?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        ensure!(
            map.len() == 3 && map[0] == 0 && map[1] > 0 && map[2] >= 65536,
            "uid_map is not a user namespace over a non-zero host range: {out}"
        );
        ensure!(lines.next() == Some("0"), "not root inside: {out}");
        ensure!(out.contains("CapEff:\t0000000000000000"), "capabilities left: {out}");
        ensure!(
            out.contains("file 0:"),
            "root's file in the emptyDir is not root's inside: {out}"
        );
        // The same file on the host's disk: owned by uid 0, not by the
        // container's host uid: the kubelet mounted the emptyDir idmapped.
        let f = Path::new(&var("CONTROLPLANE_STATE_DIR"))
            .join("n/kubelet/pods")
            .join(&uid)
            .join("volumes/kubernetes.io~empty-dir/data/f");
        let meta = std::fs::metadata(&f).with_context(|| format!("{}", f.display()))?;
        ensure!(
            std::os::unix::fs::MetadataExt::uid(&meta) == 0,
            "{} is owned by host uid {}, not 0: the emptyDir is not idmapped",
            f.display(),
            std::os::unix::fs::MetadataExt::uid(&meta)
        );
        Ok(())
    }
    .await;
    let result = result.with_context(|| logs_tail(LOGS));
    unregister(&client, &mwc_name).await?;
    drop(hook);
    result
}

/// Running (not necessarily Ready: this pod has no probe), bounded.
async fn outcome_running(client: &kube::Client, ns: &str, name: &str) -> Result<bool> {
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    wait_for(std::time::Duration::from_secs(90), "the pod Running", || async {
        let p = api.get(name).await.ok()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(true)
    })
    .await
}

/// A lookup case: name, image, with the pull secret, the identity the
/// container gets, a fragment of the fallback warning (none: looked up),
/// and the `result` label the metric counts it under.
type Case<'a> = (&'a str, String, bool, &'a str, Option<&'a str>, &'a str);

/// `secure_defaults_image_lookups_total{result="..."}` from the webhook's metrics.
fn lookups(hook: &Webhook, result: &str) -> u64 {
    let key = format!("secure_defaults_image_lookups_total{{result=\"{result}\"}} ");
    hook.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// `auto` through admission on the real API server, against the registry's
/// good and bad repositories and a registry that is down: every create is
/// answered within the webhook's timeout (5 s), a lookup that fails gets
/// `identityFallback` (uid 65532) with a warning that says why, and the
/// metric counts it by result.
#[tokio::test]
async fn auto_lookups_fall_back_within_the_budget() -> Result<()> {
    let client = client().await;
    let ns = mode_namespace(&client, SCENARIO_AUTO, "auto").await?;
    let reg = var("SD_REGISTRY");
    // A loopback port nothing listens on: a registry that is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string();
    let config = format!(
        "mode: enforce\nimageLookup:\n  insecureRegistries: [\"{reg}\", \"{}\", \"{}\", \"{down}\"]\n  timeout: 2s\n",
        var("SD_REGISTRY_OTHER"),
        var("SD_REGISTRY_REALM"),
    );
    let hook = Webhook::start_with(&config, ARGS).await?;
    let mwc_name = unique("sd-idmodes-faults");
    let mwc = webhook_configuration(&mwc_name, &hook.url(), &hook.tls.ca_pem, SCENARIO_AUTO, "Fail")?;
    register(&client, &mwc, &ns, true).await?;
    let result = async {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            var("SD_REGISTRY_USER"),
            var("SD_REGISTRY_PASSWORD")
        ));
        let dockerconfig = json!({"auths": {reg.as_str(): {"auth": auth}}});
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "pull"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(dockerconfig.to_string())},
        });
        let a = create(&client, &ns, "secrets", &secret, false).await?;
        ensure!(a.ok(), "secret: {} {}", a.status, a.body);

        let cases: &[Case] = &[
            (
                "found",
                format!("{reg}/e2e/nonroot-owner:1"),
                false,
                "uid 10001",
                None,
                "fetched",
            ),
            (
                "private, pull secret",
                format!("{reg}/private/nonroot-owner:1"),
                true,
                "uid 10001",
                None,
                "fetched",
            ),
            (
                "private, no secret",
                format!("{reg}/private/nonroot-owner:1"),
                false,
                "uid 65532",
                Some("refused the credentials (401)"),
                "failed",
            ),
            (
                "registry down",
                format!("{down}/e2e/busybox:1"),
                false,
                "uid 65532",
                Some(down.as_str()),
                "failed",
            ),
            (
                "slow",
                format!("{reg}/faults/slow:1"),
                false,
                "uid 65532",
                Some("timed out after 2s"),
                "timeout",
            ),
            (
                "401",
                format!("{reg}/faults/unauthorized:1"),
                false,
                "uid 65532",
                Some("(401)"),
                "failed",
            ),
            (
                "oversized",
                format!("{reg}/faults/oversized:1"),
                false,
                "uid 65532",
                Some("response larger than 4 MiB"),
                "refused",
            ),
            (
                "redirect to another host",
                format!("{reg}/faults/redirect:1"),
                false,
                "uid 65532",
                Some("not an allowed host"),
                "refused",
            ),
            (
                "token realm on the metadata address",
                format!("{}/faults/realm:1", var("SD_REGISTRY_REALM")),
                false,
                "uid 65532",
                Some("169.254.169.254"),
                "refused",
            ),
        ];
        let mut report = String::new();
        let mut wrong = Vec::new();
        for (i, (case, image, secret, identity, fragment, result)) in cases.iter().enumerate() {
            let mut p = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("lookup-{i}")},
                "spec": {"containers": [{"name": "app", "image": image}]},
            });
            if *secret {
                p["spec"]["imagePullSecrets"] = json!([{"name": "pull"}]);
            }
            let before = lookups(&hook, result);
            let t = std::time::Instant::now();
            let a = create(&client, &ns, "pods", &p, true).await?;
            let took = t.elapsed();
            let after = lookups(&hook, result);
            let warning = a
                .warnings
                .iter()
                .find(|w| w.contains("identity"))
                .cloned()
                .unwrap_or_default();
            report.push_str(&format!(
                "{case}: {} in {took:.2?}, {}, lookups{{result={result}}} +{}: {warning}\n",
                a.status,
                identity_of(&a.body),
                after.saturating_sub(before)
            ));
            if !a.ok() {
                wrong.push(format!("{case}: {} {}", a.status, a.body));
                continue;
            }
            if took > std::time::Duration::from_secs(5) {
                wrong.push(format!(
                    "{case}: answered after {took:?}, past the webhook's 5 s timeout"
                ));
            }
            if identity_of(&a.body) != *identity {
                wrong.push(format!("{case}: identity {} (want {identity})", identity_of(&a.body)));
            }
            // The webhook's log line for this image, with the refusal's reason.
            let logged = hook
                .log()
                .lines()
                .find(|l| l.contains("image lookup failed") && l.contains(&format!("image={image}")))
                .unwrap_or_default()
                .to_string();
            // The realm case: the guard refuses the token server (the log
            // says so, and the metric counts it as refused), but the
            // warning names a later error of the same lookup (an HTTPS retry
            // of the manifest on an HTTP-only host): checked in the log
            // until the warning carries the refusal.
            let said = if case.starts_with("token realm") {
                &logged
            } else {
                &warning
            };
            match fragment {
                Some(f) if !(warning.contains("could not be looked up") && said.contains(f)) => wrong.push(format!(
                    "{case}: warning {warning:?} (log {logged:?}) does not say {f:?}"
                )),
                None if warning.contains("could not be looked up") => {
                    wrong.push(format!("{case}: unexpected fallback: {warning:?}"))
                }
                _ => {}
            }
            if after <= before {
                wrong.push(format!("{case}: lookups{{result={result}}} did not grow ({before})"));
            }
        }
        println!("{report}");
        ensure!(
            wrong.is_empty(),
            "{}\n{report}\nwebhook log:\n{}",
            wrong.join("\n"),
            hook.log()
        );
        Ok(())
    }
    .await;
    let result = result.with_context(|| logs_tail(LOGS));
    unregister(&client, &mwc_name).await?;
    drop(hook);
    result
}
