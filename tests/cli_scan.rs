//! `secure-defaults scan` on the real binary, without a cluster: arguments
//! and errors. Scans of a real cluster are in e2e/tests/migration.rs.

use std::process::{Command, Output, Stdio};

fn scan(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secure-defaults"))
        .arg("scan")
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_missing_kubeconfig_is_a_clear_error() {
    let o = scan(&["--kubeconfig", "/nonexistent/kubeconfig"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("reading kubeconfig /nonexistent/kubeconfig"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn an_unreachable_cluster_is_a_clear_error_not_an_empty_report() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    // Port 9 on loopback: nothing listens there.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u, namespace: legacy}}]\n",
    )
    .unwrap();
    let o = scan(&["--kubeconfig", kubeconfig.to_str().unwrap(), "-q"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("reading namespace legacy"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let o = scan(
        &["--kubeconfig", kubeconfig.to_str().unwrap(), "--context", "other"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "an unknown context: {}", stderr(&o));
}

#[test]
fn namespaces_and_all_namespaces_exclude_each_other() {
    let o = scan(&["-n", "a", "-A"], &[]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

#[test]
fn an_invalid_config_is_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "mode: warn\n").unwrap();
    let o = scan(
        &["--config", config.to_str().unwrap(), "--kubeconfig", "/nonexistent"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid config"), "{}", stderr(&o));
}

#[test]
fn resolve_timeout_needs_resolve_images_and_a_duration() {
    let o = scan(&["--resolve-timeout", "10s"], &[]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("--resolve-images"), "{}", stderr(&o));
    let o = scan(&["--resolve-images", "--resolve-timeout", "10"], &[]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("invalid duration"), "{}", stderr(&o));
}
