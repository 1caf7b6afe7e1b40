//! The operator's configuration: the baseline, the mode, the deny list and
//! whether pods may opt out, and what namespaces may change. Loaded once at
//! start-up (and on reload).

pub mod image_lookup;
pub mod namespace;
pub mod schema;

use crate::engine::baseline::BaselineError;
use crate::engine::manifest::{self, ExtraKind};
use crate::engine::{Baseline, Check};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The embedded default, also shipped as `config/default.yaml`.
pub const DEFAULT_YAML: &str = include_str!("../../config/default.yaml");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    pub baseline: Baseline,
    /// Pod Security checks that deny a pod instead of warning about it.
    pub deny: BTreeSet<Check>,
    /// Honour the pod annotations `secure-defaults.io/skip` and `secure-defaults.io/skip-fields`.
    pub allow_pod_opt_out: bool,
    /// What namespaces may change through their labels and annotations.
    pub namespace_policy: namespace::Controls,
    /// Custom resources with a pod template, hardened by `mutate` and `scan`
    /// like the built-in workloads (the webhook hardens their pods).
    pub extra_kinds: Vec<ExtraKind>,
    /// How `identity: auto` looks up each image's user in its registry.
    pub image_lookup: image_lookup::ImageLookup,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Enforce,
            baseline: Baseline::default(),
            deny: BTreeSet::new(),
            allow_pod_opt_out: true,
            namespace_policy: Default::default(),
            extra_kinds: Vec::new(),
            image_lookup: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Patch pods.
    Enforce,
    /// Never patch; report what would be added.
    Audit,
}

impl Mode {
    /// The name used in the configuration, annotations, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config {origin}")]
    Parse { origin: String, source: serde_yaml::Error },
    #[error("invalid config {origin}")]
    Invalid { origin: String, source: BaselineError },
    #[error("invalid config {origin}: extraKinds: {reason}")]
    ExtraKind { origin: String, reason: String },
    #[error("invalid config {origin}: imageLookup: {reason}")]
    ImageLookup { origin: String, reason: String },
}

impl Config {
    /// Parse and validate a YAML (or JSON) configuration. `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        // An empty file is the default configuration, not an error.
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
                origin: origin.to_string(),
                source,
            })?
        };
        config.baseline.validate().map_err(|source| ConfigError::Invalid {
            origin: origin.to_string(),
            source,
        })?;
        if let Some(reason) = config.extra_kinds.iter().find_map(extra_kind_problem) {
            return Err(ConfigError::ExtraKind {
                origin: origin.to_string(),
                reason,
            });
        }
        if let Some(reason) = config.image_lookup.problem() {
            return Err(ConfigError::ImageLookup {
                origin: origin.to_string(),
                reason,
            });
        }
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&text, &path.display().to_string())
    }

    /// The file at `path`, or the embedded default.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => Config::load(path),
            None => Config::from_yaml(DEFAULT_YAML, "(embedded default)"),
        }
    }
}

/// Why an `extraKinds` entry cannot be used, if it cannot.
fn extra_kind_problem(e: &ExtraKind) -> Option<String> {
    let name = format!("{}/{}", e.group, e.kind);
    if e.kind.is_empty() || e.group.contains('/') {
        Some(format!("{name:?}: a group without version (\"\" for core) and a kind"))
    } else if e.template_path.split('.').any(str::is_empty) {
        Some(format!(
            "{name}: templatePath {:?} is not dotted keys like spec.template",
            e.template_path
        ))
    } else if manifest::pod_template_path(&e.group, &e.kind, &[]).is_some() {
        Some(format!("{name} is a built-in kind"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_yaml_is_the_default() {
        assert_eq!(Config::from_yaml(DEFAULT_YAML, "default").unwrap(), Config::default());
    }

    #[test]
    fn deny_list_uses_check_names() {
        let c = Config::from_yaml("deny: [privileged, hostPathVolumes]\n", "t").unwrap();
        assert_eq!(c.deny, BTreeSet::from([Check::Privileged, Check::HostPathVolumes]));
    }

    #[test]
    fn unknown_key_names_the_key() {
        let err = Config::from_yaml("mode: enforce\nbaselin: {}\n", "t").unwrap_err();
        assert_eq!(err.to_string(), "invalid config t");
        let err = crate::error::Chain(&err).to_string();
        assert!(err.contains("baselin"), "{err}");
    }

    #[test]
    fn invalid_baseline_is_rejected_at_load() {
        let err = Config::from_yaml("baseline:\n  runAsUser: 0\n", "t").unwrap_err();
        let err = crate::error::Chain(&err).to_string();
        assert!(err.contains("runAsUser"), "{err}");
    }

    #[test]
    fn extra_kinds_are_read_and_checked() {
        let c = Config::from_yaml(
            "extraKinds: [{group: argoproj.io, kind: Rollout, templatePath: spec.template}]\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.extra_kinds[0].template_path, "spec.template");
        for (bad, reason) in [
            (
                "{group: apps/v1, kind: X, templatePath: spec.template}",
                "without version",
            ),
            ("{group: x.io, kind: X, templatePath: spec..template}", "dotted keys"),
            (
                "{group: apps, kind: Deployment, templatePath: spec.template}",
                "built-in",
            ),
        ] {
            let err = Config::from_yaml(&format!("extraKinds: [{bad}]\n"), "t").unwrap_err();
            assert!(err.to_string().contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn image_lookup_is_read_and_checked() {
        let c = Config::from_yaml(
            "imageLookup: {registries: [reg.example], timeout: 1500ms, cacheTTL: 1m, pullSecrets: false}\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.image_lookup.registries, ["reg.example"]);
        assert_eq!(c.image_lookup.timeout.0, std::time::Duration::from_millis(1500));
        assert!(!c.image_lookup.pull_secrets);
        let err = Config::from_yaml("imageLookup: {timeout: 10s}\n", "t").unwrap_err();
        assert!(err.to_string().contains("imageLookup: timeout 10s"), "{err}");
        let err = Config::from_yaml("imageLookup: {timeOut: 1s}\n", "t").unwrap_err();
        assert!(crate::error::Chain(&err).to_string().contains("timeOut"), "{err}");
    }

    #[test]
    fn empty_file_is_default() {
        assert_eq!(Config::from_yaml("  \n", "t").unwrap(), Config::default());
    }
}
