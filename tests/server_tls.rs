//! The webhook over real TLS sockets on loopback: ALPN, the happy path,
//! ephemeral containers, bad and slow clients, certificate rotation through a
//! kubelet-style `..data` symlink, and graceful shutdown.

mod common;

use base64::Engine as _;
use common::*;
use secure_defaults::server::tls::{CertSource, PemPair};
use secure_defaults::server::{self, Settings};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn patch_paths(answer: &Answer) -> Vec<String> {
    let response = &answer.json()["response"];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("a base64 patch"))
        .expect("base64");
    let ops: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
    ops.iter().map(|op| op["path"].as_str().unwrap().to_string()).collect()
}

#[actix_web::test]
async fn serves_http11_by_alpn_and_patches_the_example_pod() {
    let server = TestServer::start(|_| {}).await;
    let tls = server.connect().await;
    // The client offers h2 first, as Go's does; the webhook answers HTTP/1.1.
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(served_cert(&tls), der(&server.cert.serving.cert));
    let mut h1 = H1::new(tls).await;
    let answer = h1.post("/mutate?timeout=10s", example_review()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(patch_paths(&answer).len(), 4);
    // The connection is kept alive for the next review.
    for _ in 0..5 {
        assert_eq!(h1.post("/mutate", example_review()).await.status, 200);
    }
    let (status, metrics) = admin_get(server.running.admin_addr(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"secure_defaults_admission_requests_total{operation="CREATE",outcome="patched",mode="enforce"} 6"#
        ),
        "{metrics}"
    );
    server.running.shutdown().await;
}

#[actix_web::test]
async fn http2_only_when_asked_for() {
    let server = TestServer::start(|_| {}).await;
    let h2_only = client_config(&[&server.cert.ca_pem], &[b"h2"]);
    assert!(
        try_connect(server.addr(), h2_only).await.is_err(),
        "an h2-only client must not get a connection by default"
    );
    server.running.shutdown().await;

    let server = TestServer::start(|s| s.http2 = true).await;
    let h2_only = client_config(&[&server.cert.ca_pem], &[b"h2"]);
    let tls = connect(server.addr(), h2_only).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post("https://localhost/mutate")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(example_review())))
        .unwrap();
    let resp = within(STEP, "h2 request", sender.send_request(req))
        .await
        .expect("h2 answer");
    assert_eq!(resp.status(), 200);
    // Closed by the client: actix-http sends no GOAWAY on a graceful stop, so
    // an open HTTP/2 connection would hold shutdown for the whole shutdown timeout.
    drop((resp, sender));
    within(STEP, "h2 connection closed", conn).await.unwrap().unwrap();
    server.running.shutdown().await;
}

#[actix_web::test]
async fn hardens_only_new_ephemeral_containers() {
    let server = TestServer::start(|_| {}).await;
    let pod = |ephemeral: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"containers": [{"name": "app", "image": "nginx"}], "ephemeralContainers": ephemeral}})
    };
    let old = pod(json!([{"name": "debugger-a", "image": "busybox"}]));
    let new = pod(json!([{"name": "debugger-a", "image": "busybox"}, {"name": "debugger-b", "image": "busybox"}]));
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "e0a4b1f2-0000-4000-8000-000000000001",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "subResource": "ephemeralcontainers",
        "name": "web", "namespace": "shop", "operation": "UPDATE",
        "userInfo": {"username": "alice"},
        "object": new, "oldObject": old, "dryRun": false,
        "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}}});
    let mut h1 = H1::new(server.connect().await).await;
    let answer = h1.post("/mutate?timeout=10s", review.to_string().into_bytes()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(patch_paths(&answer), ["/spec/ephemeralContainers/1/securityContext"]);
    server.running.shutdown().await;
}

#[actix_web::test]
async fn bad_requests_get_one_line_answers_and_good_ones_keep_working() {
    let server = TestServer::start(|_| {}).await;

    // On one kept-alive connection: empty, not JSON, not a review, deeply nested.
    let mut h1 = H1::new(server.connect().await).await;
    let nested = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","object":{}{}}}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    for (body, expected) in [
        (Vec::new(), "empty body"),
        (b"GET / HTTP/1.0".to_vec(), "body is not JSON"),
        (b"[1, 2]".to_vec(), "body is not an AdmissionReview"),
        (nested.into_bytes(), "recursion limit exceeded"),
    ] {
        let answer = h1.post("/mutate", body).await;
        assert_eq!(answer.status, 400, "{}", answer.text());
        assert!(answer.text().contains(expected), "{}", answer.text());
        assert_eq!(answer.text().lines().count(), 1);
    }
    assert_eq!(h1.post("/mutate", example_review()).await.status, 200);

    // A review whose Pod cannot be read: answered with a review, allowed, with a warning.
    let mut review: Value = serde_json::from_slice(&example_review()).unwrap();
    review["request"]["object"]["spec"]["containers"] = json!({"not": "a list"});
    let answer = h1.post("/mutate", review.to_string().into_bytes()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let response = &answer.json()["response"];
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("patch"), None);
    assert!(
        response["warnings"][0].as_str().unwrap().contains("pod not hardened"),
        "{response}"
    );

    // Wrong Content-Type.
    let mut h1 = H1::new(server.connect().await).await;
    let answer = h1
        .try_post("/mutate", "application/yaml", example_review())
        .await
        .unwrap();
    assert_eq!(answer.status, 415, "{}", answer.text());

    // Declared too large: refused before the body is sent.
    let mut tls = server.connect().await;
    write_all(&mut tls, request_head("application/json", 8 * 1024 * 1024).as_bytes())
        .await
        .unwrap();
    let raw = read_until_closed(&mut tls, STEP).await;
    assert_eq!(status_of(&raw), Some(413), "{}", String::from_utf8_lossy(&raw));

    // Too large without a length: chunked, refused once 7 MiB have arrived.
    let mut tls = server.connect().await;
    let head = "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    write_all(&mut tls, head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 1024 * 1024, " ".repeat(1024 * 1024));
    for _ in 0..8 {
        if write_all(&mut tls, chunk.as_bytes()).await.is_err() {
            break; // the server answered and closed
        }
    }
    let raw = read_until_closed(&mut tls, STEP).await;
    assert_eq!(status_of(&raw), Some(413), "{}", String::from_utf8_lossy(&raw));

    // Still serving.
    let mut h1 = H1::new(server.connect().await).await;
    assert_eq!(h1.post("/mutate", example_review()).await.status, 200);
    let (_, metrics) = admin_get(server.running.admin_addr(), "/metrics").await;
    assert!(
        metrics.contains(r#"secure_defaults_errors_total{kind="payload_too_large"} 2"#),
        "{metrics}"
    );
    server.running.shutdown().await;
}

#[actix_web::test]
async fn slow_and_idle_clients_are_cut_off_while_good_ones_are_served() {
    let server = TestServer::start(|s| {
        s.handshake_timeout = Duration::from_millis(500);
        s.header_timeout = Duration::from_millis(500);
        s.body_timeout = Duration::from_millis(800);
    })
    .await;
    let addr = server.addr();

    // Idle TCP without a TLS handshake, TLS without headers, half headers, half a body.
    let mut no_handshake = Vec::new();
    let mut slow = Vec::new();
    let mut slow_body = Vec::new();
    for _ in 0..5 {
        no_handshake.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        slow.push(server.connect().await);
        let mut half_headers = server.connect().await;
        write_all(&mut half_headers, b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        slow.push(half_headers);
        let mut half_body = server.connect().await;
        write_all(&mut half_body, request_head("application/json", 1000).as_bytes())
            .await
            .unwrap();
        write_all(&mut half_body, b"{\"apiVersion\":").await.unwrap();
        slow_body.push(half_body);
        let mut half_chunked = server.connect().await;
        let head = "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        write_all(&mut half_chunked, head.as_bytes()).await.unwrap();
        write_all(&mut half_chunked, b"20\r\n{\"apiVersion\":").await.unwrap();
        slow_body.push(half_chunked);
    }

    // Meanwhile, good reviews on fresh connections are answered promptly.
    for _ in 0..10 {
        let started = Instant::now();
        let mut h1 = H1::new(server.connect().await).await;
        assert_eq!(h1.post("/mutate", example_review()).await.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }

    for mut tcp in no_handshake {
        read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    }
    for mut tls in slow {
        let raw = read_until_closed(&mut tls, Duration::from_secs(3)).await;
        assert!(
            raw.is_empty() || status_of(&raw) == Some(408),
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
    for mut tls in slow_body {
        let raw = read_until_closed(&mut tls, Duration::from_secs(3)).await;
        assert_eq!(status_of(&raw), Some(408), "{}", String::from_utf8_lossy(&raw));
        assert!(String::from_utf8_lossy(&raw).contains("body not received within 800 ms"));
    }
    server.running.shutdown().await;
}

#[actix_web::test]
async fn the_api_server_timeout_bounds_the_body_read() {
    let server = TestServer::start(|s| s.body_timeout = Duration::from_secs(10)).await;
    let mut tls = server.connect().await;
    let head = "POST /mutate?timeout=300ms HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    let started = Instant::now();
    write_all(&mut tls, head.as_bytes()).await.unwrap();
    let raw = read_until_closed(&mut tls, Duration::from_secs(3)).await;
    let elapsed = started.elapsed();
    assert_eq!(status_of(&raw), Some(408), "{}", String::from_utf8_lossy(&raw));
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    server.running.shutdown().await;
}

#[actix_web::test]
async fn idle_connections_are_kept_open_for_the_keep_alive_time() {
    let server = TestServer::start(|s| s.keep_alive = Duration::from_millis(400)).await;
    let mut tls = server.connect().await;
    let body = example_review();
    write_all(&mut tls, request_head("application/json", body.len()).as_bytes())
        .await
        .unwrap();
    write_all(&mut tls, &body).await.unwrap();
    // Answered, then closed by the server once idle for the keep-alive time.
    let started = Instant::now();
    let raw = read_until_closed(&mut tls, Duration::from_secs(3)).await;
    assert_eq!(status_of(&raw), Some(200));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    server.running.shutdown().await;

    // The default outlives the API server's 90 s idle connections.
    assert_eq!(
        Settings::new(CertSource::Pem(server.cert.serving.clone()), Default::default()).keep_alive,
        Duration::from_secs(120)
    );
}

/// TCP_NODELAY on each connection the server at `addr` accepted, read off the
/// server's own sockets (this process's file descriptors): deterministic,
/// where timing depends on the build and the machine.
fn server_side_nodelay(addr: SocketAddr) -> Vec<bool> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: only borrowed to read socket options while the connections
        // are held open by this test; a descriptor closed meanwhile makes the calls fail.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let (Ok(local), Ok(_peer)) = (socket.local_addr(), socket.peer_addr()) else {
            continue;
        };
        if local.as_socket() == Some(addr) {
            found.push(socket.tcp_nodelay().expect("TCP_NODELAY readable"));
        }
    }
    found
}

#[actix_web::test]
async fn accepted_sockets_have_tcp_nodelay_and_requests_do_not_stall() {
    for http2 in [false, true] {
        // With HTTP/2 on, the other acceptor path (HTTP/1.1 still, for this client).
        let server = TestServer::start(|s| s.http2 = http2).await;
        let client = client_config(&[&server.cert.ca_pem], &[b"http/1.1"]);
        let mut first = Vec::new();
        let mut next = Vec::new();
        let mut open = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            let mut h1 = H1::new(connect(server.addr(), client.clone()).await).await;
            assert_eq!(h1.post("/mutate", example_review()).await.status, 200);
            first.push(started.elapsed());
            for _ in 0..10 {
                let started = Instant::now();
                assert_eq!(h1.post("/mutate", example_review()).await.status, 200);
                next.push(started.elapsed());
            }
            open.push(h1);
        }
        assert_eq!(server_side_nodelay(server.addr()), [true; 10], "http2 offered: {http2}");
        first.sort();
        next.sort();
        let (first_median, next_median) = (first[first.len() / 2], next[next.len() / 2]);
        eprintln!("new connection + first review: median {first_median:?}; later reviews: median {next_median:?}");
        // Without TCP_NODELAY, the answer on a new connection waits behind the
        // TLS 1.3 session tickets for the client's delayed ACK: ~40 ms.
        assert!(first_median < Duration::from_millis(30), "{first_median:?}");
        assert!(next_median < Duration::from_millis(30), "{next_median:?}");
        drop(open);
        server.running.shutdown().await;
    }
}

/// Kubelet's layout of a mounted Secret: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<timestamp>`, swapped atomically by renaming a new symlink over `..data`.
struct SecretVolume {
    dir: tempfile::TempDir,
    version: usize,
}

impl SecretVolume {
    fn new(pair: &PemPair) -> SecretVolume {
        let dir = tempfile::tempdir().unwrap();
        let mut volume = SecretVolume { dir, version: 0 };
        volume.swap(pair);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(Path::new("..data").join(name), volume.dir.path().join(name)).unwrap();
        }
        volume
    }

    fn swap(&mut self, pair: &PemPair) {
        self.version += 1;
        let data = format!("..2026_11_28_00_00_0{}", self.version);
        let data_dir = self.dir.path().join(&data);
        std::fs::create_dir(&data_dir).unwrap();
        std::fs::write(data_dir.join("tls.crt"), &pair.cert).unwrap();
        std::fs::write(data_dir.join("tls.key"), &pair.key).unwrap();
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&data, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
    }

    fn source(&self) -> CertSource {
        CertSource::Files {
            cert: self.dir.path().join("tls.crt"),
            key: self.dir.path().join("tls.key"),
        }
    }
}

#[actix_web::test]
async fn rotated_certificates_are_served_to_new_connections_without_failing_requests() {
    let (a, b) = (cert("CA A"), cert("CA B"));
    let mut volume = SecretVolume::new(&a.serving);
    let mut settings = settings(volume.source());
    settings.cert_reload_interval = Duration::from_millis(100);
    let running = server::start(settings).await.expect("server starts");
    let (addr, admin) = (running.addr(), running.admin_addr());
    let client = client_config(&[&a.ca_pem, &b.ca_pem], &[b"http/1.1"]);

    let opened_before = connect(addr, client.clone()).await;
    assert_eq!(served_cert(&opened_before), der(&a.serving.cert));
    let mut kept_alive = H1::new(opened_before).await;
    assert_eq!(kept_alive.post("/mutate", example_review()).await.status, 200);

    // Reviews on fresh connections throughout the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed, client) = (stop.clone(), ok.clone(), failed.clone(), client.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let result = async {
                    let tls = try_connect(addr, client.clone()).await.ok()?;
                    let answer = H1::new(tls)
                        .await
                        .try_post("/mutate", "application/json", example_review())
                        .await
                        .ok()?;
                    (answer.status == 200).then_some(())
                }
                .await;
                match result {
                    Some(()) => ok.fetch_add(1, Ordering::SeqCst),
                    None => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(300)).await;
    volume.swap(&b.serving);
    let rotated_at = Instant::now();
    let ok_before = ok.load(Ordering::SeqCst);
    loop {
        let tls = connect(addr, client.clone()).await;
        if served_cert(&tls) == der(&b.serving.cert) {
            break;
        }
        assert!(
            rotated_at.elapsed() < Duration::from_secs(5),
            "new certificate not served after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("new certificate served {:?} after the swap", rotated_at.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    within(STEP, "load loop", load).await.unwrap();
    assert_eq!(failed.load(Ordering::SeqCst), 0, "requests failed during rotation");
    assert!(ok.load(Ordering::SeqCst) > ok_before, "no request after the swap");
    // The connection opened before the swap still works.
    assert_eq!(kept_alive.post("/mutate", example_review()).await.status, 200);

    // A pair that does not match (the key of another certificate) is refused; B stays.
    volume.swap(&PemPair {
        cert: a.serving.cert.clone(),
        key: b.serving.key.clone(),
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = admin_get(admin, "/metrics").await;
        if metrics.contains(r#"secure_defaults_tls_certificate_reloads_total{result="failure"} 1"#) {
            assert!(
                metrics.contains(r#"secure_defaults_tls_certificate_reloads_total{result="success"} 1"#),
                "{metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "bad pair not reported: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served_cert(&connect(addr, client.clone()).await), der(&b.serving.cert));
    running.shutdown().await;
}

#[actix_web::test]
async fn start_fails_clearly_on_a_bad_certificate() {
    let (a, b) = (cert("CA A"), cert("CA B"));
    let volume = SecretVolume::new(&PemPair {
        cert: a.serving.cert.clone(),
        key: b.serving.key.clone(),
    });
    let err = server::start(settings(volume.source())).await.unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    let missing = CertSource::Files {
        cert: "/nonexistent/tls.crt".into(),
        key: "/nonexistent/tls.key".into(),
    };
    let err = server::start(settings(missing)).await.unwrap_err().to_string();
    assert!(err.contains("cannot read /nonexistent/tls.crt"), "{err}");
}

#[actix_web::test]
async fn graceful_shutdown_serves_through_the_delay_and_finishes_requests_in_flight() {
    let server = TestServer::start(|s| {
        s.shutdown_delay = Duration::from_millis(1000);
        s.shutdown_timeout = Duration::from_secs(5);
    })
    .await;
    let (addr, admin) = (server.addr(), server.running.admin_addr());
    let client = server.client();
    assert_eq!(admin_get(admin, "/readyz").await.0, 200);

    // A request in flight: headers and half the body sent.
    let body = example_review();
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut in_flight = server.connect().await;
    write_all(&mut in_flight, request_head("application/json", body.len()).as_bytes())
        .await
        .unwrap();
    write_all(&mut in_flight, first_half).await.unwrap();
    // An idle kept-alive connection.
    let mut idle = H1::new(server.connect().await).await;
    assert_eq!(idle.post("/mutate", example_review()).await.status, 200);

    let started = Instant::now();
    let shutdown = tokio::spawn(server.running.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;

    // During the delay: unready, but still serving, and asking clients to reconnect.
    assert_eq!(admin_get(admin, "/readyz").await, (503, "not ready\n".to_string()));
    let mut during = H1::new(connect(addr, client.clone()).await).await;
    let answer = during.post("/mutate", example_review()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["connection"], "close");

    // After the delay: no new connections; the request in flight completes.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        try_connect(addr, client.clone()).await.is_err(),
        "still accepting after the delay"
    );
    in_flight.write_all(second_half).await.unwrap();
    in_flight.flush().await.unwrap();
    let raw = read_until_closed(&mut in_flight, Duration::from_secs(3)).await;
    assert_eq!(status_of(&raw), Some(200), "{}", String::from_utf8_lossy(&raw));
    assert!(String::from_utf8_lossy(&raw).contains("\"patchType\":\"JSONPatch\""));

    within(Duration::from_secs(7), "shutdown", shutdown).await.unwrap();
    eprintln!("shutdown took {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(6));
    // The idle connection was closed rather than left to time out.
    assert!(idle
        .try_post("/mutate", "application/json", example_review())
        .await
        .is_err());
}

/// A serving certificate (self-signed) that expires at midnight UTC of this day.
fn expiring(year: i32, month: u8, day: u8) -> (PemPair, i64) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(year, month, day);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).unwrap(), day).unwrap();
    let pair = PemPair {
        cert: cert.pem().into_bytes(),
        key: key.serialize_pem().into_bytes(),
    };
    (pair, date.midnight().assume_utc().unix_timestamp())
}

/// `secure_defaults_certificate_expiry_timestamp_seconds`: the serving
/// certificate's notAfter, at start-up and after each reload, so an alert
/// can fire before a certificate that stopped renewing expires.
#[actix_web::test]
async fn certificate_expiry_is_a_metric_updated_on_reload() {
    let (first, first_expiry) = expiring(2031, 1, 2);
    let (second, second_expiry) = expiring(2032, 3, 4);
    let mut volume = SecretVolume::new(&first);
    let mut settings = settings(volume.source());
    settings.cert_reload_interval = Duration::from_millis(100);
    let running = server::start(settings).await.expect("server starts");
    let admin = running.admin_addr();
    let line = |t: i64| format!("\nsecure_defaults_certificate_expiry_timestamp_seconds {t}\n");

    let (_, metrics) = admin_get(admin, "/metrics").await;
    assert!(metrics.contains(&line(first_expiry)), "{metrics}");

    volume.swap(&second);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = admin_get(admin, "/metrics").await;
        if metrics.contains(&line(second_expiry)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expiry not updated after the reload: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
