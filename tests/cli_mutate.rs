//! `secure-defaults mutate` as a user runs it: the real binary, files and pipes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn mutate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
        .arg("mutate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// `mutate -f - -o json` of `stdin`, which must succeed: the object written.
fn mutate_json(stdin: &str) -> serde_json::Value {
    let o = mutate(&["-f", "-", "-o", "json"], stdin);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: app, image: nginx}]}\n";

#[test]
fn yaml_from_stdin_is_hardened_and_other_kinds_pass_through_in_order() {
    let input = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{a: b}}\n---\n{POD}");
    let o = mutate(&["-f", "-"], &input);
    assert!(o.status.success(), "{}", stderr(&o));
    let docs: Vec<serde_json::Value> = secure_defaults::cli::mutate::parse_documents(&stdout(&o)).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["kind"], "ConfigMap");
    assert_eq!(docs[0]["data"]["a"], "b");
    assert_eq!(
        docs[1]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"],
        true
    );
    assert_eq!(
        docs[1]["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    assert!(stderr(&o).contains("Pod/p: 8 added"), "{}", stderr(&o));
}

#[test]
fn json_output_is_the_object_for_one_document_and_a_list_for_several() {
    let one = mutate(&["-f", "-", "-o", "json", "-q"], POD);
    let v: serde_json::Value = serde_json::from_str(&stdout(&one)).unwrap();
    assert_eq!(v["kind"], "Pod");
    assert!(stderr(&one).is_empty(), "-q prints no summary");

    let two = mutate(&["-f", "-", "-f", "examples/legacy-app.yaml", "-o", "json", "-q"], POD);
    let v: serde_json::Value = serde_json::from_str(&stdout(&two)).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
}

#[test]
fn patch_output_is_one_rfc6902_patch_per_document_relative_to_it() {
    let o = mutate(&["-f", "examples/legacy-app.yaml", "-o", "patch", "-q"], "");
    assert!(o.status.success());
    let patches: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout(&o))
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(patches.len(), 4, "one per document, the Service's empty");
    assert_eq!(patches[0], serde_json::json!([]));
    let ops = patches[1].as_array().unwrap();
    assert!(ops.iter().all(|op| op["op"] == "add"));
    assert!(ops.iter().any(|op| op["path"] == "/spec/template/spec/securityContext"));
}

#[test]
fn diff_output_shows_added_lines_and_a_summary() {
    let o = mutate(&["-f", "-", "-o", "diff"], POD);
    let out = stdout(&o);
    assert!(out.contains("+++ b/(stdin)"), "{out}");
    assert!(out.contains("+      runAsNonRoot: true"), "{out}");
    assert!(
        out.contains("1 pod spec(s) in 1 document(s): 8 field(s) added"),
        "{out}"
    );
}

#[test]
fn config_file_switches_on_opt_in_fields() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "baseline:\n  readOnlyRootFilesystem: true\n").unwrap();
    let o = mutate(&["-f", "-", "-o", "json", "--config", cfg.to_str().unwrap()], POD);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );
}

#[test]
fn auto_identity_without_lookups_says_the_fallback_decided() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "baseline:\n  identity: auto\n  identityFallback: userns\n").unwrap();
    let o = mutate(&["-f", "-", "-o", "json", "--config", cfg.to_str().unwrap()], POD);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["spec"]["hostUsers"], false);
    assert_eq!(v["spec"]["containers"][0]["securityContext"].get("runAsUser"), None);
    let summary = stderr(&o);
    assert!(
        summary.contains(
            "identity: container \"app\": user namespace, no uid (identityFallback: userns): its image was not looked up"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("1 container(s) got identityFallback because their images were not looked up"),
        "{summary}"
    );
}

#[test]
fn bad_input_fails_with_file_document_and_reason_and_prints_nothing() {
    let input =
        format!("{POD}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: q}}\nspec: {{containers: {{name: a}}}}\n");
    let o = mutate(&["-f", "-"], &input);
    assert!(!o.status.success());
    assert!(stdout(&o).is_empty(), "nothing written half-way");
    let err = stderr(&o);
    assert!(err.contains("(stdin): document 2") && err.contains("spec"), "{err}");

    let o = mutate(&["-f", "-"], "a: [\n");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid YAML"), "{}", stderr(&o));

    let o = mutate(&["-f", "does-not-exist.yaml"], "");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does-not-exist.yaml"), "{}", stderr(&o));

    let o = mutate(&["-f", "-"], "- just\n- a list\n");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a Kubernetes object"), "{}", stderr(&o));
}

#[test]
fn invalid_config_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "baseline:\n  runAsUser: 0\n").unwrap();
    let o = mutate(&["-f", "-", "--config", cfg.to_str().unwrap()], POD);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("runAsUser"), "{}", stderr(&o));
}

#[test]
fn yaml_output_quotes_strings_kubectl_would_read_as_booleans_or_numbers() {
    let input = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {feature: \"on\"}}\nspec:\n  containers:\n  - name: app\n    image: nginx\n    env: [{name: DEBUG, value: \"no\"}, {name: MODE, value: \"0644\"}, {name: SCRIPT, value: \"set -e\\necho on\\n\"}]\n";
    let o = mutate(&["-f", "-"], input);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for line in ["feature: \"on\"", "value: \"no\"", "value: \"0644\"", "value: |\n"] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    let doc = &secure_defaults::cli::mutate::parse_documents(&out).unwrap()[0];
    assert_eq!(doc["spec"]["containers"][0]["env"][2]["value"], "set -e\necho on\n");
}

#[test]
fn yaml_merge_keys_are_resolved_before_hardening() {
    // kubectl reads the container as privileged: no allowPrivilegeEscalation
    // may be added beside it, and the local runAsUser wins over the merged one.
    let input = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: agent\n    image: busybox\n    securityContext:\n      <<: {privileged: true, runAsUser: 0}\n      runAsUser: 1000\n";
    let doc = mutate_json(input);
    let sc = &doc["spec"]["containers"][0]["securityContext"];
    assert_eq!(sc["privileged"], true);
    assert_eq!(sc["runAsUser"], 1000);
    assert!(
        sc.get("<<").is_none() && sc.get("allowPrivilegeEscalation").is_none(),
        "{sc}"
    );
}

#[test]
fn yaml_1_1_numbers_read_as_kubectl_reads_them() {
    // `helm template` output keeps a chart's octal modes as written.
    let input = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: app, image: nginx}]\n  volumes: [{name: v, configMap: {name: c, defaultMode: 0644}}]\n";
    let doc = mutate_json(input);
    assert_eq!(doc["spec"]["volumes"][0]["configMap"]["defaultMode"], 420);
    assert_eq!(doc["spec"]["containers"][0]["securityContext"]["runAsNonRoot"], true);
}

#[test]
fn json_and_yaml_flow_documents_are_read_as_yaml_in_one_stream() {
    // A flow mapping starts with `{` but is not JSON; JSON may be followed by YAML.
    let flow = "{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: app, image: nginx}]}}\n";
    assert_eq!(
        mutate_json(flow)["spec"]["containers"][0]["securityContext"]["runAsNonRoot"],
        true
    );
    let json = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}"#;
    let o = mutate(&["-f", "-", "-o", "json", "-q"], &format!("{json}\n---\n{POD}"));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["items"][0]["kind"], "ConfigMap");
    assert_eq!(v["items"][1]["kind"], "Pod");
}

#[test]
fn flow_sequences_closed_at_the_keys_column_are_read_as_helm_renders_them() {
    let input = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: x\n      command: [\n        \"/bin/sh\",\n        \"-c\"\n      ]\n";
    let doc = mutate_json(input);
    assert_eq!(
        doc["spec"]["containers"][0]["command"],
        serde_json::json!(["/bin/sh", "-c"])
    );
}

#[test]
fn errors_name_the_document_by_position_and_line_and_the_field_at_fault() {
    // Empty documents count: the bad one is the 4th document, its `---` on line 8.
    let input = format!(
        "{POD}---\n---\n# nothing\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        ports: [{{containerPort: http}}]\n"
    );
    let o = mutate(&["-f", "-"], &input);
    assert!(!o.status.success());
    assert!(stdout(&o).is_empty(), "nothing written half-way");
    assert_eq!(
        stderr(&o),
        "error: (stdin): document 4 (line 8): Deployment spec.template.spec is not a valid pod spec: \
         spec.template.spec.containers[0].ports[0].containerPort: invalid type: string \"http\", expected i32\n"
    );

    let o = mutate(&["-f", "-"], &format!("{POD}---\n{POD}---\nmetadata: {{name: [\n"));
    assert!(!o.status.success());
    assert!(stdout(&o).is_empty(), "nothing written half-way");
    assert_eq!(
        stderr(&o),
        "error: (stdin): invalid YAML or JSON: line 12 column 1: while parsing a node, did not find expected node content\n"
    );
}
