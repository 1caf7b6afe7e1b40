//! What the operator reads when a command fails: the exact standard error of
//! the real binary. Each layer names itself once and the cause follows once
//! (`error: LAYER: CAUSE`), never the cause twice.

use std::net::TcpListener;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
        .args(args)
        .env_remove("SECURE_DEFAULTS_CONFIG")
        .env("SECURE_DEFAULTS_LOG_FORMAT", "text")
        .output()
        .expect("binary runs")
}

fn failure(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(o.stdout.is_empty(), "{args:?} printed on stdout");
    String::from_utf8(o.stderr).unwrap()
}

const NO_FILE: &str = "No such file or directory (os error 2)";

#[test]
fn a_missing_manifest_names_the_file_and_the_cause_once() {
    assert_eq!(
        failure(&["mutate", "-f", "/nonexistent/app.yaml"]),
        format!("error: cannot read /nonexistent/app.yaml: {NO_FILE}\n")
    );
}

#[test]
fn a_missing_config_file_names_the_file_and_the_cause_once() {
    assert_eq!(
        failure(&["mutate", "--config", "/nonexistent/config.yaml", "-f", "-"]),
        format!("error: cannot read config /nonexistent/config.yaml: {NO_FILE}\n")
    );
}

#[test]
fn an_unknown_config_key_is_named_once_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "mode: enforce\nbaselin: {}\n").unwrap();
    let config = config.to_str().unwrap();
    let stderr = failure(&["mutate", "--config", config, "-f", "-"]);
    let unknown = "unknown field `baselin`, expected one of";
    assert_eq!(stderr.matches(unknown).count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: invalid config {config}: {unknown}")),
        "{stderr}"
    );
    assert!(stderr.ends_with(" at line 2 column 1\n"), "{stderr}");
}

#[test]
fn a_port_in_use_names_the_address_and_the_cause_once() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let ca_out = dir.path().join("ca.pem");
    let stderr = failure(&[
        "serve",
        "--self-signed",
        "--listen",
        &addr,
        "--admin-listen",
        "127.0.0.1:0",
        "--ca-out",
        ca_out.to_str().unwrap(),
    ]);
    let error = format!("error: cannot listen on {addr}: Address already in use (os error 98)\n");
    assert!(stderr.ends_with(&error), "{stderr}");
    assert_eq!(stderr.matches("Address already in use").count(), 1, "{stderr}");
}

#[test]
fn a_missing_certificate_names_the_file_and_the_cause_once() {
    let stderr = failure(&[
        "serve",
        "--tls-cert",
        "/nonexistent/tls.crt",
        "--tls-key",
        "/nonexistent/tls.key",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let error = format!("error: cannot read /nonexistent/tls.crt: {NO_FILE}\n");
    assert!(stderr.ends_with(&error), "{stderr}");
    assert_eq!(stderr.matches(NO_FILE).count(), 1, "{stderr}");
}

#[test]
fn a_missing_ca_for_certs_names_the_file_and_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = failure(&[
        "certs",
        "--out-dir",
        dir.path().to_str().unwrap(),
        "--ca-cert",
        "/nonexistent/ca.crt",
        "--ca-key",
        "/nonexistent/ca.key",
    ]);
    assert_eq!(stderr.matches(NO_FILE).count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/ca.crt"), "{stderr}");
}
