//! Table tests for every rule and guard: a pod in YAML, the patch expected
//! (one `path = value` line per operation, paths relative to the pod spec)
//! and what the report must say.

use super::*;
use k8s_openapi::api::core::v1::Pod;
use rstest::rstest;

fn harden_yaml(pod: &str, baseline: &Baseline, scope: Scope, allow_opt_out: bool) -> Hardening {
    harden_with_images(pod, baseline, scope, allow_opt_out, &ImageFacts::default())
}

fn harden_with_images(
    pod: &str,
    baseline: &Baseline,
    scope: Scope,
    allow_opt_out: bool,
    images: &ImageFacts,
) -> Hardening {
    let pod: Pod = serde_yaml::from_str(pod).expect("test pod parses");
    let policy = Policy {
        baseline,
        allow_opt_out,
        images,
    };
    let full = harden(&pod.metadata, pod.spec.as_ref().expect("spec"), &scope, policy).expect("engine");
    // The server reads only the fields the engine looks at: same answer.
    let json = serde_json::to_string(pod.spec.as_ref().expect("spec")).expect("spec serializes");
    let slim = read_spec(&json).expect("the server's reader reads the spec");
    let from_slim = harden(&pod.metadata, &slim, &scope, policy).expect("engine");
    assert_eq!(full, from_slim, "the server's reader changed the engine's answer");
    full
}

fn ops(h: &Hardening) -> Vec<String> {
    h.ops
        .iter()
        .map(|op| match op {
            json_patch::PatchOperation::Add(a) => format!("{} = {}", a.path, a.value),
            other => panic!("not an add: {other:?}"),
        })
        .collect()
}

fn skipped(h: &Hardening) -> Vec<String> {
    h.report
        .skipped
        .iter()
        .map(|s| format!("{} {} {:?}", s.target, s.field, s.guard))
        .collect()
}

fn kept(h: &Hardening) -> Vec<String> {
    h.report
        .kept
        .iter()
        .map(|k| format!("{} {}={}", k.target, k.field, k.value))
        .collect()
}

fn remaining(h: &Hardening) -> Vec<String> {
    h.report.remaining.iter().map(ToString::to_string).collect()
}

const POD_SC: &str = r#"/securityContext = {"fsGroup":65532,"fsGroupChangePolicy":"OnRootMismatch","seccompProfile":{"type":"RuntimeDefault"}}"#;
const C0_SC: &str = r#"/containers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532}"#;

#[rstest]
#[case::bare_pod_gets_the_whole_baseline(
    "spec: {containers: [{name: app, image: nginx}]}",
    &[POD_SC, C0_SC],
)]
#[case::null_security_contexts_count_as_absent(
    "spec: {securityContext: null, containers: [{name: app, image: nginx, securityContext: null}]}",
    &[POD_SC, C0_SC],
)]
#[case::existing_context_gets_only_missing_members(
    "spec: {securityContext: {runAsUser: 1000, seccompProfile: {type: Localhost, localhostProfile: p.json}}, containers: [{name: app, image: nginx, securityContext: {readOnlyRootFilesystem: true}}]}",
    // The pinned runAsUser decides the group and the volumes' owner (issue 19).
    &[
        "/containers/0/securityContext/allowPrivilegeEscalation = false",
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#,
        "/containers/0/securityContext/runAsNonRoot = true",
    ],
)]
#[case::existing_add_list_is_kept_beside_drop_all(
    "spec: {securityContext: {runAsNonRoot: true, runAsUser: 1, runAsGroup: 1, fsGroup: 1, seccompProfile: {type: RuntimeDefault}}, containers: [{name: app, image: nginx, securityContext: {allowPrivilegeEscalation: false, capabilities: {add: [NET_BIND_SERVICE]}}}]}",
    &[r#"/containers/0/securityContext/capabilities/drop = ["ALL"]"#],
)]
#[case::explicit_fs_group_keeps_its_own_change_policy(
    "spec: {securityContext: {fsGroup: 2000, runAsNonRoot: true, runAsUser: 1, runAsGroup: 1, seccompProfile: {type: RuntimeDefault}}, containers: [{name: app, image: nginx, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]}",
    &[],
)]
#[case::init_containers_and_native_sidecars_are_hardened(
    "spec: {securityContext: {runAsNonRoot: true, runAsUser: 1, runAsGroup: 1, fsGroup: 1, seccompProfile: {type: RuntimeDefault}}, initContainers: [{name: init, image: busybox}, {name: proxy, image: envoy, restartPolicy: Always}], containers: [{name: app, image: nginx, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]}",
    &[
        r#"/initContainers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}"#,
        r#"/initContainers/1/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}"#,
    ],
)]
fn adds_exactly_what_is_missing(#[case] pod: &str, #[case] expected: &[&str]) {
    let h = harden_yaml(pod, &Baseline::default(), Scope::Pod, true);
    assert_eq!(ops(&h), expected);
}

#[rstest]
#[case::insecure_container_values_are_kept_and_reported(
    "spec: {containers: [{name: app, image: nginx, securityContext: {allowPrivilegeEscalation: true, runAsUser: 0, seccompProfile: {type: Unconfined}, capabilities: {drop: [NET_RAW]}}}]}",
    &[r#"/securityContext = {"fsGroup":65532,"fsGroupChangePolicy":"OnRootMismatch","seccompProfile":{"type":"RuntimeDefault"}}"#],
    &[
        "container \"app\" runAsUser=0",
        "container \"app\" seccompProfile=\"Unconfined\"",
        "container \"app\" allowPrivilegeEscalation=true",
        "container \"app\" capabilities=[\"NET_RAW\"]",
    ],
    &[
        "container \"app\" runAsNonRoot ExplicitRoot",
        "container \"app\" runAsGroup ExplicitRoot",
    ],
)]
#[case::root_group_and_fs_group_are_kept_and_reported(
    "spec: {securityContext: {runAsGroup: 0, fsGroup: 0}, containers: [{name: app, image: nginx, securityContext: {runAsGroup: 0}}]}",
    &[
        r#"/securityContext/seccompProfile = {"type":"RuntimeDefault"}"#,
        r#"/containers/0/securityContext/allowPrivilegeEscalation = false"#,
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#,
        "/containers/0/securityContext/runAsNonRoot = true",
        "/containers/0/securityContext/runAsUser = 65532",
    ],
    &[
        "pod runAsGroup=0",
        "container \"app\" runAsGroup=0",
        "pod fsGroup=0",
    ],
    &[],
)]
#[case::pod_level_root_keeps_every_container_root(
    "spec: {securityContext: {runAsUser: 0}, containers: [{name: a, image: x}, {name: b, image: y}]}",
    &[
        "/securityContext/fsGroup = 65532",
        r#"/securityContext/fsGroupChangePolicy = "OnRootMismatch""#,
        r#"/securityContext/seccompProfile = {"type":"RuntimeDefault"}"#,
        r#"/containers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}"#,
        r#"/containers/1/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}"#,
    ],
    &["pod runAsUser=0"],
    &[
        "container \"a\" runAsNonRoot ExplicitRoot",
        "container \"b\" runAsNonRoot ExplicitRoot",
        "container \"a\" runAsGroup ExplicitRoot",
        "container \"b\" runAsGroup ExplicitRoot",
    ],
)]
#[case::one_root_container_leaves_identity_to_the_others(
    "spec: {containers: [{name: root, image: x, securityContext: {runAsUser: 0}}, {name: app, image: y}]}",
    &[
        r#"/securityContext = {"fsGroup":65532,"fsGroupChangePolicy":"OnRootMismatch","seccompProfile":{"type":"RuntimeDefault"}}"#,
        r#"/containers/0/securityContext/allowPrivilegeEscalation = false"#,
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#,
        r#"/containers/1/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532}"#,
    ],
    &["container \"root\" runAsUser=0"],
    &["container \"root\" runAsNonRoot ExplicitRoot", "container \"root\" runAsGroup ExplicitRoot"],
)]
#[case::run_as_non_root_false_is_an_explicit_choice_of_root(
    "spec: {containers: [{name: legacy, image: x, securityContext: {runAsNonRoot: false}}, {name: app, image: y}]}",
    &[
        r#"/securityContext = {"fsGroup":65532,"fsGroupChangePolicy":"OnRootMismatch","seccompProfile":{"type":"RuntimeDefault"}}"#,
        r#"/containers/0/securityContext/allowPrivilegeEscalation = false"#,
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#,
        r#"/containers/1/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532}"#,
    ],
    &["container \"legacy\" runAsNonRoot=false"],
    &["container \"legacy\" runAsUser ExplicitRoot", "container \"legacy\" runAsGroup ExplicitRoot"],
)]
#[case::privileged_container_keeps_escalation_capabilities_and_identity(
    "spec: {securityContext: {seccompProfile: {type: RuntimeDefault}, fsGroup: 1}, containers: [{name: agent, image: x, securityContext: {privileged: true}}]}",
    &[],
    &[],
    &[
        "container \"agent\" runAsNonRoot Privileged",
        "container \"agent\" runAsUser Privileged",
        "container \"agent\" runAsGroup Privileged",
        "container \"agent\" allowPrivilegeEscalation Privileged",
        "container \"agent\" capabilities Privileged",
    ],
)]
#[case::sys_admin_keeps_escalation(
    "spec: {securityContext: {runAsNonRoot: true, runAsUser: 1, runAsGroup: 1, fsGroup: 1, seccompProfile: {type: RuntimeDefault}}, containers: [{name: a, image: x, securityContext: {capabilities: {add: [SYS_ADMIN]}}}, {name: b, image: x, securityContext: {capabilities: {add: [CAP_SYS_ADMIN], drop: [ALL]}}}]}",
    &[r#"/containers/0/securityContext/capabilities/drop = ["ALL"]"#],
    &[],
    &["container \"a\" allowPrivilegeEscalation SysAdmin", "container \"b\" allowPrivilegeEscalation SysAdmin"],
)]
#[case::legacy_pod_seccomp_annotation_is_the_explicit_profile(
    "metadata: {annotations: {seccomp.security.alpha.kubernetes.io/pod: unconfined}}\nspec: {securityContext: {runAsNonRoot: true, runAsUser: 1, runAsGroup: 1, fsGroup: 1}, containers: [{name: a, image: x, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]}",
    &[],
    &["pod seccompProfile=\"annotation unconfined\""],
    &[],
)]
#[case::seccomp_profiles_restricted_rejects_are_kept_and_reported(
    "spec: {securityContext: {runAsNonRoot: true, runAsUser: 1, runAsGroup: 1, fsGroup: 1, seccompProfile: {type: \"\"}}, containers: [{name: a, image: x, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, seccompProfile: {type: Custom}}}]}",
    &[],
    &["pod seccompProfile=\"\"", "container \"a\" seccompProfile=\"Custom\""],
    &[],
)]
fn explicit_values_and_guards(
    #[case] pod: &str,
    #[case] expected_ops: &[&str],
    #[case] expected_kept: &[&str],
    #[case] expected_skipped: &[&str],
) {
    let h = harden_yaml(pod, &Baseline::default(), Scope::Pod, true);
    assert_eq!(ops(&h), expected_ops, "ops");
    assert_eq!(kept(&h), expected_kept, "kept");
    assert_eq!(skipped(&h), expected_skipped, "skipped");
}

#[rstest]
#[case::windows_os("spec: {os: {name: windows}, containers: [{name: a, image: x}]}", Untouched::Windows)]
#[case::windows_node_selector(
    "spec: {nodeSelector: {kubernetes.io/os: windows}, containers: [{name: a, image: x}]}",
    Untouched::Windows
)]
#[case::windows_beta_node_selector(
    "spec: {nodeSelector: {beta.kubernetes.io/os: windows}, containers: [{name: a, image: x}]}",
    Untouched::Windows
)]
#[case::windows_required_node_affinity(
    "spec: {affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/os, operator: In, values: [windows]}]}]}}}, containers: [{name: a, image: x}]}",
    Untouched::Windows
)]
#[case::windows_among_required_node_affinity_terms(
    "spec: {affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]}, {matchExpressions: [{key: kubernetes.io/os, operator: In, values: [linux, windows]}]}]}}}, containers: [{name: a, image: x}]}",
    Untouched::Windows
)]
#[case::windows_preferred_node_affinity(
    "spec: {affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, preference: {matchExpressions: [{key: beta.kubernetes.io/os, operator: In, values: [windows]}]}}]}}, containers: [{name: a, image: x}]}",
    Untouched::Windows
)]
#[case::windows_user_name_on_a_container(
    "spec: {containers: [{name: iis, image: x, securityContext: {windowsOptions: {runAsUserName: ContainerAdministrator}}}]}",
    Untouched::Windows
)]
#[case::windows_gmsa_on_the_pod(
    "spec: {securityContext: {windowsOptions: {gmsaCredentialSpecName: webapp}}, containers: [{name: a, image: x}]}",
    Untouched::Windows
)]
#[case::host_process_pod(
    "spec: {securityContext: {windowsOptions: {hostProcess: true}}, hostNetwork: true, containers: [{name: a, image: x}]}",
    Untouched::HostProcess
)]
#[case::host_process_container(
    "spec: {containers: [{name: a, image: x, securityContext: {windowsOptions: {hostProcess: true}}}]}",
    Untouched::HostProcess
)]
#[case::mirror_pod(
    "metadata: {annotations: {kubernetes.io/config.mirror: abc}}\nspec: {containers: [{name: a, image: x}]}",
    Untouched::MirrorPod
)]
#[case::opted_out_pod(
    "metadata: {annotations: {secure-defaults.io/skip: 'true'}}\nspec: {containers: [{name: a, image: x}]}",
    Untouched::OptedOut
)]
fn pods_left_alone(#[case] pod: &str, #[case] reason: Untouched) {
    let h = harden_yaml(pod, &Baseline::default(), Scope::Pod, true);
    assert_eq!(h.report.untouched, Some(reason));
    assert!(h.ops.is_empty(), "{:?}", ops(&h));
    assert!(
        !h.report.remaining.is_empty(),
        "the report still says what restricted rejects"
    );
}

/// Pods that keep Windows out, or name it only to rule it out, are hardened.
#[rstest]
#[case::linux_os_with_stray_windows_options(
    "spec: {os: {name: linux}, containers: [{name: a, image: x, securityContext: {windowsOptions: {runAsUserName: app}}}]}"
)]
#[case::empty_windows_options("spec: {securityContext: {windowsOptions: {}}, containers: [{name: a, image: x}]}")]
#[case::linux_node_selector("spec: {nodeSelector: {kubernetes.io/os: linux}, containers: [{name: a, image: x}]}")]
#[case::windows_kept_out_by_affinity(
    "spec: {affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/os, operator: NotIn, values: [windows]}]}]}}}, containers: [{name: a, image: x}]}"
)]
#[case::windows_in_another_label(
    "spec: {nodeSelector: {example.com/pool: windows}, containers: [{name: a, image: x}]}"
)]
fn pods_that_do_not_name_windows_are_hardened(#[case] pod: &str) {
    let h = harden_yaml(pod, &Baseline::default(), Scope::Pod, true);
    assert_eq!(h.report.untouched, None);
    assert!(ops(&h).iter().any(|op| op.contains("runAsNonRoot")), "{:?}", ops(&h));
}

#[test]
fn opt_out_is_ignored_when_the_operator_forbids_it() {
    let pod = "metadata: {annotations: {secure-defaults.io/skip: 'true'}}\nspec: {containers: [{name: a, image: x}]}";
    let h = harden_yaml(pod, &Baseline::default(), Scope::Pod, false);
    assert_eq!(h.report.untouched, None);
    assert!(h.opt_out.whole_pod && !h.opt_out_honoured);
    assert_eq!(ops(&h), [POD_SC, C0_SC]);
}

#[test]
fn opted_out_fields_are_skipped_and_reported() {
    let pod = "metadata: {annotations: {secure-defaults.io/skip-fields: 'runAsUser,capabilities'}}\nspec: {containers: [{name: a, image: x}]}";
    let h = harden_yaml(pod, &Baseline::default(), Scope::Pod, true);
    assert_eq!(
        ops(&h),
        [
            r#"/securityContext = {"fsGroup":65532,"fsGroupChangePolicy":"OnRootMismatch","seccompProfile":{"type":"RuntimeDefault"}}"#,
            r#"/containers/0/securityContext = {"allowPrivilegeEscalation":false,"runAsGroup":65532,"runAsNonRoot":true}"#,
        ]
    );
    assert_eq!(skipped(&h), ["pod runAsUser OptedOut", "pod capabilities OptedOut"]);
}

#[test]
fn opt_in_fields_are_added_when_enabled() {
    let baseline = Baseline {
        read_only_root_filesystem: true,
        app_armor_profile: Some(baseline::ProfileType::RuntimeDefault),
        supplemental_groups: vec![5000],
        ..Baseline::default()
    };
    let pod = "spec: {securityContext: {runAsNonRoot: true, runAsUser: 1, runAsGroup: 1, fsGroup: 1, seccompProfile: {type: RuntimeDefault}}, containers: [{name: a, image: x, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}, {name: b, image: x, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, readOnlyRootFilesystem: false}}]}";
    let h = harden_yaml(pod, &baseline, Scope::Pod, true);
    assert_eq!(
        ops(&h),
        [
            "/securityContext/supplementalGroups = [5000]",
            r#"/containers/0/securityContext/appArmorProfile = {"type":"RuntimeDefault"}"#,
            "/containers/0/securityContext/readOnlyRootFilesystem = true",
            r#"/containers/1/securityContext/appArmorProfile = {"type":"RuntimeDefault"}"#,
        ]
    );
    assert_eq!(kept(&h), ["container \"b\" readOnlyRootFilesystem=false"]);
}

#[test]
fn legacy_apparmor_annotation_keeps_the_container_profile() {
    let baseline = Baseline {
        app_armor_profile: Some(baseline::ProfileType::RuntimeDefault),
        ..Baseline::default()
    };
    let pod = "metadata: {annotations: {container.apparmor.security.beta.kubernetes.io/a: unconfined}}\nspec: {securityContext: {runAsNonRoot: true, runAsUser: 1, runAsGroup: 1, fsGroup: 1, seccompProfile: {type: RuntimeDefault}}, containers: [{name: a, image: x, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}, {name: b, image: x, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}]}";
    let h = harden_yaml(pod, &baseline, Scope::Pod, true);
    assert_eq!(
        ops(&h),
        [r#"/containers/1/securityContext/appArmorProfile = {"type":"RuntimeDefault"}"#]
    );
    assert_eq!(kept(&h), ["container \"a\" appArmorProfile=\"annotation unconfined\""]);
    assert_eq!(
        remaining(&h),
        ["appArmorProfile: container \"a\": annotation apparmor unconfined"]
    );
}

#[test]
fn disabled_baseline_fields_are_not_added() {
    let baseline = Baseline {
        run_as_non_root: false,
        run_as_user: None,
        run_as_group: None,
        fs_group: None,
        seccomp_profile: None,
        allow_privilege_escalation: None,
        drop_all_capabilities: false,
        ..Baseline::default()
    };
    let h = harden_yaml("spec: {containers: [{name: a, image: x}]}", &baseline, Scope::Pod, true);
    assert!(h.ops.is_empty(), "{:?}", ops(&h));
}

const DEBUG_POD: &str = "spec:
  containers: [{name: app, image: x}]
  ephemeralContainers:
    - {name: debugger-old, image: busybox}
    - {name: debugger-new, image: busybox}
";

#[test]
fn ephemeral_update_hardens_only_the_new_container_at_container_level() {
    let scope = Scope::EphemeralContainers(vec!["debugger-new".into()]);
    let h = harden_yaml(DEBUG_POD, &Baseline::default(), scope, true);
    assert_eq!(
        ops(&h),
        [
            r#"/ephemeralContainers/1/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532,"seccompProfile":{"type":"RuntimeDefault"}}"#
        ]
    );
}

#[test]
fn ephemeral_update_inherits_what_the_pod_already_has() {
    let pod = "spec:
  securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
  containers: [{name: app, image: x}]
  ephemeralContainers: [{name: dbg, image: busybox, securityContext: {capabilities: {add: [SYS_PTRACE]}}}]
";
    let scope = Scope::EphemeralContainers(vec!["dbg".into()]);
    let h = harden_yaml(pod, &Baseline::default(), scope, true);
    assert_eq!(
        ops(&h),
        [
            "/ephemeralContainers/0/securityContext/allowPrivilegeEscalation = false",
            r#"/ephemeralContainers/0/securityContext/capabilities/drop = ["ALL"]"#,
        ]
    );
}

#[test]
fn remaining_names_what_no_default_can_fix() {
    let pod = "spec:
  hostNetwork: true
  hostPID: true
  securityContext: {sysctls: [{name: kernel.msgmax, value: '1'}, {name: net.ipv4.tcp_syncookies, value: '1'}], seLinuxOptions: {type: spc_t}}
  volumes: [{name: data, hostPath: {path: /var}}, {name: cfg, configMap: {name: c}}, {name: share, nfs: {server: s, path: /}}]
  containers:
    - name: app
      image: x
      ports: [{containerPort: 80, hostPort: 80}]
      readinessProbe: {httpGet: {host: 10.0.0.1, port: 80}}
      securityContext: {procMount: Unmasked, capabilities: {add: [NET_ADMIN, NET_BIND_SERVICE]}}
";
    let h = harden_yaml(pod, &Baseline::default(), Scope::Pod, true);
    assert_eq!(
        remaining(&h),
        [
            "hostNamespaces: hostNetwork=true",
            "hostNamespaces: hostPID=true",
            "hostPathVolumes: hostPath volume \"data\"",
            "restrictedVolumes: nfs volume \"share\"",
            "seLinuxOptions: seLinuxOptions type=spc_t",
            "sysctls: sysctl kernel.msgmax",
            "capabilities: container \"app\": capabilities.add=[\"NET_ADMIN\"]",
            "hostPorts: container \"app\": hostPort [80]",
            "hostProbesAndHostLifecycle: container \"app\": host set in readinessProbe",
            "procMount: container \"app\": procMount=Unmasked",
        ]
    );
}

/// Pod Security 1.35+ relaxes procMount for `hostUsers: false` pods in
/// baseline only; restricted's `procMount_restricted` still forbids Unmasked
/// (the upstream fixtures `fail/procmount_restricted*`).
#[test]
fn unmasked_proc_fails_restricted_also_in_a_user_namespace() {
    let pod = "spec:
  hostUsers: false
  containers:
    - name: app
      image: x
      securityContext: {procMount: Unmasked}
";
    let h = harden_yaml(pod, &Baseline::default(), Scope::Pod, true);
    assert_eq!(remaining(&h), ["procMount: container \"app\": procMount=Unmasked"]);
}

#[test]
fn hardened_bare_pod_passes_restricted() {
    let h = harden_yaml(
        "spec: {containers: [{name: a, image: x}]}",
        &Baseline::default(),
        Scope::Pod,
        true,
    );
    assert_eq!(remaining(&h), Vec::<String>::new());
}

#[test]
fn report_order_is_stable() {
    let pod = "spec: {containers: [{name: b, image: x, securityContext: {runAsUser: 0}}, {name: a, image: y}], initContainers: [{name: i, image: z, securityContext: {allowPrivilegeEscalation: true}}]}";
    let first = harden_yaml(pod, &Baseline::default(), Scope::Pod, true);
    for _ in 0..5 {
        assert_eq!(harden_yaml(pod, &Baseline::default(), Scope::Pod, true), first);
    }
}

/// A later webhook injects a privileged agent and a container that runs as
/// root; the API server calls the webhook again. Neither may have been given
/// an identity by the first pass: the root one would not start under an
/// inherited `runAsNonRoot: true`, the agent would not run as root.
#[test]
fn identity_never_reaches_containers_injected_after_the_first_pass() {
    let first = "spec: {containers: [{name: app, image: x}]}";
    let h = harden_yaml(first, &Baseline::default(), Scope::Pod, true);
    let mut pod: serde_json::Value = serde_yaml::from_str(first).unwrap();
    assert!(!ops(&h).is_empty(), "the first pass adds (only adds)");
    let patch = crate::manifest::prefixed(&jsonptr::PointerBuf::from_tokens(["spec"]), &h.ops);
    json_patch::patch(&mut pod, &patch).unwrap();
    let pod_sc = &pod["spec"]["securityContext"];
    for field in ["runAsNonRoot", "runAsUser", "runAsGroup"] {
        assert!(pod_sc.get(field).is_none(), "{field} at pod level: {pod_sc}");
    }
    let containers = pod["spec"]["containers"].as_array_mut().unwrap();
    containers.push(serde_json::json!({"name": "agent", "image": "a", "securityContext": {"privileged": true}}));
    containers.push(serde_json::json!({"name": "init-net", "image": "b", "securityContext": {"runAsUser": 0}}));
    let second = harden_yaml(
        &serde_json::to_string(&pod).unwrap(),
        &Baseline::default(),
        Scope::Pod,
        true,
    );
    assert!(
        ops(&second).iter().all(|op| !op.contains("runAs")),
        "{:?}",
        ops(&second)
    );
    assert!(skipped(&second).contains(&"container \"agent\" runAsNonRoot Privileged".to_string()));
    assert!(skipped(&second).contains(&"container \"init-net\" runAsNonRoot ExplicitRoot".to_string()));
}

fn userns() -> Baseline {
    Baseline {
        identity: baseline::IdentityMode::Userns,
        ..Baseline::default()
    }
}

fn identity(h: &Hardening) -> String {
    let i = h.report.identity.as_ref().expect("an identity decision");
    format!("{:?} {:?}", i.choice, i.reason)
}

const POD_SC_USERNS: &str = r#"/securityContext = {"fsGroup":65532,"fsGroupChangePolicy":"OnRootMismatch","seccompProfile":{"type":"RuntimeDefault"}}"#;
const HOST_USERS: &str = "/hostUsers = false";
const C0_NO_IDS: &str =
    r#"/containers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}"#;

/// Identity is one decision per pod: what the manifest decided is never
/// extended, and `identity: userns` uses a user namespace where it can.
#[rstest]
#[case::image_user_gets_no_uid_or_gid(
    "spec: {containers: [{name: app, image: x, securityContext: {runAsNonRoot: true}}]}",
    Baseline::default(),
    &[POD_SC, "/containers/0/securityContext/allowPrivilegeEscalation = false", r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#],
    &["container \"app\" runAsUser ImageUser", "container \"app\" runAsGroup ImageUser"],
    "Kept UidMode",
)]
#[case::pod_level_image_user_gets_no_uid_or_gid(
    "spec: {securityContext: {runAsNonRoot: true}, containers: [{name: app, image: x}]}",
    Baseline::default(),
    &[
        "/securityContext/fsGroup = 65532",
        r#"/securityContext/fsGroupChangePolicy = "OnRootMismatch""#,
        r#"/securityContext/seccompProfile = {"type":"RuntimeDefault"}"#,
        C0_NO_IDS,
    ],
    &["container \"app\" runAsUser ImageUser", "container \"app\" runAsGroup ImageUser"],
    "Kept UidMode",
)]
#[case::pinned_user_gets_no_group_and_no_fs_group(
    "spec: {securityContext: {runAsUser: 1000}, containers: [{name: app, image: x}]}",
    Baseline::default(),
    &[
        r#"/securityContext/seccompProfile = {"type":"RuntimeDefault"}"#,
        r#"/containers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsNonRoot":true}"#,
    ],
    &["container \"app\" runAsGroup PinnedUser", "pod fsGroup PinnedUser"],
    "Kept UidMode",
)]
#[case::container_pinned_user_keeps_fs_group_off_the_pod(
    "spec: {containers: [{name: app, image: x, securityContext: {runAsUser: 1000}}, {name: side, image: y}]}",
    Baseline::default(),
    &[
        r#"/securityContext = {"seccompProfile":{"type":"RuntimeDefault"}}"#,
        "/containers/0/securityContext/allowPrivilegeEscalation = false",
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#,
        "/containers/0/securityContext/runAsNonRoot = true",
        r#"/containers/1/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532}"#,
    ],
    &["container \"app\" runAsGroup PinnedUser", "pod fsGroup PinnedUser"],
    "Uid UidMode",
)]
#[case::fs_group_beside_run_as_user_when_configured(
    "spec: {securityContext: {runAsUser: 1000}, containers: [{name: app, image: x}]}",
    Baseline { fs_group_beside_run_as_user: true, ..Baseline::default() },
    &[
        "/securityContext/fsGroup = 65532",
        r#"/securityContext/fsGroupChangePolicy = "OnRootMismatch""#,
        r#"/securityContext/seccompProfile = {"type":"RuntimeDefault"}"#,
        r#"/containers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsNonRoot":true}"#,
    ],
    &["container \"app\" runAsGroup PinnedUser"],
    "Kept UidMode",
)]
#[case::uid_mode_never_adds_host_users_beside_root(
    "spec: {containers: [{name: app, image: x, securityContext: {runAsUser: 0}}]}",
    Baseline::default(),
    &[POD_SC, "/containers/0/securityContext/allowPrivilegeEscalation = false", r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#],
    &["container \"app\" runAsNonRoot ExplicitRoot", "container \"app\" runAsGroup ExplicitRoot"],
    "Kept UidMode",
)]
#[case::userns_bare_pod_gets_a_user_namespace_and_no_ids(
    "spec: {containers: [{name: app, image: x}], initContainers: [{name: init, image: y}]}",
    userns(),
    &[HOST_USERS, POD_SC_USERNS, r#"/initContainers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}"#, C0_NO_IDS],
    &[],
    "UserNamespace NoIdentitySet",
)]
#[case::userns_explicit_root_gets_a_user_namespace(
    "spec: {containers: [{name: app, image: x, securityContext: {runAsUser: 0, runAsNonRoot: false}}, {name: side, image: y}]}",
    userns(),
    &[
        HOST_USERS,
        POD_SC_USERNS,
        "/containers/0/securityContext/allowPrivilegeEscalation = false",
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#,
        r#"/containers/1/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}"#,
    ],
    &[],
    "UserNamespace ExplicitRoot",
)]
#[case::userns_explicit_root_stays_on_host_users_when_switched_off(
    "spec: {securityContext: {runAsUser: 0}, containers: [{name: app, image: x}]}",
    Baseline { user_namespace_for_explicit_root: false, ..userns() },
    &[
        "/securityContext/fsGroup = 65532",
        r#"/securityContext/fsGroupChangePolicy = "OnRootMismatch""#,
        r#"/securityContext/seccompProfile = {"type":"RuntimeDefault"}"#,
        C0_NO_IDS,
    ],
    &["container \"app\" runAsNonRoot ExplicitRoot", "container \"app\" runAsGroup ExplicitRoot"],
    "Kept RootOnHostUsers",
)]
#[case::userns_host_network_falls_back_to_uid(
    "spec: {hostNetwork: true, containers: [{name: app, image: x}]}",
    userns(),
    &[POD_SC, C0_SC],
    &[],
    "Uid HostNetwork",
)]
#[case::userns_host_pid_falls_back_to_uid(
    "spec: {hostPID: true, containers: [{name: app, image: x}]}",
    userns(),
    &[POD_SC, C0_SC],
    &[],
    "Uid HostPid",
)]
#[case::userns_host_ipc_falls_back_to_uid(
    "spec: {hostIPC: true, containers: [{name: app, image: x}]}",
    userns(),
    &[POD_SC, C0_SC],
    &[],
    "Uid HostIpc",
)]
#[case::userns_volume_devices_fall_back_to_uid(
    "spec: {containers: [{name: app, image: x, volumeDevices: [{name: raw, devicePath: /dev/xvda}]}]}",
    userns(),
    &[POD_SC, C0_SC],
    &[],
    "Uid VolumeDevices",
)]
#[case::userns_privileged_container_falls_back_to_uid(
    "spec: {containers: [{name: app, image: x}, {name: agent, image: y, securityContext: {privileged: true}}]}",
    userns(),
    &[POD_SC, C0_SC],
    &[
        "container \"agent\" runAsNonRoot Privileged",
        "container \"agent\" runAsUser Privileged",
        "container \"agent\" runAsGroup Privileged",
        "container \"agent\" allowPrivilegeEscalation Privileged",
        "container \"agent\" capabilities Privileged",
    ],
    "Uid Privileged",
)]
#[case::userns_containers_with_their_own_identity_fall_back_to_uid(
    "spec: {containers: [{name: app, image: x, securityContext: {runAsNonRoot: true}}, {name: side, image: y}]}",
    userns(),
    &[
        POD_SC,
        "/containers/0/securityContext/allowPrivilegeEscalation = false",
        r#"/containers/0/securityContext/capabilities = {"drop":["ALL"]}"#,
        r#"/containers/1/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532}"#,
    ],
    &["container \"app\" runAsUser ImageUser", "container \"app\" runAsGroup ImageUser"],
    "Uid ContainersDecide",
)]
#[case::userns_explicit_host_users_true_is_kept(
    "spec: {hostUsers: true, containers: [{name: app, image: x}]}",
    userns(),
    &[POD_SC, C0_SC],
    &[],
    "Uid HostUsersSet",
)]
#[case::userns_explicit_host_users_false_gets_no_ids(
    "spec: {hostUsers: false, containers: [{name: app, image: x}]}",
    userns(),
    &[POD_SC_USERNS, C0_NO_IDS],
    &[],
    "UserNamespace HostUsersSet",
)]
#[case::userns_opt_out_of_host_users_falls_back_to_uid(
    "metadata: {annotations: {secure-defaults.io/skip-fields: hostUsers}}\nspec: {containers: [{name: app, image: x}]}",
    userns(),
    &[POD_SC, C0_SC],
    &["pod hostUsers OptedOut"],
    "Uid OptedOut",
)]
fn identity_decisions(
    #[case] pod: &str,
    #[case] baseline: Baseline,
    #[case] expected_ops: &[&str],
    #[case] expected_skipped: &[&str],
    #[case] expected_identity: &str,
) {
    let h = harden_yaml(pod, &baseline, Scope::Pod, true);
    assert_eq!(ops(&h), expected_ops);
    assert_eq!(skipped(&h), expected_skipped);
    assert_eq!(identity(&h), expected_identity);
    if h.report
        .identity
        .as_ref()
        .is_some_and(|i| i.choice == IdentityChoice::UserNamespace)
    {
        assert!(ops(&h).iter().all(|op| !op.contains("runAs")), "{:?}", ops(&h));
    }
}

/// A legacy root-by-default pod in `userns` mode passes `restricted`, and
/// so does one that explicitly runs as root.
#[rstest]
#[case::image_root("spec: {containers: [{name: app, image: nginx}]}")]
#[case::explicit_root("spec: {containers: [{name: app, image: nginx, securityContext: {runAsUser: 0}}]}")]
fn userns_pods_pass_restricted(#[case] pod: &str) {
    let h = harden_yaml(pod, &userns(), Scope::Pod, true);
    assert_eq!(remaining(&h), Vec::<String>::new());
}

/// `hostUsers` is immutable: an ephemeral-container update never adds it,
/// and the new container gets the uid unless the pod already runs in a user
/// namespace.
#[rstest]
#[case::host_users_unset(
    "spec: {containers: [{name: app, image: x}], ephemeralContainers: [{name: debug, image: y}]}",
    &[r#"/ephemeralContainers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532,"seccompProfile":{"type":"RuntimeDefault"}}"#],
    "Uid Update",
)]
#[case::pod_in_a_user_namespace(
    "spec: {hostUsers: false, containers: [{name: app, image: x}], ephemeralContainers: [{name: debug, image: y}]}",
    &[r#"/ephemeralContainers/0/securityContext = {"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}}"#],
    "UserNamespace HostUsersSet",
)]
fn userns_on_ephemeral_update(#[case] pod: &str, #[case] expected_ops: &[&str], #[case] expected_identity: &str) {
    let h = harden_yaml(pod, &userns(), Scope::EphemeralContainers(vec!["debug".into()]), true);
    assert_eq!(ops(&h), expected_ops);
    assert_eq!(identity(&h), expected_identity);
}

fn cautions(h: &Hardening) -> Vec<String> {
    h.report
        .cautions
        .iter()
        .map(|c| format!("{} {:?}", c.target, c.ports))
        .collect()
}

/// Issue 18: a port below 1024 the hardened container cannot bind is said,
/// and only that: no caution where the spec does not decide it.
#[rstest]
#[case::declared_port_as_the_baseline_uid(
    "spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}, {containerPort: 8080}, {containerPort: 443}]}]}",
    Baseline::default(),
    &["container \"web\" [80, 443]"],
)]
#[case::probe_ports_count_and_repeat_once(
    "spec: {containers: [{name: web, image: httpd, ports: [{name: http, containerPort: 80}], readinessProbe: {httpGet: {port: 80}}, livenessProbe: {tcpSocket: {port: http}}, startupProbe: {grpc: {port: 81}}}]}",
    Baseline::default(),
    &["container \"web\" [80, 81]"],
)]
#[case::init_containers_in_spec_order(
    "spec: {initContainers: [{name: init, image: busybox, ports: [{containerPort: 53, protocol: UDP}]}], containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}",
    Baseline::default(),
    &["init container \"init\" [53]", "container \"web\" [80]"],
)]
#[case::run_as_non_root_with_the_image_user(
    "spec: {securityContext: {runAsNonRoot: true}, containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}",
    Baseline::default(),
    &["container \"web\" [80]"],
)]
#[case::high_ports_are_silent(
    "spec: {containers: [{name: web, image: nginx-unprivileged, ports: [{containerPort: 8080}]}], }",
    Baseline::default(),
    &[],
)]
#[case::net_bind_service_added_is_silent(
    "spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}], securityContext: {capabilities: {add: [NET_BIND_SERVICE]}}}]}",
    Baseline::default(),
    &[],
)]
#[case::explicit_root_is_silent(
    "spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}], securityContext: {runAsUser: 0}}]}",
    Baseline::default(),
    &[],
)]
#[case::image_user_unknown_is_silent(
    "spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}",
    Baseline { run_as_non_root: false, run_as_user: None, ..Baseline::default() },
    &[],
)]
#[case::capabilities_kept_without_drop_is_silent(
    "spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}], securityContext: {capabilities: {drop: [NET_RAW]}}}]}",
    Baseline::default(),
    &[],
)]
#[case::user_namespace_is_silent(
    "spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}",
    userns(),
    &[],
)]
#[case::lowered_sysctl_allows_the_ports_above_it(
    "spec: {securityContext: {sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: '80'}]}, containers: [{name: web, image: nginx, ports: [{containerPort: 53}, {containerPort: 80}, {containerPort: 443}]}]}",
    Baseline::default(),
    &["container \"web\" [53]"],
)]
#[case::untouched_pods_are_silent(
    "metadata: {annotations: {secure-defaults.io/skip: 'true'}}\nspec: {securityContext: {runAsUser: 1000}, containers: [{name: web, image: nginx, ports: [{containerPort: 80}], securityContext: {capabilities: {drop: [ALL]}}}]}",
    Baseline::default(),
    &[],
)]
fn low_port_cautions(#[case] pod: &str, #[case] baseline: Baseline, #[case] expected: &[&str]) {
    let h = harden_yaml(pod, &baseline, Scope::Pod, true);
    assert_eq!(cautions(&h), expected);
}

#[test]
fn caution_message_says_what_to_do() {
    let h = harden_yaml(
        "spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}",
        &Baseline::default(),
        Scope::Pod,
        true,
    );
    assert_eq!(
        h.report.cautions[0].message(),
        "container \"web\" listens on port 80 (<1024): as non-root without NET_BIND_SERVICE it cannot bind it \
         unless net.ipv4.ip_unprivileged_port_start is lower; use a port >= 1024 or set that sysctl in the pod's \
         securityContext.sysctls"
    );
}

mod identity_auto;
