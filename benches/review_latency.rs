//! Per-review latency distribution of the review path (criterion reports a
//! mean and its confidence interval, not tail latency): each review is timed
//! on its own, and the mean, p50, p90, p99 and maximum are printed and
//! written to `$BENCH_OUT/review_latency.json` (default `target/bench`).
//! The request bodies are written beside it (`cases/<name>.json`) for the
//! load benchmark. `make bench` runs it pinned to one core.
//!
//! `cargo bench --bench review_latency [-- SECONDS] [CASE]`: time per case
//! (default 3), and only the cases whose name contains CASE.
//! `BENCH_ITERATIONS=N`: exactly N reviews per case and no warm-up, for
//! counting instructions per review with `perf stat` (steadier than time on
//! a busy machine; subtract a run with N=0).

mod common;

use common::{cases, review_once};
use secure_defaults::config::Config;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` passes `--bench`; a number is the time per case.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let seconds: f64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(3.0);
    let iterations: Option<u64> = std::env::var("BENCH_ITERATIONS").ok().and_then(|n| n.parse().ok());
    let filter = args.iter().find(|a| a.parse::<f64>().is_err());
    let out = std::path::PathBuf::from(std::env::var("BENCH_OUT").unwrap_or_else(|_| "target/bench".into()));
    std::fs::create_dir_all(out.join("cases")).expect("create the output directory");
    let config = Config::default();
    let mut results = Vec::new();
    println!(
        "{:<22} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "review", "bytes", "n", "mean", "p50", "p90", "p99", "max"
    );
    for (name, body) in cases() {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        std::fs::write(out.join("cases").join(format!("{name}.json")), &body).expect("write the body");
        if let Some(n) = iterations {
            for _ in 0..n {
                black_box(review_once(black_box(&body), &config));
            }
            continue;
        }
        let budget = Duration::from_secs_f64(seconds);
        // Warm-up: a tenth of the budget.
        let warm = Instant::now();
        while warm.elapsed() < budget / 10 {
            black_box(review_once(black_box(&body), &config));
        }
        let mut samples: Vec<Duration> = Vec::with_capacity(1 << 16);
        let start = Instant::now();
        while start.elapsed() < budget || samples.len() < 100 {
            let t = Instant::now();
            black_box(review_once(black_box(&body), &config));
            samples.push(t.elapsed());
        }
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let pct = |p: f64| us(samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1]);
        let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
        let (p50, p90, p99, max) = (pct(0.50), pct(0.90), pct(0.99), pct(1.0));
        println!(
            "{name:<22} {:>9} {:>8} {:>8.1}µs {:>8.1}µs {:>8.1}µs {:>8.1}µs {:>8.1}µs",
            body.len(),
            samples.len(),
            mean,
            p50,
            p90,
            p99,
            max
        );
        results.push(serde_json::json!({
            "name": name, "bytes": body.len(), "samples": samples.len(),
            "mean_us": round(mean), "p50_us": round(p50), "p90_us": round(p90), "p99_us": round(p99), "max_us": round(max),
        }));
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "review_latency": results })).expect("serialize");
    std::fs::write(out.join("review_latency.json"), json + "\n").expect("write the results");
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
