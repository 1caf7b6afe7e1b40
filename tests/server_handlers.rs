//! The webhook's HTTP handlers in process (actix-web's test service): every
//! admission behaviour and every refusal, without sockets or TLS.

use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use base64::Engine as _;
use pretty_assertions::assert_eq;
use secure_defaults::config::{Config, Mode};
use secure_defaults::engine::Check;
use secure_defaults::server::{admin_routes, webhook_routes, AppState};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

static POD_SC: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
    || json!({"fsGroup": 65532, "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}}),
);

/// The pod-level operations when the pod has an empty `securityContext: {}`
/// (as the API server's defaulting leaves it).
const POD_SC_OPS: [&str; 3] = [
    "/spec/securityContext/fsGroup",
    "/spec/securityContext/fsGroupChangePolicy",
    "/spec/securityContext/seccompProfile",
];

fn state(config: Config) -> web::Data<AppState> {
    let state = web::Data::new(AppState::new(config, Duration::from_secs(5)));
    state.ready.store(true, Ordering::SeqCst);
    state
}

/// A review as the API server sends it.
struct Review {
    operation: &'static str,
    kind: &'static str,
    resource: &'static str,
    sub_resource: Option<&'static str>,
    object: Value,
    old_object: Value,
    dry_run: bool,
}

impl Review {
    fn create(object: Value) -> Review {
        Review {
            operation: "CREATE",
            kind: "Pod",
            resource: "pods",
            sub_resource: None,
            object,
            old_object: Value::Null,
            dry_run: false,
        }
    }

    fn json(&self) -> Value {
        let group = if self.kind == "Deployment" { "apps" } else { "" };
        let mut request = json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": "v1", "kind": self.kind},
            "resource": {"group": group, "version": "v1", "resource": self.resource},
            "name": "p",
            "namespace": "team-a",
            "operation": self.operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": self.object,
            "oldObject": self.old_object,
            "dryRun": self.dry_run,
        });
        if let Some(sub) = self.sub_resource {
            request["subResource"] = json!(sub);
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
    }
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team-a"}, "spec": spec})
}

fn pod_with_annotations(annotations: Value, spec: Value) -> Value {
    let mut p = pod(spec);
    p["metadata"]["annotations"] = annotations;
    p
}

fn bare_spec() -> Value {
    json!({"containers": [{"name": "app", "image": "nginx"}]})
}

/// POST /mutate; the status and the raw body.
async fn post_raw(state: &web::Data<AppState>, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let app = test::init_service(App::new().configure(webhook_routes(state.clone()))).await;
    let mut req = test::TestRequest::post().uri("/mutate?timeout=10s");
    if let Some(ct) = content_type {
        req = req.insert_header(("Content-Type", ct));
    }
    let resp = test::call_service(&app, req.set_payload(body).to_request()).await;
    let status = resp.status();
    (status, test::read_body(resp).await.to_vec())
}

/// POST a review; the `response` of the AdmissionReview that comes back.
async fn post(state: &web::Data<AppState>, review: &Review) -> Value {
    let (status, body) = post_raw(state, Some("application/json"), review.json().to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).expect("an AdmissionReview");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    let response = answer["response"].clone();
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    // Never a patchType without a patch.
    assert_eq!(
        response.get("patch").is_some(),
        response.get("patchType").is_some(),
        "{response}"
    );
    response
}

/// The patch, decoded from base64 (as Go's `[]byte`).
fn patch(response: &Value) -> Vec<Value> {
    let Some(encoded) = response.get("patch") else {
        return Vec::new();
    };
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_str().expect("the patch is a base64 string"))
        .expect("base64");
    serde_json::from_slice(&bytes).expect("patch is JSON")
}

fn paths(response: &Value) -> Vec<String> {
    patch(response)
        .iter()
        .map(|op| {
            assert_eq!(op["op"], "add", "{op}");
            op["path"].as_str().unwrap().to_string()
        })
        .collect()
}

fn warnings(response: &Value) -> Vec<String> {
    response
        .get("warnings")
        .map(|w| serde_json::from_value(w.clone()).unwrap())
        .unwrap_or_default()
}

fn annotation<'a>(response: &'a Value, key: &str) -> Option<&'a str> {
    response
        .get("auditAnnotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn has_warning(response: &Value, needle: &str) -> bool {
    warnings(response).iter().any(|w| w.contains(needle))
}

#[actix_web::test]
async fn pod_create_is_patched_with_the_baseline() {
    let response = post(&state(Config::default()), &Review::create(pod(bare_spec()))).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(
        patch(&response),
        [
            json!({"op": "add", "path": "/spec/securityContext", "value": POD_SC.clone()}),
            json!({"op": "add", "path": "/spec/containers/0/securityContext",
               "value": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                         "runAsGroup": 65532, "runAsNonRoot": true, "runAsUser": 65532}}),
        ]
    );
    assert_eq!(warnings(&response), Vec::<String>::new());
    assert_eq!(annotation(&response, "mode"), Some("enforce"));
    assert_eq!(
        annotation(&response, "added"),
        Some("container/app.runAsNonRoot,container/app.runAsUser,container/app.runAsGroup,pod.fsGroup,pod.fsGroupChangePolicy,pod.seccompProfile,container/app.allowPrivilegeEscalation,container/app.capabilities")
    );
}

#[actix_web::test]
async fn explicit_values_are_kept_and_warned_about() {
    let spec = json!({"containers": [{"name": "app", "image": "nginx", "securityContext": {"runAsUser": 0, "privileged": true}}]});
    let response = post(&state(Config::default()), &Review::create(pod(spec))).await;
    assert_eq!(response["allowed"], true);
    assert!(
        has_warning(
            &response,
            r#"still violates PodSecurity "restricted": privileged: container "app""#
        ),
        "{:?}",
        warnings(&response)
    );
    assert!(warnings(&response)
        .iter()
        .all(|w| w.starts_with("secure-defaults: ") && w.len() <= 256));
    // The privileged root container keeps its identity and escalation; the pod still gets seccomp.
    assert_eq!(paths(&response), ["/spec/securityContext"]);
    assert_eq!(
        patch(&response)[0]["value"]["seccompProfile"],
        json!({"type": "RuntimeDefault"})
    );
}

#[actix_web::test]
async fn nothing_to_change_means_no_patch_and_no_patch_type() {
    let spec = json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "image": "nginx",
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
    });
    let response = post(&state(Config::default()), &Review::create(pod(spec))).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("patch"), None);
    assert_eq!(response.get("patchType"), None);
    assert_eq!(annotation(&response, "added"), None);
}

fn debug_pod(ephemeral: &[&str]) -> Value {
    let ephemeral: Vec<Value> = ephemeral
        .iter()
        .map(|name| json!({"name": name, "image": "busybox", "targetContainerName": "app"}))
        .collect();
    pod(json!({
        "containers": [{"name": "app", "image": "nginx"}],
        "ephemeralContainers": ephemeral,
    }))
}

fn ephemeral_update(before: &[&str], after: &[&str]) -> Review {
    Review {
        operation: "UPDATE",
        sub_resource: Some("ephemeralcontainers"),
        old_object: debug_pod(before),
        ..Review::create(debug_pod(after))
    }
}

#[actix_web::test]
async fn ephemeral_container_update_hardens_only_the_new_container() {
    let response = post(
        &state(Config::default()),
        &ephemeral_update(&["debugger-1"], &["debugger-1", "debugger-2"]),
    )
    .await;
    assert_eq!(response["allowed"], true);
    assert_eq!(paths(&response), ["/spec/ephemeralContainers/1/securityContext"]);
    assert_eq!(
        annotation(&response, "added"),
        Some("ephemeralContainer/debugger-2.runAsNonRoot,ephemeralContainer/debugger-2.runAsUser,ephemeralContainer/debugger-2.runAsGroup,ephemeralContainer/debugger-2.seccompProfile,ephemeralContainer/debugger-2.allowPrivilegeEscalation,ephemeralContainer/debugger-2.capabilities")
    );
    // Nothing about the unhardened app container or the old debugger.
    assert_eq!(warnings(&response), Vec::<String>::new());
}

#[actix_web::test]
async fn ephemeral_container_update_without_a_new_container_changes_nothing() {
    let response = post(
        &state(Config::default()),
        &ephemeral_update(&["debugger-1"], &["debugger-1"]),
    )
    .await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("patch"), None);
}

#[actix_web::test]
async fn deny_list_on_ephemeral_update_looks_only_at_the_new_container() {
    // The running pod is privileged (admitted before the policy); the debugger is not.
    let mut before = debug_pod(&[]);
    before["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let mut after = debug_pod(&["dbg"]);
    after["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let review = Review {
        operation: "UPDATE",
        sub_resource: Some("ephemeralcontainers"),
        old_object: before,
        ..Review::create(after)
    };
    let config = Config {
        deny: [Check::Privileged].into(),
        ..Config::default()
    };
    let response = post(&state(config), &review).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(paths(&response), ["/spec/ephemeralContainers/0/securityContext"]);
}

#[actix_web::test]
async fn a_deployment_gets_a_preview_warning_and_no_patch() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": bare_spec()}}});
    let review = Review {
        kind: "Deployment",
        resource: "deployments",
        ..Review::create(deployment)
    };
    let state = state(Config::default());
    let response = post(&state, &review).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(response.get("patch"), None, "{response}");
    let warnings = response["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{response}");
    assert!(warnings[0]
        .as_str()
        .unwrap()
        .starts_with("secure-defaults: Deployment preview: "));
    let metrics = state.metrics.encode();
    assert!(
        metrics.contains(
            r#"secure_defaults_admission_requests_total{operation="CREATE",outcome="previewed",mode="enforce"} 1"#
        ),
        "{metrics}"
    );
}

#[actix_web::test]
async fn other_kinds_operations_and_subresources_pass_untouched() {
    // Workloads get a preview (tests/previews.rs); a ReplicationController does not.
    let controller = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "d"},
        "spec": {"template": {"spec": bare_spec()}}});
    let cases = [
        Review {
            operation: "DELETE",
            object: Value::Null,
            old_object: pod(bare_spec()),
            ..Review::create(Value::Null)
        },
        Review {
            operation: "UPDATE",
            old_object: pod(bare_spec()),
            ..Review::create(pod(bare_spec()))
        },
        Review {
            kind: "ReplicationController",
            resource: "replicationcontrollers",
            ..Review::create(controller)
        },
        Review {
            kind: "Binding",
            sub_resource: Some("binding"),
            ..Review::create(
                json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n"}}),
            )
        },
        Review {
            operation: "CONNECT",
            kind: "PodExecOptions",
            sub_resource: Some("exec"),
            ..Review::create(json!({"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"]}))
        },
        Review {
            operation: "UPDATE",
            sub_resource: Some("status"),
            old_object: pod(bare_spec()),
            ..Review::create(pod(bare_spec()))
        },
    ];
    let state = state(Config::default());
    for review in cases {
        let response = post(&state, &review).await;
        assert_eq!(response["allowed"], true, "{}", review.json());
        assert_eq!(response.get("patch"), None, "{}", review.json());
        assert_eq!(response.get("warnings"), None, "{}", review.json());
        assert_eq!(response.get("auditAnnotations"), None, "{}", review.json());
    }
    let metrics = state.metrics.encode();
    assert!(
        metrics.contains(
            r#"secure_defaults_admission_requests_total{operation="UPDATE",outcome="skipped",mode="enforce"} 2"#
        ),
        "{metrics}"
    );
}

#[actix_web::test]
async fn dry_run_gets_the_same_answer() {
    let state = state(Config::default());
    let normal = post(&state, &Review::create(pod(bare_spec()))).await;
    let dry = post(
        &state,
        &Review {
            dry_run: true,
            ..Review::create(pod(bare_spec()))
        },
    )
    .await;
    assert_eq!(dry, normal);
}

/// Issue 18: a port below 1024 the hardened container cannot bind is one
/// warning line, with what to do; audit mode changes nothing, so says nothing.
#[actix_web::test]
async fn a_low_port_the_hardened_pod_cannot_bind_is_a_warning() {
    let spec = json!({"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
                                      "readinessProbe": {"tcpSocket": {"port": 443}}}]});
    let response = post(&state(Config::default()), &Review::create(pod(spec.clone()))).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(
        warnings(&response),
        ["secure-defaults: container \"web\" listens on ports 80, 443 (<1024): as non-root without NET_BIND_SERVICE it cannot bind them unless net.ipv4.ip_unprivileged_port_start is lower; use a port >= 1024 or set that sysctl in the pod's securityContext.sysctls"]
    );
    let audit = Config {
        mode: Mode::Audit,
        ..Config::default()
    };
    let response = post(&state(audit), &Review::create(pod(spec))).await;
    assert!(!has_warning(&response, "listens on"), "{:?}", warnings(&response));
}

#[actix_web::test]
async fn audit_mode_patches_nothing_and_says_what_it_would_add() {
    let config = Config {
        mode: Mode::Audit,
        ..Config::default()
    };
    let state = state(config);
    let response = post(&state, &Review::create(pod(bare_spec()))).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("patch"), None);
    assert_eq!(
        warnings(&response),
        [
            "secure-defaults: audit mode: would add to container \"app\": runAsNonRoot, runAsUser, runAsGroup, allowPrivilegeEscalation, capabilities",
            "secure-defaults: audit mode: would add to pod: fsGroup, fsGroupChangePolicy, seccompProfile",
        ]
    );
    assert_eq!(annotation(&response, "mode"), Some("audit"));
    assert_eq!(annotation(&response, "added"), None);
    assert!(annotation(&response, "would-add").is_some_and(|v| v.starts_with("container/app.runAsNonRoot,")));
    let metrics = state.metrics.encode();
    assert!(
        metrics
            .contains(r#"secure_defaults_fields_added_total{field="runAsNonRoot",level="container",mode="audit"} 1"#),
        "{metrics}"
    );
}

fn privileged_pod_with_host_path() -> Value {
    pod(json!({
        "volumes": [{"name": "data", "hostPath": {"path": "/var/lib"}}],
        "containers": [{"name": "app", "image": "nginx", "securityContext": {"privileged": true},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]
    }))
}

#[actix_web::test]
async fn deny_list_rejects_with_a_reason_naming_container_and_value() {
    let config = Config {
        deny: [Check::Privileged, Check::HostPathVolumes].into(),
        ..Config::default()
    };
    let response = post(&state(config), &Review::create(privileged_pod_with_host_path())).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(response["status"]["reason"], "Forbidden");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"hostPathVolumes: hostPath volume "data""#),
        "{message}"
    );
    assert!(
        message.contains(r#"privileged: container "app": privileged=true"#),
        "{message}"
    );
    assert_eq!(response.get("patch"), None);
    assert_eq!(annotation(&response, "denied"), Some("hostPathVolumes,privileged"));
}

#[actix_web::test]
async fn deny_list_only_warns_in_audit_mode() {
    let config = Config {
        mode: Mode::Audit,
        deny: [Check::Privileged].into(),
        ..Config::default()
    };
    let response = post(&state(config), &Review::create(privileged_pod_with_host_path())).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("patch"), None);
    assert!(
        has_warning(
            &response,
            "audit mode: this pod would be denied: privileged: container \"app\""
        ),
        "{:?}",
        warnings(&response)
    );
    assert_eq!(annotation(&response, "would-deny"), Some("privileged"));
}

#[actix_web::test]
async fn checks_not_on_the_deny_list_do_not_deny() {
    let config = Config {
        deny: [Check::HostNamespaces].into(),
        ..Config::default()
    };
    let response = post(&state(config), &Review::create(privileged_pod_with_host_path())).await;
    assert_eq!(response["allowed"], true);
}

#[actix_web::test]
async fn pod_opt_out_is_honoured_when_allowed() {
    let object = pod_with_annotations(json!({"secure-defaults.io/skip": "true"}), bare_spec());
    let response = post(&state(Config::default()), &Review::create(object)).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("patch"), None);
    assert!(has_warning(&response, "opted out"), "{:?}", warnings(&response));
    assert_eq!(annotation(&response, "opt-out"), Some("honoured"));
}

#[actix_web::test]
async fn field_opt_out_skips_those_fields() {
    let object = pod_with_annotations(
        json!({"secure-defaults.io/skip-fields": "runAsUser,runAsGroup"}),
        bare_spec(),
    );
    let response = post(&state(Config::default()), &Review::create(object)).await;
    let container_sc = &patch(&response)[1];
    assert_eq!(container_sc["path"], "/spec/containers/0/securityContext");
    assert_eq!(container_sc["value"].get("runAsUser"), None, "{container_sc}");
    assert_eq!(container_sc["value"].get("runAsGroup"), None, "{container_sc}");
    assert_eq!(container_sc["value"]["runAsNonRoot"], true, "{container_sc}");
}

#[actix_web::test]
async fn pod_opt_out_is_ignored_with_a_warning_when_forbidden() {
    let config = Config {
        allow_pod_opt_out: false,
        ..Config::default()
    };
    let object = pod_with_annotations(json!({"secure-defaults.io/skip": "true"}), bare_spec());
    let response = post(&state(config), &Review::create(object)).await;
    assert_eq!(
        paths(&response),
        ["/spec/securityContext", "/spec/containers/0/securityContext"]
    );
    assert!(
        has_warning(&response, "secure-defaults.io/skip and secure-defaults.io/skip-fields ignored: this cluster does not allow pods to opt out"),
        "{:?}",
        warnings(&response)
    );
    assert_eq!(annotation(&response, "opt-out"), Some("ignored"));
}

#[actix_web::test]
async fn unknown_skip_fields_are_named_in_a_warning() {
    let object = pod_with_annotations(
        json!({"secure-defaults.io/skip-fields": "runAsUser,runAsUsr"}),
        bare_spec(),
    );
    let response = post(&state(Config::default()), &Review::create(object)).await;
    assert!(
        has_warning(
            &response,
            "unknown field names in secure-defaults.io/skip-fields ignored: runAsUsr (known: runAsNonRoot,"
        ),
        "{:?}",
        warnings(&response)
    );
}

#[actix_web::test]
async fn a_pod_that_cannot_be_read_is_allowed_with_a_warning() {
    let state = state(Config::default());
    let object = pod(json!({"containers": "not a list"}));
    let response = post(&state, &Review::create(object)).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("patch"), None);
    // Exactly: no position in the AdmissionReview's body, which the pod's
    // author never saw.
    assert_eq!(
        warnings(&response),
        [
            r#"secure-defaults: pod not hardened (cannot read the request): the Pod's spec cannot be read: invalid type: string "not a list", expected a sequence"#
        ]
    );
    assert!(annotation(&response, "error").is_some());

    let response = post(
        &state,
        &Review::create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})),
    )
    .await;
    assert!(
        has_warning(&response, "the Pod has no spec"),
        "{:?}",
        warnings(&response)
    );

    let metrics = state.metrics.encode();
    assert!(
        metrics.contains(
            r#"secure_defaults_admission_requests_total{operation="CREATE",outcome="invalid",mode="enforce"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"secure_defaults_errors_total{kind="invalid_object"} 2"#),
        "{metrics}"
    );
}

#[actix_web::test]
async fn a_review_whose_request_does_not_parse_is_answered_for_its_uid() {
    let mut review = Review::create(pod(bare_spec())).json();
    review["request"]["object"]["metadata"]["annotations"] = json!(["not", "a", "map"]);
    let (status, body) = post_raw(
        &state(Config::default()),
        Some("application/json"),
        review.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(answer["response"]["allowed"], true);
    assert!(has_warning(&answer["response"], "pod not hardened"), "{answer}");
}

#[actix_web::test]
async fn the_example_review_is_patched() {
    let body = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/admission-review.json")).unwrap();
    let (status, body) = post_raw(&state(Config::default()), Some("application/json"), body).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let mut expected: Vec<String> = POD_SC_OPS.iter().map(|s| s.to_string()).collect();
    expected.push("/spec/containers/0/securityContext".into());
    assert_eq!(paths(&answer["response"]), expected);
}

async fn refused(content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, String) {
    let (status, body) = post_raw(&state(Config::default()), content_type, body).await;
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.ends_with('\n') && text.trim_end().lines().count() == 1,
        "one line: {text:?}"
    );
    (status, text)
}

#[actix_web::test]
async fn bodies_over_7_mib_are_refused_with_413() {
    let (status, text) = refused(Some("application/json"), vec![b' '; 7 * 1024 * 1024 + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("exceeds the limit of 7340032 bytes"), "{text}");
}

#[actix_web::test]
async fn bodies_of_7_mib_are_read() {
    // A large but valid review: padding in an annotation.
    let mut review = Review::create(pod(bare_spec())).json();
    let padding = "x".repeat(7 * 1024 * 1024 - 2048);
    review["request"]["object"]["metadata"]["annotations"] = json!({ "padding": padding });
    let body = review.to_string().into_bytes();
    assert!(body.len() <= 7 * 1024 * 1024);
    let (status, _) = post_raw(&state(Config::default()), Some("application/json"), body).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn empty_and_non_json_bodies_are_refused_with_400() {
    let (status, text) = refused(Some("application/json"), Vec::new()).await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::BAD_REQUEST, "empty body: expected an AdmissionReview\n")
    );
    let (status, text) = refused(Some("application/json"), b"<html>".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("body is not JSON: "), "{text}");
    let (status, text) = refused(Some("application/json"), b"{\"kind\": \"Pod\"}".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("unsupported apiVersion"), "{text}");
    let v1beta1 = Review::create(pod(bare_spec()))
        .json()
        .to_string()
        .replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
    let (status, text) = refused(Some("application/json"), v1beta1.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("\"admission.k8s.io/v1beta1\""), "{text}");
}

#[actix_web::test]
async fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    let depth = 1_000_000;
    let mut body =
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":"#.to_vec();
    body.extend(std::iter::repeat_n(b'[', depth));
    body.extend(std::iter::repeat_n(b']', depth));
    body.extend(b"}}");
    let (status, text) = refused(Some("application/json"), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("recursion limit exceeded"), "{text}");
}

#[actix_web::test]
async fn wrong_content_type_is_refused_with_415() {
    let body = Review::create(pod(bare_spec())).json().to_string().into_bytes();
    let (status, text) = refused(Some("text/plain"), body.clone()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(text, "Content-Type must be application/json, got \"text/plain\"\n");
    let (status, _) = refused(None, body.clone()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = post_raw(&state(Config::default()), Some("application/json; charset=utf-8"), body).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn only_post_mutate_is_served() {
    let app = test::init_service(App::new().configure(webhook_routes(state(Config::default())))).await;
    let resp = test::call_service(&app, test::TestRequest::get().uri("/mutate").to_request()).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = test::call_service(&app, test::TestRequest::post().uri("/validate").to_request()).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn answers_close_the_connection_while_shutting_down() {
    let state = state(Config::default());
    let app = test::init_service(App::new().configure(webhook_routes(state.clone()))).await;
    let request = || {
        test::TestRequest::post()
            .uri("/mutate")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(Review::create(pod(bare_spec())).json().to_string())
            .to_request()
    };
    let resp = test::call_service(&app, request()).await;
    assert_ne!(
        resp.response().head().connection_type(),
        actix_web::http::ConnectionType::Close
    );
    state.ready.store(false, Ordering::SeqCst);
    let resp = test::call_service(&app, request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.response().head().connection_type(),
        actix_web::http::ConnectionType::Close
    );
}

#[actix_web::test]
async fn metrics_count_requests_fields_and_errors() {
    let config = Config {
        deny: [Check::HostPathVolumes].into(),
        ..Config::default()
    };
    let state = state(config);
    post(&state, &Review::create(pod(bare_spec()))).await;
    post(&state, &Review::create(privileged_pod_with_host_path())).await;
    let kept = json!({"containers": [{"name": "app", "image": "nginx", "securityContext": {"runAsUser": 0}}]});
    post(&state, &Review::create(pod(kept))).await;
    post_raw(&state, Some("text/plain"), b"{}".to_vec()).await;
    post_raw(&state, Some("application/json"), Vec::new()).await;

    let admin = test::init_service(App::new().configure(admin_routes(state.clone()))).await;
    let resp = test::call_service(&admin, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    for line in [
        r#"secure_defaults_admission_requests_total{operation="CREATE",outcome="patched",mode="enforce"} 2"#,
        r#"secure_defaults_admission_requests_total{operation="CREATE",outcome="denied",mode="enforce"} 1"#,
        r#"secure_defaults_admission_requests_total{operation="unknown",outcome="invalid",mode="none"} 2"#,
        r#"secure_defaults_fields_added_total{field="allowPrivilegeEscalation",level="container",mode="enforce"} 2"#,
        r#"secure_defaults_explicit_values_kept_total{field="runAsUser"} 1"#,
        r#"secure_defaults_remaining_violations_total{check="hostPathVolumes"} 1"#,
        r#"secure_defaults_remaining_violations_total{check="privileged"} 1"#,
        r#"secure_defaults_errors_total{kind="unsupported_media_type"} 1"#,
        r#"secure_defaults_errors_total{kind="empty_body"} 1"#,
        "secure_defaults_admission_duration_seconds_count 5",
        r#"secure_defaults_build_info{version=""#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}

#[actix_web::test]
async fn healthz_is_always_ok_and_readyz_follows_readiness() {
    let state = state(Config::default());
    let admin = test::init_service(App::new().configure(admin_routes(state.clone()))).await;
    let get = |path: &'static str| test::TestRequest::get().uri(path).to_request();
    assert_eq!(
        test::call_service(&admin, get("/healthz")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        test::call_service(&admin, get("/readyz")).await.status(),
        StatusCode::OK
    );
    state.ready.store(false, Ordering::SeqCst);
    assert_eq!(
        test::call_service(&admin, get("/healthz")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        test::call_service(&admin, get("/readyz")).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}
