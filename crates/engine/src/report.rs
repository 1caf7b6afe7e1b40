//! What the engine decided, as data. The webhook turns it into admission
//! warnings, audit annotations and metrics; the CLI into its summary.

use crate::baseline::IdentityMode;
use crate::images::ImageUser;
use serde::Serialize;
use std::fmt;

/// A field of the baseline, named as in the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Field {
    RunAsNonRoot,
    RunAsUser,
    RunAsGroup,
    FsGroup,
    FsGroupChangePolicy,
    SupplementalGroups,
    SeccompProfile,
    AllowPrivilegeEscalation,
    /// `capabilities.drop: [ALL]`
    #[serde(rename = "capabilities")]
    DropCapabilities,
    ReadOnlyRootFilesystem,
    AppArmorProfile,
    /// `spec.hostUsers: false` (a user namespace), in `identity: userns`.
    HostUsers,
}

impl Field {
    pub const ALL: [Field; 12] = [
        Field::RunAsNonRoot,
        Field::RunAsUser,
        Field::RunAsGroup,
        Field::FsGroup,
        Field::FsGroupChangePolicy,
        Field::SupplementalGroups,
        Field::SeccompProfile,
        Field::AllowPrivilegeEscalation,
        Field::DropCapabilities,
        Field::ReadOnlyRootFilesystem,
        Field::AppArmorProfile,
        Field::HostUsers,
    ];

    /// The API name, as used in the securityContext and in opt-out annotations.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::RunAsNonRoot => "runAsNonRoot",
            Field::RunAsUser => "runAsUser",
            Field::RunAsGroup => "runAsGroup",
            Field::FsGroup => "fsGroup",
            Field::FsGroupChangePolicy => "fsGroupChangePolicy",
            Field::SupplementalGroups => "supplementalGroups",
            Field::SeccompProfile => "seccompProfile",
            Field::AllowPrivilegeEscalation => "allowPrivilegeEscalation",
            Field::DropCapabilities => "capabilities",
            Field::ReadOnlyRootFilesystem => "readOnlyRootFilesystem",
            Field::AppArmorProfile => "appArmorProfile",
            Field::HostUsers => "hostUsers",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three lists of containers in a pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerKind {
    InitContainers,
    Containers,
    EphemeralContainers,
}

impl ContainerKind {
    /// The member name in the pod spec.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::InitContainers => "initContainers",
            ContainerKind::Containers => "containers",
            ContainerKind::EphemeralContainers => "ephemeralContainers",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ContainerKind::InitContainers => "init container",
            ContainerKind::Containers => "container",
            ContainerKind::EphemeralContainers => "ephemeral container",
        }
    }
}

/// Where a decision applies: the pod's securityContext or one container's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "level", rename_all = "camelCase")]
pub enum Target {
    Pod,
    Container { kind: ContainerKind, name: String },
}

impl Target {
    pub fn container(kind: ContainerKind, name: &str) -> Target {
        Target::Container {
            kind,
            name: name.to_string(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Pod => f.write_str("pod"),
            Target::Container { kind, name } => write!(f, "{} {:?}", kind.label(), name),
        }
    }
}

/// Why a baseline field was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Guard {
    /// The container explicitly runs as root (`runAsUser: 0` or `runAsNonRoot: false`).
    ExplicitRoot,
    /// The API server rejects `allowPrivilegeEscalation: false` beside `privileged: true`;
    /// capabilities have no effect on a privileged container.
    Privileged,
    /// The API server rejects `allowPrivilegeEscalation: false` beside an added `CAP_SYS_ADMIN`.
    SysAdmin,
    /// A legacy seccomp or AppArmor annotation already chooses the profile.
    LegacyAnnotation,
    /// The pod or container opted out by annotation.
    OptedOut,
    /// `runAsNonRoot: true` without `runAsUser`: the image's own non-root
    /// user runs, and the kubelet refuses it if it is root.
    ImageUser,
    /// A non-root `runAsUser` is pinned: its group and the volumes' owner are
    /// part of the same decision.
    PinnedUser,
}

impl Guard {
    pub fn reason(self) -> &'static str {
        match self {
            Guard::ExplicitRoot => "it explicitly runs as root",
            Guard::Privileged => "it is privileged",
            Guard::SysAdmin => "it adds SYS_ADMIN",
            Guard::LegacyAnnotation => "a legacy annotation sets the profile",
            Guard::OptedOut => "it opted out by annotation",
            Guard::ImageUser => "runAsNonRoot: true without runAsUser uses the image's own user",
            Guard::PinnedUser => "runAsUser is pinned, which decides the identity",
        }
    }
}

/// Why a whole pod was left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Untouched {
    /// `spec.os.name: windows`, or Windows named in the node selector or node
    /// affinity, or `windowsOptions` set: every baseline field is Linux-only
    /// or can stop a Windows image from starting.
    Windows,
    /// Windows HostProcess pods run on the host by design.
    HostProcess,
    /// Static pods are owned by the kubelet; their API object is only a mirror.
    MirrorPod,
    /// `secure-defaults.io/skip: "true"`.
    OptedOut,
}

impl Untouched {
    pub fn reason(self) -> &'static str {
        match self {
            Untouched::Windows => "it is a Windows pod",
            Untouched::HostProcess => "it is a Windows HostProcess pod",
            Untouched::MirrorPod => "it is a mirror of a static pod",
            Untouched::OptedOut => "it opted out with the secure-defaults.io/skip annotation",
        }
    }
}

/// Which identity a pod's processes get, and why: one decision per pod, and
/// in `identity: auto` one per container that states no identity of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub choice: IdentityChoice,
    pub reason: IdentityReason,
    /// The baseline's `runAsUser`, for the message.
    #[serde(skip)]
    pub uid: Option<i64>,
    /// `identity: auto`: each container decided from its image, in spec order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerIdentity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum IdentityChoice {
    /// The baseline's uid on the containers that set none (in `auto`: a
    /// uid, the baseline's or an image's, on some container).
    Uid,
    /// `hostUsers: false`: a user namespace, no uid added (in `auto`: none
    /// but an image's own non-root user).
    UserNamespace,
    /// No container needed one: each states its own identity (or runs as root).
    Kept,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum IdentityReason {
    /// `identity: uid` in the configuration.
    UidMode,
    /// No container sets an identity of its own.
    NoIdentitySet,
    /// `identity: auto`: each container from its image (see `containers`).
    Images,
    /// A container explicitly runs as root; in a user namespace that root is
    /// unprivileged on the host.
    ExplicitRoot,
    /// The pod states `hostUsers` itself.
    HostUsersSet,
    /// Some containers state their own non-root user or group.
    ContainersDecide,
    /// The API server refuses `hostUsers: false` beside these.
    HostNetwork,
    HostPid,
    HostIpc,
    VolumeDevices,
    /// A privileged container: node agents that need the host's users.
    Privileged,
    /// Explicit root, and `userNamespaceForExplicitRoot: false`.
    RootOnHostUsers,
    /// `hostUsers` cannot change after creation (ephemeral containers).
    Update,
    /// The pod opted out of `hostUsers` by annotation.
    OptedOut,
}

impl IdentityReason {
    /// Why the pod cannot have a user namespace, if this says so.
    fn refusal(self) -> Option<&'static str> {
        Some(match self {
            IdentityReason::HostUsersSet => "the pod sets hostUsers itself",
            IdentityReason::HostNetwork => "pod uses hostNetwork, which user namespaces do not allow",
            IdentityReason::HostPid => "pod uses hostPID, which user namespaces do not allow",
            IdentityReason::HostIpc => "pod uses hostIPC, which user namespaces do not allow",
            IdentityReason::VolumeDevices => "a container uses volumeDevices, which user namespaces do not allow",
            IdentityReason::Privileged => "a privileged container needs the host's users",
            IdentityReason::Update => "hostUsers cannot change on an update",
            IdentityReason::OptedOut => "the pod opted out of hostUsers",
            _ => return None,
        })
    }
}

impl Identity {
    /// One line for warnings and the CLI: the pod's decision.
    pub fn message(&self) -> String {
        let what = match (self.choice, self.uid) {
            (IdentityChoice::Uid, Some(uid)) => format!("uid {uid} where a container sets none"),
            (IdentityChoice::Uid, None) => "the image's user where a container sets none".to_string(),
            (IdentityChoice::UserNamespace, _) => "user namespace (hostUsers: false)".to_string(),
            (IdentityChoice::Kept, _) => "kept as the containers state it".to_string(),
        };
        let why = match (self.reason, self.reason.refusal()) {
            (_, Some(refusal)) => format!(" ({refusal})"),
            (IdentityReason::UidMode, _) => String::new(),
            (IdentityReason::NoIdentitySet | IdentityReason::Images, _)
                if self.choice == IdentityChoice::UserNamespace =>
            {
                "; root inside the container is unprivileged on the host".into()
            }
            (IdentityReason::NoIdentitySet | IdentityReason::Images, _) => String::new(),
            (IdentityReason::ExplicitRoot, _) => {
                "; the explicit root stays root inside the container, unprivileged on the host".into()
            }
            (IdentityReason::ContainersDecide, _) => " (containers state their own user or group)".into(),
            (IdentityReason::RootOnHostUsers, _) => {
                " (explicit root stays on the host's users: userNamespaceForExplicitRoot is false)".into()
            }
            (_, None) => String::new(),
        };
        format!("identity: {what}{why}")
    }

    /// One line per decision: the pod's, then in `auto` each container's.
    /// In `auto` the pod's line is left out where the containers' lines say
    /// it all (no user namespace).
    pub fn messages(&self) -> Vec<String> {
        let pod = self.containers.is_empty() || self.choice == IdentityChoice::UserNamespace;
        let pod = pod.then(|| self.message());
        pod.into_iter()
            .chain(self.containers.iter().map(|c| c.message(self)))
            .collect()
    }

    /// Whether this is today's plain default, not worth a warning of its own.
    pub fn is_plain_uid(&self) -> bool {
        self.choice == IdentityChoice::Uid && self.reason == IdentityReason::UidMode
    }
}

/// `identity: auto`: what one container without an identity of its own
/// got, and from which fact about its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerIdentity {
    pub target: Target,
    /// The image as the container names it.
    pub image: String,
    pub got: ContainerChoice,
    pub image_user: ImageFact,
    /// `identityFallback`, when it decided (the image was not or could not
    /// be looked up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<IdentityMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerChoice {
    /// The image's own numeric non-root user (and group, if it names one).
    ImageUser { uid: i64, gid: Option<i64> },
    /// No identity field: the pod's user namespace keeps it off the host's root.
    UserNamespace,
    /// The baseline's uid.
    Uid,
}

/// What the lookup said about a container's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageFact {
    NotLookedUp,
    Found(ImageUser),
    LookupFailed(String),
}

impl ContainerIdentity {
    /// One line: `identity: container "app": uid 1001 from its image`.
    pub fn message(&self, pod: &Identity) -> String {
        let what = match (self.got, pod.uid) {
            (ContainerChoice::ImageUser { uid, gid: None }, _) => format!("uid {uid} from its image"),
            (ContainerChoice::ImageUser { uid, gid: Some(gid) }, _) => format!("uid {uid}, gid {gid} from its image"),
            (ContainerChoice::UserNamespace, _) => "no uid, the pod's user namespace".to_string(),
            (ContainerChoice::Uid, Some(uid)) => format!("uid {uid}"),
            (ContainerChoice::Uid, None) => "runAsNonRoot".to_string(),
        };
        let fallback = match self.fallback {
            Some(mode) => format!(" (identityFallback: {})", mode.as_str()),
            None => String::new(),
        };
        let fact = match &self.image_user {
            ImageFact::Found(ImageUser::NonRoot { .. }) => String::new(),
            ImageFact::Found(ImageUser::Root) => ": its image runs as root".to_string(),
            ImageFact::Found(ImageUser::Named(name)) if self.got == ContainerChoice::Uid => {
                format!(": its image names its user {name:?}, which the kubelet cannot check is non-root")
            }
            ImageFact::Found(ImageUser::Named(name)) => format!(": its image names its user {name:?}"),
            ImageFact::NotLookedUp => ": its image was not looked up".to_string(),
            ImageFact::LookupFailed(why) => format!(": its image could not be looked up: {why}"),
        };
        // A container that wanted a user namespace and got a uid: say why.
        let wanted =
            matches!(self.image_user, ImageFact::Found(ImageUser::Root)) || self.fallback == Some(IdentityMode::Userns);
        let refused = match pod.reason.refusal() {
            Some(refusal) if wanted && self.got == ContainerChoice::Uid => format!("; {refusal}"),
            _ => String::new(),
        };
        format!("identity: {}: {what}{fallback}{fact}{refused}", self.target)
    }
}

/// A Pod Security `restricted` check, named as in Pod Security Admission where possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum Check {
    HostProcess,
    HostNamespaces,
    Privileged,
    Capabilities,
    HostPathVolumes,
    HostPorts,
    HostProbesAndHostLifecycle,
    AppArmorProfile,
    SeLinuxOptions,
    ProcMount,
    SeccompProfile,
    Sysctls,
    RestrictedVolumes,
    AllowPrivilegeEscalation,
    RunAsNonRoot,
    RunAsUser,
}

impl Check {
    pub const ALL: [Check; 16] = [
        Check::HostProcess,
        Check::HostNamespaces,
        Check::Privileged,
        Check::Capabilities,
        Check::HostPathVolumes,
        Check::HostPorts,
        Check::HostProbesAndHostLifecycle,
        Check::AppArmorProfile,
        Check::SeLinuxOptions,
        Check::ProcMount,
        Check::SeccompProfile,
        Check::Sysctls,
        Check::RestrictedVolumes,
        Check::AllowPrivilegeEscalation,
        Check::RunAsNonRoot,
        Check::RunAsUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Check::HostProcess => "hostProcess",
            Check::HostNamespaces => "hostNamespaces",
            Check::Privileged => "privileged",
            Check::Capabilities => "capabilities",
            Check::HostPathVolumes => "hostPathVolumes",
            Check::HostPorts => "hostPorts",
            Check::HostProbesAndHostLifecycle => "hostProbesAndHostLifecycle",
            Check::AppArmorProfile => "appArmorProfile",
            Check::SeLinuxOptions => "seLinuxOptions",
            Check::ProcMount => "procMount",
            Check::SeccompProfile => "seccompProfile",
            Check::Sysctls => "sysctls",
            Check::RestrictedVolumes => "restrictedVolumes",
            Check::AllowPrivilegeEscalation => "allowPrivilegeEscalation",
            Check::RunAsNonRoot => "runAsNonRoot",
            Check::RunAsUser => "runAsUser",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A baseline field the engine added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Added {
    pub field: Field,
    pub target: Target,
}

/// An explicit value that is weaker than the baseline, left exactly as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub field: Field,
    pub target: Target,
    /// The value as the pod states it, compact JSON.
    pub value: String,
}

/// A baseline field a guard kept the engine from adding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub field: Field,
    pub target: Target,
    pub guard: Guard,
}

/// Something the hardened pod still fails in Pod Security `restricted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub check: Check,
    pub target: Target,
    /// What the pod says, for example `hostPath volume "data"`.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.target {
            Target::Pod => write!(f, "{}: {}", self.check, self.detail),
            ref t => write!(f, "{}: {}: {}", self.check, t, self.detail),
        }
    }
}

/// A container that, as hardened, cannot bind the ports below 1024 it
/// declares or probes: it runs as non-root without `NET_BIND_SERVICE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caution {
    pub target: Target,
    /// Ascending, distinct.
    pub ports: Vec<i32>,
}

impl Caution {
    /// One line for warnings and the CLI, with what to do.
    pub fn message(&self) -> String {
        let ports: Vec<String> = self.ports.iter().map(ToString::to_string).collect();
        let (s, it) = if self.ports.len() == 1 {
            ("", "it")
        } else {
            ("s", "them")
        };
        format!(
            "{} listens on port{s} {} (<1024): as non-root without NET_BIND_SERVICE it cannot bind {it} unless \
             net.ipv4.ip_unprivileged_port_start is lower; use a port >= 1024 or set that sysctl in the pod's \
             securityContext.sysctls",
            self.target,
            ports.join(", ")
        )
    }
}

/// Everything the engine decided for one pod (or pod template).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Set when the whole pod was left alone; nothing is added then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untouched: Option<Untouched>,
    /// The identity decision; `None` when the pod is untouched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    pub added: Vec<Added>,
    pub kept: Vec<Kept>,
    pub skipped: Vec<Skipped>,
    /// Pod Security `restricted` violations left after hardening.
    pub remaining: Vec<Violation>,
    /// What the hardened pod cannot do at run time (a port below 1024 as
    /// non-root), in container order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cautions: Vec<Caution>,
}

impl Report {
    pub fn added(&mut self, field: Field, target: Target) {
        self.added.push(Added { field, target });
    }

    pub fn kept(&mut self, field: Field, target: Target, value: impl Serialize) {
        let value = serde_json::to_string(&value).unwrap_or_default();
        self.kept.push(Kept { field, target, value });
    }

    pub fn skipped(&mut self, field: Field, target: Target, guard: Guard) {
        self.skipped.push(Skipped { field, target, guard });
    }
}
