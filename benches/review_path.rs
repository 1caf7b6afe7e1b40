//! The review path, as the server runs it for one request: parse the
//! AdmissionReview bytes, run the admission layer (engine and patch), and
//! serialize the answer. Run with `make bench` (or `cargo bench --bench review_path`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use secure_defaults::admission::{self, Parsed};
use secure_defaults::config::Config;
use serde_json::{json, Value};
use std::hint::black_box;

fn container(name: &str, env: usize, pad: usize) -> Value {
    let env: Vec<Value> = (0..env)
        .map(|i| json!({"name": format!("VAR_{i}"), "value": "x".repeat(pad)}))
        .collect();
    json!({
        "name": name,
        "image": "registry.example.com/app:1.2.3",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    })
}

fn review(operation: &str, sub_resource: Option<&str>, object: Value, old: Option<Value>) -> Vec<u8> {
    let mut request = json!({
        "uid": "6c2f1b1e-3f0a-4d1c-9a57-8f4e2b7c9d10",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "bench", "namespace": "default", "operation": operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:authenticated"]},
        "object": object, "oldObject": old, "dryRun": false,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    });
    if let Some(s) = sub_resource {
        request["subResource"] = json!(s);
    }
    serde_json::to_vec(&json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}))
        .unwrap()
}

fn pod(init: Vec<Value>, containers: Vec<Value>, annotations: usize) -> Value {
    let annotations: serde_json::Map<String, Value> = (0..annotations)
        .map(|i| (format!("example.com/note-{i}"), json!("y".repeat(64))))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bench", "namespace": "default", "labels": {"app": "bench"}, "annotations": annotations},
        "spec": {"initContainers": init, "containers": containers, "restartPolicy": "Always",
                 "serviceAccountName": "default", "terminationGracePeriodSeconds": 30}
    })
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let small = review("CREATE", None, pod(vec![], vec![container("app", 8, 32)], 4), None);
    let typical = review(
        "CREATE",
        None,
        pod(
            vec![
                container("migrate", 10, 64),
                json!({"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"}),
            ],
            vec![
                container("web", 20, 64),
                container("worker", 20, 64),
                container("metrics", 10, 64),
            ],
            12,
        ),
        None,
    );
    let large_containers: Vec<Value> = (0..100).map(|i| container(&format!("c{i}"), 40, 200)).collect();
    let large = review("CREATE", None, pod(vec![], large_containers, 20), None);
    // kubectl debug on a big pod: 3 MB of old and new object, one new ephemeral container.
    let big: Vec<Value> = (0..75).map(|i| container(&format!("c{i}"), 50, 180)).collect();
    let old = pod(vec![], big, 10);
    let mut new = old.clone();
    new["spec"]["ephemeralContainers"] = json!([{"name": "debugger", "image": "busybox", "stdin": true, "tty": true}]);
    let update = review("UPDATE", Some("ephemeralcontainers"), new, Some(old));
    vec![
        ("small", small),
        ("typical", typical),
        ("large-100-containers", large),
        ("update-ephemeral", update),
    ]
}

fn review_path(c: &mut Criterion) {
    let config = Config::default();
    let mut group = c.benchmark_group("review_path");
    for (name, body) in cases() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new(name, format!("{} KiB", body.len() / 1024)),
            &body,
            |b, body| {
                b.iter(|| {
                    let Ok(Parsed::Request(req)) = admission::parse(black_box(body)) else {
                        panic!("bench review parses")
                    };
                    let reviewed = admission::review(&req, &config);
                    assert!(reviewed.response.allowed);
                    black_box(serde_json::to_vec(&reviewed.response.into_review()).unwrap())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, review_path);
criterion_main!(benches);
