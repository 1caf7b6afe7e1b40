//! Pod Security `restricted` (latest), evaluated on the hardened pod: what
//! the API server's PodSecurity admission will still reject after
//! secure-defaults has done what a default can do.
//!
//! The checks follow the Pod Security Standards and the checks of
//! `k8s.io/pod-security-admission/policy`; the e2e suite runs the upstream
//! fixtures through the real admission plugin to keep the two in step.

use super::annotations::Annotations;
use super::containers;
use super::report::{Check, Target, Violation};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, PodSpec, Probe, SELinuxOptions, Volume};

const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const SAFE_SYSCTLS: [&str; 13] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_slow_start_after_idle",
];

const SELINUX_TYPES: [&str; 5] = [
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Every `restricted` violation of the pod, in a stable order: pod-level
/// checks first, then containers in spec order, each in check order.
pub(crate) fn violations(spec: &PodSpec, annotations: Annotations) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = |check: Check, target: Target, detail: String| out.push(Violation { check, target, detail });
    let pod = spec.security_context.as_ref();
    let windows = spec.os.as_ref().is_some_and(|os| os.name == "windows");
    // Pods in a user namespace may run as UID 0 inside it (policy 1.35+:
    // `relaxPolicyForUserNamespacePod` in runAsNonRoot and runAsUser). Not
    // procMount: only baseline relaxes it; `procMount_restricted` still
    // forbids Unmasked in a user namespace.
    let user_namespace = spec.host_users == Some(false);

    // Pod level.
    if pod
        .and_then(|p| p.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true)
    {
        v(
            Check::HostProcess,
            Target::Pod,
            "windowsOptions.hostProcess=true".into(),
        );
    }
    for (set, name) in [
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if set == Some(true) {
            v(Check::HostNamespaces, Target::Pod, format!("{name}=true"));
        }
    }
    for vol in spec.volumes.iter().flatten() {
        if vol.host_path.is_some() {
            v(
                Check::HostPathVolumes,
                Target::Pod,
                format!("hostPath volume {:?}", vol.name),
            );
        } else if let Some(kind) = restricted_volume_kind(vol) {
            v(
                Check::RestrictedVolumes,
                Target::Pod,
                format!("{kind} volume {:?}", vol.name),
            );
        }
    }
    if let Some(p) = pod
        .and_then(|p| p.app_armor_profile.as_ref())
        .filter(|p| p.type_ == "Unconfined")
    {
        v(
            Check::AppArmorProfile,
            Target::Pod,
            format!("appArmorProfile.type={}", p.type_),
        );
    }
    if let Some(detail) = pod
        .and_then(|p| p.se_linux_options.as_ref())
        .and_then(selinux_violation)
    {
        v(Check::SeLinuxOptions, Target::Pod, detail);
    }
    for s in pod.and_then(|p| p.sysctls.as_ref()).into_iter().flatten() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            v(Check::Sysctls, Target::Pod, format!("sysctl {}", s.name));
        }
    }
    let pod_seccomp = pod.and_then(|p| p.seccomp_profile.as_ref()).map(|p| p.type_.as_str());
    // Pod Security reads the seccomp fields only; the legacy annotations are
    // named in the detail because their authors will look for them.
    if pod_seccomp == Some("Unconfined") {
        v(
            Check::SeccompProfile,
            Target::Pod,
            "seccompProfile.type=Unconfined".into(),
        );
    }
    let pod_non_root = pod.and_then(|p| p.run_as_non_root);
    if pod_non_root == Some(false) && !user_namespace {
        v(Check::RunAsNonRoot, Target::Pod, "runAsNonRoot=false".into());
    }
    if pod.and_then(|p| p.run_as_user) == Some(0) && !user_namespace {
        v(Check::RunAsUser, Target::Pod, "runAsUser=0".into());
    }
    let pod_seccomp_ok = matches!(pod_seccomp, Some("RuntimeDefault" | "Localhost"));

    // Containers.
    for (slot, c) in containers::all(spec) {
        let target = || containers::target(slot, c);
        let sc = c.security_context();
        if sc.and_then(|s| s.windows_options.as_ref()).and_then(|w| w.host_process) == Some(true) {
            v(Check::HostProcess, target(), "windowsOptions.hostProcess=true".into());
        }
        if sc.and_then(|s| s.privileged) == Some(true) {
            v(Check::Privileged, target(), "privileged=true".into());
        }
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        let added = caps.and_then(|c| c.add.as_deref()).unwrap_or_default();
        let beyond: Vec<&str> = if windows {
            added
                .iter()
                .filter(|a| !BASELINE_CAPABILITIES.contains(&a.as_str()))
                .map(String::as_str)
                .collect()
        } else {
            added
                .iter()
                .filter(|a| *a != "NET_BIND_SERVICE")
                .map(String::as_str)
                .collect()
        };
        if !beyond.is_empty() {
            v(Check::Capabilities, target(), format!("capabilities.add={beyond:?}"));
        }
        if !windows
            && !caps
                .and_then(|c| c.drop.as_ref())
                .is_some_and(|d| d.iter().any(|d| d == "ALL"))
        {
            v(
                Check::Capabilities,
                target(),
                "capabilities.drop does not include ALL".into(),
            );
        }
        let host_ports: Vec<i32> = c
            .ports()
            .iter()
            .filter_map(|p| p.host_port)
            .filter(|p| *p != 0)
            .collect();
        if !host_ports.is_empty() {
            v(Check::HostPorts, target(), format!("hostPort {host_ports:?}"));
        }
        let hosts = containers::get_container(spec, slot)
            .map(probe_hosts)
            .unwrap_or_default();
        if !hosts.is_empty() {
            v(
                Check::HostProbesAndHostLifecycle,
                target(),
                format!("host set in {}", hosts.join(", ")),
            );
        }
        match (
            sc.and_then(|s| s.app_armor_profile.as_ref()),
            annotations.container_apparmor(c.name()),
        ) {
            (Some(p), _) if p.type_ == "Unconfined" => v(
                Check::AppArmorProfile,
                target(),
                "appArmorProfile.type=Unconfined".into(),
            ),
            (None, Some(a)) if !(a.is_empty() || a == "runtime/default" || a.starts_with("localhost/")) => {
                v(Check::AppArmorProfile, target(), format!("annotation apparmor {a}"))
            }
            _ => {}
        }
        if let Some(detail) = sc.and_then(|s| s.se_linux_options.as_ref()).and_then(selinux_violation) {
            v(Check::SeLinuxOptions, target(), detail);
        }
        if let Some(m) = sc.and_then(|s| s.proc_mount.as_deref()).filter(|m| *m != "Default") {
            v(Check::ProcMount, target(), format!("procMount={m}"));
        }
        let seccomp = sc.and_then(|s| s.seccomp_profile.as_ref()).map(|p| p.type_.as_str());
        if seccomp == Some("Unconfined") {
            v(Check::SeccompProfile, target(), "seccompProfile.type=Unconfined".into());
        } else if !windows && seccomp.is_none() && !pod_seccomp_ok {
            let legacy = annotations.container_seccomp(c.name()).or(annotations.pod_seccomp());
            let detail = match legacy {
                Some(a) => format!("seccompProfile is not set (the legacy annotation {a} is not enforced)"),
                None => "seccompProfile is not set to RuntimeDefault or Localhost".into(),
            };
            v(Check::SeccompProfile, target(), detail);
        }
        if !windows && sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
            let detail = match sc.and_then(|s| s.allow_privilege_escalation) {
                Some(true) => "allowPrivilegeEscalation=true",
                _ => "allowPrivilegeEscalation is not set to false",
            };
            v(Check::AllowPrivilegeEscalation, target(), detail.into());
        }
        match sc.and_then(|s| s.run_as_non_root) {
            _ if user_namespace => {}
            Some(false) => v(Check::RunAsNonRoot, target(), "runAsNonRoot=false".into()),
            None if pod_non_root.is_none() => {
                v(Check::RunAsNonRoot, target(), "runAsNonRoot is not set to true".into())
            }
            _ => {}
        }
        if sc.and_then(|s| s.run_as_user) == Some(0) && !user_namespace {
            v(Check::RunAsUser, target(), "runAsUser=0".into());
        }
    }
    out
}

/// The probes and lifecycle handlers that name a host (only the pod's own IP is allowed).
fn probe_hosts(c: &Container) -> Vec<&'static str> {
    let named = |h: &Option<String>| h.as_deref().is_some_and(|h| !h.is_empty());
    let probe = |p: &Option<Probe>| {
        p.as_ref().is_some_and(|p| {
            p.http_get.as_ref().is_some_and(|g| named(&g.host)) || p.tcp_socket.as_ref().is_some_and(|t| named(&t.host))
        })
    };
    let handler = |h: Option<&LifecycleHandler>| {
        h.is_some_and(|h| {
            h.http_get.as_ref().is_some_and(|g| named(&g.host)) || h.tcp_socket.as_ref().is_some_and(|t| named(&t.host))
        })
    };
    let lifecycle = c.lifecycle.as_ref();
    [
        (probe(&c.liveness_probe), "livenessProbe"),
        (probe(&c.readiness_probe), "readinessProbe"),
        (probe(&c.startup_probe), "startupProbe"),
        (
            handler(lifecycle.and_then(|l| l.post_start.as_ref())),
            "lifecycle.postStart",
        ),
        (
            handler(lifecycle.and_then(|l| l.pre_stop.as_ref())),
            "lifecycle.preStop",
        ),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

fn selinux_violation(o: &SELinuxOptions) -> Option<String> {
    let mut bad = Vec::new();
    if let Some(t) = o.type_.as_deref().filter(|t| !SELINUX_TYPES.contains(t)) {
        bad.push(format!("type={t}"));
    }
    if let Some(u) = o.user.as_deref().filter(|u| !u.is_empty()) {
        bad.push(format!("user={u}"));
    }
    if let Some(r) = o.role.as_deref().filter(|r| !r.is_empty()) {
        bad.push(format!("role={r}"));
    }
    (!bad.is_empty()).then(|| format!("seLinuxOptions {}", bad.join(", ")))
}

/// The volume source, when it is not one `restricted` allows.
fn restricted_volume_kind(v: &Volume) -> Option<&'static str> {
    let allowed = v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some();
    if allowed {
        return None;
    }
    let named = [
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.azure_file.is_some(), "azureFile"),
        (v.cephfs.is_some(), "cephfs"),
        (v.cinder.is_some(), "cinder"),
        (v.fc.is_some(), "fc"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.flocker.is_some(), "flocker"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.nfs.is_some(), "nfs"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.rbd.is_some(), "rbd"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
    ];
    // A volume with no source the bindings know is left to the API server.
    named.into_iter().find(|(set, _)| *set).map(|(_, name)| name)
}
