//! Annotations the engine reads: legacy seccomp and AppArmor profiles (which
//! count as explicit values), static-pod mirrors, and pod opt-outs.

use super::report::Field;
use std::collections::BTreeMap;

pub const SKIP: &str = "secure-defaults.io/skip";
pub const SKIP_FIELDS: &str = "secure-defaults.io/skip-fields";

const MIRROR: &str = "kubernetes.io/config.mirror";
const SECCOMP_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";
const APPARMOR_CONTAINER_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Read-only view of a pod's annotations.
#[derive(Clone, Copy)]
pub struct Annotations<'a>(pub Option<&'a BTreeMap<String, String>>);

impl<'a> Annotations<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.0.and_then(|m| m.get(key)).map(String::as_str)
    }

    fn get_prefixed(&self, prefix: &str, name: &str) -> Option<&'a str> {
        let map = self.0?;
        // The keys from `prefix` on, without building `prefix + name`.
        map.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .find(|(k, _)| &k[prefix.len()..] == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_mirror_pod(&self) -> bool {
        self.get(MIRROR).is_some()
    }

    /// `seccomp.security.alpha.kubernetes.io/pod`
    pub fn pod_seccomp(&self) -> Option<&'a str> {
        self.get(SECCOMP_POD)
    }

    /// `container.seccomp.security.alpha.kubernetes.io/<name>`
    pub fn container_seccomp(&self, container: &str) -> Option<&'a str> {
        self.get_prefixed(SECCOMP_CONTAINER_PREFIX, container)
    }

    /// `container.apparmor.security.beta.kubernetes.io/<name>`
    pub fn container_apparmor(&self, container: &str) -> Option<&'a str> {
        self.get_prefixed(APPARMOR_CONTAINER_PREFIX, container)
    }

    /// The opt-out the pod asks for. Whether it is honoured is the caller's policy.
    pub fn opt_out(&self) -> OptOut {
        let mut out = OptOut {
            whole_pod: self.get(SKIP).is_some_and(|v| v.trim() == "true"),
            ..OptOut::default()
        };
        for name in self
            .get(SKIP_FIELDS)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match Field::parse(name) {
                Some(field) => {
                    if !out.fields.contains(&field) {
                        out.fields.push(field);
                    }
                }
                None => out.unknown.push(name.to_string()),
            }
        }
        out.fields.sort();
        out
    }
}

/// What a pod asked to be exempted from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptOut {
    /// `secure-defaults.io/skip: "true"`
    pub whole_pod: bool,
    /// `secure-defaults.io/skip-fields: runAsUser,readOnlyRootFilesystem`
    pub fields: Vec<Field>,
    /// Names in skip-fields that are not baseline fields.
    pub unknown: Vec<String>,
}

impl OptOut {
    pub fn is_empty(&self) -> bool {
        !self.whole_pod && self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn container_annotations_match_the_exact_name() {
        let m = map(&[
            ("container.seccomp.security.alpha.kubernetes.io/app-2", "unconfined"),
            ("container.apparmor.security.beta.kubernetes.io/app", "runtime/default"),
        ]);
        let a = Annotations(Some(&m));
        assert_eq!(a.container_seccomp("app"), None);
        assert_eq!(a.container_seccomp("app-2"), Some("unconfined"));
        assert_eq!(a.container_apparmor("app"), Some("runtime/default"));
        assert_eq!(a.container_apparmor("ap"), None);
    }

    #[test]
    fn opt_out_parses_fields_and_reports_unknown_names() {
        let m = map(&[(SKIP_FIELDS, " runAsUser, readOnlyRootFilesystem ,bogus,runAsUser")]);
        let o = Annotations(Some(&m)).opt_out();
        assert!(!o.whole_pod);
        assert_eq!(o.fields, vec![Field::RunAsUser, Field::ReadOnlyRootFilesystem]);
        assert_eq!(o.unknown, vec!["bogus".to_string()]);
    }

    #[test]
    fn skip_needs_the_value_true() {
        let m = map(&[(SKIP, "false")]);
        assert!(Annotations(Some(&m)).opt_out().is_empty());
        let m = map(&[(SKIP, "true")]);
        assert!(Annotations(Some(&m)).opt_out().whole_pod);
    }
}
