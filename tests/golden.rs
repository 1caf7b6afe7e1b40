//! Golden fixtures: each `tests/fixtures/mutate/NAME.yaml` is hardened with
//! the default config (or `NAME.config.yaml` beside it), and the result must
//! match, byte for byte:
//! - `NAME.patch.json`: the RFC 6902 patch of each document;
//! - `NAME.report.json`: the engine's report and the admission warnings;
//! - `NAME.out.yaml`: the hardened documents.
//!
//! Regenerate after an intended change with `make golden`
//! (`UPDATE_GOLDEN=1 cargo test --test golden`) and review the diff.

use secure_defaults::cli::mutate::{harden_document, parse_documents, render, Document, Output};
use secure_defaults::config::Config;
use secure_defaults::engine::Policy;
use secure_defaults::policy::messages;
use serde_json::json;
use std::path::{Path, PathBuf};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mutate");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".yaml") && !name.ends_with(".config.yaml") && !name.ends_with(".out.yaml")
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no fixtures in {}", dir.display());
    inputs
}

fn sibling(input: &Path, suffix: &str) -> PathBuf {
    let stem = input.file_stem().unwrap().to_string_lossy();
    input.with_file_name(format!("{stem}{suffix}"))
}

fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{} differs (run `make golden` and review the diff):\n{}",
            path.display(),
            similar::TextDiff::from_lines(&expected, actual)
                .unified_diff()
                .header("expected", "actual")
        )),
        Err(e) => failures.push(format!("{}: {e} (run `make golden`)", path.display())),
    }
}

#[test]
fn golden_fixtures() {
    let mut failures = Vec::new();
    for input in fixtures() {
        let config_path = sibling(&input, ".config.yaml");
        let config = Config::load_or_default(config_path.exists().then_some(config_path.as_path())).unwrap();
        let policy = Policy {
            baseline: &config.baseline,
            allow_opt_out: config.allow_pod_opt_out,
        };
        let text = std::fs::read_to_string(&input).unwrap();
        let docs: Vec<Document> = parse_documents(&text)
            .unwrap()
            .into_iter()
            .map(|v| harden_document(v, policy, &config.extra_kinds).unwrap())
            .collect();

        let patches: Vec<_> = docs.iter().map(|d| &d.patch).collect();
        check(
            &sibling(&input, ".patch.json"),
            &(serde_json::to_string_pretty(&patches).unwrap() + "\n"),
            &mut failures,
        );

        let reports: Vec<_> = docs
            .iter()
            .flat_map(|d| &d.reports)
            .map(|(object, report)| json!({"object": object, "report": report, "warnings": messages::warnings(report)}))
            .collect();
        check(
            &sibling(&input, ".report.json"),
            &(serde_json::to_string_pretty(&reports).unwrap() + "\n"),
            &mut failures,
        );

        check(
            &sibling(&input, ".out.yaml"),
            &render(&docs, Output::Yaml).unwrap(),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
