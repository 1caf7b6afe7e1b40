//! The YAML reader against kubectl's own: go-yaml v2 through sigs.k8s.io/yaml
//! (`hack/yaml-reference`, built here with the Go toolchain), on generated
//! documents that lay flow collections and quoted strings across lines at
//! every column, left of the block's indentation included (issue 16 item 5).
//! Both must accept the same documents and read the same values.

use proptest::prelude::*;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The reference reader, built once per test run (Go's build cache makes a
/// rebuild quick).
fn reference() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("yaml-reference");
        let status = Command::new("go")
            .args(["build", "-mod=readonly", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/hack/yaml-reference"))
            .status()
            .expect("the Go toolchain (go) builds the reference reader");
        assert!(status.success(), "go build of hack/yaml-reference failed");
        bin
    })
}

/// What go-yaml v2 makes of each document: its JSON, or why it refused it.
fn read_by_reference(docs: &[String]) -> Vec<Result<Value, String>> {
    let mut child = Command::new(reference())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the reference reader runs");
    let input = serde_json::to_vec(docs).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference reader failed");
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .into_iter()
        .map(|r| match r.get("err") {
            Some(e) => Err(e.as_str().unwrap_or_default().to_string()),
            None => Ok(r.get("ok").cloned().unwrap_or(Value::Null)),
        })
        .collect()
}

/// Plain words, some that YAML 1.1 reads as booleans, numbers or null.
const WORDS: &[&str] = &[
    "a", "x y", "on", "Yes", "0644", "1_000", "1e3", "-1", "null", "~", "b.c/d", "v1",
];
const KEYS: &[&str] = &["k", "image", "on", "1", "name", "command"];

/// Text that starts a new line at `column` within a flow or quoted scalar.
fn newline_at(column: usize) -> String {
    format!("\n{}", " ".repeat(column))
}

/// A value written in flow style: scalars, quoted strings and nested flow
/// collections, each part on the same line or on a new line at any column.
fn flow() -> impl Strategy<Value = String> {
    let sep = prop_oneof![Just(" ".to_string()), (0usize..8).prop_map(newline_at)];
    let leaf = prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_string),
        (prop::sample::select(WORDS), 0usize..8).prop_map(|(w, c)| format!("'{w}{}z'", newline_at(c))),
        (prop::sample::select(WORDS), 0usize..8).prop_map(|(w, c)| format!("\"{w}{}z\"", newline_at(c))),
        (0usize..8).prop_map(|c| format!("p{}q", newline_at(c))),
    ];
    leaf.prop_recursive(3, 12, 4, move |inner| {
        let sep = sep.clone();
        prop_oneof![
            (prop::collection::vec((sep.clone(), inner.clone()), 0..4), sep.clone()).prop_map(|(items, end)| {
                let body: Vec<String> = items.into_iter().map(|(s, v)| format!("{s}{v}")).collect();
                format!("[{}{end}]", body.join(","))
            }),
            (prop::collection::vec((sep.clone(), inner), 0..4), sep).prop_map(|(items, end)| {
                let body: Vec<String> = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, (s, v))| format!("{s}{}: {v}", KEYS[i % KEYS.len()]))
                    .collect();
                format!("{{{}{end}}}", body.join(","))
            }),
        ]
    })
}

/// A block mapping at `indent` whose values are words, flow values, or
/// nested block mappings and sequences.
fn block(indent: usize, depth: u32) -> BoxedStrategy<String> {
    let value = if depth == 0 {
        prop_oneof![
            prop::sample::select(WORDS).prop_map(|w| format!(" {w}\n")),
            flow().prop_map(|f| format!(" {f}\n"))
        ]
        .boxed()
    } else {
        prop_oneof![
            2 => prop::sample::select(WORDS).prop_map(|w| format!(" {w}\n")),
            3 => flow().prop_map(|f| format!(" {f}\n")),
            1 => block(indent + 2, depth - 1).prop_map(|b| format!("\n{b}")),
            1 => prop::collection::vec(block(indent + 2, depth - 1), 1..3).prop_map(move |items| {
                // `- ` at the key's column, as kubectl writes it, then the item's mapping.
                items.iter().map(|item| format!("\n{}- {}", " ".repeat(indent), &item[indent + 2..])).collect::<String>()
            }),
        ]
        .boxed()
    };
    prop::collection::vec(value, 1..4)
        .prop_map(move |values| {
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| format!("{}{}:{v}", " ".repeat(indent), KEYS[i % KEYS.len()]))
                .collect::<String>()
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reads_as_go_yaml_v2(doc in block(0, 2)) {
        let expected = read_by_reference(std::slice::from_ref(&doc)).remove(0);
        let ours = secure_defaults::yaml::documents(&doc);
        match (ours, expected) {
            (Ok(docs), Ok(value)) => prop_assert_eq!(&docs[..], std::slice::from_ref(&value), "{}", doc),
            (Err(e), Ok(value)) => prop_assert!(false, "refused what go-yaml v2 reads as {}: {}\n{}", value, e, doc),
            (Ok(docs), Err(e)) => prop_assert!(false, "read {:?} where go-yaml v2 refuses: {}\n{}", docs, e, doc),
            (Err(_), Err(_)) => {}
        }
    }
}

/// The class the reader refused before (issue 16 item 5), read by both.
#[test]
fn the_reported_chart_reads_the_same_as_go_yaml_v2() {
    let doc = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: x\n      command: [\n        \"/bin/sh\",\n        \"-c\"\n      ]\n";
    let expected = read_by_reference(&[doc.to_string()]).remove(0).unwrap();
    assert_eq!(secure_defaults::yaml::documents(doc).unwrap(), [expected]);
}
