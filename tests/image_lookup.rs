//! The image lookup of `identity: auto` against a registry on loopback
//! (`tests/registry`): what it finds, what it caches, and every refusal of
//! the egress guard. Network: 127.0.0.1 only; the refused addresses are
//! never connected to (the guard refuses them first).

mod registry;

use registry::{docker_config, Auth, Registry};
use secure_defaults::config::image_lookup::{ImageLookup, Span};
use secure_defaults::images::credentials::Credentials;
use secure_defaults::images::{FailureKind, Looked, Resolver};
use std::time::{Duration, Instant};

fn settings(registry: &Registry) -> ImageLookup {
    ImageLookup {
        insecure_registries: vec![registry.host(), format!("localhost:{}", registry.port)],
        max_response_bytes: 64 * 1024,
        ..ImageLookup::default()
    }
}

async fn one(resolver: &Resolver, image: &str, creds: &Credentials) -> Looked {
    let mut all = resolver.lookup_all([image], creds, Duration::from_secs(2)).await;
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn failure(l: &Looked) -> (FailureKind, String) {
    match &l.answer {
        Err(f) => (f.kind, f.message.clone()),
        Ok(user) => panic!("{}: found user {user:?}, expected a failure", l.image),
    }
}

fn user(l: &Looked) -> &str {
    match &l.answer {
        Ok(user) => user,
        Err(f) => panic!("{}: {f:?}", l.image),
    }
}

#[tokio::test]
async fn finds_the_user_then_answers_from_the_cache() {
    let reg = Registry::start().await;
    let resolver = Resolver::new(settings(&reg)).unwrap();
    let none = Credentials::default();
    let first = one(&resolver, &reg.image("app"), &none).await;
    assert_eq!((user(&first), first.result()), ("1000:1000", "fetched"));
    let fetches = reg.fetches();
    assert_eq!(fetches, 2, "manifest and config: {:?}", reg.requests.lock().unwrap());
    let second = one(&resolver, &reg.image("app"), &none).await;
    assert_eq!((user(&second), second.result()), ("1000:1000", "hit"));
    assert_eq!(reg.fetches(), fetches, "a hit makes no request");
    assert_eq!(user(&one(&resolver, &reg.image("root"), &none).await), "");
    assert_eq!(user(&one(&resolver, &reg.image("named"), &none).await), "nginx");
}

#[tokio::test]
async fn over_https_through_connect_with_credentials() {
    let (reg, ca) = Registry::start_tls(Auth::Basic).await;
    let resolver = Resolver::with_roots(ImageLookup::default(), vec![ca]).unwrap();
    let mut creds = Credentials::default();
    creds
        .add_docker_config(docker_config(&reg.host()).as_bytes(), false)
        .unwrap();
    let found = one(&resolver, &reg.image("app"), &creds).await;
    assert_eq!(user(&found), "1000:1000");
    let (kind, why) = failure(&one(&resolver, &reg.image("redirect"), &creds).await);
    assert_eq!(kind, FailureKind::Refused, "{why}");
    assert!(
        why.contains(&format!("connection to localhost:{} refused", reg.port)),
        "{why}"
    );
}

#[tokio::test]
async fn digest_references_and_index_resolution() {
    let reg = Registry::start().await;
    let resolver = Resolver::new(settings(&reg)).unwrap();
    let none = Credentials::default();
    let by_digest = format!("{}/app@{}", reg.host(), reg.manifests["app"]);
    assert_eq!(user(&one(&resolver, &by_digest, &none).await), "1000:1000");
    let wanted = format!("/v2/app/manifests/{}", reg.manifests["app"]);
    assert!(
        reg.requests.lock().unwrap().contains(&wanted),
        "{:?}",
        reg.requests.lock().unwrap()
    );
    // The index: linux on this machine's architecture, not windows or another arch.
    assert_eq!(user(&one(&resolver, &reg.image("multi"), &none).await), "2000");
}

#[tokio::test]
async fn concurrent_lookups_share_one_request() {
    let reg = Registry::start().await;
    let resolver = Resolver::new(settings(&reg)).unwrap();
    let none = Credentials::default();
    let image = reg.image("app");
    let (a, b) = tokio::join!(one(&resolver, &image, &none), one(&resolver, &image, &none));
    assert_eq!((user(&a), user(&b)), ("1000:1000", "1000:1000"));
    assert_eq!(reg.fetches(), 2, "{:?}", reg.requests.lock().unwrap());
}

#[tokio::test]
async fn basic_auth_401_without_credentials_then_success_with_them() {
    let reg = Registry::start_with(Auth::Basic, "127.0.0.1").await;
    let resolver = Resolver::new(settings(&reg)).unwrap();
    let none = Credentials::default();
    let (kind, why) = failure(&one(&resolver, &reg.image("app"), &none).await);
    assert_eq!(kind, FailureKind::Failed);
    assert!(why.contains("401"), "{why}");
    // Negative cache: the failure is answered again without a request.
    let before = reg.count();
    let again = one(&resolver, &reg.image("app"), &none).await;
    assert_eq!(failure(&again).0, FailureKind::Failed);
    assert_eq!(reg.count(), before, "a cached failure makes no request");

    let mut creds = Credentials::default();
    creds
        .add_docker_config(docker_config(&reg.host()).as_bytes(), false)
        .unwrap();
    let found = one(&resolver, &reg.image("app"), &creds).await;
    assert_eq!((user(&found), found.result()), ("1000:1000", "fetched"));
}

#[tokio::test]
async fn bearer_token_flow() {
    let reg = Registry::start_with(Auth::Bearer, "127.0.0.1").await;
    let resolver = Resolver::new(settings(&reg)).unwrap();
    let mut creds = Credentials::default();
    creds
        .add_docker_config(docker_config(&reg.host()).as_bytes(), false)
        .unwrap();
    assert_eq!(user(&one(&resolver, &reg.image("app"), &creds).await), "1000:1000");
    assert!(reg.requests.lock().unwrap().iter().any(|p| p.starts_with("/token?")));
    // Another pod without the credentials does not borrow the token.
    let none = Credentials::default();
    assert!(one(&resolver, &reg.image("app"), &none).await.answer.is_err());
}

#[tokio::test]
async fn token_realm_on_another_host_needs_extra_hosts() {
    let reg = Registry::start_with(Auth::Bearer, "localhost").await;
    let mut creds = Credentials::default();
    creds
        .add_docker_config(docker_config(&reg.host()).as_bytes(), false)
        .unwrap();
    let resolver = Resolver::new(settings(&reg)).unwrap();
    let (kind, why) = failure(&one(&resolver, &reg.image("app"), &creds).await);
    assert_eq!(kind, FailureKind::Refused, "{why}");
    assert!(
        why.contains(&format!("localhost:{} refused: not an allowed host", reg.port)),
        "{why}"
    );
    assert!(!reg.requests.lock().unwrap().iter().any(|p| p.starts_with("/token")));

    let allowed = Resolver::new(ImageLookup {
        extra_hosts: vec![format!("localhost:{}", reg.port)],
        ..settings(&reg)
    })
    .unwrap();
    assert_eq!(user(&one(&allowed, &reg.image("app"), &creds).await), "1000:1000");
}

#[tokio::test]
async fn redirect_to_another_host_is_refused() {
    let reg = Registry::start().await;
    let resolver = Resolver::new(settings(&reg)).unwrap();
    let (kind, why) = failure(&one(&resolver, &reg.image("redirect"), &Credentials::default()).await);
    assert_eq!(kind, FailureKind::Refused, "{why}");
    assert!(
        why.contains(&format!(
            "connection to localhost:{} refused: not an allowed host",
            reg.port
        )),
        "{why}"
    );
    assert!(
        !reg.requests.lock().unwrap().iter().any(|p| p == "/v2/app/manifests/1"),
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn registry_not_in_the_list_is_not_contacted() {
    let reg = Registry::start().await;
    let resolver = Resolver::new(ImageLookup {
        registries: vec!["registry.example".to_string()],
        ..settings(&reg)
    })
    .unwrap();
    let (kind, why) = failure(&one(&resolver, &reg.image("app"), &Credentials::default()).await);
    assert_eq!(kind, FailureKind::Refused);
    assert!(why.contains("not in imageLookup.registries"), "{why}");
    assert_eq!(reg.count(), 0);
}

#[tokio::test]
async fn link_local_and_metadata_addresses_are_refused() {
    let resolver = Resolver::new(ImageLookup {
        insecure_registries: vec!["169.254.169.254:5000".to_string()],
        ..ImageLookup::default()
    })
    .unwrap();
    let none = Credentials::default();
    for (image, want) in [
        // Plain HTTP (absolute-form request) and HTTPS (CONNECT). IPv6
        // literals are no image references; vet.rs tests those addresses.
        ("169.254.169.254:5000/x:1", "169.254.169.254 is a link-local address"),
        ("169.254.169.254/x:1", "169.254.169.254 is a link-local address"),
        ("100.100.100.200/x:1", "100.100.100.200 is a cloud metadata address"),
    ] {
        let (kind, why) = failure(&one(&resolver, image, &none).await);
        assert_eq!((kind, why.as_str()), (FailureKind::Refused, want), "{image}");
    }
}

#[tokio::test]
async fn oversized_manifest_and_config_are_cut() {
    let reg = Registry::start().await;
    let resolver = Resolver::new(settings(&reg)).unwrap();
    for repo in ["bigmanifest", "bigconfig"] {
        let (kind, why) = failure(&one(&resolver, &reg.image(repo), &Credentials::default()).await);
        assert_eq!(kind, FailureKind::Refused, "{repo}: {why}");
        assert_eq!(
            why, "response larger than 64 KiB (imageLookup.maxResponseBytes)",
            "{repo}"
        );
    }
}

#[tokio::test]
async fn registry_down_is_a_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let resolver = Resolver::new(ImageLookup {
        insecure_registries: vec![format!("127.0.0.1:{port}")],
        ..ImageLookup::default()
    })
    .unwrap();
    let (kind, why) = failure(&one(&resolver, &format!("127.0.0.1:{port}/x:1"), &Credentials::default()).await);
    assert_eq!(kind, FailureKind::Failed);
    assert!(why.starts_with(&format!("cannot connect to 127.0.0.1:{port}")), "{why}");
}

#[tokio::test]
async fn slow_registry_times_out_within_the_budget_and_fills_nothing_late() {
    let reg = Registry::start().await;
    let resolver = Resolver::new(settings(&reg)).unwrap();
    let budget = Duration::from_millis(300);
    let started = Instant::now();
    let looked = resolver
        .lookup_all(
            [reg.image("slow").as_str(), reg.image("app").as_str()],
            &Credentials::default(),
            budget,
        )
        .await;
    let elapsed = started.elapsed();
    assert!(elapsed < budget + Duration::from_millis(200), "{elapsed:?}");
    let slow = looked.iter().find(|l| l.image.contains("/slow")).unwrap();
    assert_eq!(
        failure(slow),
        (FailureKind::Timeout, format!("timed out after {}", Span(budget)))
    );
    assert_eq!(slow.result(), "timeout");
    let app = looked.iter().find(|l| l.image.contains("/app")).unwrap();
    assert_eq!(user(app), "1000:1000", "a fast image is not held up by a slow one");
}

mod webhook {
    //! Through the webhook's handler (actix-web's test service): the lookup
    //! runs before the review, within the budget, and is counted.

    use super::*;
    use actix_web::{test, web, App};
    use base64::Engine as _;
    use secure_defaults::config::Config;
    use secure_defaults::engine::baseline::IdentityMode;
    use secure_defaults::server::images::ImageService;
    use secure_defaults::server::{admin_routes, webhook_routes, AppState};
    use serde_json::{json, Value};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    fn review(operation: &str, images: &[String]) -> Vec<u8> {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect();
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p", "namespace": "team-a", "operation": operation,
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team-a"},
                       "spec": {"containers": containers}}
        }})
        .to_string()
        .into_bytes()
    }

    fn state(reg: &Registry, identity: IdentityMode, timeout: Duration) -> web::Data<AppState> {
        let mut config = Config::default();
        config.baseline.identity = identity;
        config.image_lookup = ImageLookup {
            timeout: Span(timeout),
            ..settings(reg)
        };
        let resolver = Resolver::new(config.image_lookup.clone()).unwrap();
        let mut state = AppState::new(config, Duration::from_secs(10));
        state.images = Some(Arc::new(ImageService {
            resolver,
            pull_secrets: None,
        }));
        state.ready.store(true, Ordering::SeqCst);
        web::Data::new(state)
    }

    async fn post(state: &web::Data<AppState>, body: Vec<u8>) -> (Value, Duration) {
        let app = test::init_service(App::new().configure(webhook_routes(state.clone()))).await;
        let started = Instant::now();
        let req = test::TestRequest::post()
            .uri("/mutate?timeout=5s")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body)
            .to_request();
        let resp = test::call_service(&app, req).await;
        let elapsed = started.elapsed();
        let body: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
        (body["response"].clone(), elapsed)
    }

    async fn metrics(state: &web::Data<AppState>) -> String {
        let admin = test::init_service(App::new().configure(admin_routes(state.clone()))).await;
        let resp = test::call_service(&admin, test::TestRequest::get().uri("/metrics").to_request()).await;
        String::from_utf8(test::read_body(resp).await.to_vec()).unwrap()
    }

    #[actix_web::test]
    async fn slow_registry_admission_answers_within_the_budget() {
        let reg = Registry::start().await;
        let state = state(&reg, IdentityMode::Auto, Duration::from_millis(400));
        let (response, elapsed) = post(&state, review("CREATE", &[reg.image("slow"), reg.image("app")])).await;
        assert_eq!(response["allowed"], true, "{response}");
        assert!(elapsed < Duration::from_millis(400 + 300), "{elapsed:?}");
        let warnings = response["warnings"].to_string();
        assert!(
            warnings.contains(&format!(
                "could not be looked up: 127.0.0.1:{}: timed out after 400ms",
                reg.port
            )),
            "{warnings}"
        );
        let patch: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(response["patch"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        let context = |i: usize| {
            let path = format!("/spec/containers/{i}/securityContext");
            let op = patch.as_array().unwrap().iter().find(|op| op["path"] == path.as_str());
            op.map(|op| (op["value"]["runAsUser"].clone(), op["value"]["runAsGroup"].clone()))
        };
        // The fast image's own user; the slow one's the fallback (uid).
        assert_eq!(context(1), Some((json!(1000), json!(1000))), "{patch}");
        assert_eq!(context(0), Some((json!(65532), json!(65532))), "{patch}");
        let text = metrics(&state).await;
        assert!(
            text.contains(r#"secure_defaults_image_lookups_total{result="timeout"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"secure_defaults_image_lookups_total{result="fetched"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("secure_defaults_image_lookup_duration_seconds_count 2"),
            "{text}"
        );
    }

    #[actix_web::test]
    async fn no_lookup_unless_auto_and_a_pod_create() {
        let reg = Registry::start().await;
        let uid = state(&reg, IdentityMode::Uid, Duration::from_secs(2));
        post(&uid, review("CREATE", &[reg.image("app")])).await;
        let auto = state(&reg, IdentityMode::Auto, Duration::from_secs(2));
        post(&auto, review("UPDATE", &[reg.image("app")])).await;
        assert_eq!(reg.count(), 0, "{:?}", reg.requests.lock().unwrap());
        post(&auto, review("CREATE", &[reg.image("app")])).await;
        post(&auto, review("CREATE", &[reg.image("app")])).await;
        let text = metrics(&auto).await;
        assert!(
            text.contains(r#"secure_defaults_image_lookups_total{result="hit"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"secure_defaults_image_lookups_total{result="fetched"} 1"#),
            "{text}"
        );
    }
}

mod cli {
    //! `mutate`: no network access at all without `--resolve-images`.

    use super::*;

    async fn mutate(reg: &Registry, extra: &[&str]) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "baseline: {{identity: auto}}\nimageLookup: {{insecureRegistries: [\"{}\"]}}\n",
                reg.host()
            ),
        )
        .unwrap();
        let pod = dir.path().join("pod.yaml");
        std::fs::write(
            &pod,
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: a, image: \"{}\"}}]\n",
                reg.image("app")
            ),
        )
        .unwrap();
        let mut args: Vec<String> = [
            "mutate",
            "-f",
            pod.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
                .args(&args)
                // No Docker config of the machine's: the test's own only.
                .env("DOCKER_CONFIG", dir.path())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    #[tokio::test]
    async fn mutate_looks_images_up_only_when_asked() {
        let reg = Registry::start().await;
        mutate(&reg, &[]).await;
        assert_eq!(reg.count(), 0, "mutate without --resolve-images made requests");
        mutate(&reg, &["--resolve-images"]).await;
        assert_eq!(reg.fetches(), 2, "{:?}", reg.requests.lock().unwrap());
    }
}
