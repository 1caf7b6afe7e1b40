//! `secure-defaults policy`: the generated objects for the default
//! configuration and one non-default configuration are golden files
//! (`tests/fixtures/native-policy/NAME.yaml`), reviewed as diffs; the
//! checked-in kustomize overlay must be the generator's output.
//!
//! Regenerate after an intended change with
//! `UPDATE_GOLDENFILES=1 cargo test --test native_policy` and review the diff.

use secure_defaults::config::Config;
use secure_defaults::native_policy::{generate, to_yaml, Options};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn check(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDENFILES").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if expected != actual {
        panic!(
            "{} differs (regenerate with UPDATE_GOLDENFILES=1 and review the diff):\n{}",
            path.display(),
            similar::TextDiff::from_lines(&expected, actual)
                .unified_diff()
                .header("expected", "actual")
        );
    }
}

#[test]
fn default_config_golden() {
    let objects = generate(&Config::default(), &Options::default()).unwrap();
    check(
        &repo("tests/fixtures/native-policy/default.yaml"),
        &to_yaml(&objects, "the embedded default configuration"),
    );
}

#[test]
fn custom_config_golden() {
    let config = Config::load(&repo("tests/fixtures/native-policy/custom.config.yaml")).unwrap();
    let options = Options {
        excluded_namespaces: vec!["kube-system".into(), "platform".into()],
        ignore_label: None,
        ..Options::default()
    };
    let objects = generate(&config, &options).unwrap();
    check(
        &repo("tests/fixtures/native-policy/custom.yaml"),
        &to_yaml(&objects, "tests/fixtures/native-policy/custom.config.yaml"),
    );
}

/// The install paths ship the generator's output for the default
/// configuration: the kustomize overlay and the Helm chart's `mode: policy`.
#[test]
fn shipped_policy_is_the_generators_output() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
        .arg("policy")
        .env_remove("SECURE_DEFAULTS_CONFIG")
        .output()
        .expect("run secure-defaults policy");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).unwrap();
    for shipped in [
        "manifests/overlays/native-policy/policy.yaml",
        "charts/secure-defaults/files/native-policy.yaml",
    ] {
        if std::env::var_os("UPDATE_GOLDENFILES").is_some() {
            std::fs::write(repo(shipped), &generated).unwrap();
        }
        assert!(
            std::fs::read_to_string(repo(shipped)).unwrap() == generated,
            "{shipped} is not `secure-defaults policy`'s output: regenerate with UPDATE_GOLDENFILES=1 cargo test --test native_policy"
        );
    }
}

/// The chart's `mode: policy` refuses a `config` other than this one (its
/// default values as Helm's toYaml writes them): it must be the default.
#[test]
fn chart_policy_mode_guard_is_the_default_config() {
    let text = std::fs::read_to_string(repo("charts/secure-defaults/files/native-policy-config.yaml")).unwrap();
    assert_eq!(
        Config::from_yaml(&text, "native-policy-config.yaml").unwrap(),
        Config::default()
    );
    // Helm compares the text with `toYaml .Values.config`: every key of the
    // chart's `config` must be there, not only the defaults' meaning.
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo("charts/secure-defaults/values.yaml")).unwrap()).unwrap();
    let guard: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        guard, values["config"],
        "charts/secure-defaults/files/native-policy-config.yaml is not the chart's `config` (helm template --set mode=policy fails)"
    );
}

/// The command refuses what a policy cannot express, naming the setting, and
/// writes nothing to standard output.
/// Settings a policy cannot express: the command fails, names them, prints nothing.
#[test]
fn policy_command_refuses_what_cel_cannot_do_by_name() {
    let cases = [
        ("mode: audit\n", "cannot express mode: audit"),
        (
            "baseline:\n  identity: auto\n",
            "cannot express baseline.identity: auto",
        ),
    ];
    for (yaml, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
            .args(["policy", "--config"])
            .arg(&config)
            .output()
            .expect("run secure-defaults policy");
        assert!(!out.status.success(), "{yaml}");
        assert!(out.stdout.is_empty(), "{yaml}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            stderr.contains("use identity: userns") || !yaml.contains("auto"),
            "{stderr}"
        );
    }
}
