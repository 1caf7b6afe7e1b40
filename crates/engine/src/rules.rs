//! The baseline rules, top to bottom.
//!
//! Every rule follows the same contract:
//! - it only fills in fields that are absent (`None`) in the pod as submitted;
//! - a value the pod states, at the pod level or on the container, is the
//!   effective value and is never changed, however insecure; it is reported
//!   as `kept` when it is weaker than the baseline;
//! - a guard that stops a field being added is reported as `skipped`.
//!
//! Rules read the pod as submitted (`ctx.orig`) and write into a copy
//! (`spec`). The patch is the difference between the two (see `patch.rs`).

mod identity;

use super::annotations::Annotations;
use super::baseline::{Baseline, IdentityMode};
use super::containers::{self, Slot};
use super::images::ImageFacts;
use super::report::{Field, Guard, Report, Target, Untouched};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
    WindowsSecurityContextOptions,
};

pub(crate) struct Ctx<'a> {
    /// The pod spec as submitted.
    pub orig: &'a PodSpec,
    pub annotations: Annotations<'a>,
    pub baseline: &'a Baseline,
    /// The images looked up for `identity: auto`.
    pub images: &'a ImageFacts,
    /// Fields the pod opted out of (already checked against the operator's policy).
    pub opted_out: &'a [Field],
    /// The containers the engine may change.
    pub in_scope: Vec<Slot>,
    /// Whether pod-level fields may be added (not on an ephemeral-container update).
    pub pod_level: bool,
}

/// Pods the engine leaves entirely alone, and why.
pub(crate) fn untouched(ctx: &Ctx) -> Option<Untouched> {
    let spec = ctx.orig;
    if ctx.annotations.is_mirror_pod() {
        return Some(Untouched::MirrorPod);
    }
    if windows_options(spec).any(|w| w.host_process == Some(true)) {
        return Some(Untouched::HostProcess);
    }
    // Every baseline field is Linux-only except runAsNonRoot, and runAsNonRoot
    // without a Windows user name stops images whose default user is
    // ContainerAdministrator. The API server only knows the OS from spec.os,
    // but the kubelet on a Windows node runs any pod sent there.
    if spec.os.as_ref().is_some_and(|os| os.name == "windows") || names_windows(spec) {
        return Some(Untouched::Windows);
    }
    None
}

/// Node labels that carry a node's OS; the kubelet still sets the beta one.
const OS_LABELS: [&str; 2] = ["kubernetes.io/os", "beta.kubernetes.io/os"];

/// Whether a pod without `spec.os: windows` still says it runs on Windows:
/// Windows in its node selector or node affinity (required or preferred), or
/// `windowsOptions` set on the pod or a container (ignored on Linux, and
/// forbidden there only beside `spec.os.name: linux`, which rules it out).
fn names_windows(spec: &PodSpec) -> bool {
    let selector = spec
        .node_selector
        .iter()
        .flatten()
        .any(|(k, v)| OS_LABELS.contains(&k.as_str()) && v == "windows");
    let node_affinity = spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
    let required = node_affinity
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref())
        .map(|r| r.node_selector_terms.iter());
    let preferred = node_affinity
        .and_then(|n| n.preferred_during_scheduling_ignored_during_execution.as_ref())
        .map(|p| p.iter().map(|t| &t.preference));
    let affinity = required
        .into_iter()
        .flatten()
        .chain(preferred.into_iter().flatten())
        .any(|term| {
            term.match_expressions.iter().flatten().any(|e| {
                OS_LABELS.contains(&e.key.as_str())
                    && e.operator == "In"
                    && e.values.iter().flatten().any(|v| v == "windows")
            })
        });
    let linux = spec.os.as_ref().is_some_and(|os| os.name == "linux");
    let options = !linux && windows_options(spec).any(|w| *w != WindowsSecurityContextOptions::default());
    selector || affinity || options
}

/// The pod's `windowsOptions`, then each container's, where set.
fn windows_options(spec: &PodSpec) -> impl Iterator<Item = &WindowsSecurityContextOptions> {
    let pod = spec.security_context.as_ref().and_then(|s| s.windows_options.as_ref());
    pod.into_iter()
        .chain(containers::all(spec).filter_map(|(_, c)| c.security_context().and_then(|s| s.windows_options.as_ref())))
}

pub(crate) fn apply(ctx: &Ctx, spec: &mut PodSpec, report: &mut Report) {
    let b = ctx.baseline;
    for &field in ctx.opted_out {
        if enabled(b, field) {
            report.skipped(field, Target::Pod, Guard::OptedOut);
        }
    }

    // Who the processes run as: one decision (`identity.rs`).
    identity::apply(ctx, spec, report);

    // Volume ownership. Pod level only: it cannot change on an update.
    if ctx.pod_level {
        if let Some(gid) = b.fs_group.filter(|_| !ctx.skips(Field::FsGroup)) {
            let explicit = pod_sc(ctx.orig).and_then(|p| p.fs_group);
            if explicit == Some(0) {
                report.kept(Field::FsGroup, Target::Pod, 0);
            }
            let pinned = !b.fs_group_beside_run_as_user && pins_user(ctx.orig);
            if explicit.is_none() && pinned {
                report.skipped(Field::FsGroup, Target::Pod, Guard::PinnedUser);
            } else if explicit.is_none() {
                pod_sc_mut(spec).fs_group = Some(gid);
                report.added(Field::FsGroup, Target::Pod);
                // Only beside an fsGroup we chose: with the pod's own fsGroup the
                // pod's own change policy stands.
                let policy = b
                    .fs_group_change_policy
                    .filter(|_| !ctx.skips(Field::FsGroupChangePolicy));
                if let (Some(policy), None) = (policy, pod_sc(ctx.orig).and_then(|p| p.fs_group_change_policy.as_ref()))
                {
                    pod_sc_mut(spec).fs_group_change_policy = Some(policy.as_str().to_string());
                    report.added(Field::FsGroupChangePolicy, Target::Pod);
                }
            }
        }
        if !b.supplemental_groups.is_empty()
            && !ctx.skips(Field::SupplementalGroups)
            && pod_sc(ctx.orig).and_then(|p| p.supplemental_groups.as_ref()).is_none()
        {
            pod_sc_mut(spec).supplemental_groups = Some(b.supplemental_groups.clone());
            report.added(Field::SupplementalGroups, Target::Pod);
        }
    }

    if let Some(profile) = b.seccomp_profile.filter(|_| !ctx.skips(Field::SeccompProfile)) {
        seccomp(ctx, spec, report, profile.as_str());
    }

    for &slot in &ctx.in_scope {
        let Some(orig) = containers::get(ctx.orig, slot) else {
            continue;
        };
        let target = containers::target(slot, orig);
        let sc = orig.security_context();
        let privileged = sc.and_then(|s| s.privileged) == Some(true);

        if b.allow_privilege_escalation == Some(false) && !ctx.skips(Field::AllowPrivilegeEscalation) {
            match sc.and_then(|s| s.allow_privilege_escalation) {
                Some(true) => report.kept(Field::AllowPrivilegeEscalation, target.clone(), true),
                Some(false) => {}
                // The API server rejects allowPrivilegeEscalation: false beside
                // either of these.
                None if privileged => {
                    report.skipped(Field::AllowPrivilegeEscalation, target.clone(), Guard::Privileged)
                }
                None if adds_sys_admin(sc) => {
                    report.skipped(Field::AllowPrivilegeEscalation, target.clone(), Guard::SysAdmin)
                }
                None => {
                    container_sc_mut(spec, slot).allow_privilege_escalation = Some(false);
                    report.added(Field::AllowPrivilegeEscalation, target.clone());
                }
            }
        }

        if b.drop_all_capabilities && !ctx.skips(Field::DropCapabilities) {
            match sc.and_then(|s| s.capabilities.as_ref()).and_then(|c| c.drop.as_ref()) {
                Some(drop) if !drop.iter().any(|d| d == "ALL") => {
                    report.kept(Field::DropCapabilities, target.clone(), drop)
                }
                Some(_) => {}
                // A privileged container gets every capability whatever it drops.
                None if privileged => report.skipped(Field::DropCapabilities, target.clone(), Guard::Privileged),
                None => {
                    // An existing `add` list stays: the runtime drops first, then adds.
                    let caps = container_sc_mut(spec, slot)
                        .capabilities
                        .get_or_insert_with(Capabilities::default);
                    caps.drop = Some(vec!["ALL".to_string()]);
                    report.added(Field::DropCapabilities, target.clone());
                }
            }
        }

        if b.read_only_root_filesystem && !ctx.skips(Field::ReadOnlyRootFilesystem) {
            match sc.and_then(|s| s.read_only_root_filesystem) {
                Some(false) => report.kept(Field::ReadOnlyRootFilesystem, target.clone(), false),
                Some(true) => {}
                None => {
                    container_sc_mut(spec, slot).read_only_root_filesystem = Some(true);
                    report.added(Field::ReadOnlyRootFilesystem, target.clone());
                }
            }
        }

        if let Some(profile) = b.app_armor_profile.filter(|_| !ctx.skips(Field::AppArmorProfile)) {
            // Container level: a legacy annotation names one container, and the API
            // server rejects a field that disagrees with it.
            let pod_profile = pod_sc(ctx.orig).and_then(|p| p.app_armor_profile.as_ref());
            match (
                sc.and_then(|s| s.app_armor_profile.as_ref()),
                ctx.annotations.container_apparmor(orig.name()),
            ) {
                (Some(p), _) if p.type_ == "Unconfined" => {
                    report.kept(Field::AppArmorProfile, target.clone(), &p.type_)
                }
                (Some(_), _) => {}
                (None, Some(a)) if a == "unconfined" => {
                    report.kept(Field::AppArmorProfile, target.clone(), format!("annotation {a}"))
                }
                (None, Some(_)) => {}
                (None, None) if pod_profile.is_some() => {}
                (None, None) => {
                    container_sc_mut(spec, slot).app_armor_profile = Some(AppArmorProfile {
                        type_: profile.as_str().to_string(),
                        localhost_profile: None,
                    });
                    report.added(Field::AppArmorProfile, target.clone());
                }
            }
        }
    }
}

/// Whether the pod or any container pins a non-root `runAsUser`.
fn pins_user(orig: &PodSpec) -> bool {
    let pod = pod_sc(orig).and_then(|p| p.run_as_user);
    let own = containers::all(orig).filter_map(|(_, c)| c.security_context().and_then(|s| s.run_as_user));
    pod.into_iter().chain(own).any(|u| u != 0)
}

/// seccompProfile: pod level; container level on an ephemeral-container
/// update, or where a container's legacy annotation asks for another profile.
///
/// The legacy annotations count as explicit values. The kubelet no longer
/// reads them, but the API server rejects a field that disagrees with the
/// annotation at the same level. An annotation asking for the runtime
/// default gets the matching field, which is what its author meant; any other
/// annotation keeps its container (or, at pod level, the pod) as it is.
fn seccomp(ctx: &Ctx, spec: &mut PodSpec, report: &mut Report, profile: &str) {
    let runtime_default = |a: &str| a == "runtime/default" || a == "docker/default";
    // What Pod Security `restricted` accepts; anything else (Unconfined, an
    // empty or unknown type) is an explicit value it rejects: kept, reported.
    let weak = |p: &SeccompProfile| p.type_ != "RuntimeDefault" && p.type_ != "Localhost";
    let pod_field = pod_sc(ctx.orig).and_then(|p| p.seccomp_profile.as_ref());
    let pod_annotation = ctx.annotations.pod_seccomp();
    match (pod_field, pod_annotation) {
        (Some(p), _) if weak(p) => report.kept(Field::SeccompProfile, Target::Pod, &p.type_),
        (None, Some(a)) if !runtime_default(a) => {
            report.kept(Field::SeccompProfile, Target::Pod, format!("annotation {a}"))
        }
        _ => {}
    }
    let mut inheriting = Vec::new();
    for &slot in &ctx.in_scope {
        let Some(c) = containers::get(ctx.orig, slot) else {
            continue;
        };
        let target = containers::target(slot, c);
        match (
            c.security_context().and_then(|s| s.seccomp_profile.as_ref()),
            ctx.annotations.container_seccomp(c.name()),
        ) {
            (Some(p), _) if weak(p) => report.kept(Field::SeccompProfile, target, &p.type_),
            (Some(_), _) => {}
            (None, Some(a)) if !runtime_default(a) => {
                report.kept(Field::SeccompProfile, target, format!("annotation {a}"));
                inheriting.push((slot, true));
            }
            (None, _) => inheriting.push((slot, false)),
        }
    }
    if pod_field.is_some() || pod_annotation.is_some_and(|a| !runtime_default(a)) {
        return;
    }
    let new_profile = || SeccompProfile {
        type_: profile.to_string(),
        localhost_profile: None,
    };
    if ctx.pod_level && inheriting.iter().all(|(_, guarded)| !guarded) {
        pod_sc_mut(spec).seccomp_profile = Some(new_profile());
        report.added(Field::SeccompProfile, Target::Pod);
        return;
    }
    for (slot, guarded) in inheriting {
        let c = containers::get(ctx.orig, slot).expect("slot from in_scope");
        let target = containers::target(slot, c);
        if guarded {
            report.skipped(Field::SeccompProfile, target, Guard::LegacyAnnotation);
        } else {
            container_sc_mut(spec, slot).seccomp_profile = Some(new_profile());
            report.added(Field::SeccompProfile, target);
        }
    }
}

impl Ctx<'_> {
    fn skips(&self, field: Field) -> bool {
        self.opted_out.contains(&field)
    }
}

fn enabled(b: &Baseline, field: Field) -> bool {
    match field {
        Field::RunAsNonRoot => b.run_as_non_root,
        Field::RunAsUser => b.run_as_user.is_some(),
        Field::RunAsGroup => b.run_as_group.is_some(),
        Field::FsGroup => b.fs_group.is_some(),
        Field::FsGroupChangePolicy => b.fs_group.is_some() && b.fs_group_change_policy.is_some(),
        Field::SupplementalGroups => !b.supplemental_groups.is_empty(),
        Field::SeccompProfile => b.seccomp_profile.is_some(),
        Field::AllowPrivilegeEscalation => b.allow_privilege_escalation == Some(false),
        Field::DropCapabilities => b.drop_all_capabilities,
        Field::ReadOnlyRootFilesystem => b.read_only_root_filesystem,
        Field::AppArmorProfile => b.app_armor_profile.is_some(),
        Field::HostUsers => b.identity != IdentityMode::Uid,
    }
}

fn adds_sys_admin(sc: Option<&SecurityContext>) -> bool {
    sc.and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.as_ref())
        .is_some_and(|add| {
            add.iter()
                .any(|a| a.eq_ignore_ascii_case("SYS_ADMIN") || a.eq_ignore_ascii_case("CAP_SYS_ADMIN"))
        })
}

fn pod_sc(spec: &PodSpec) -> Option<&PodSecurityContext> {
    spec.security_context.as_ref()
}

fn pod_sc_mut(spec: &mut PodSpec) -> &mut PodSecurityContext {
    spec.security_context.get_or_insert_with(PodSecurityContext::default)
}

fn container_sc_mut(spec: &mut PodSpec, slot: Slot) -> &mut SecurityContext {
    containers::get_mut(spec, slot)
        .expect("slot comes from the same spec")
        .security_context_mut()
        .get_or_insert_with(SecurityContext::default)
}
