//! Property tests of the engine's invariants on generated pods:
//! add-only, nothing of the original lost (unknown fields included), explicit
//! values preserved, idempotent, and every Linux container passes the
//! defaultable `restricted` checks unless an explicit value or a guard says why.

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)] // the fuzz-target bodies; this file uses the oracles
mod checks;

use json_patch::PatchOperation;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;
use secure_defaults::engine::baseline::IdentityMode;
use secure_defaults::engine::manifest::harden_object;
use secure_defaults::engine::{self, read_spec, Baseline, ImageFacts, ImageLookup, ImageUser, Policy, Scope};
use serde_json::{json, Map, Value};

fn opt<T: std::fmt::Debug + Clone + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Option<T>> {
    prop_oneof![2 => Just(None), 1 => s.prop_map(Some)].boxed()
}

fn seccomp() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "RuntimeDefault"})),
        Just(json!({"type": "Unconfined"})),
        Just(json!({"type": "Localhost", "localhostProfile": "p.json"})),
        // Shapes the API server rejects: kept as written, and reported.
        Just(json!({})),
        Just(json!({"type": "Custom"})),
    ]
}

fn object(fields: Vec<(&'static str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect::<Map<_, _>>(),
    )
}

fn container_sc() -> impl Strategy<Value = Option<Value>> {
    let caps = (
        opt(proptest::sample::subsequence(
            vec!["NET_BIND_SERVICE", "SYS_ADMIN", "CAP_SYS_ADMIN", "NET_RAW"],
            0..=2,
        )),
        opt(proptest::sample::subsequence(vec!["ALL", "NET_RAW"], 0..=2)),
        any::<bool>(),
    )
        .prop_map(|(add, drop, unknown)| {
            object(vec![
                ("add", add.map(|a| json!(a))),
                ("drop", drop.map(|d| json!(d))),
                ("futureCapabilityField", unknown.then(|| json!("x"))),
            ])
        });
    let sc = (
        (
            opt(any::<bool>()),
            opt(prop_oneof![Just(0i64), Just(1000i64)]),
            opt(Just(3000i64)),
            opt(any::<bool>()),
        ),
        (
            opt(any::<bool>()),
            opt(caps),
            opt(any::<bool>()),
            opt(seccomp()),
            opt(Just("Unmasked")),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((non_root, user, group, privileged), (ape, caps, rofs, seccomp, proc_mount, unknown))| {
                object(vec![
                    ("runAsNonRoot", non_root.map(Value::Bool)),
                    ("runAsUser", user.map(|u| json!(u))),
                    ("runAsGroup", group.map(|g| json!(g))),
                    ("privileged", privileged.map(Value::Bool)),
                    ("allowPrivilegeEscalation", ape.map(Value::Bool)),
                    ("capabilities", caps),
                    ("readOnlyRootFilesystem", rofs.map(Value::Bool)),
                    ("seccompProfile", seccomp),
                    ("procMount", proc_mount.map(|m| json!(m))),
                    ("futureKnob", unknown.then(|| json!({"level": 3}))),
                ])
            },
        );
    prop_oneof![1 => Just(None), 1 => Just(Some(Value::Null)), 4 => sc.prop_map(Some)]
}

/// The images the generated containers name; `images()` decides what a
/// lookup of each said.
const IMAGES: [&str; 4] = [
    "registry.example.com/app:1",
    "registry.example.com/db:2",
    "registry.example.com/web@sha256:0123",
    "nginx",
];

fn containers(prefix: &'static str, range: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Value>> {
    proptest::collection::vec((container_sc(), any::<bool>(), 0..4u8, 0..IMAGES.len()), range).prop_map(move |cs| {
        cs.into_iter()
            .enumerate()
            .map(|(i, (sc, unknown, extra, image))| {
                let mut c = json!({"name": format!("{prefix}{i}"), "image": IMAGES[image],
                                   "env": [{"name": "A", "value": "1"}]});
                if let Some(sc) = sc {
                    c["securityContext"] = sc;
                }
                if unknown {
                    c["futureContainerField"] = json!([1, 2]);
                }
                // What `restricted` (and the baseline level under it) also reads.
                match extra {
                    1 => c["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]),
                    2 => c["livenessProbe"] = json!({"httpGet": {"host": "10.0.0.1", "port": 80}}),
                    3 => c["lifecycle"] = json!({"preStop": {"tcpSocket": {"host": "example.com", "port": 80}}}),
                    _ => {}
                }
                c
            })
            .collect()
    })
}

fn pod_sc() -> impl Strategy<Value = Option<Value>> {
    let sc = (
        opt(any::<bool>()),
        opt(prop_oneof![Just(0i64), Just(1000i64)]),
        opt(Just(3000i64)),
        opt(Just(2000i64)),
        opt(Just("Always")),
        opt(seccomp()),
        any::<bool>(),
    )
        .prop_map(|(non_root, user, group, fs_group, policy, seccomp, unknown)| {
            object(vec![
                ("runAsNonRoot", non_root.map(Value::Bool)),
                ("runAsUser", user.map(|u| json!(u))),
                ("runAsGroup", group.map(|g| json!(g))),
                ("fsGroup", fs_group.map(|g| json!(g))),
                ("fsGroupChangePolicy", policy.map(|p| json!(p))),
                ("seccompProfile", seccomp),
                ("futurePodKnob", unknown.then(|| json!(7))),
            ])
        });
    prop_oneof![1 => Just(None), 1 => Just(Some(Value::Null)), 4 => sc.prop_map(Some)]
}

fn annotations() -> impl Strategy<Value = Value> {
    proptest::sample::subsequence(
        vec![
            ("seccomp.security.alpha.kubernetes.io/pod", "runtime/default"),
            ("seccomp.security.alpha.kubernetes.io/pod", "unconfined"),
            ("container.seccomp.security.alpha.kubernetes.io/c0", "unconfined"),
            ("container.seccomp.security.alpha.kubernetes.io/c1", "runtime/default"),
            ("container.apparmor.security.beta.kubernetes.io/c0", "unconfined"),
            ("secure-defaults.io/skip-fields", "runAsUser,readOnlyRootFilesystem"),
            ("example.com/with~tilde/and/slash", "kept"),
        ],
        0..=3,
    )
    .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect()))
}

prop_compose! {
    fn pod()(
        annotations in annotations(),
        os in prop_oneof![6 => Just(None), 1 => Just(Some("linux")), 1 => Just(Some("windows"))],
        sc in pod_sc(),
        init in containers("i", 0..3),
        main in containers("c", 1..4),
        host_network in any::<bool>(),
        host_pid in any::<bool>(),
        host_users in opt(any::<bool>()),
        host_path in any::<bool>(),
        unknown in any::<bool>(),
    ) -> Value {
        let mut spec = json!({"containers": main});
        if !init.is_empty() { spec["initContainers"] = json!(init); }
        if let Some(os) = os { spec["os"] = json!({"name": os}); }
        if let Some(sc) = sc { spec["securityContext"] = sc; }
        if host_network { spec["hostNetwork"] = json!(true); }
        if host_pid { spec["hostPID"] = json!(true); }
        if let Some(h) = host_users { spec["hostUsers"] = json!(h); }
        if host_path { spec["volumes"] = json!([{"name": "h", "hostPath": {"path": "/var/log"}}]); }
        if unknown { spec["futurePodField"] = json!({"enabled": true}); }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": annotations}, "spec": spec})
    }
}

fn baseline() -> impl Strategy<Value = Baseline> {
    let mode = || {
        prop_oneof![
            Just(IdentityMode::Uid),
            Just(IdentityMode::Userns),
            Just(IdentityMode::Auto)
        ]
    };
    let fallback = prop_oneof![Just(IdentityMode::Uid), Just(IdentityMode::Userns)];
    (any::<bool>(), any::<bool>(), mode(), fallback, any::<bool>()).prop_map(
        |(rofs, apparmor, identity, identity_fallback, root)| Baseline {
            read_only_root_filesystem: rofs,
            app_armor_profile: apparmor.then_some(secure_defaults::engine::baseline::ProfileType::RuntimeDefault),
            identity,
            identity_fallback,
            user_namespace_for_explicit_root: root,
            ..Baseline::default()
        },
    )
}

/// What a lookup of each of `IMAGES` said: a `config.User`, a failure, or
/// nothing (not looked up).
fn images() -> impl Strategy<Value = ImageFacts> {
    let lookup = prop_oneof![
        Just(None),
        Just(Some(ImageLookup::Failed(
            "registry.example.com: timed out after 2s".into()
        ))),
        proptest::sample::select(vec![
            "",
            "0",
            "root",
            "0:1001",
            "1001",
            "1001:2000",
            "1001:0",
            "nginx",
            "1001:web"
        ])
        .prop_map(|u| Some(ImageLookup::Found(ImageUser::parse(u)))),
    ];
    proptest::collection::vec(lookup, IMAGES.len()).prop_map(|lookups| {
        IMAGES
            .iter()
            .zip(lookups)
            .filter_map(|(image, lookup)| lookup.map(|l| (image.to_string(), l)))
            .collect()
    })
}

/// A container's effective identity field: its own, else the pod's.
fn effective<'a>(spec: &'a Value, container: &'a Value, field: &str) -> Option<&'a Value> {
    let own = container["securityContext"].get(field).filter(|v| !v.is_null());
    own.or_else(|| spec["securityContext"].get(field).filter(|v| !v.is_null()))
}

/// The containers of a spec with their list and index.
fn containers_of(spec: &Value) -> impl Iterator<Item = (&'static str, usize, &Value)> {
    ["initContainers", "containers"].into_iter().flat_map(move |kind| {
        spec[kind]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(move |(i, c)| (kind, i, c))
    })
}

/// Identity fields the manifest already decided are not extended: no uid or
/// gid beside `runAsNonRoot: true` without `runAsUser`, no gid beside a
/// pinned non-root `runAsUser`, and no `fsGroup` beside one.
fn decided_identity_not_extended(pod: &Value, hardened: &Value) -> Result<(), TestCaseError> {
    let (spec, after) = (&pod["spec"], &hardened["spec"]);
    let mut pinned = effective(spec, &Value::Null, "runAsUser")
        .and_then(Value::as_i64)
        .is_some_and(|u| u != 0);
    for (kind, i, c) in containers_of(spec) {
        let user = effective(spec, c, "runAsUser").and_then(Value::as_i64);
        let non_root = effective(spec, c, "runAsNonRoot").and_then(Value::as_bool);
        pinned |= c["securityContext"]
            .get("runAsUser")
            .and_then(Value::as_i64)
            .is_some_and(|u| u != 0);
        let now = |f: &str| effective(after, &after[kind][i], f).cloned();
        let was = |f: &str| effective(spec, c, f).cloned();
        if user.is_none() && non_root == Some(true) {
            prop_assert_eq!(now("runAsUser"), None, "{}/{}: uid beside the image's user", kind, i);
            prop_assert_eq!(
                now("runAsGroup"),
                was("runAsGroup"),
                "{}/{}: gid beside the image's user",
                kind,
                i
            );
        }
        if user.is_some_and(|u| u != 0) {
            prop_assert_eq!(
                now("runAsGroup"),
                was("runAsGroup"),
                "{}/{}: gid beside a pinned uid",
                kind,
                i
            );
        }
    }
    if pinned {
        prop_assert_eq!(
            after["securityContext"].get("fsGroup"),
            spec["securityContext"].get("fsGroup"),
            "fsGroup beside a pinned runAsUser"
        );
    }
    Ok(())
}

fn adds_host_users(patch: &json_patch::Patch) -> bool {
    patch.0.iter().any(|op| op.path().as_str() == "/spec/hostUsers")
}

/// Every mode: `hostUsers: false` is never added where the API server
/// refuses it (host namespaces) or beside a privileged container.
fn host_users_only_where_allowed(pod: &Value, patch: &json_patch::Patch) -> Result<(), TestCaseError> {
    if !adds_host_users(patch) {
        return Ok(());
    }
    let spec = &pod["spec"];
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        prop_assert!(spec[key] != json!(true), "hostUsers: false beside {}", key);
    }
    for (kind, i, c) in containers_of(spec) {
        prop_assert!(
            c["securityContext"]["privileged"] != json!(true),
            "hostUsers: false beside privileged {}/{}",
            kind,
            i
        );
    }
    Ok(())
}

/// The identity fields the patch adds, anywhere: (path, field, value).
fn added_identity(patch: &json_patch::Patch) -> Vec<(String, &'static str, Value)> {
    let mut out = Vec::new();
    for op in &patch.0 {
        let PatchOperation::Add(add) = op else { continue };
        let path = add.path.to_string();
        for field in ["runAsUser", "runAsGroup", "runAsNonRoot"] {
            if path.ends_with(&format!("/{field}")) {
                out.push((path.clone(), field, add.value.clone()));
            } else if let Some(v) = add.value.get(field) {
                out.push((path.clone(), field, v.clone()));
            }
        }
    }
    out
}

/// `identity: userns`: where `hostUsers: false` is added no identity field is.
fn user_namespace_is_all_or_nothing(patch: &json_patch::Patch) -> Result<(), TestCaseError> {
    if !adds_host_users(patch) {
        return Ok(());
    }
    let added = added_identity(patch);
    prop_assert!(added.is_empty(), "identity added beside hostUsers: false: {:?}", added);
    Ok(())
}

/// `identity: auto`: never a uid 0, and no uid but an image's own beside a
/// user namespace it adds.
fn auto_adds_no_root(patch: &json_patch::Patch) -> Result<(), TestCaseError> {
    let added = added_identity(patch);
    for (path, field, value) in &added {
        prop_assert!(
            !(*field == "runAsUser" && *value == json!(0)),
            "uid 0 added at {}",
            path
        );
    }
    if adds_host_users(patch) {
        for (path, field, value) in &added {
            prop_assert!(
                !(*field == "runAsUser" && *value == json!(65532)),
                "the baseline uid beside hostUsers: false at {}",
                path
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn engine_invariants(pod in pod(), baseline in baseline(), images in images()) {
        let policy = Policy { baseline: &baseline, allow_opt_out: true, images: &images };
        let h = harden_object(&pod, policy).unwrap().expect("a Pod has a pod spec");

        // Add-only, onto members absent from the pod as the API server
        // stores it (a manifest's null or [] is absent there: engine::decode).
        let stored = checks::stored(&pod);
        for op in &h.patch.0 {
            let PatchOperation::Add(add) = op else {
                return Err(TestCaseError::fail(format!("not an add: {op:?}")));
            };
            prop_assert!(add.path.resolve(&stored).is_err(), "add over an existing value at {}", add.path);
        }

        // Applies to the raw JSON, and keeps all of what the cluster stores.
        let mut hardened = pod.clone();
        json_patch::patch(&mut hardened, &h.patch).unwrap();
        checks::assert_preserved(&stored, &checks::stored(&hardened), "");

        // Idempotent: a second pass (or a reinvocation) changes nothing.
        let again = harden_object(&hardened, policy).unwrap().unwrap();
        prop_assert!(again.patch.0.is_empty(), "second pass patched: {:?}", again.patch);

        checks::explained(&h.hardening.report).map_err(TestCaseError::fail)?;
        decided_identity_not_extended(&pod, &hardened)?;
        host_users_only_where_allowed(&pod, &h.patch)?;
        match baseline.identity {
            IdentityMode::Userns => user_namespace_is_all_or_nothing(&h.patch)?,
            IdentityMode::Auto => auto_adds_no_root(&h.patch)?,
            IdentityMode::Uid => {}
        }

        // The server reads the spec with only the fields the engine looks at
        // (engine::read_spec): the answer must be the one the full spec gives.
        // (and the webhook only ever sees a decoded pod).
        let meta: ObjectMeta = serde_json::from_value(stored["metadata"].clone()).unwrap();
        let slim = read_spec(&stored["spec"].to_string()).unwrap();
        prop_assert_eq!(&engine::harden(&meta, &slim, &Scope::Pod, policy).unwrap(), &h.hardening);
    }
}
