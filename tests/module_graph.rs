//! Dependencies run one way: no module imports one that imports it back.
//!
//! Reads every `crate::...` path (in `use` trees and in code) under `src/`
//! and `crates/engine/src/`, and checks that the modules at each level
//! (`admission` and `policy`; `policy::assess` and `policy::messages`) form
//! an acyclic graph. Paths through `super::` stay inside their parent and a
//! module's use of its own parent or children is not an edge between
//! siblings, so neither is counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The crates whose module graphs are checked, by source root.
const ROOTS: [&str; 2] = ["src", "crates/engine/src"];

#[test]
fn no_import_cycles_between_modules() {
    for root in ROOTS {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
        let graph = graph(&root);
        assert!(!graph.is_empty(), "no crate:: paths read under {root:?}");
        if let Some(cycle) = cycle(&graph) {
            panic!("import cycle under {}: {}", root.display(), cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_finds_a_cycle() {
    let files = [
        (
            "config",
            "use crate::engine::Baseline;\nuse crate::policy::namespace::Controls;",
        ),
        (
            "policy::namespace",
            "use crate::{config::{self, Config}, admission::Reviewed};",
        ),
        ("admission", "// use crate::server;\nfn f() { crate::config::load(); }"),
    ];
    let mut graph = Graph::new();
    for (module, text) in files {
        edges(&split(module), text, &mut graph);
    }
    let found = cycle(&graph).expect("config -> policy -> config is a cycle");
    assert_eq!(found.first(), found.last());
    assert!(
        found.contains(&"config".to_string()) && found.contains(&"policy".to_string()),
        "{found:?}"
    );
    assert!(!graph["admission"].contains("server"), "comments are not imports");

    let mut acyclic = Graph::new();
    edges(
        &split("policy::messages"),
        "use crate::policy::assess::Verdict;",
        &mut acyclic,
    );
    edges(&split("policy::assess"), "use crate::config::Config;", &mut acyclic);
    assert_eq!(cycle(&acyclic), None);
}

fn split(module: &str) -> Vec<String> {
    module.split("::").map(str::to_string).collect()
}

/// The module graph of the crate rooted at `root`, every level in one map
/// (keys are `a`, `a::b`, ...; edges only between siblings).
fn graph(root: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in rust_files(root) {
        let text = std::fs::read_to_string(&file).unwrap();
        let module = module_path(root, &file);
        edges(&module, &text, &mut graph);
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `src/policy/scan.rs` → `[policy, scan]`; `src/admission/mod.rs` → `[admission]`.
fn module_path(root: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// Add the sibling edges of every `crate::` path in `text`, written in `module`.
fn edges(module: &[String], text: &str, graph: &mut Graph) {
    let code = without_comments(text);
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue; // `secure_defaults_engine::crate_...` and the like
        }
        let mut targets = Vec::new();
        let mut tokens = Tokens(rest);
        use_tree(&mut tokens, Vec::new(), &mut targets);
        for target in targets {
            add_edge(module, &target, graph);
        }
    }
}

/// The edge between `module` and `target` at the first level where they
/// differ, if neither contains the other.
fn add_edge(module: &[String], target: &[String], graph: &mut Graph) {
    let Some(i) = module.iter().zip(target).position(|(a, b)| a != b) else {
        return;
    };
    let from = module[..=i].join("::");
    let to = target[..=i].join("::");
    graph.entry(to.clone()).or_default();
    graph.entry(from).or_default().insert(to);
}

/// Every full path of a use tree (or of a plain path in code):
/// `a::{b, c::{self, d}}` → `a::b`, `a::c`, `a::c::d`.
fn use_tree(tokens: &mut Tokens, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        if tokens.eat("{") {
            loop {
                if tokens.eat("}") {
                    return;
                }
                use_tree(tokens, path.clone(), out);
                if !tokens.eat(",") {
                    tokens.eat("}");
                    return;
                }
            }
        }
        match tokens.ident() {
            Some(id) if id == "self" => break,
            Some(id) => path.push(id),
            None => break,
        }
        if !tokens.eat("::") {
            break;
        }
    }
    if tokens.eat("as") {
        tokens.ident();
    }
    if !path.is_empty() {
        out.push(path);
    }
}

struct Tokens<'a>(&'a str);

impl Tokens<'_> {
    fn skip_space(&mut self) {
        self.0 = self.0.trim_start();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        let matched = self.0.starts_with(token)
            && !(token.chars().all(char::is_alphabetic)
                && self.0[token.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_'));
        if matched {
            self.0 = &self.0[token.len()..];
        }
        matched
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_space();
        let end = self
            .0
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.0.len());
        if end == 0 {
            return None;
        }
        let (id, rest) = self.0.split_at(end);
        self.0 = rest;
        Some(id.to_string())
    }
}

/// `text` without `//` comments (doc comments included); `://` in strings stays.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut cut = line.len();
            let mut from = 0;
            while let Some(at) = line[from..].find("//") {
                let at = from + at;
                if !line[..at].ends_with(':') {
                    cut = at;
                    break;
                }
                from = at + 2;
            }
            &line[..cut]
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A cycle in `graph` (first node repeated at the end), if there is one.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, State>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(State::Done) => return None,
            Some(State::Open) => {
                let start = stack.iter().position(|n| n == node).unwrap();
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(node.to_string(), State::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node.to_string(), State::Done);
        None
    }
    let mut state = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut state, &mut Vec::new()))
}
