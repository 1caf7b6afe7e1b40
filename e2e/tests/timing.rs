//! Pod create → Running on the real node, with and without the webhook, in
//! one run: the same bare pod alternately into a namespace the webhook serves
//! and one it does not, timed from the POST to the first poll (every 50 ms)
//! that sees the pod Running. Prints the medians and their ratio (recorded in
//! BENCHMARKS.md) and fails if the webhook more than doubles the time.
//! Needs the node (`SD_NODE=1`).

use anyhow::{ensure, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use secure_defaults_e2e::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SCENARIO: &str = "timing";
const ROUNDS: usize = 8;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: this test needs the node (SD_NODE=1)"))
}

fn bare(name: &str) -> Value {
    let taint = var("NODE_TAINT");
    let (key, rest) = taint.split_once('=').expect("key=value:effect");
    let (value, effect) = rest.split_once(':').expect("key=value:effect");
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "tolerations": [{"key": key, "operator": "Equal", "value": value, "effect": effect}],
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "app", "image": var("NODE_TEST_IMAGE"), "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }],
        }
    })
}

/// Seconds from the create call to Running.
async fn start(client: &kube::Client, ns: &str, name: &str) -> Result<f64> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let t = Instant::now();
    let a = create(client, ns, "pods", &bare(name), false).await?;
    ensure!(a.ok(), "{ns}/{name}: {} {}", a.status, a.body);
    loop {
        let p = api.get(name).await?;
        if p.status.and_then(|s| s.phase).as_deref() == Some("Running") {
            let secs = t.elapsed().as_secs_f64();
            api.delete(name, &Default::default()).await?;
            return Ok(secs);
        }
        ensure!(
            t.elapsed() < Duration::from_secs(60),
            "{ns}/{name}: not Running after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test]
async fn pod_start_with_and_without_the_webhook() -> Result<()> {
    let client = client().await;
    let with_ns = namespace(&client, SCENARIO, "restricted").await?;
    // Another scenario label: the webhook does not select it.
    let without_ns = namespace(&client, "timing-control", "privileged").await?;
    let hook = Webhook::start(&config("enforce")).await?;
    let mwc_name = unique("sd-timing");
    let mwc = webhook_configuration(&mwc_name, &hook.url(), &hook.tls.ca_pem, SCENARIO, "Fail")?;
    register(&client, &mwc, &with_ns, true).await?;
    let result = async {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        // Alternate, so load on the machine hits both alike.
        for i in 0..ROUNDS {
            with.push(start(&client, &with_ns, &format!("p{i}")).await?);
            without.push(start(&client, &without_ns, &format!("p{i}")).await?);
        }
        let (w, wo) = (median(with.clone()), median(without.clone()));
        println!(
            "pod create -> Running, {ROUNDS} pods each: with the webhook median {w:.3} s {with:.3?}; without {wo:.3} s {without:.3?}; ratio {:.2}",
            w / wo
        );
        ensure!(w / wo < 2.0, "the webhook more than doubles pod start: {w:.3} s vs {wo:.3} s");
        Ok(())
    }
    .await;
    unregister(&client, &mwc_name).await?;
    drop(hook);
    result
}
