//! The `cargo fuzz` targets' bodies (fuzz/src/checks.rs) run as ordinary
//! tests: over the seed corpus, every crash the fuzzer found
//! (fuzz/regressions), a local libFuzzer corpus if one exists (fuzz/corpus),
//! and a few thousand inputs from a fixed pseudo-random sequence, so
//! `cargo test` needs no nightly toolchain and still exercises the oracles.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() && path.file_name().is_some_and(|n| n != "README.md") {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % max;
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// `seed` with a few bytes overwritten, inserted or removed.
    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut out = seed.to_vec();
        for _ in 0..1 + self.next() % 4 {
            let at = if out.is_empty() {
                0
            } else {
                (self.next() as usize) % out.len()
            };
            match self.next() % 3 {
                0 if !out.is_empty() => out[at] = self.next() as u8,
                1 => out.insert(at, b"{}[]\",:0\\~/"[(self.next() % 11) as usize]),
                _ if !out.is_empty() => {
                    out.remove(at);
                }
                _ => {}
            }
        }
        out
    }
}

fn replay(target: &str, body: fn(&[u8]), generated: usize) {
    let corpus = inputs(target);
    assert!(!corpus.is_empty(), "no seeds for {target}");
    for (path, data) in &corpus {
        if let Err(e) = std::panic::catch_unwind(|| body(data)) {
            std::panic::resume_unwind(Box::new(format!("{target}: {} failed: {e:?}", path.display())));
        }
    }
    let mut rng = Rng(0x5ec0_de0f_u64 ^ target.len() as u64);
    for i in 0..generated {
        let data = if i % 2 == 0 {
            rng.bytes(96)
        } else {
            let seed = &corpus[(rng.next() as usize) % corpus.len()].1;
            rng.mutate(seed)
        };
        if let Err(e) = std::panic::catch_unwind(|| body(&data)) {
            std::panic::resume_unwind(Box::new(format!(
                "{target}: generated input {i} failed ({e:?}); add it to fuzz/regressions/{target}: {:?}",
                String::from_utf8_lossy(&data)
            )));
        }
    }
    eprintln!(
        "{target}: {} corpus inputs and {generated} generated inputs passed",
        corpus.len()
    );
}

#[test]
fn review_target_over_its_corpus() {
    replay("review", checks::review_bytes, 2000);
}

#[test]
fn engine_target_over_its_corpus() {
    replay("engine", checks::engine_bytes, 3000);
}

#[test]
fn yaml_target_over_its_corpus() {
    replay("yaml", checks::yaml_bytes, 3000);
}

#[test]
fn the_oracles_can_fail() {
    // A patch that replaces, or loses a field, is caught.
    let pod = serde_json::json!({"metadata": {"annotations": {"a/b~c": "x"}}, "spec": {"x": 1}});
    let lost = serde_json::json!({"metadata": {"annotations": {}}, "spec": {"x": 1}});
    assert!(std::panic::catch_unwind(|| checks::assert_preserved(&pod, &lost, "")).is_err());
    let changed = serde_json::json!({"metadata": {"annotations": {"a/b~c": "x"}}, "spec": {"x": 2}});
    assert!(std::panic::catch_unwind(|| checks::assert_preserved(&pod, &changed, "")).is_err());
    checks::assert_preserved(&pod, &pod, "");
}
