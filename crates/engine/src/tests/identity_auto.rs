//! `identity: auto`: a pod and what its images' lookups said in, the patch
//! and one identity line per decision out; every case also hardens its own
//! output again and must get nothing more.

use super::*;
use crate::baseline::IdentityMode;
use crate::images::{ImageLookup, ImageUser};

fn auto() -> Baseline {
    Baseline {
        identity: IdentityMode::Auto,
        ..Baseline::default()
    }
}

/// `(image, Some(config.User))` is a lookup that found the user; `(image,
/// None)` one that failed.
fn facts(lookups: &[(&str, Option<&str>)]) -> ImageFacts {
    lookups
        .iter()
        .map(|&(image, user)| {
            let lookup = match user {
                Some(user) => ImageLookup::Found(ImageUser::parse(user)),
                None => ImageLookup::Failed("registry.example.com: timed out after 2s".into()),
            };
            (image.to_string(), lookup)
        })
        .collect()
}

fn lines(h: &Hardening) -> Vec<String> {
    h.report.identity.as_ref().map(Identity::messages).unwrap_or_default()
}

const NO_IDS: &str = r#"{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}"#;
const UID_1001: &str =
    r#"{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsNonRoot":true,"runAsUser":1001}"#;
const BASELINE_IDS: &str = r#"{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532}"#;

fn c(i: usize, sc: &str) -> String {
    format!("/containers/{i}/securityContext = {sc}")
}

#[rstest]
#[case::numeric_user_is_the_containers_uid(
    "spec: {containers: [{name: app, image: app:1}]}",
    auto(),
    &[("app:1", Some("1001"))],
    &[POD_SC.to_string(), c(0, UID_1001)],
    &[r#"identity: container "app": uid 1001 from its image"#],
)]
#[case::numeric_group_comes_along(
    "spec: {containers: [{name: app, image: app:1}]}",
    auto(),
    &[("app:1", Some("1001:2000"))],
    &[POD_SC.to_string(), c(0, r#"{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":2000,"runAsNonRoot":true,"runAsUser":1001}"#)],
    &[r#"identity: container "app": uid 1001, gid 2000 from its image"#],
)]
#[case::group_zero_of_the_image_is_kept_for_its_group_writable_files(
    "spec: {containers: [{name: app, image: app:1}]}",
    auto(),
    &[("app:1", Some("1001:0"))],
    &[POD_SC.to_string(), c(0, r#"{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":0,"runAsNonRoot":true,"runAsUser":1001}"#)],
    &[r#"identity: container "app": uid 1001, gid 0 from its image"#],
)]
#[case::no_run_as_user_in_the_baseline_adds_no_image_uid_either(
    "spec: {containers: [{name: app, image: app:1}]}",
    Baseline { run_as_user: None, ..auto() },
    &[("app:1", Some("1001"))],
    &[POD_SC.to_string(), c(0, r#"{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsNonRoot":true}"#)],
    &[r#"identity: container "app": uid 1001 from its image"#],
)]
#[case::root_image_gets_a_user_namespace(
    "spec: {containers: [{name: db, image: db:1}]}",
    auto(),
    &[("db:1", Some(""))],
    &[HOST_USERS.to_string(), POD_SC.to_string(), c(0, NO_IDS)],
    &[
        "identity: user namespace (hostUsers: false); root inside the container is unprivileged on the host",
        r#"identity: container "db": no uid, the pod's user namespace: its image runs as root"#,
    ],
)]
#[case::root_image_beside_host_network_gets_the_baseline_uid(
    "spec: {hostNetwork: true, containers: [{name: db, image: db:1}]}",
    auto(),
    &[("db:1", Some("root"))],
    &[POD_SC.to_string(), c(0, BASELINE_IDS)],
    &[r#"identity: container "db": uid 65532: its image runs as root; pod uses hostNetwork, which user namespaces do not allow"#],
)]
#[case::root_image_beside_a_privileged_container_gets_the_baseline_uid(
    "spec: {containers: [{name: db, image: db:1}, {name: agent, image: agent:1, securityContext: {privileged: true}}]}",
    auto(),
    &[("db:1", Some("0")), ("agent:1", Some("0"))],
    &[
        POD_SC.to_string(),
        c(0, BASELINE_IDS),
    ],
    &[r#"identity: container "db": uid 65532: its image runs as root; a privileged container needs the host's users"#],
)]
#[case::named_user_gets_the_baseline_uid(
    "spec: {containers: [{name: web, image: nginx:1.27}]}",
    auto(),
    &[("nginx:1.27", Some("nginx"))],
    &[POD_SC.to_string(), c(0, BASELINE_IDS)],
    &[r#"identity: container "web": uid 65532: its image names its user "nginx", which the kubelet cannot check is non-root"#],
)]
#[case::not_looked_up_falls_back_to_uid(
    "spec: {containers: [{name: app, image: app:1}]}",
    auto(),
    &[],
    &[POD_SC.to_string(), c(0, BASELINE_IDS)],
    &[r#"identity: container "app": uid 65532 (identityFallback: uid): its image was not looked up"#],
)]
#[case::failed_lookup_falls_back_to_userns(
    "spec: {containers: [{name: app, image: app:1}]}",
    Baseline { identity_fallback: IdentityMode::Userns, ..auto() },
    &[("app:1", None)],
    &[HOST_USERS.to_string(), POD_SC.to_string(), c(0, NO_IDS)],
    &[
        "identity: user namespace (hostUsers: false); root inside the container is unprivileged on the host",
        r#"identity: container "app": no uid, the pod's user namespace (identityFallback: userns): its image could not be looked up: registry.example.com: timed out after 2s"#,
    ],
)]
#[case::userns_fallback_beside_host_pid_gets_the_baseline_uid(
    "spec: {hostPID: true, containers: [{name: app, image: app:1}]}",
    Baseline { identity_fallback: IdentityMode::Userns, ..auto() },
    &[],
    &[POD_SC.to_string(), c(0, BASELINE_IDS)],
    &[r#"identity: container "app": uid 65532 (identityFallback: userns): its image was not looked up; pod uses hostPID, which user namespaces do not allow"#],
)]
#[case::non_root_and_root_images_share_one_user_namespace(
    "spec: {containers: [{name: app, image: app:1}, {name: db, image: db:1}]}",
    auto(),
    &[("app:1", Some("1001")), ("db:1", Some("0:0"))],
    &[HOST_USERS.to_string(), POD_SC.to_string(), c(0, UID_1001), c(1, NO_IDS)],
    &[
        "identity: user namespace (hostUsers: false); root inside the container is unprivileged on the host",
        r#"identity: container "app": uid 1001 from its image"#,
        r#"identity: container "db": no uid, the pod's user namespace: its image runs as root"#,
    ],
)]
#[case::named_beside_root_needs_no_uid_in_the_user_namespace(
    "spec: {containers: [{name: web, image: nginx:1.27}, {name: db, image: db:1}]}",
    auto(),
    &[("nginx:1.27", Some("nginx")), ("db:1", Some(""))],
    &[HOST_USERS.to_string(), POD_SC.to_string(), c(0, NO_IDS), c(1, NO_IDS)],
    &[
        "identity: user namespace (hostUsers: false); root inside the container is unprivileged on the host",
        r#"identity: container "web": no uid, the pod's user namespace: its image names its user "nginx""#,
        r#"identity: container "db": no uid, the pod's user namespace: its image runs as root"#,
    ],
)]
#[case::uid_fallback_beside_root_needs_no_uid_in_the_user_namespace(
    "spec: {initContainers: [{name: init, image: init:1}], containers: [{name: db, image: db:1}]}",
    auto(),
    &[("db:1", Some(""))],
    &[
        HOST_USERS.to_string(),
        POD_SC.to_string(),
        format!("/initContainers/0/securityContext = {NO_IDS}"),
        c(0, NO_IDS),
    ],
    &[
        "identity: user namespace (hostUsers: false); root inside the container is unprivileged on the host",
        r#"identity: init container "init": no uid, the pod's user namespace (identityFallback: uid): its image was not looked up"#,
        r#"identity: container "db": no uid, the pod's user namespace: its image runs as root"#,
    ],
)]
#[case::explicit_root_gets_a_user_namespace_beside_an_image_uid(
    "spec: {containers: [{name: root, image: x, securityContext: {runAsUser: 0}}, {name: app, image: app:1}]}",
    auto(),
    &[("app:1", Some("1001"))],
    &[
        HOST_USERS.to_string(),
        POD_SC.to_string(),
        "/containers/0/securityContext/allowPrivilegeEscalation = false".to_string(),
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#.to_string(),
        c(1, UID_1001),
    ],
    &[
        "identity: user namespace (hostUsers: false); the explicit root stays root inside the container, unprivileged on the host",
        r#"identity: container "app": uid 1001 from its image"#,
    ],
)]
#[case::explicit_root_stays_on_host_users_when_switched_off(
    "spec: {containers: [{name: root, image: x, securityContext: {runAsUser: 0}}, {name: app, image: app:1}]}",
    Baseline { user_namespace_for_explicit_root: false, ..auto() },
    &[("app:1", Some("1001"))],
    &[
        POD_SC.to_string(),
        "/containers/0/securityContext/allowPrivilegeEscalation = false".to_string(),
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#.to_string(),
        c(1, UID_1001),
    ],
    &[r#"identity: container "app": uid 1001 from its image"#],
)]
#[case::pod_in_a_user_namespace_already(
    "spec: {hostUsers: false, containers: [{name: web, image: nginx:1.27}, {name: app, image: app:1}]}",
    auto(),
    &[("nginx:1.27", Some("nginx")), ("app:1", Some("1001"))],
    &[POD_SC.to_string(), c(0, NO_IDS), c(1, UID_1001)],
    &[
        "identity: user namespace (hostUsers: false) (the pod sets hostUsers itself)",
        r#"identity: container "web": no uid, the pod's user namespace: its image names its user "nginx""#,
        r#"identity: container "app": uid 1001 from its image"#,
    ],
)]
#[case::containers_with_their_own_identity_are_not_looked_at(
    "spec: {containers: [{name: app, image: app:1, securityContext: {runAsUser: 1000}}, {name: side, image: side:1, securityContext: {runAsNonRoot: true}}]}",
    auto(),
    &[("app:1", Some("")), ("side:1", Some("0"))],
    &[
        r#"/securityContext = {"seccompProfile":{"type":"RuntimeDefault"}}"#.to_string(),
        "/containers/0/securityContext/allowPrivilegeEscalation = false".to_string(),
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#.to_string(),
        "/containers/0/securityContext/runAsNonRoot = true".to_string(),
        "/containers/1/securityContext/allowPrivilegeEscalation = false".to_string(),
        r#"/containers/1/securityContext/capabilities = {"drop":["ALL"]}"#.to_string(),
    ],
    &["identity: kept as the containers state it"],
)]
fn auto_identity(
    #[case] pod: &str,
    #[case] baseline: Baseline,
    #[case] lookups: &[(&str, Option<&str>)],
    #[case] expected_ops: &[String],
    #[case] expected_lines: &[&str],
) {
    baseline.validate().expect("a valid baseline");
    let images = facts(lookups);
    let h = harden_with_images(pod, &baseline, Scope::Pod, true, &images);
    assert_eq!(ops(&h), expected_ops);
    assert_eq!(lines(&h), expected_lines);
    for op in ops(&h) {
        assert!(
            !op.contains("\"runAsUser\":0") && !op.ends_with("runAsUser = 0"),
            "{op}"
        );
    }

    // Idempotent: the output, hardened again with the same lookups, gets nothing.
    let mut doc: serde_json::Value = serde_yaml::from_str(pod).unwrap();
    json_patch::patch(&mut doc["spec"], &h.ops).unwrap();
    let again = harden_with_images(
        &serde_json::to_string(&doc).unwrap(),
        &baseline,
        Scope::Pod,
        true,
        &images,
    );
    assert_eq!(ops(&again), Vec::<String>::new());
    assert_eq!(remaining(&again), remaining(&h));
}

/// A root image on an ephemeral-container update: `hostUsers` cannot change,
/// so the new container gets the baseline uid, unless the pod already runs
/// in a user namespace.
#[rstest]
#[case::host_users_unset(
    "spec: {containers: [{name: app, image: app:1, securityContext: {runAsUser: 1000}}], ephemeralContainers: [{name: debug, image: busybox}]}",
    &[r#"/ephemeralContainers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532,"seccompProfile":{"type":"RuntimeDefault"}}"#.to_string()],
    r#"identity: ephemeral container "debug": uid 65532: its image runs as root; hostUsers cannot change on an update"#,
)]
#[case::pod_in_a_user_namespace(
    "spec: {hostUsers: false, containers: [{name: app, image: app:1}], ephemeralContainers: [{name: debug, image: busybox}]}",
    &[r#"/ephemeralContainers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}}"#.to_string()],
    r#"identity: ephemeral container "debug": no uid, the pod's user namespace: its image runs as root"#,
)]
fn auto_on_ephemeral_update(#[case] pod: &str, #[case] expected_ops: &[String], #[case] expected_line: &str) {
    let images = facts(&[("busybox", Some("")), ("app:1", Some("1001"))]);
    let scope = Scope::EphemeralContainers(vec!["debug".into()]);
    let h = harden_with_images(pod, &auto(), scope, true, &images);
    assert_eq!(ops(&h), expected_ops);
    assert_eq!(lines(&h).last().map(String::as_str), Some(expected_line));
}

/// Whatever the lookups say, `auto` leaves a Windows pod alone.
#[test]
fn auto_leaves_windows_pods_alone() {
    let images = facts(&[("app:1", Some("0"))]);
    let pod = "spec: {os: {name: windows}, containers: [{name: app, image: app:1}]}";
    let h = harden_with_images(pod, &auto(), Scope::Pod, true, &images);
    assert_eq!(ops(&h), Vec::<String>::new());
    assert_eq!(h.report.identity, None);
}

/// Restricted accepts what `auto` makes of a root image, a named user and
/// an image uid, beside each other.
#[test]
fn auto_pods_pass_restricted() {
    let images = facts(&[
        ("db:1", Some("")),
        ("nginx:1.27", Some("nginx")),
        ("app:1", Some("1001")),
    ]);
    let pod =
        "spec: {containers: [{name: db, image: db:1}, {name: web, image: nginx:1.27}, {name: app, image: app:1}]}";
    let h = harden_with_images(pod, &auto(), Scope::Pod, true, &images);
    assert_eq!(remaining(&h), Vec::<String>::new());
    let h = harden_with_images(pod, &auto(), Scope::Pod, true, &ImageFacts::default());
    assert_eq!(remaining(&h), Vec::<String>::new());
}
