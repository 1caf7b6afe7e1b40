//! The baseline as native admission policies: the configuration the webhook
//! uses, compiled into a `MutatingAdmissionPolicy` (one JSONPatch mutation
//! whose CEL adds only absent members, parents first) and, for what the
//! webhook says rather than adds, `ValidatingAdmissionPolicy`s: the deny list
//! (action Deny) and explicit weak values (action Warn). Each has a binding.
//!
//! - `cel.rs`: the engine's rules as CEL, one match arm per baseline field
//!   (no wildcard: a new engine field breaks the build until it has one).
//! - `render.rs`: the Kubernetes objects, and their YAML.
//!
//! Pure: a configuration in, objects out. Settings a policy cannot express
//! are refused with [`PolicyError::Unsupported`], naming the setting.

mod cel;
mod render;

pub use render::to_yaml;

use crate::config::Config;
use crate::engine::Field;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("cannot express {setting} as a native admission policy: {reason}")]
    Unsupported { setting: String, reason: String },
}

/// How the objects are named and bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Object names; `.static.k8s.io` is appended in the static form.
    pub name: String,
    /// Static manifests (`staticManifestsDir`, Kubernetes 1.37+): loaded by the
    /// API server from disk, invisible to the API. Bindings then match all
    /// namespaces but the excluded ones by name.
    pub static_manifests: bool,
    /// Namespaces never hardened (the webhook's namespaceSelector).
    pub excluded_namespaces: Vec<String>,
    /// A namespace label (key, value) that excludes a namespace.
    pub ignore_label: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: "secure-defaults".into(),
            static_manifests: false,
            excluded_namespaces: ["kube-system", "kube-node-lease", "kube-public", "secure-defaults"]
                .map(String::from)
                .to_vec(),
            ignore_label: Some(("secure-defaults.io/ignore".into(), "true".into())),
        }
    }
}

/// The policies and bindings for `config`, as JSON objects in apply order
/// (each policy before its binding).
pub fn generate(config: &Config, options: &Options) -> Result<Vec<serde_json::Value>, PolicyError> {
    cel::check_expressible(config)?;
    let env = cel::Env { config };
    let mut rules = Vec::new();
    for f in Field::ALL {
        rules.push((f, cel::field(&env, f)?));
    }
    render::objects(config, options, &rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml, "test").unwrap()
    }

    fn kinds(objects: &[serde_json::Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn default_config_is_a_mutating_policy_and_a_warning_policy_with_bindings() {
        let objects = generate(&Config::default(), &Options::default()).unwrap();
        assert_eq!(
            kinds(&objects),
            [
                "MutatingAdmissionPolicy/secure-defaults",
                "MutatingAdmissionPolicyBinding/secure-defaults",
                "ValidatingAdmissionPolicy/secure-defaults-warn",
                "ValidatingAdmissionPolicyBinding/secure-defaults-warn",
            ]
        );
    }

    #[test]
    fn static_form_uses_the_reserved_suffix_everywhere() {
        let options = Options {
            static_manifests: true,
            ..Options::default()
        };
        let objects = generate(&config("deny: [privileged]\n"), &options).unwrap();
        for o in &objects {
            assert!(
                o["metadata"]["name"].as_str().unwrap().ends_with(".static.k8s.io"),
                "{o}"
            );
            let policy = &o["spec"]["policyName"];
            assert!(
                policy.is_null() || policy.as_str().unwrap().ends_with(".static.k8s.io"),
                "{o}"
            );
        }
        assert_eq!(objects.len(), 6);
    }

    #[rstest]
    #[case::audit_mode("mode: audit\n", "mode: audit")]
    #[case::auto_identity("baseline:\n  identity: auto\n", "baseline.identity: auto")]
    #[case::namespace_opt_out("namespacePolicy:\n  allowOptOut: true\n", "namespacePolicy.allowOptOut")]
    #[case::deny_check_without_cel("deny: [privileged, sysctls]\n", "deny: [sysctls]")]
    fn settings_a_policy_cannot_express_are_refused_by_name(#[case] yaml: &str, #[case] setting: &str) {
        let err = generate(&config(yaml), &Options::default()).unwrap_err();
        assert!(err.to_string().contains(setting), "{err}");
        assert!(err.to_string().starts_with("cannot express "), "{err}");
    }

    #[test]
    fn every_enabled_field_has_a_policy_counterpart() {
        // Everything on: no field may be Off, and only fsGroupChangePolicy rides on another rule.
        let c = config(
            "baseline:\n  supplementalGroups: [1000]\n  readOnlyRootFilesystem: true\n  appArmorProfile: RuntimeDefault\n",
        );
        let env = cel::Env { config: &c };
        for f in Field::ALL {
            match cel::field(&env, f).unwrap() {
                cel::Rule::Off => panic!("{f} has no policy counterpart"),
                cel::Rule::Within(other) => {
                    assert_eq!((f, other), (Field::FsGroupChangePolicy, Field::FsGroup))
                }
                _ => {}
            }
        }
    }

    #[test]
    fn disabled_fields_are_not_in_the_policy() {
        let c = config(
            "baseline:\n  seccompProfile: null\n  dropAllCapabilities: false\nnamespacePolicy:\n  allowOverrides: false\n",
        );
        let yaml = to_yaml(&generate(&c, &Options::default()).unwrap(), "");
        assert!(!yaml.contains("dyn('seccompProfile')"), "{yaml}");
        assert!(!yaml.contains("dyn('capabilities"), "{yaml}");
        assert!(!yaml.contains("namespaceObject.metadata.?labels[?'secure-defaults.io/run-as-user']"));
        assert!(yaml.contains("[dyn('runAsUser'), dyn(variables.runAsUser)]"), "{yaml}");
    }

    /// hostUsersAdd's fallback for a pod whose containers explicitly run as root.
    const EXPLICIT_ROOT_FALLBACK: &str =
        ".exists(c, c.?securityContext.?runAsUser.orValue(object.spec.?securityContext.?runAsUser.orValue(-1)) == 0";

    /// The identity settings (issue 19) as the variables and rules they compile to.
    #[rstest]
    #[case::uid_without_overrides_has_no_user_namespace(
        "namespacePolicy:\n  allowOverrides: false\n",
        &[r#""expression":"false","name":"userns""#, "!c.?securityContext.?runAsNonRoot.orValue(object.spec.?securityContext.?runAsNonRoot.orValue(false))"],
        &["dyn('hostUsers')"]
    )]
    #[case::namespace_may_choose_userns(
        "",
        &["secure-defaults.io/identity'].orValue('')).trim() == 'userns'", "[dyn('hostUsers'), dyn(false)]"],
        &[]
    )]
    #[case::userns_from_the_config(
        "baseline:\n  identity: userns\nnamespacePolicy:\n  allowOverrides: false\n",
        &[r#""expression":"true","name":"userns""#, "[dyn('hostUsers'), dyn(false)]", "!variables.hostUsersAdd"],
        &[]
    )]
    #[case::explicit_root_in_a_user_namespace_by_default(
        "baseline:\n  identity: userns\n",
        &[],
        &[EXPLICIT_ROOT_FALLBACK]
    )]
    #[case::explicit_root_keeps_its_ids(
        "baseline:\n  identity: userns\n  userNamespaceForExplicitRoot: false\n",
        &[EXPLICIT_ROOT_FALLBACK],
        &[]
    )]
    #[case::fs_group_beside_a_pinned_user(
        "baseline:\n  fsGroupBesideRunAsUser: true\n",
        &["dyn('fsGroup')"],
        &["c.?securityContext.?runAsUser.orValue(0) != 0"]
    )]
    #[case::no_fs_group_beside_a_pinned_user(
        "",
        &["c.?securityContext.?runAsUser.orValue(0) != 0"],
        &[]
    )]
    fn identity_settings_compile_to_their_cel(#[case] yaml: &str, #[case] present: &[&str], #[case] absent: &[&str]) {
        let json = serde_json::to_string(&generate(&config(yaml), &Options::default()).unwrap()).unwrap();
        for p in present {
            assert!(json.contains(p), "missing {p}");
        }
        for a in absent {
            assert!(!json.contains(a), "unexpected {a}");
        }
    }
}
