//! The bodies of the fuzz targets, with their oracles. Compiled twice: by the
//! `cargo fuzz` crate (fuzz/, libFuzzer drives them) and by the main crate's
//! `tests/fuzz_corpus.rs`, which replays the seed and found corpus as an
//! ordinary test. Each function panics when an invariant breaks.
//!
//! Dependencies: `secure_defaults`, `serde_json`, `json_patch` only, so both
//! crates can compile it.

use json_patch::PatchOperation;
use secure_defaults::admission::{self, Parsed};
use secure_defaults::config::{Config, Mode};
use secure_defaults::engine::manifest::harden_object;
use secure_defaults::engine::{self, Baseline, Check, Field, Policy, Report, Target};
use secure_defaults::policy::messages::{MAX_MESSAGE, MAX_TOTAL};
use serde_json::{json, Map, Value};

/// Target `review`: any bytes as a request body. `parse` and `review` never
/// panic; an answer has bounded warnings and audit annotations, serializes,
/// and a patch in it holds only `add`s that apply to the request's object.
pub fn review_bytes(data: &[u8]) {
    let Ok(Parsed::Request(req)) = admission::parse(data) else {
        // Refused (400) or Unreadable: answered from the uid alone.
        if let Ok(Parsed::Unreadable(request)) = admission::parse(data) {
            check_answer(&admission::unreadable(&request, &Config::default()), None);
        }
        return;
    };
    // Read only if it is UTF-8 throughout, skipped fields included
    // (fuzz/regressions/review/invalid-utf8-in-an-ignored-field.json).
    assert!(std::str::from_utf8(data).is_ok(), "a review that is not UTF-8 was read");
    let object = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| v.pointer("/request/object").cloned());
    for mode in [Mode::Enforce, Mode::Audit] {
        let config = Config {
            mode,
            deny: [Check::Privileged, Check::HostNamespaces].into_iter().collect(),
            ..Config::default()
        };
        let reviewed = admission::review(&req, &config);
        check_answer(&reviewed, object.as_ref());
        if mode == Mode::Audit {
            assert!(reviewed.response.patch.is_none(), "audit mode patched");
        }
    }
}

fn check_answer(reviewed: &admission::Reviewed, object: Option<&Value>) {
    let response = &reviewed.response;
    let warnings = response.warnings.clone().unwrap_or_default();
    let total: usize = warnings.iter().map(String::len).sum();
    assert!(total <= MAX_TOTAL + 128, "warnings total {total} bytes");
    for w in &warnings {
        assert!(w.len() <= MAX_MESSAGE, "warning of {} bytes: {w:?}", w.len());
        assert!(
            w.is_ascii() && !w.contains(['\n', '\r']),
            "warning not one ASCII line: {w:?}"
        );
    }
    for (key, value) in &response.audit_annotations {
        assert!(admission::is_valid_annotation_key(key), "audit annotation key {key:?}");
        assert!(value.len() <= 4096, "audit annotation {key} of {} bytes", value.len());
    }
    admission::encode(response.clone()).expect("the answer serializes");
    if let Some(bytes) = &response.patch {
        let patch: json_patch::Patch = serde_json::from_slice(bytes).expect("the patch is JSON Patch");
        assert!(!patch.0.is_empty(), "an empty patch is sent as no patch");
        let original = object.expect("a patch answers a request with an object");
        check_patch(original, &patch);
    }
}

/// Add-only, onto absent members; applies to the raw JSON and keeps all of it.
fn check_patch(original: &Value, patch: &json_patch::Patch) -> Value {
    // Add-only on the pod as the API server stores it: an add may set what
    // the manifest wrote as null or [] (engine::decode), never anything else.
    let stored = stored(original);
    for op in &patch.0 {
        let PatchOperation::Add(add) = op else {
            panic!("not an add: {op:?}");
        };
        assert!(
            add.path.resolve(&stored).is_err(),
            "add over an existing value at {}",
            add.path
        );
    }
    let mut patched = original.clone();
    json_patch::patch(&mut patched, patch).unwrap_or_else(|e| panic!("patch does not apply: {e}"));
    assert_preserved(&stored, &self::stored(&patched), "");
    patched
}

/// `value` as the API server stores it (engine::decode).
pub fn stored(value: &Value) -> Value {
    let mut value = value.clone();
    engine::decode::as_stored(&mut value);
    value
}

/// Target `engine`: a pod, either JSON (input starting with `{`) or built from
/// the bytes ([`pod_from_bytes`]), hardened under a baseline the bytes pick.
/// Oracle: add-only, applies to the original JSON, keeps every original value
/// (unknown fields and annotation keys with `/` and `~` included), idempotent,
/// and every defaultable `restricted` check the result still fails is
/// explained by a kept explicit value or a guard (as tests/properties.rs).
pub fn engine_bytes(data: &[u8]) {
    let (pod, baseline) = if data.first() == Some(&b'{') {
        match serde_json::from_slice::<Value>(data) {
            Ok(pod) => (pod, Baseline::default()),
            Err(_) => return,
        }
    } else {
        let mut bytes = Bytes(data);
        let mut baseline = Baseline {
            read_only_root_filesystem: bytes.flag(),
            app_armor_profile: bytes
                .flag()
                .then_some(secure_defaults::engine::baseline::ProfileType::RuntimeDefault),
            ..Baseline::default()
        };
        let pod = pod_from_bytes(&mut bytes);
        // Read after the pod, so existing seeds keep their meaning.
        if bytes.flag() {
            baseline.identity = secure_defaults::engine::baseline::IdentityMode::Userns;
        }
        (pod, baseline)
    };
    let policy = Policy {
        baseline: &baseline,
        allow_opt_out: true,
        images: &secure_defaults::engine::ImageFacts::default(),
    };
    // Refusing a pod that does not parse is fine; panicking is not.
    let Ok(Some(h)) = harden_object(&pod, policy) else {
        return;
    };
    let hardened = check_patch(&pod, &h.patch);
    let again = harden_object(&hardened, policy)
        .expect("the hardened pod still parses")
        .expect("still a pod");
    assert!(again.patch.0.is_empty(), "second pass patched: {:?}", again.patch);
    if let Err(e) = explained(&h.hardening.report) {
        panic!("{e}\npod: {pod}\nbaseline: {baseline:?}");
    }
    // The server reads pod specs with engine::read_spec (only the fields the
    // engine looks at): it must give the engine the same answer.
    if pod.get("kind").and_then(Value::as_str) == Some("Pod") {
        // The webhook only ever sees a decoded pod (engine::decode).
        let pod = stored(&pod);
        let meta = serde_json::from_value(pod["metadata"].clone()).unwrap_or_default();
        let slim = engine::read_spec(&pod["spec"].to_string()).expect("a spec the full reader read");
        let from_slim = engine::harden(&meta, &slim, &engine::Scope::Pod, policy).expect("engine");
        assert_eq!(from_slim, h.hardening, "read_spec changed the answer for {pod}");
    }
}

/// Every value of `before` (but nulls, which the API treats as absent) is in `after` unchanged.
pub fn assert_preserved(before: &Value, after: &Value, path: &str) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b.iter().filter(|(_, v)| !v.is_null()) {
                let child = a.get(k).unwrap_or_else(|| panic!("{path}/{k} was dropped"));
                assert_preserved(v, child, &format!("{path}/{k}"));
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            assert_eq!(b.len(), a.len(), "array length changed at {path}");
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                assert_preserved(bv, av, &format!("{path}/{i}"));
            }
        }
        (b, a) => assert_eq!(b, a, "value changed at {path}"),
    }
}

/// A defaultable check the hardened pod still fails is explained by an
/// explicit value, a guard, or the pod being left alone. Also the oracle of
/// tests/properties.rs.
pub fn explained(report: &Report) -> Result<(), String> {
    if report.untouched.is_some() {
        return Ok(());
    }
    for v in &report.remaining {
        let field = match v.check {
            Check::RunAsNonRoot => Field::RunAsNonRoot,
            Check::SeccompProfile => Field::SeccompProfile,
            Check::AllowPrivilegeEscalation => Field::AllowPrivilegeEscalation,
            Check::Capabilities if v.detail.contains("drop") => Field::DropCapabilities,
            _ => continue,
        };
        let ok_target = |target: &Target| *target == v.target || *target == Target::Pod;
        let ok = report.kept.iter().any(|k| k.field == field && ok_target(&k.target))
            || report.skipped.iter().any(|s| s.field == field && ok_target(&s.target));
        if !ok {
            return Err(format!("unexplained violation {v} in {report:#?}"));
        }
    }
    Ok(())
}

/// Choices read off the fuzzer's bytes; zeros once they run out.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn pick<'v, T>(&mut self, values: &'v [T]) -> &'v T {
        &values[self.byte() as usize % values.len()]
    }

    /// `None` half of the time, otherwise one of `values`.
    fn maybe(&mut self, values: &[Value]) -> Option<Value> {
        let b = self.byte();
        (b & 1 == 1).then(|| values[(b as usize >> 1) % values.len()].clone())
    }
}

fn fields(pairs: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect::<Map<_, _>>(),
    )
}

fn seccomp_values() -> Vec<Value> {
    vec![
        json!({"type": "RuntimeDefault"}),
        json!({"type": "Unconfined"}),
        json!({"type": "Localhost", "localhostProfile": "p.json"}),
        Value::Null,
        // Shapes the API server rejects, kept as written and reported
        // (RELIABILITY.md, fuzzing findings).
        json!({}),
        json!({"type": "Localhost"}),
        json!({"type": "Custom"}),
    ]
}

fn container_sc(b: &mut Bytes) -> Option<Value> {
    match b.byte() % 6 {
        0 => return None,
        1 => return Some(Value::Null),
        _ => {}
    }
    let bools = [json!(true), json!(false), Value::Null];
    let ids = [json!(0), json!(1000), json!(65532), json!(-1), json!(2147483647)];
    let caps = [
        json!(["NET_BIND_SERVICE"]),
        json!(["SYS_ADMIN"]),
        json!(["CAP_SYS_ADMIN", "NET_RAW"]),
        json!(["ALL"]),
        json!(["all"]),
        json!([]),
    ];
    let capabilities = b.flag().then(|| {
        fields(vec![
            ("add", b.maybe(&caps)),
            ("drop", b.maybe(&caps)),
            ("futureCapabilityField", b.flag().then(|| json!("x"))),
        ])
    });
    Some(fields(vec![
        ("runAsNonRoot", b.maybe(&bools)),
        ("runAsUser", b.maybe(&ids)),
        ("runAsGroup", b.maybe(&ids)),
        ("privileged", b.maybe(&bools)),
        ("allowPrivilegeEscalation", b.maybe(&bools)),
        ("capabilities", capabilities),
        ("readOnlyRootFilesystem", b.maybe(&bools)),
        ("seccompProfile", b.maybe(&seccomp_values())),
        (
            "appArmorProfile",
            b.maybe(&[json!({"type": "Unconfined"}), json!({"type": "RuntimeDefault"})]),
        ),
        ("procMount", b.maybe(&[json!("Unmasked"), json!("Default")])),
        (
            "windowsOptions",
            b.maybe(&[json!({"hostProcess": true}), json!({"runAsUserName": "x"})]),
        ),
        ("futureKnob", b.flag().then(|| json!({"level": 3}))),
    ]))
}

fn containers(b: &mut Bytes, prefix: &str, max: u8) -> Vec<Value> {
    let n = b.byte() % (max + 1);
    (0..n)
        .map(|i| {
            let mut c = json!({"name": format!("{prefix}{i}"), "image": "registry.example.com/app:1"});
            if let Some(sc) = container_sc(b) {
                c["securityContext"] = sc;
            }
            if b.flag() {
                c["futureContainerField"] = json!([1, {"a~b/c": null}]);
            }
            c
        })
        .collect()
}

/// A Pod built from the bytes: security contexts at both levels, legacy
/// annotations, opt-outs, Windows and HostProcess, unknown fields everywhere.
pub fn pod_from_bytes(b: &mut Bytes) -> Value {
    let annotation_choices: [(&str, &str); 12] = [
        ("seccomp.security.alpha.kubernetes.io/pod", "runtime/default"),
        ("seccomp.security.alpha.kubernetes.io/pod", "unconfined"),
        ("seccomp.security.alpha.kubernetes.io/pod", "localhost/p.json"),
        ("container.seccomp.security.alpha.kubernetes.io/c0", "unconfined"),
        ("container.seccomp.security.alpha.kubernetes.io/c1", "runtime/default"),
        ("container.apparmor.security.beta.kubernetes.io/c0", "unconfined"),
        ("container.apparmor.security.beta.kubernetes.io/c1", "runtime/default"),
        (
            "secure-defaults.io/skip-fields",
            "runAsUser,readOnlyRootFilesystem,bogus",
        ),
        ("secure-defaults.io/skip", "true"),
        ("kubernetes.io/config.mirror", "x"),
        ("example.com/with~tilde/and/slash", "kept"),
        ("~1~0/~", "kept"),
    ];
    let mut annotations = Map::new();
    for _ in 0..b.byte() % 4 {
        let (k, v) = b.pick(&annotation_choices);
        annotations.insert(k.to_string(), json!(v));
    }
    let ids = [json!(0), json!(1000), json!(65532)];
    let bools = [json!(true), json!(false)];
    let pod_sc = match b.byte() % 6 {
        0 => None,
        1 => Some(Value::Null),
        _ => Some(fields(vec![
            ("runAsNonRoot", b.maybe(&bools)),
            ("runAsUser", b.maybe(&ids)),
            ("runAsGroup", b.maybe(&ids)),
            ("fsGroup", b.maybe(&ids)),
            (
                "fsGroupChangePolicy",
                b.maybe(&[json!("Always"), json!("OnRootMismatch")]),
            ),
            ("supplementalGroups", b.maybe(&[json!([1, 2]), json!([])])),
            ("seccompProfile", b.maybe(&seccomp_values())),
            ("windowsOptions", b.maybe(&[json!({"hostProcess": true})])),
            ("futurePodKnob", b.flag().then(|| json!(7))),
        ])),
    };
    let init = containers(b, "i", 2);
    let main = containers(b, "c", 3);
    let ephemeral = containers(b, "e", 1);
    let mut spec = json!({"containers": main});
    if !init.is_empty() {
        spec["initContainers"] = json!(init);
    }
    if !ephemeral.is_empty() {
        spec["ephemeralContainers"] = json!(ephemeral);
    }
    if let Some(sc) = pod_sc {
        spec["securityContext"] = sc;
    }
    match b.byte() % 8 {
        0 => spec["os"] = json!({"name": "windows"}),
        1 => spec["os"] = json!({"name": "linux"}),
        2 => spec["nodeSelector"] = json!({"kubernetes.io/os": "windows"}),
        _ => {}
    }
    if b.flag() {
        spec["hostNetwork"] = json!(true);
    }
    if b.flag() {
        spec["futurePodField"] = json!({"enabled": true, "a/b": "~"});
    }
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec});
    if !annotations.is_empty() {
        pod["metadata"]["annotations"] = Value::Object(annotations);
    }
    if b.flag() {
        pod["futureTopLevel"] = json!({"x": [1]});
    }
    pod
}

/// Target `yaml`: any bytes as a manifest stream for `secure-defaults
/// mutate`. Reading never panics (errors are fine), and every document read
/// is written as YAML that reads back as the same document: the writer
/// quotes whatever the YAML 1.1 reader would take for another type.
pub fn yaml_bytes(data: &[u8]) {
    use secure_defaults::yaml;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = yaml::documents(text) else {
        return;
    };
    for doc in docs {
        let written = yaml::to_string(&doc);
        let back = yaml::documents(&written).unwrap_or_else(|e| panic!("{e}; {doc} written as\n{written}"));
        assert_eq!(back, [doc], "written as\n{written}");
    }
}
