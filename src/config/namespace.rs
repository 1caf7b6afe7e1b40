//! What the operator lets namespaces change through their labels and
//! annotations (`namespacePolicy`); the policy itself is `policy::namespace`.

use serde::{Deserialize, Serialize};

/// What the operator lets namespaces change (`namespacePolicy` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Controls {
    /// Honour weakening: mode `audit` or `off` under an enforcing
    /// configuration, `read-only-root-filesystem: "false"` and
    /// `apparmor: off` where the baseline adds them. Off by default, so whoever
    /// may edit a namespace cannot exempt it.
    pub allow_opt_out: bool,
    /// Honour the ID overrides (`run-as-user`, `run-as-group`, `fs-group`;
    /// non-root values only) and `identity` (`uid`, `userns` or `auto`).
    pub allow_overrides: bool,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            allow_opt_out: false,
            allow_overrides: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn controls_parse_with_defaults() {
        let c = Config::from_yaml("namespacePolicy: {allowOptOut: true}\n", "t").unwrap();
        assert_eq!(
            c.namespace_policy,
            Controls {
                allow_opt_out: true,
                allow_overrides: true
            }
        );
        assert_eq!(Config::default().namespace_policy, Controls::default());
        assert!(Config::from_yaml("namespacePolicy: {allowOptout: true}\n", "t").is_err());
    }
}
