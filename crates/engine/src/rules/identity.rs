//! Who the processes run as: `runAsNonRoot`, `runAsUser`, `runAsGroup` and
//! `hostUsers`, one decision, top to bottom.
//!
//! 1. A container that states any identity field of its own (or inherits
//!    one from the pod) keeps it; the other fields are filled in field by
//!    field under the guards of `identity_guard` (explicit root, privileged,
//!    the image's user behind `runAsNonRoot: true`, a pinned user's group).
//!    A container that explicitly runs as root or is privileged gets no
//!    identity field at all.
//! 2. Every other container ("needs an identity") gets one, by mode:
//!    - `uid`: the baseline's `runAsNonRoot`, `runAsUser`, `runAsGroup`.
//!    - `userns`: the pod gets `hostUsers: false` and no container gets an
//!      identity field, where the pod can use a user namespace and no
//!      container states a non-root identity of its own; `uid` otherwise.
//!    - `auto`: from the container's image, as looked up before the engine
//!      ran (`ImageFacts`):
//!      - a numeric non-root user: that uid (and the numeric group, if the
//!        image names one), with `runAsNonRoot: true`: who the image runs as;
//!      - root: wants a user namespace;
//!      - a user by name: the baseline's uid (only the image's /etc/passwd
//!        knows the number, and the kubelet cannot check a name is non-root);
//!      - not looked up, or the lookup failed: `identityFallback`, which
//!        wants a user namespace (`userns`) or the baseline's uid (`uid`).
//! 3. One pod, one `hostUsers`: a pod gets `hostUsers: false` when some
//!    container wants a user namespace (in `userns` and `auto` also a
//!    container that explicitly runs as root, unless
//!    `userNamespaceForExplicitRoot: false`) and the pod can use one: it does
//!    not state `hostUsers`, it is not an update (`hostUsers` is immutable),
//!    it did not opt out, and the API server allows it (`refuses_user_namespace`).
//!    A pod that states `hostUsers: false` already runs in one.
//! 4. In a pod with a user namespace only the containers that get their
//!    image's numeric user get identity fields; the rest get none (the user
//!    namespace keeps them off the host's root, and Pod Security
//!    `restricted` accepts any user in it). In a pod without one, a
//!    container that wanted one gets the baseline's uid, and the report says
//!    why it could not have one.

use super::{container_sc_mut, enabled, pod_sc, Ctx};
use crate::baseline::{Baseline, IdentityMode};
use crate::containers::{self, Slot};
use crate::images::{ImageLookup, ImageUser};
use crate::report::{
    ContainerChoice, ContainerIdentity, Field, Guard, Identity, IdentityChoice, IdentityReason, ImageFact, Report,
    Target,
};
use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, SecurityContext};
use serde::Serialize;

/// Decide, add `hostUsers: false` where decided, then the three identity
/// fields on each container.
pub(super) fn apply(ctx: &Ctx, spec: &mut PodSpec, report: &mut Report) {
    let decision = decide(ctx);
    if decision.add_host_users {
        spec.host_users = Some(false);
        report.added(Field::HostUsers, Target::Pod);
    }
    identity(ctx, spec, report, &decision, RUN_AS_NON_ROOT);
    identity(ctx, spec, report, &decision, RUN_AS_USER);
    identity(ctx, spec, report, &decision, RUN_AS_GROUP);
    report.identity = Some(decision.report);
}

/// The pod's identity decision.
struct Decision {
    report: Identity,
    add_host_users: bool,
    /// The pod runs in a user namespace (added, or its own `hostUsers: false`).
    user_namespace: bool,
    /// `auto`: the containers that get their image's own user.
    image_users: Vec<(Slot, i64, Option<i64>)>,
}

/// What a container's identity fields are filled in from.
#[derive(Clone, Copy)]
enum Plan {
    Baseline,
    Image { uid: i64, gid: Option<i64> },
    Nothing,
}

impl Decision {
    fn plan(&self, slot: Slot) -> Plan {
        match self.image_users.iter().find(|(s, ..)| *s == slot) {
            Some(&(_, uid, gid)) => Plan::Image { uid, gid },
            None if self.user_namespace => Plan::Nothing,
            None => Plan::Baseline,
        }
    }
}

/// One identity field: read at both levels, set on a container.
struct IdentityAccess<T> {
    field: Field,
    pod: fn(&PodSecurityContext) -> Option<T>,
    container: fn(&SecurityContext) -> Option<T>,
    set_container: fn(&mut SecurityContext, T),
    /// Whether an explicit value is weaker than the baseline.
    insecure: fn(T) -> bool,
    /// The value a container gets under its plan, if any.
    value: fn(&Baseline, Plan) -> Option<T>,
}

const RUN_AS_NON_ROOT: IdentityAccess<bool> = IdentityAccess {
    field: Field::RunAsNonRoot,
    pod: |p| p.run_as_non_root,
    container: |c| c.run_as_non_root,
    set_container: |c, v| c.run_as_non_root = Some(v),
    insecure: |v| !v,
    value: |b, plan| (b.run_as_non_root && !matches!(plan, Plan::Nothing)).then_some(true),
};

const RUN_AS_USER: IdentityAccess<i64> = IdentityAccess {
    field: Field::RunAsUser,
    pod: |p| p.run_as_user,
    container: |c| c.run_as_user,
    set_container: |c, v| c.run_as_user = Some(v),
    insecure: |v| v == 0,
    // `runAsUser: null` in the baseline adds no uid, not even an image's.
    value: |b, plan| match plan {
        Plan::Baseline => b.run_as_user,
        Plan::Image { uid, .. } => b.run_as_user.map(|_| uid),
        Plan::Nothing => None,
    },
};

const RUN_AS_GROUP: IdentityAccess<i64> = IdentityAccess {
    field: Field::RunAsGroup,
    pod: |p| p.run_as_group,
    container: |c| c.run_as_group,
    set_container: |c, v| c.run_as_group = Some(v),
    // Group 0 (root) owns much of an image's file system.
    insecure: |v| v == 0,
    // An image's own group, 0 included: files it made group-writable for it.
    value: |b, plan| match plan {
        Plan::Baseline => b.run_as_group,
        Plan::Image { gid, .. } => gid.filter(|_| b.run_as_group.is_some()),
        Plan::Nothing => None,
    },
};

/// One identity field on each container that has neither its own value nor
/// the pod's. Never at pod level: a pod-level value would also reach
/// containers a later webhook injects (the API server then calls this
/// webhook again, `reinvocationPolicy: IfNeeded`), and an injected container
/// that runs as root would not start under an inherited `runAsNonRoot:
/// true`, nor would a privileged node agent run as root.
///
/// Weak explicit values are reported as kept, except where the pod runs in
/// a user namespace (Pod Security accepts any user there) for containers
/// that get no identity field.
fn identity<T: Copy + Serialize>(
    ctx: &Ctx,
    spec: &mut PodSpec,
    report: &mut Report,
    decision: &Decision,
    access: IdentityAccess<T>,
) {
    let field = access.field;
    if ctx.skips(field) || !enabled(ctx.baseline, field) {
        return;
    }
    let pod_value = pod_sc(ctx.orig).and_then(access.pod);
    if let Some(v) = pod_value.filter(|v| (access.insecure)(*v) && !decision.user_namespace) {
        report.kept(field, Target::Pod, v);
    }
    let mut inheriting = Vec::new();
    for &slot in &ctx.in_scope {
        let Some(c) = containers::get(ctx.orig, slot) else {
            continue;
        };
        let Some(value) = (access.value)(ctx.baseline, decision.plan(slot)) else {
            continue;
        };
        match c.security_context().and_then(access.container) {
            Some(v) if (access.insecure)(v) => report.kept(field, containers::target(slot, c), v),
            Some(_) => {}
            None => inheriting.push((slot, value)),
        }
    }
    if pod_value.is_some() {
        // The pod's value is the explicit value of every container without its own.
        return;
    }
    for (slot, value) in inheriting {
        let Some(c) = containers::get(ctx.orig, slot) else {
            continue;
        };
        let target = containers::target(slot, c);
        if let Some(g) = identity_guard(ctx.orig, slot, field) {
            report.skipped(field, target, g);
        } else {
            (access.set_container)(container_sc_mut(spec, slot), value);
            report.added(field, target);
        }
    }
}

/// Why the pod as submitted keeps this container's `field` as it is, if it does.
///
/// Identity fields are one decision: `runAsNonRoot: true` without
/// `runAsUser` runs the image's own user (the kubelet refuses a root one),
/// so no uid or gid is added; a pinned non-root `runAsUser` runs with the
/// image's group for that user, and a `runAsGroup` would move it off files
/// the image made group-writable.
fn identity_guard(orig: &PodSpec, slot: Slot, field: Field) -> Option<Guard> {
    let own = own_identity(orig, slot);
    let privileged = containers::get(orig, slot)
        .and_then(|c| c.security_context())
        .and_then(|s| s.privileged)
        == Some(true);
    if own.root() {
        Some(Guard::ExplicitRoot)
    } else if privileged {
        Some(Guard::Privileged)
    } else if field != Field::RunAsNonRoot && own.user.is_none() && own.non_root == Some(true) {
        Some(Guard::ImageUser)
    } else if field == Field::RunAsGroup && own.user.is_some() {
        Some(Guard::PinnedUser)
    } else {
        None
    }
}

/// A container's effective identity fields: its own, else the pod's.
struct OwnIdentity {
    user: Option<i64>,
    group: Option<i64>,
    non_root: Option<bool>,
}

impl OwnIdentity {
    fn root(&self) -> bool {
        self.user == Some(0) || self.non_root == Some(false)
    }

    fn any(&self) -> bool {
        self.user.is_some() || self.group.is_some() || self.non_root.is_some()
    }
}

fn own_identity(orig: &PodSpec, slot: Slot) -> OwnIdentity {
    let pod = pod_sc(orig);
    let own = containers::get(orig, slot).and_then(|c| c.security_context());
    OwnIdentity {
        user: own.and_then(|s| s.run_as_user).or(pod.and_then(|p| p.run_as_user)),
        group: own.and_then(|s| s.run_as_group).or(pod.and_then(|p| p.run_as_group)),
        non_root: own
            .and_then(|s| s.run_as_non_root)
            .or(pod.and_then(|p| p.run_as_non_root)),
    }
}

/// The containers in scope that state no identity of their own and are not
/// guarded (step 2 of the module's rule).
fn needing_identity(ctx: &Ctx) -> Vec<Slot> {
    ctx.in_scope
        .iter()
        .copied()
        .filter(|&slot| {
            !own_identity(ctx.orig, slot).any() && identity_guard(ctx.orig, slot, Field::RunAsUser).is_none()
        })
        .collect()
}

/// Whether a container explicitly runs as root and, by the configuration,
/// wants a user namespace for it.
fn explicit_root_wants_user_namespace(ctx: &Ctx) -> bool {
    ctx.baseline.user_namespace_for_explicit_root
        && ctx.in_scope.iter().any(|&slot| own_identity(ctx.orig, slot).root())
}

/// Whether the pod can run in a user namespace (step 3).
enum UserNamespace {
    /// The pod states `hostUsers: false`.
    Already,
    Possible,
    Refused(IdentityReason),
}

fn user_namespace(ctx: &Ctx) -> UserNamespace {
    match ctx.orig.host_users {
        Some(false) => UserNamespace::Already,
        Some(true) => UserNamespace::Refused(IdentityReason::HostUsersSet),
        None if !ctx.pod_level => UserNamespace::Refused(IdentityReason::Update),
        None if ctx.skips(Field::HostUsers) => UserNamespace::Refused(IdentityReason::OptedOut),
        None => refuses_user_namespace(ctx.orig).map_or(UserNamespace::Possible, UserNamespace::Refused),
    }
}

/// Why the API server (v1.37 `validateHostUsers`) refuses the pod a user
/// namespace, if it does; privileged containers are node agents that need
/// the host's users.
fn refuses_user_namespace(spec: &PodSpec) -> Option<IdentityReason> {
    let all = || containers::all(spec).map(|(_, c)| c);
    if spec.host_network == Some(true) {
        Some(IdentityReason::HostNetwork)
    } else if spec.host_pid == Some(true) {
        Some(IdentityReason::HostPid)
    } else if spec.host_ipc == Some(true) {
        Some(IdentityReason::HostIpc)
    } else if all().any(|c| c.uses_volume_devices()) {
        Some(IdentityReason::VolumeDevices)
    } else if all().any(|c| c.security_context().and_then(|s| s.privileged) == Some(true)) {
        Some(IdentityReason::Privileged)
    } else {
        None
    }
}

fn decide(ctx: &Ctx) -> Decision {
    match ctx.baseline.identity {
        IdentityMode::Uid => decide_uid(ctx, IdentityReason::UidMode),
        IdentityMode::Userns => decide_userns(ctx),
        IdentityMode::Auto => decide_auto(ctx),
    }
}

/// The baseline's uid on the containers that need one.
fn decide_uid(ctx: &Ctx, reason: IdentityReason) -> Decision {
    let b = ctx.baseline;
    let adds_uid = b.run_as_user.is_some() && !ctx.skips(Field::RunAsUser);
    let choice = if adds_uid && !needing_identity(ctx).is_empty() {
        IdentityChoice::Uid
    } else {
        IdentityChoice::Kept
    };
    Decision {
        report: Identity {
            choice,
            reason,
            uid: b.run_as_user,
            containers: Vec::new(),
        },
        add_host_users: false,
        user_namespace: false,
        image_users: Vec::new(),
    }
}

fn with_user_namespace(ctx: &Ctx, reason: IdentityReason, add: bool) -> Decision {
    Decision {
        report: Identity {
            choice: IdentityChoice::UserNamespace,
            reason,
            uid: ctx.baseline.run_as_user,
            containers: Vec::new(),
        },
        add_host_users: add,
        user_namespace: true,
        image_users: Vec::new(),
    }
}

/// `identity: userns`: a user namespace for the whole pod, or `uid`.
fn decide_userns(ctx: &Ctx) -> Decision {
    match user_namespace(ctx) {
        UserNamespace::Already => return with_user_namespace(ctx, IdentityReason::HostUsersSet, false),
        UserNamespace::Refused(reason) => return decide_uid(ctx, reason),
        UserNamespace::Possible => {}
    }
    let owns: Vec<OwnIdentity> = ctx.in_scope.iter().map(|&slot| own_identity(ctx.orig, slot)).collect();
    if owns.iter().any(|o| o.any() && !o.root()) {
        return decide_uid(ctx, IdentityReason::ContainersDecide);
    }
    if owns.iter().any(OwnIdentity::root) {
        return if ctx.baseline.user_namespace_for_explicit_root {
            with_user_namespace(ctx, IdentityReason::ExplicitRoot, true)
        } else {
            decide_uid(ctx, IdentityReason::RootOnHostUsers)
        };
    }
    with_user_namespace(ctx, IdentityReason::NoIdentitySet, true)
}

/// `identity: auto`: each container from its image, one `hostUsers` for the pod.
fn decide_auto(ctx: &Ctx) -> Decision {
    let b = ctx.baseline;
    let fallback = b.identity_fallback;
    // Per container: what its image says, and whether it wants a user namespace.
    let wants: Vec<(Slot, ImageFact, Option<IdentityMode>, bool)> = needing_identity(ctx)
        .into_iter()
        .map(|slot| {
            let image = containers::get(ctx.orig, slot).map_or("", |c| c.image());
            let fact = match ctx.images.get(image) {
                None => ImageFact::NotLookedUp,
                Some(ImageLookup::Found(user)) => ImageFact::Found(user.clone()),
                Some(ImageLookup::Failed(why)) => ImageFact::LookupFailed(why.clone()),
            };
            let (fell_back, wants) = match &fact {
                ImageFact::Found(ImageUser::Root) => (None, true),
                ImageFact::Found(_) => (None, false),
                ImageFact::NotLookedUp | ImageFact::LookupFailed(_) => {
                    (Some(fallback), fallback == IdentityMode::Userns)
                }
            };
            (slot, fact, fell_back, wants)
        })
        .collect();
    let images_want = wants.iter().any(|w| w.3);
    let root_wants = explicit_root_wants_user_namespace(ctx);
    let (user_namespace, add, reason) = match user_namespace(ctx) {
        UserNamespace::Already => (true, false, IdentityReason::HostUsersSet),
        UserNamespace::Possible if images_want => (true, true, IdentityReason::Images),
        UserNamespace::Possible if root_wants => (true, true, IdentityReason::ExplicitRoot),
        UserNamespace::Refused(reason) if images_want || root_wants => (false, false, reason),
        UserNamespace::Possible | UserNamespace::Refused(_) => (false, false, IdentityReason::Images),
    };

    let mut image_users = Vec::new();
    let mut containers = Vec::new();
    for (slot, fact, fell_back, _) in wants {
        let got = match fact {
            ImageFact::Found(ImageUser::NonRoot { uid, gid }) => {
                image_users.push((slot, uid, gid));
                ContainerChoice::ImageUser { uid, gid }
            }
            _ if user_namespace => ContainerChoice::UserNamespace,
            _ => ContainerChoice::Uid,
        };
        let c = containers::get(ctx.orig, slot).expect("slot from in_scope");
        containers.push(ContainerIdentity {
            target: containers::target(slot, c),
            image: c.image().to_string(),
            got,
            image_user: fact,
            fallback: fell_back,
        });
    }
    let adds_uid = !ctx.skips(Field::RunAsUser) && b.run_as_user.is_some();
    let choice = if user_namespace {
        IdentityChoice::UserNamespace
    } else if adds_uid && !containers.is_empty() {
        IdentityChoice::Uid
    } else {
        IdentityChoice::Kept
    };
    Decision {
        report: Identity {
            choice,
            reason,
            uid: b.run_as_user,
            containers,
        },
        add_host_users: add,
        user_namespace,
        image_users,
    }
}
