//! `mutate` matches objects by API group and kind: a custom resource that
//! shares a built-in's name passes through, one that looks like it carries
//! a pod template is named on stderr, and the operator's `extraKinds` are
//! hardened like the built-in workloads.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn mutate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
        .args(["mutate", "-f", "-"])
        .args(args)
        .env_remove("SECURE_DEFAULTS_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn json_items(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    out["items"].as_array().cloned().unwrap_or_else(|| vec![out])
}

const VOLCANO_JOB: &str = "
apiVersion: batch.volcano.sh/v1alpha1
kind: Job
metadata: {name: training}
spec:
  minAvailable: 1
  tasks:
    - name: worker
      replicas: 1
      template:
        spec:
          containers: [{name: worker, image: trainer:1}]
";

const ROLLOUT: &str = "
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  strategy: {canary: {steps: [{setWeight: 20}]}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
";

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: api:1}]
";

fn yaml_value(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn a_custom_job_passes_through_and_the_stream_goes_on() {
    let o = mutate(&["-o", "json"], &format!("{VOLCANO_JOB}---{DEPLOYMENT}"));
    let items = json_items(&o);
    assert_eq!(
        items[0],
        yaml_value(VOLCANO_JOB),
        "a batch.volcano.sh Job is not a batch Job"
    );
    let sc = &items[1]["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    assert_eq!(
        sc["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "the Deployment after it is hardened"
    );
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert!(
        stderr.starts_with(
            "note: Job/training (batch.volcano.sh/v1alpha1) passed through unhardened: \
             it looks like it has a pod template at spec.tasks[0].template; \
             name its group, kind and templatePath in the configuration's extraKinds to harden it\n"
        ),
        "{stderr}"
    );
}

#[test]
fn a_rollout_is_named_on_stderr_and_left_unchanged() {
    let o = mutate(&["-o", "json", "-q"], ROLLOUT);
    assert_eq!(json_items(&o), vec![yaml_value(ROLLOUT)]);
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        "note: Rollout/web -n shop (argoproj.io/v1alpha1) passed through unhardened: \
         it looks like it has a pod template at spec.template; \
         name its group, kind and templatePath in the configuration's extraKinds to harden it\n"
    );
}

#[test]
fn objects_without_a_pod_template_pass_through_silently() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n";
    let o = mutate(&["-o", "json", "-q"], cm);
    assert_eq!(json_items(&o), vec![yaml_value(cm)]);
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn extra_kinds_from_the_configuration_are_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "extraKinds:\n  - {group: argoproj.io, kind: Rollout, templatePath: spec.template}\n",
    )
    .unwrap();
    let o = mutate(&["-o", "patch", "-q", "--config", config.to_str().unwrap()], ROLLOUT);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    let patch: Value = serde_json::from_slice(&o.stdout).unwrap();
    let paths: Vec<&str> = patch
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/template/spec/securityContext",
            "/spec/template/spec/containers/0/securityContext"
        ]
    );
}
