//! The values secure-defaults fills in. Which of them apply to a pod, and
//! where, is decided in `rules.rs`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The secure baseline. `Default` is the embedded default configuration.
///
/// A value set to `None` (`null` in YAML) or `false` for the switches is
/// never added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Baseline {
    // Container level (each container, never the pod; see `rules::identity`)
    pub run_as_non_root: bool,
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 2147483647)))]
    pub run_as_user: Option<i64>,
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 2147483647)))]
    pub run_as_group: Option<i64>,
    // Pod level: spec.securityContext
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 2147483647)))]
    pub fs_group: Option<i64>,
    /// Only added together with `fsGroup`.
    pub fs_group_change_policy: Option<FsGroupChangePolicy>,
    /// Only added when non-empty.
    #[cfg_attr(feature = "schema", schemars(inner(range(min = 1, max = 2147483647))))]
    pub supplemental_groups: Vec<i64>,
    pub seccomp_profile: Option<ProfileType>,
    // Container level: containers, initContainers, ephemeralContainers
    /// `false` adds `allowPrivilegeEscalation: false`; `null` leaves it alone.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = [false, null])))]
    pub allow_privilege_escalation: Option<bool>,
    pub drop_all_capabilities: bool,
    pub read_only_root_filesystem: bool,
    pub app_armor_profile: Option<ProfileType>,
    // Who the processes run as: which decision `rules.rs` makes per pod.
    pub identity: IdentityMode,
    /// `identity: auto`: what a container gets whose image was not looked
    /// up, or could not be (`uid` or `userns`).
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["uid", "userns"])))]
    pub identity_fallback: IdentityMode,
    /// `identity: userns` and `auto`: a pod whose containers explicitly run as root
    /// also gets `hostUsers: false` (root stays root inside, unprivileged on
    /// the host). Adds a field, overrides nothing.
    pub user_namespace_for_explicit_root: bool,
    /// Add `fsGroup` beside a pinned non-root `runAsUser`. Off: `fsGroup`
    /// makes the kubelet re-own existing volume data on first start, and a
    /// manifest that pins its user already chose who owns its data.
    pub fs_group_beside_run_as_user: bool,
}

impl Default for Baseline {
    fn default() -> Self {
        Baseline {
            run_as_non_root: true,
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            fs_group: Some(65532),
            fs_group_change_policy: Some(FsGroupChangePolicy::OnRootMismatch),
            supplemental_groups: Vec::new(),
            seccomp_profile: Some(ProfileType::RuntimeDefault),
            allow_privilege_escalation: Some(false),
            drop_all_capabilities: true,
            read_only_root_filesystem: false,
            app_armor_profile: None,
            identity: IdentityMode::Uid,
            identity_fallback: IdentityMode::Uid,
            user_namespace_for_explicit_root: true,
            fs_group_beside_run_as_user: false,
        }
    }
}

/// The only profile type a webhook can choose for every node: the one the
/// container runtime ships. `Localhost` profiles must exist on each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ProfileType {
    RuntimeDefault,
}

impl ProfileType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileType::RuntimeDefault => "RuntimeDefault",
        }
    }
}

/// How a pod without an identity of its own is kept off the host's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// The baseline's `runAsUser`/`runAsGroup` on each container that sets none.
    Uid,
    /// `spec.hostUsers: false` (a user namespace) and no uid, where the pod
    /// can use one; `uid` otherwise.
    Userns,
    /// Per container, from its image's own user (looked up in its registry
    /// before the engine runs): a numeric non-root user is used as is, root
    /// gets a user namespace, a named user the baseline's uid; an image not
    /// looked up gets `identityFallback`.
    Auto,
}

impl IdentityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityMode::Uid => "uid",
            IdentityMode::Userns => "userns",
            IdentityMode::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Option<IdentityMode> {
        [IdentityMode::Uid, IdentityMode::Userns, IdentityMode::Auto]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum FsGroupChangePolicy {
    OnRootMismatch,
    Always,
}

impl FsGroupChangePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FsGroupChangePolicy::OnRootMismatch => "OnRootMismatch",
            FsGroupChangePolicy::Always => "Always",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BaselineError {
    #[error("baseline.{field}: {value} is root; the baseline must name a non-root ID (1 to 2147483647)")]
    RootId { field: &'static str, value: i64 },
    #[error("baseline.{field}: {value} is out of range (1 to 2147483647)")]
    IdOutOfRange { field: &'static str, value: i64 },
    #[error("baseline.allowPrivilegeEscalation: only false (add it) or null (leave it alone) make sense")]
    EscalationTrue,
    #[error("baseline.identityFallback: auto cannot be its own fallback; use uid or userns")]
    AutoFallback,
}

impl Baseline {
    /// Reject values that would make the baseline itself insecure or invalid.
    pub fn validate(&self) -> Result<(), BaselineError> {
        let ids = [
            ("runAsUser", self.run_as_user),
            ("runAsGroup", self.run_as_group),
            ("fsGroup", self.fs_group),
        ];
        let groups = self
            .supplemental_groups
            .iter()
            .map(|g| ("supplementalGroups", Some(*g)));
        for (field, value) in ids.into_iter().chain(groups) {
            match value {
                Some(0) => return Err(BaselineError::RootId { field, value: 0 }),
                Some(value) if !(1..=i64::from(i32::MAX)).contains(&value) => {
                    return Err(BaselineError::IdOutOfRange { field, value })
                }
                _ => {}
            }
        }
        if self.allow_privilege_escalation == Some(true) {
            return Err(BaselineError::EscalationTrue);
        }
        if self.identity_fallback == IdentityMode::Auto {
            return Err(BaselineError::AutoFallback);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Baseline::default().validate().unwrap();
    }

    #[test]
    fn root_user_is_rejected() {
        let b = Baseline {
            run_as_user: Some(0),
            ..Baseline::default()
        };
        assert_eq!(
            b.validate(),
            Err(BaselineError::RootId {
                field: "runAsUser",
                value: 0
            })
        );
    }

    #[test]
    fn negative_group_is_rejected() {
        let b = Baseline {
            supplemental_groups: vec![10, -1],
            ..Baseline::default()
        };
        assert_eq!(
            b.validate(),
            Err(BaselineError::IdOutOfRange {
                field: "supplementalGroups",
                value: -1
            })
        );
    }

    #[test]
    fn escalation_true_is_rejected() {
        let b = Baseline {
            allow_privilege_escalation: Some(true),
            ..Baseline::default()
        };
        assert_eq!(b.validate(), Err(BaselineError::EscalationTrue));
    }

    #[test]
    fn omitted_fields_take_defaults_and_null_disables() {
        let b: Baseline = serde_yaml::from_str("runAsUser: 1000\nfsGroup: null\n").unwrap();
        assert_eq!(b.run_as_user, Some(1000));
        assert_eq!(b.fs_group, None);
        assert_eq!(b.run_as_group, Some(65532));
    }

    #[test]
    fn identity_modes_parse_and_others_are_an_error() {
        let b: Baseline = serde_yaml::from_str("identity: userns\n").unwrap();
        assert_eq!(b.identity, IdentityMode::Userns);
        let b: Baseline = serde_yaml::from_str("identity: auto\nidentityFallback: userns\n").unwrap();
        assert_eq!(
            (b.identity, b.identity_fallback),
            (IdentityMode::Auto, IdentityMode::Userns)
        );
        assert_eq!(Baseline::default().identity, IdentityMode::Uid);
        assert_eq!(Baseline::default().identity_fallback, IdentityMode::Uid);
        assert!(serde_yaml::from_str::<Baseline>("identity: image\n").is_err());
    }

    #[test]
    fn auto_is_no_fallback() {
        let b: Baseline = serde_yaml::from_str("identity: auto\nidentityFallback: auto\n").unwrap();
        assert_eq!(b.validate(), Err(BaselineError::AutoFallback));
    }

    #[test]
    fn unknown_fields_are_an_error() {
        assert!(serde_yaml::from_str::<Baseline>("runAsUsr: 1000\n").is_err());
    }
}
