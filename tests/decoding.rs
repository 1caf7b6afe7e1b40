//! `mutate` predicts what the cluster stores. The API server decodes a
//! manifest into Go structs before admission, which drops `null`s and empty
//! `omitempty` lists and maps; the webhook then sees the decoded pod. For
//! each case: the manifest as written through `mutate`, and the pod as the
//! API server decodes it (written out by hand, from the k8s.io/api json
//! tags) through the webhook's own review, give the same stored pod.

use rstest::rstest;
use secure_defaults::admission::{self, Parsed};
use secure_defaults::cli::mutate::harden_document;
use secure_defaults::config::Config;
use secure_defaults::engine::decode::as_stored;
use secure_defaults::engine::Policy;
use serde_json::{json, Value};

fn pod(spec: &str) -> Value {
    let spec: Value = serde_yaml::from_str(spec).unwrap();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "legacy"}, "spec": spec})
}

/// The webhook's answer for `decoded`, applied to it.
fn webhook(decoded: &Value, config: &Config) -> Value {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "7c4b2f6e-0000-4000-8000-000000000002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "legacy",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": decoded,
            "dryRun": false,
        }
    });
    let Parsed::Request(req) = admission::parse(&serde_json::to_vec(&review).unwrap()).unwrap() else {
        panic!("not parsed as a request");
    };
    let response = admission::review(&req, config).response;
    assert!(response.allowed, "{:?}", response.result);
    let mut stored = decoded.clone();
    if let Some(patch) = response.patch {
        let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
        json_patch::patch(&mut stored, &patch).unwrap();
    }
    stored
}

const C: &str = "containers:\n  - name: app\n    image: nginx:1.27\n";

#[rstest]
#[case::drop_empty(
    "containers: [{name: app, image: nginx:1.27, securityContext: {capabilities: {drop: []}}}]",
    "containers: [{name: app, image: nginx:1.27, securityContext: {capabilities: {}}}]"
)]
#[case::drop_null_add_kept(
    "containers: [{name: app, image: nginx:1.27, securityContext: {capabilities: {drop: null, add: [NET_BIND_SERVICE]}}}]",
    "containers: [{name: app, image: nginx:1.27, securityContext: {capabilities: {add: [NET_BIND_SERVICE]}}}]"
)]
#[case::add_empty(
    "containers: [{name: app, image: nginx:1.27, securityContext: {capabilities: {add: [], drop: [NET_RAW]}}}]",
    "containers: [{name: app, image: nginx:1.27, securityContext: {capabilities: {drop: [NET_RAW]}}}]"
)]
#[case::capabilities_null(
    "containers: [{name: app, image: nginx:1.27, securityContext: {capabilities: null}}]",
    "containers: [{name: app, image: nginx:1.27, securityContext: {}}]"
)]
#[case::container_security_context_null("containers: [{name: app, image: nginx:1.27, securityContext: null}]", C)]
#[case::pod_security_context_null(&format!("securityContext: null\n{C}"), C)]
#[case::pod_security_context_empty_is_kept(&format!("securityContext: {{}}\n{C}"), &format!("securityContext: {{}}\n{C}"))]
#[case::se_linux_options_empty_is_kept(
    &format!("securityContext: {{seLinuxOptions: {{}}}}\n{C}"),
    &format!("securityContext: {{seLinuxOptions: {{}}}}\n{C}")
)]
#[case::supplemental_groups_and_sysctls_empty(
    &format!("securityContext: {{supplementalGroups: [], sysctls: []}}\n{C}"),
    &format!("securityContext: {{}}\n{C}")
)]
#[case::nulls_in_security_contexts(
    &format!("securityContext: {{runAsNonRoot: null, runAsUser: null, seccompProfile: null, fsGroup: null}}\n{C}"),
    &format!("securityContext: {{}}\n{C}")
)]
#[case::container_nulls(
    "containers: [{name: app, image: nginx:1.27, securityContext: {allowPrivilegeEscalation: null, privileged: null, runAsNonRoot: null}}]",
    "containers: [{name: app, image: nginx:1.27, securityContext: {}}]"
)]
#[case::empty_lists_of_containers_and_volumes(
    &format!("initContainers: []\nephemeralContainers: null\nvolumes: []\nnodeSelector: {{}}\n{C}"),
    C
)]
fn mutate_predicts_what_the_webhook_makes_of_the_decoded_pod(#[case] written: &str, #[case] decoded: &str) {
    let config = Config::default();
    let policy = Policy {
        baseline: &config.baseline,
        allow_opt_out: config.allow_pod_opt_out,
        images: &secure_defaults::engine::ImageFacts::default(),
    };
    let offline = harden_document(pod(written), policy, &config.extra_kinds)
        .unwrap()
        .after;
    let mut offline_stored = offline.clone();
    as_stored(&mut offline_stored);
    assert_eq!(
        offline_stored,
        webhook(&pod(decoded), &config),
        "mutate's output:\n{offline:#}"
    );
}

#[test]
fn a_workload_template_is_decoded_too() {
    let config = Config::default();
    let policy = Policy {
        baseline: &config.baseline,
        allow_opt_out: config.allow_pod_opt_out,
        images: &secure_defaults::engine::ImageFacts::default(),
    };
    let deployment: Value = serde_yaml::from_str(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    metadata: {annotations: null}\n    spec:\n      containers: [{name: app, image: x, securityContext: {capabilities: {drop: []}}}]\n",
    )
    .unwrap();
    let after = harden_document(deployment, policy, &[]).unwrap().after;
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
}
