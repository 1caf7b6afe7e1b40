//! The AdmissionReview bodies the benchmarks send, at the sizes of issue 6:
//! a small pod (~3 KB review), a typical pod (init + native sidecar + 3
//! containers, ~10 KB), a large pod (100 containers, ~1 MB), and a ~3 MB
//! UPDATE of `pods/ephemeralcontainers` (`kubectl debug` on a big pod: the
//! old and the new object, one new ephemeral container).

use serde_json::{json, Value};

/// The binary's allocator (src/main.rs), so the bench measures what it runs.
#[global_allocator]
static GLOBAL: secure_defaults::allocator::Allocator = secure_defaults::allocator::Allocator;

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
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "bench", "namespace": "default", "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                     "uid": "2b6f5a1c-6a1e-4f5e-9a0e-3c1d2b4a5f60",
                     "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
        "object": object, "oldObject": old, "dryRun": false,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    });
    if let Some(s) = sub_resource {
        request["subResource"] = json!(s);
        request["requestSubResource"] = json!(s);
    }
    serde_json::to_vec(&json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}))
        .expect("a bench review serializes")
}

fn pod(init: Vec<Value>, containers: Vec<Value>, annotations: usize) -> Value {
    let annotations: serde_json::Map<String, Value> = (0..annotations)
        .map(|i| (format!("example.com/note-{i}"), json!("y".repeat(64))))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "bench-7d4b9c8f6-", "namespace": "default",
                     "labels": {"app": "bench", "pod-template-hash": "7d4b9c8f6"}, "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "bench-7d4b9c8f6",
                                          "uid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "controller": true,
                                          "blockOwnerDeletion": true}]},
        "spec": {"initContainers": init, "containers": containers, "restartPolicy": "Always",
                 "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
                 "volumes": [{"name": "kube-api-access", "projected": {"sources": [
                     {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                     {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}]}
    })
}

/// `(name, body)` for each case, smallest first.
pub fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let small = review("CREATE", None, pod(vec![], vec![container("app", 12, 64)], 6), None);
    let typical = review(
        "CREATE",
        None,
        pod(
            vec![
                container("migrate", 12, 64),
                json!({"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"}),
            ],
            vec![
                container("web", 25, 64),
                container("worker", 25, 64),
                container("metrics", 12, 64),
            ],
            16,
        ),
        None,
    );
    let large_containers: Vec<Value> = (0..100).map(|i| container(&format!("c{i}"), 40, 220)).collect();
    let large = review("CREATE", None, pod(vec![], large_containers, 20), None);
    let big: Vec<Value> = (0..150).map(|i| container(&format!("c{i}"), 50, 180)).collect();
    let old = pod(vec![], big, 10);
    let mut new = old.clone();
    new["spec"]["ephemeralContainers"] = json!([{"name": "debugger", "image": "busybox", "stdin": true, "tty": true}]);
    let update = review("UPDATE", Some("ephemeralcontainers"), new, Some(old));
    vec![
        ("small", small),
        ("typical", typical),
        ("large-100-containers", large),
        ("update-ephemeral-3mb", update),
    ]
}

/// What the server does with one body, without HTTP and TLS: parse, review
/// (admission layer, engine, patch), serialize the answer.
pub fn review_once(body: &[u8], config: &secure_defaults::config::Config) -> Vec<u8> {
    use secure_defaults::admission::{self, Parsed};
    let Ok(Parsed::Request(req)) = admission::parse(body) else {
        panic!("bench review parses")
    };
    let reviewed = admission::review(&req, config);
    assert!(reviewed.response.allowed);
    assert!(reviewed.response.patch.is_some(), "bench review is patched");
    admission::encode(reviewed.response).expect("the answer serializes")
}
