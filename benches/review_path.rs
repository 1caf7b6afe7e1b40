//! The review path, as the server runs it for one request: parse the
//! AdmissionReview bytes, run the admission layer (engine and patch), and
//! serialize the answer. Run with `make bench` (or `cargo bench --bench review_path`).

mod common;

use common::{cases, review_once};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use secure_defaults::config::Config;
use std::hint::black_box;

fn review_path(c: &mut Criterion) {
    let config = Config::default();
    let mut group = c.benchmark_group("review_path");
    for (name, body) in cases() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new(name, format!("{} KiB", body.len() / 1024)),
            &body,
            |b, body| b.iter(|| black_box(review_once(black_box(body), &config))),
        );
    }
    group.finish();
}

criterion_group!(benches, review_path);
criterion_main!(benches);
