//! `secure-defaults serve` as an operator runs it: the real binary, settings
//! from flags and environment, JSON logs, and SIGTERM.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// `serve --self-signed` on ports the system picks.
fn self_signed_serve() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_secure-defaults"));
    command.args([
        "serve",
        "--self-signed",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    command
}

impl Served {
    fn spawn(dir: &std::path::Path) -> Served {
        let mut command = self_signed_serve();
        command
            .arg("--ca-out")
            .arg(dir.join("ca.pem"))
            .env("SECURE_DEFAULTS_LOG_FORMAT", "json")
            .env("SECURE_DEFAULTS_SHUTDOWN_DELAY", "1s")
            .env("SECURE_DEFAULTS_SHUTDOWN_TIMEOUT", "3s")
            .env("SECURE_DEFAULTS_WORKERS", "1")
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        Served::start(command)
    }

    fn start(mut command: Command) -> Served {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary runs");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Served {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first JSON log line with this message, waiting for it.
    fn log(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let matches = |line: &String| {
            serde_json::from_str::<Value>(line)
                .ok()
                .filter(|v| v["message"] == message)
        };
        if let Some(v) = self.seen.iter().find_map(matches) {
            return v;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line {message:?}; seen:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            if let Some(v) = matches(&line) {
                return v;
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr(v: &Value, key: &str) -> SocketAddr {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .parse()
        .unwrap()
}

#[actix_web::test]
async fn serves_logs_one_json_line_per_review_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::spawn(dir.path());
    let serving = served.log("serving");
    let (webhook, admin) = (addr(&serving, "addr"), addr(&serving, "admin_addr"));
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).expect("CA written");
    let client = client_config(&[&ca], &[b"http/1.1"]);

    let mut h1 = H1::new(connect(webhook, client.clone()).await).await;
    let answer = h1.post("/mutate?timeout=10s", example_review()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["response"]["patchType"], "JSONPatch");
    assert_eq!(admin_get(admin, "/readyz").await.0, 200);

    let review = served.log("review");
    for (key, value) in [
        ("uid", "6c2f1b1e-3f0a-4d1c-9a57-8f4e2b7c9d10"),
        ("namespace", "default"),
        ("name", "legacy-app"),
        ("operation", "CREATE"),
        ("outcome", "patched"),
        ("mode", "enforce"),
    ] {
        assert_eq!(review[key], value, "{review}");
    }
    assert_eq!(review["added"], 8, "{review}");
    assert!(review["duration_ms"].as_f64().is_some(), "{review}");

    let pid = served.child.id().to_string();
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(status.success());
    served.log("stop signal received");
    // Unready at once (logged once the flag is down), still serving during the delay.
    served.log("shutting down: unready, still serving");
    assert_eq!(admin_get(admin, "/readyz").await.0, 503);
    let mut during = H1::new(connect(webhook, client.clone()).await).await;
    assert_eq!(during.post("/mutate", example_review()).await.status, 200);

    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = served.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "still running 10 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    served.log("stopped");
    served.drain();

    let everything = served.seen.join("\n");
    assert!(
        everything.contains("curl --cacert"),
        "the banner shows how to try it:\n{everything}"
    );
    // Names only: no object content, no key material.
    for secret in ["nginx:1.27", "kube-api-access", "PRIVATE KEY"] {
        assert!(!everything.contains(secret), "{secret} in the output:\n{everything}");
    }
}

/// An installed binary run anywhere: the dev CA goes to the user's cache
/// directory, and nothing is created in the working directory.
#[test]
fn self_signed_ca_goes_to_the_cache_directory_not_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (home, work) = (dir.path().join("home"), dir.path().join("work"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut command = self_signed_serve();
    command
        .env_remove("SECURE_DEFAULTS_CA_OUT")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", &home)
        .env("SECURE_DEFAULTS_LOG_FORMAT", "json")
        .env("SECURE_DEFAULTS_WORKERS", "1")
        .current_dir(&work);
    let mut served = Served::start(command);
    served.log("serving");
    let ca = home.join(".cache/secure-defaults/dev-ca.pem");
    let pem = std::fs::read_to_string(&ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display()));
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let created: Vec<_> = std::fs::read_dir(&work).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(created.is_empty(), "serve created {created:?} in its working directory");
    // The banner names the file curl needs.
    served.drain();
    assert!(
        served
            .seen
            .iter()
            .any(|l| l.contains(&format!("--cacert {}", ca.display()))),
        "{}",
        served.seen.join("\n")
    );
}

#[test]
fn a_certificate_is_required_unless_self_signed() {
    let output = Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("SECURE_DEFAULTS_TLS_CERT")
        .env_remove("SECURE_DEFAULTS_SELF_SIGNED")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-cert"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
        .args(["serve", "--tls-cert", "/tmp/x.pem"])
        .env_remove("SECURE_DEFAULTS_TLS_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

#[test]
fn an_unreadable_certificate_stops_start_up_with_the_reason() {
    let output = Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
        .args([
            "serve",
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
        ])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: cannot read /nonexistent/tls.crt"), "{stderr}");
}
