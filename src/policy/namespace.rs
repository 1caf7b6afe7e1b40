//! Per-namespace policy: a namespace's labels and annotations (prefix
//! `secure-defaults.io/`) switch the mode and override some baseline values,
//! within what the operator allows (`namespacePolicy` in the configuration).
//!
//! - [`effective`] (here) is pure: the operator's configuration and a
//!   namespace in, the configuration for that namespace and the warnings out.
//! - What the operator allows is `config::namespace::Controls`; the review
//!   wrapper is `admission::namespace`; the cluster's namespaces are
//!   `cluster::namespaces::NamespaceCache`.
//!
//! Precedence, per key: a label wins over an annotation with the same key
//! (labels are what `kubectl get ns -l` shows and selects); an invalid value
//! is ignored with a warning, never in the weaker direction.

use crate::config::{Config, Mode};
use crate::engine::baseline::{IdentityMode, ProfileType};
use crate::policy::ModeInForce;
use k8s_openapi::api::core::v1::Namespace;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The prefix of every namespace label and annotation read here.
pub const PREFIX: &str = "secure-defaults.io/";
/// `enforce`, `audit` or `off`.
pub const MODE: &str = "secure-defaults.io/mode";
pub const RUN_AS_USER: &str = "secure-defaults.io/run-as-user";
pub const RUN_AS_GROUP: &str = "secure-defaults.io/run-as-group";
pub const FS_GROUP: &str = "secure-defaults.io/fs-group";
/// `true` or `false`.
pub const READ_ONLY_ROOT_FILESYSTEM: &str = "secure-defaults.io/read-only-root-filesystem";
/// `RuntimeDefault` or `off`.
pub const APPARMOR: &str = "secure-defaults.io/apparmor";
/// `uid`, `userns` or `auto` (`baseline.identity`).
pub const IDENTITY: &str = "secure-defaults.io/identity";

/// Audit annotation key: what the namespace changed (`mode=audit,runAsUser=1000`).
pub const AUDIT_KEY: &str = "namespace-policy";

const WARN_PREFIX: &str = "secure-defaults: ";

/// The parts of a Namespace the policy reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl NamespaceInfo {
    pub fn from_namespace(ns: &Namespace) -> NamespaceInfo {
        NamespaceInfo {
            name: ns.metadata.name.clone().unwrap_or_default(),
            labels: ns.metadata.labels.clone().unwrap_or_default(),
            annotations: ns.metadata.annotations.clone().unwrap_or_default(),
        }
    }

    /// The label, else the annotation; a warning when both are set and differ.
    fn value(&self, key: &str, warnings: &mut Vec<String>) -> Option<&str> {
        match (self.labels.get(key), self.annotations.get(key)) {
            (Some(l), Some(a)) if l != a => {
                warnings.push(self.warning(&format!(
                    "label {key}={l:?} used; the annotation with the same key ({a:?}) is ignored"
                )));
                Some(l)
            }
            (Some(v), _) | (None, Some(v)) => Some(v),
            (None, None) => None,
        }
        .map(|v| v.trim())
    }

    /// A warning about this namespace, in the webhook's voice.
    pub fn warning(&self, text: &str) -> String {
        format!("{WARN_PREFIX}namespace {}: {text}", self.name)
    }
}

/// Where an ID override goes in the configuration.
type IdSlot = fn(&mut Config) -> &mut Option<i64>;

/// The configuration that applies in one namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective<'a> {
    pub config: Cow<'a, Config>,
    /// Mode `off`, honoured: pods are left untouched.
    pub off: bool,
    /// What was changed, for the audit annotation and the log: `mode=audit`, `runAsUser=1000`.
    pub applied: Vec<String>,
    /// Values ignored, and why.
    pub warnings: Vec<String>,
}

/// The operator's `config` as namespace `ns` adjusts it. Borrowed unchanged
/// when the namespace says nothing (or nothing that is honoured).
pub fn effective<'a>(config: &'a Config, ns: &NamespaceInfo) -> Effective<'a> {
    let controls = &config.namespace_policy;
    let mut warnings = Vec::new();
    let mut applied = Vec::new();
    let mut off = false;
    let mut next = config.clone();
    let opt_out_refused = |what: &str| {
        ns.warning(&format!(
            "{what} ignored: this cluster does not allow namespaces to opt out (namespacePolicy.allowOptOut)"
        ))
    };

    if let Some(value) = ns.value(MODE, &mut warnings) {
        match ModeInForce::from_name(value) {
            Some(ModeInForce::Enforce) => {
                if config.mode != Mode::Enforce {
                    next.mode = Mode::Enforce;
                    applied.push("mode=enforce".into());
                }
            }
            Some(wanted) => {
                let weakens = wanted == ModeInForce::Off || config.mode == Mode::Enforce;
                if weakens && !controls.allow_opt_out {
                    warnings.push(opt_out_refused(&format!("{MODE}={wanted}")));
                } else if wanted == ModeInForce::Off {
                    off = true;
                    applied.push("mode=off".into());
                } else if config.mode != Mode::Audit {
                    next.mode = Mode::Audit;
                    applied.push("mode=audit".into());
                }
            }
            None => warnings.push(ns.warning(&format!("{MODE}={value:?} ignored: expected enforce, audit or off"))),
        }
    }

    let ids: [(&str, &str, IdSlot); 3] = [
        (RUN_AS_USER, "runAsUser", |c| &mut c.baseline.run_as_user),
        (RUN_AS_GROUP, "runAsGroup", |c| &mut c.baseline.run_as_group),
        (FS_GROUP, "fsGroup", |c| &mut c.baseline.fs_group),
    ];
    for (key, field, slot) in ids {
        let Some(value) = ns.value(key, &mut warnings) else {
            continue;
        };
        match value.parse::<i64>() {
            Ok(0) => warnings.push(ns.warning(&format!("{key}=0 ignored: root is never a default"))),
            Ok(id) if (1..=i64::from(i32::MAX)).contains(&id) => {
                if !controls.allow_overrides {
                    warnings.push(ns.warning(&format!(
                        "{key} ignored: this cluster does not allow namespace overrides (namespacePolicy.allowOverrides)"
                    )));
                } else if *slot(&mut next) != Some(id) {
                    *slot(&mut next) = Some(id);
                    applied.push(format!("{field}={id}"));
                }
            }
            _ => warnings.push(ns.warning(&format!(
                "{key}={value:?} ignored: expected a user or group ID from 1 to 2147483647"
            ))),
        }
    }

    // Either way an override, not an opt-out: `restricted` admits both.
    if let Some(value) = ns.value(IDENTITY, &mut warnings) {
        match IdentityMode::parse(value) {
            Some(mode) if mode == config.baseline.identity => {}
            Some(mode) if controls.allow_overrides => {
                next.baseline.identity = mode;
                applied.push(format!("identity={}", mode.as_str()));
            }
            Some(_) => warnings.push(ns.warning(&format!(
                "{IDENTITY} ignored: this cluster does not allow namespace overrides (namespacePolicy.allowOverrides)"
            ))),
            None => warnings.push(ns.warning(&format!("{IDENTITY}={value:?} ignored: expected uid, userns or auto"))),
        }
    }

    if let Some(value) = ns.value(READ_ONLY_ROOT_FILESYSTEM, &mut warnings) {
        match value {
            "true" if !config.baseline.read_only_root_filesystem => {
                next.baseline.read_only_root_filesystem = true;
                applied.push("readOnlyRootFilesystem=true".into());
            }
            "false" if config.baseline.read_only_root_filesystem => {
                if controls.allow_opt_out {
                    next.baseline.read_only_root_filesystem = false;
                    applied.push("readOnlyRootFilesystem=false".into());
                } else {
                    warnings.push(opt_out_refused(&format!("{READ_ONLY_ROOT_FILESYSTEM}=false")));
                }
            }
            "true" | "false" => {}
            other => warnings.push(ns.warning(&format!(
                "{READ_ONLY_ROOT_FILESYSTEM}={other:?} ignored: expected true or false"
            ))),
        }
    }

    if let Some(value) = ns.value(APPARMOR, &mut warnings) {
        match value {
            "RuntimeDefault" if config.baseline.app_armor_profile.is_none() => {
                next.baseline.app_armor_profile = Some(ProfileType::RuntimeDefault);
                applied.push("appArmorProfile=RuntimeDefault".into());
            }
            "off" if config.baseline.app_armor_profile.is_some() => {
                if controls.allow_opt_out {
                    next.baseline.app_armor_profile = None;
                    applied.push("appArmorProfile=off".into());
                } else {
                    warnings.push(opt_out_refused(&format!("{APPARMOR}=off")));
                }
            }
            "RuntimeDefault" | "off" => {}
            other => {
                warnings.push(ns.warning(&format!("{APPARMOR}={other:?} ignored: expected RuntimeDefault or off")))
            }
        }
    }

    let config = if next == *config {
        Cow::Borrowed(config)
    } else {
        Cow::Owned(next)
    };
    Effective {
        config,
        off,
        applied,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::namespace::Controls;
    use rstest::rstest;

    fn ns(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> NamespaceInfo {
        let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        NamespaceInfo {
            name: "team".into(),
            labels: map(labels),
            annotations: map(annotations),
        }
    }

    fn config(allow_opt_out: bool, allow_overrides: bool) -> Config {
        Config {
            namespace_policy: Controls {
                allow_opt_out,
                allow_overrides,
            },
            ..Config::default()
        }
    }

    /// (namespace, operator controls) → (mode, off, runAsUser, applied, warning fragments)
    #[rstest]
    #[case::nothing_set(ns(&[], &[]), config(false, true), Mode::Enforce, false, Some(65532), &[], &[])]
    #[case::audit_refused_by_default(ns(&[(MODE, "audit")], &[]), config(false, true), Mode::Enforce, false, Some(65532), &[], &["does not allow namespaces to opt out"])]
    #[case::audit_allowed(ns(&[(MODE, "audit")], &[]), config(true, true), Mode::Audit, false, Some(65532), &["mode=audit"], &[])]
    #[case::off_refused(ns(&[(MODE, "off")], &[]), config(false, true), Mode::Enforce, false, Some(65532), &[], &["mode=off ignored"])]
    #[case::off_allowed(ns(&[(MODE, "off")], &[]), config(true, true), Mode::Enforce, true, Some(65532), &["mode=off"], &[])]
    #[case::enforce_is_a_no_op(ns(&[(MODE, "enforce")], &[]), config(false, true), Mode::Enforce, false, Some(65532), &[], &[])]
    #[case::bad_mode(ns(&[(MODE, "Disabled")], &[]), config(true, true), Mode::Enforce, false, Some(65532), &[], &["expected enforce, audit or off"])]
    #[case::uid_override(ns(&[], &[(RUN_AS_USER, "1000")]), config(false, true), Mode::Enforce, false, Some(1000), &["runAsUser=1000"], &[])]
    #[case::uid_override_as_label(ns(&[(RUN_AS_USER, "1000")], &[]), config(false, true), Mode::Enforce, false, Some(1000), &["runAsUser=1000"], &[])]
    #[case::uid_root_ignored(ns(&[], &[(RUN_AS_USER, "0")]), config(true, true), Mode::Enforce, false, Some(65532), &[], &["root is never a default"])]
    #[case::uid_not_a_number(ns(&[], &[(RUN_AS_USER, "nobody")]), config(true, true), Mode::Enforce, false, Some(65532), &[], &["expected a user or group ID"])]
    #[case::uid_negative(ns(&[], &[(RUN_AS_USER, "-5")]), config(true, true), Mode::Enforce, false, Some(65532), &[], &["expected a user or group ID"])]
    #[case::uid_out_of_range(ns(&[], &[(RUN_AS_USER, "2147483648")]), config(true, true), Mode::Enforce, false, Some(65532), &[], &["expected a user or group ID"])]
    #[case::overrides_not_allowed(ns(&[], &[(RUN_AS_USER, "1000")]), config(true, false), Mode::Enforce, false, Some(65532), &[], &["allowOverrides"])]
    #[case::label_wins_over_annotation(ns(&[(RUN_AS_USER, "1000")], &[(RUN_AS_USER, "2000")]), config(false, true), Mode::Enforce, false, Some(1000), &["runAsUser=1000"], &["annotation with the same key"])]
    fn effective_mode_and_ids(
        #[case] ns: NamespaceInfo,
        #[case] config: Config,
        #[case] mode: Mode,
        #[case] off: bool,
        #[case] run_as_user: Option<i64>,
        #[case] applied: &[&str],
        #[case] warnings: &[&str],
    ) {
        let eff = effective(&config, &ns);
        assert_eq!(eff.config.mode, mode);
        assert_eq!(eff.off, off);
        assert_eq!(eff.config.baseline.run_as_user, run_as_user);
        assert_eq!(eff.applied, applied);
        assert_eq!(eff.warnings.len(), warnings.len(), "{:?}", eff.warnings);
        for (w, fragment) in eff.warnings.iter().zip(warnings) {
            assert!(w.contains(fragment), "{w:?} lacks {fragment:?}");
            assert!(w.starts_with("secure-defaults: namespace team: "), "{w}");
        }
        assert_eq!(
            matches!(eff.config, Cow::Borrowed(_)),
            mode == config.mode && run_as_user == config.baseline.run_as_user
        );
    }

    #[test]
    fn audit_config_namespace_enforce_needs_no_permission() {
        let config = Config {
            mode: Mode::Audit,
            ..config(false, false)
        };
        let eff = effective(&config, &ns(&[(MODE, "enforce")], &[]));
        assert_eq!(eff.config.mode, Mode::Enforce);
        assert!(eff.warnings.is_empty());
        // Audit stays audit without the opt-out permission: it weakens nothing.
        let eff = effective(&config, &ns(&[(MODE, "audit")], &[]));
        assert_eq!((eff.config.mode, eff.warnings.len()), (Mode::Audit, 0));
    }

    #[test]
    fn group_ids_and_opt_in_fields() {
        let n = ns(
            &[],
            &[
                (RUN_AS_GROUP, "2000"),
                (FS_GROUP, "3000"),
                (READ_ONLY_ROOT_FILESYSTEM, "true"),
                (APPARMOR, "RuntimeDefault"),
            ],
        );
        let no_overrides = config(false, false);
        let eff = effective(&no_overrides, &n);
        let b = &eff.config.baseline;
        // Opt-in fields strengthen: honoured even without overrides; IDs are not.
        assert_eq!((b.run_as_group, b.fs_group), (Some(65532), Some(65532)));
        assert!(b.read_only_root_filesystem);
        assert_eq!(b.app_armor_profile, Some(ProfileType::RuntimeDefault));
        assert_eq!(eff.warnings.len(), 2, "{:?}", eff.warnings);
        let with_overrides = config(false, true);
        let eff = effective(&with_overrides, &n);
        assert_eq!(
            eff.applied,
            [
                "runAsGroup=2000",
                "fsGroup=3000",
                "readOnlyRootFilesystem=true",
                "appArmorProfile=RuntimeDefault"
            ]
        );
        assert!(eff.warnings.is_empty());
    }

    /// (namespace value, allowOverrides) → (identity in force, applied, warning fragment)
    #[rstest]
    #[case::userns(Some("userns"), true, IdentityMode::Userns, &["identity=userns"], None)]
    #[case::uid_is_the_default(Some("uid"), true, IdentityMode::Uid, &[], None)]
    #[case::overrides_not_allowed(Some("userns"), false, IdentityMode::Uid, &[], Some("allowOverrides"))]
    #[case::auto(Some("auto"), true, IdentityMode::Auto, &["identity=auto"], None)]
    #[case::not_a_mode(Some("image"), true, IdentityMode::Uid, &[], Some("expected uid, userns or auto"))]
    #[case::nothing_set(None, true, IdentityMode::Uid, &[], None)]
    fn identity_mode(
        #[case] value: Option<&str>,
        #[case] allow_overrides: bool,
        #[case] expected: IdentityMode,
        #[case] applied: &[&str],
        #[case] warning: Option<&str>,
    ) {
        let labels: Vec<(&str, &str)> = value.map(|v| (IDENTITY, v)).into_iter().collect();
        let config = config(false, allow_overrides);
        let e = effective(&config, &ns(&labels, &[]));
        assert_eq!(e.config.baseline.identity, expected);
        assert_eq!(e.applied, applied);
        match warning {
            Some(w) => assert!(e.warnings.len() == 1 && e.warnings[0].contains(w), "{:?}", e.warnings),
            None => assert_eq!(e.warnings, Vec::<String>::new()),
        }
    }

    #[test]
    fn weakening_opt_in_fields_needs_opt_out() {
        let mut strict = config(false, true);
        strict.baseline.read_only_root_filesystem = true;
        strict.baseline.app_armor_profile = Some(ProfileType::RuntimeDefault);
        let n = ns(&[], &[(READ_ONLY_ROOT_FILESYSTEM, "false"), (APPARMOR, "off")]);
        let eff = effective(&strict, &n);
        assert!(matches!(eff.config, Cow::Borrowed(_)));
        assert_eq!(eff.warnings.len(), 2, "{:?}", eff.warnings);
        strict.namespace_policy.allow_opt_out = true;
        let eff = effective(&strict, &n);
        assert!(!eff.config.baseline.read_only_root_filesystem);
        assert_eq!(eff.config.baseline.app_armor_profile, None);
        assert!(eff.warnings.is_empty());
        let eff = effective(
            &strict,
            &ns(&[], &[(APPARMOR, "Unconfined"), (READ_ONLY_ROOT_FILESYSTEM, "yes")]),
        );
        assert_eq!(eff.warnings.len(), 2, "{:?}", eff.warnings);
        assert!(eff.config.baseline.read_only_root_filesystem);
    }

    #[test]
    fn effective_config_stays_valid() {
        for value in ["0", "-1", "1", "2147483647", "2147483648", "x", " 1000 "] {
            let n = ns(&[], &[(RUN_AS_USER, value), (RUN_AS_GROUP, value), (FS_GROUP, value)]);
            let config = config(true, true);
            effective(&config, &n).config.baseline.validate().unwrap();
        }
    }
}
