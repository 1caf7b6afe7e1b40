//! The cost of `identity: auto` on one review, against a registry on
//! loopback (`tests/registry`, plain HTTP through the egress guard): each
//! review through the webhook's handler in process (actix-web's test
//! service, no TLS), timed on its own; medians, and ratios to `uid` from the
//! same run.
//!
//! - `uid`: no image lookup configured (today's path);
//! - `uid, lookup present`: the lookup configured (namespaces may choose
//!   `auto`), this pod's identity `uid`: what the lookup costs other pods;
//! - `auto, warm`: the image answered from the cache;
//! - `auto, cold`: a new tag each review, so a manifest and a config fetched.
//!
//! `cargo bench --bench image_lookup [-- N]`: N reviews per case (default 2000; cold: N/10).

#[path = "../tests/registry/mod.rs"]
mod registry;

use actix_web::{test, web, App};
use registry::Registry;
use secure_defaults::config::image_lookup::ImageLookup;
use secure_defaults::config::Config;
use secure_defaults::engine::baseline::IdentityMode;
use secure_defaults::images::Resolver;
use secure_defaults::server::images::ImageService;
use secure_defaults::server::{webhook_routes, AppState};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn review(image: &str) -> Vec<u8> {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "p", "namespace": "team-a", "operation": "CREATE",
        "userInfo": {"username": "alice"},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team-a"},
                   "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]}}
    }})
    .to_string()
    .into_bytes()
}

fn state(reg: &Registry, identity: IdentityMode, lookup: bool) -> web::Data<AppState> {
    let mut config = Config::default();
    config.baseline.identity = identity;
    config.image_lookup = ImageLookup {
        insecure_registries: vec![reg.host()],
        ..ImageLookup::default()
    };
    let mut state = AppState::new(config.clone(), Duration::from_secs(10));
    if lookup {
        state.images = Some(Arc::new(ImageService {
            resolver: Resolver::new(config.image_lookup).unwrap(),
            pull_secrets: None,
        }));
    }
    state.ready.store(true, Ordering::SeqCst);
    web::Data::new(state)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000);
    actix_rt::System::new().block_on(async move {
        let reg = Registry::start().await;
        let mut results: Vec<(&str, Duration)> = Vec::new();
        let cases: [(&str, IdentityMode, bool, bool); 4] = [
            ("uid", IdentityMode::Uid, false, false),
            ("uid, lookup present", IdentityMode::Uid, true, false),
            ("auto, warm", IdentityMode::Auto, true, false),
            ("auto, cold", IdentityMode::Auto, true, true),
        ];
        for (name, identity, lookup, cold) in cases {
            let state = state(&reg, identity, lookup);
            let app = test::init_service(App::new().configure(webhook_routes(state.clone()))).await;
            let runs = if cold { n / 10 } else { n };
            let mut times = Vec::with_capacity(runs);
            // One review first: warms the cache (and the allocator) for the warm case.
            for i in 0..=runs {
                let image = if cold {
                    format!("{}/app:{i}", reg.host())
                } else {
                    reg.image("app")
                };
                let req = test::TestRequest::post()
                    .uri("/mutate?timeout=10s")
                    .insert_header(("Content-Type", "application/json"))
                    .set_payload(review(&image))
                    .to_request();
                let started = Instant::now();
                let resp = test::call_service(&app, req).await;
                let body = test::read_body(resp).await;
                let elapsed = started.elapsed();
                assert!(body.windows(14).any(|w| w == br#""allowed":true"#), "{body:?}");
                if i > 0 {
                    times.push(elapsed);
                }
            }
            results.push((name, median(times)));
        }
        let base = results[0].1.as_secs_f64();
        println!("{:<22} {:>12} {:>8}", "review (median)", "time", "ratio");
        for (name, t) in &results {
            println!(
                "{name:<22} {:>9.1} µs {:>8.2}",
                t.as_secs_f64() * 1e6,
                t.as_secs_f64() / base
            );
        }
    });
}
