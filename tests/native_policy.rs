//! `secure-defaults policy`: the generated objects for the default
//! configuration and one non-default configuration are golden files
//! (`tests/fixtures/native-policy/NAME.yaml`), reviewed as diffs; the
//! checked-in kustomize overlay must be the generator's output.
//!
//! Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo test --test native_policy` and review the diff.

use secure_defaults::config::Config;
use secure_defaults::native_policy::{generate, to_yaml, Options};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn check(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if expected != actual {
        panic!(
            "{} differs (regenerate with UPDATE_GOLDEN=1 and review the diff):\n{}",
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
