//! `scan --resolve-images` against a registry on loopback (`tests/registry`):
//! the scanner's pods' images looked up through the shared batch lookup,
//! as `cli::scan` does, change the IDENTITY cell; without the lookup no
//! request reaches the registry and the summary says so. Network: 127.0.0.1
//! only. The CLI against a real API server is in e2e/tests/migration.rs.

mod registry;

use registry::{Auth, Registry};
use secure_defaults::config::image_lookup::{ImageLookup, Span};
use secure_defaults::config::Config;
use secure_defaults::images::batch::{self, Group};
use secure_defaults::images::Resolver;
use secure_defaults::policy::namespace::NamespaceInfo;
use secure_defaults::policy::scan::{self, ImageLookups, Report, Scanner};
use serde_json::{json, Value};
use std::time::Duration;

fn config(reg: &Registry) -> Config {
    let mut config = Config::from_yaml("baseline: {identity: auto}", "test").unwrap();
    config.image_lookup = ImageLookup {
        insecure_registries: vec![reg.host()],
        timeout: Span(Duration::from_secs(2)),
        ..ImageLookup::default()
    };
    config
}

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"template": {"spec": {
            "serviceAccountName": "builder",
            "imagePullSecrets": [{"name": "regcred"}],
            "containers": [{"name": "app", "image": image}]}}}
    })
}

/// What `cli::scan` does: a pass for the images, the lookups, then the scan.
async fn scan(config: &Config, objects: &[Value], resolve: Option<(&Resolver, Duration)>) -> Report {
    let mut scanner = Scanner::new(config, true);
    scanner.namespace(&NamespaceInfo {
        name: "shop".to_string(),
        ..NamespaceInfo::default()
    });
    if let Some((resolver, overall)) = resolve {
        let mut group = Group::default();
        for o in objects {
            let pod = scanner.images_to_look_up(o).expect("auto: images to look up");
            assert_eq!(
                (pod.namespace.as_str(), pod.service_account.as_str()),
                ("shop", "builder")
            );
            assert_eq!(pod.pull_secrets, ["regcred"]);
            group.images.extend(pod.images);
        }
        let outcome = batch::lookup_with(resolver, vec![group], overall).await;
        let lookups = ImageLookups {
            looked_up: outcome.looked_up,
            failed: outcome.failed,
        };
        scanner.images(outcome.facts, lookups);
    }
    for o in objects {
        scanner.object(o);
    }
    scanner.finish()
}

fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("deployment/{name} ")))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"))
}

#[tokio::test]
async fn the_identity_cell_shows_the_images_user_only_when_resolved() {
    let reg = Registry::start().await;
    let config = config(&reg);
    let objects = [deployment("web", &reg.image("app"))];

    let without = scan(&config, &objects, None).await;
    let table = scan::table(&without);
    assert_eq!(reg.count(), 0, "no registry request without --resolve-images");
    assert!(row(&table, "web").contains("(fallback)"), "{table}");
    assert!(
        table.contains("1 container(s) got identityFallback because their images were not looked up"),
        "{table}"
    );
    assert_eq!(without.not_looked_up(), 1);
    assert!(serde_json::to_value(&without).unwrap().get("imageLookup").is_none());

    let resolver = Resolver::new(config.image_lookup.clone()).unwrap();
    let with = scan(&config, &objects, Some((&resolver, Duration::from_secs(10)))).await;
    let table = scan::table(&with);
    assert!(reg.fetches() > 0);
    let cell = row(&table, "web");
    assert!(cell.contains("auto: image") && !cell.contains("fallback"), "{table}");
    assert!(table.contains("identity: auto: 1 image looked up, 0 failed"), "{table}");
    assert_eq!(with.not_looked_up(), 0);
    let json = serde_json::to_value(&with).unwrap();
    assert_eq!(json["imageLookup"], json!({"lookedUp": 1, "failed": {}}));
}

#[tokio::test]
async fn failures_and_the_overall_budget_are_named_and_fall_back() {
    let reg = Registry::start_with(Auth::Anonymous, "127.0.0.1").await;
    let config = config(&reg);
    let objects = [
        deployment("web", &reg.image("app")),
        deployment("slow", &reg.image("slow")),
        deployment("gone", &reg.image("nosuchrepo")),
    ];
    let resolver = Resolver::new(config.image_lookup.clone()).unwrap();
    let started = std::time::Instant::now();
    // Below the per-image 2s: the overall budget ends the slow lookup.
    let report = scan(&config, &objects, Some((&resolver, Duration::from_secs(1)))).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let table = scan::table(&report);
    assert!(!row(&table, "web").contains("fallback"), "{table}");
    assert!(row(&table, "slow").contains("(fallback)"), "{table}");
    assert!(row(&table, "gone").contains("(fallback)"), "{table}");
    assert!(table.contains("3 images looked up, 2 failed"), "{table}");
    let slow = format!("  {}: timeout: timed out after 1s", reg.image("slow"));
    assert!(table.lines().any(|l| l == slow), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&format!("  {}: failed: ", reg.image("nosuchrepo")))),
        "{table}"
    );
}
