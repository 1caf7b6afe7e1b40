//! `secure-defaults certs`: the webhook's certificates without cert-manager.
//!
//! Generates a CA (or reuses one, for renewal) and a serving certificate for
//! the webhook Service, and writes the TLS Secret and the caBundle patch of
//! the MutatingWebhookConfiguration, to a directory or to standard output.

use crate::certs::{self, Ca, ServiceRef, DEFAULT_CA_VALIDITY_DAYS, DEFAULT_VALIDITY_DAYS};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # First install: a new CA and serving certificate, files in ./tls
  secure-defaults certs --out-dir tls
  kubectl apply -f tls/secret.yaml
  kubectl patch mutatingwebhookconfiguration secure-defaults --patch-file tls/webhook-cabundle-patch.yaml

  # Renewal: a new serving certificate from the same CA (the caBundle does not change)
  secure-defaults certs --ca-cert tls/ca.crt --ca-key tls/ca.key --out-dir tls-renewed

  # CA rotation: a new CA, with the old one still trusted until every pod serves the new certificate
  secure-defaults certs --out-dir tls-new --extra-ca tls/ca.crt

See docs/install.md for the whole procedure.")]
pub struct CertsArgs {
    /// Name of the webhook Service.
    #[arg(long, default_value = "secure-defaults")]
    pub service: String,
    /// Namespace of the webhook Service and of the Secret.
    #[arg(long, default_value = "secure-defaults")]
    pub namespace: String,
    /// Cluster DNS domain, for the `SERVICE.NAMESPACE.svc.DOMAIN` name; empty for none.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Name of the kubernetes.io/tls Secret the webhook pods mount.
    #[arg(long, default_value = "secure-defaults-tls")]
    pub secret_name: String,
    /// Name of the MutatingWebhookConfiguration whose caBundle is patched.
    #[arg(long, default_value = "secure-defaults")]
    pub webhook_configuration: String,
    /// Names of the webhooks inside it whose caBundle is set. Repeatable.
    #[arg(
        long,
        default_values = ["pods.secure-defaults.io", "workloads.secure-defaults.io"],
        value_name = "NAME"
    )]
    pub webhook: Vec<String>,
    /// Days the serving certificate is valid.
    #[arg(long, default_value_t = DEFAULT_VALIDITY_DAYS, value_name = "DAYS")]
    pub validity_days: u32,
    /// Days a new CA is valid (ignored with --ca-cert).
    #[arg(long, default_value_t = DEFAULT_CA_VALIDITY_DAYS, value_name = "DAYS")]
    pub ca_validity_days: u32,
    /// Existing CA certificate (PEM) to sign with instead of a new CA: renews the
    /// serving certificate while the caBundle stays the same.
    #[arg(long, requires = "ca_key", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Private key (PEM, PKCS#8) of --ca-cert.
    #[arg(long, requires = "ca_cert", value_name = "FILE")]
    pub ca_key: Option<PathBuf>,
    /// More CA certificates (PEM) to put in the caBundle, e.g. the old CA during a
    /// CA rotation. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub extra_ca: Vec<PathBuf>,
    /// Write the files here (created if missing) instead of printing the Secret and the
    /// caBundle patch on standard output.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Replace a CA key already in --out-dir with a new CA.
    #[arg(long)]
    pub force: bool,
}

/// What `run` made, before it is written.
pub struct Generated {
    pub ca_cert_pem: String,
    /// Only for a new CA.
    pub ca_key_pem: Option<String>,
    pub serving: certs::Serving,
    pub bundle_pem: String,
    pub secret_yaml: String,
    pub patch_yaml: String,
}

pub fn generate(args: &CertsArgs, now: OffsetDateTime) -> Result<Generated> {
    let ca = match (&args.ca_cert, &args.ca_key) {
        (Some(cert), Some(key)) => {
            let cert_pem = read(cert)?;
            let key_pem = read(key)?;
            Ca::load(&cert_pem, &key_pem, now)
                .with_context(|| format!("cannot use the CA {} / {}", cert.display(), key.display()))?
        }
        _ => Ca::generate(&format!("{}-ca", args.service), args.ca_validity_days, now)?,
    };
    let service = ServiceRef {
        service: args.service.clone(),
        namespace: args.namespace.clone(),
        cluster_domain: args.cluster_domain.clone(),
    };
    let serving = ca.issue_serving(&service.dns_names(), args.validity_days, now)?;
    let mut extras = Vec::new();
    for path in &args.extra_ca {
        extras.push((path.display().to_string(), read(path)?));
    }
    let bundle_pem = certs::ca_bundle(&ca.cert_pem, &extras)?;
    let secret_yaml = certs::secret_yaml(&args.secret_name, &args.namespace, &serving, &ca.cert_pem);
    let patch_yaml = certs::webhook_patch_yaml(&args.webhook_configuration, &args.webhook, &bundle_pem);
    Ok(Generated {
        ca_cert_pem: ca.cert_pem,
        ca_key_pem: ca.key_pem,
        serving,
        bundle_pem,
        secret_yaml,
        patch_yaml,
    })
}

pub fn run(args: &CertsArgs) -> Result<()> {
    if let Some(dir) = &args.out_dir {
        // Refuse before generating anything: a new CA over an existing key would
        // orphan every certificate it signed.
        let existing_key = dir.join("ca.key");
        if args.ca_cert.is_none() && existing_key.exists() && !args.force {
            bail!(
                "{} exists: pass --ca-cert {} --ca-key {} to renew the serving certificate with this CA, \
                 or --force to replace the CA (the caBundle changes too; see CA rotation in docs/install.md)",
                existing_key.display(),
                dir.join("ca.crt").display(),
                existing_key.display()
            );
        }
    }
    let generated = generate(args, OffsetDateTime::now_utc())?;
    match &args.out_dir {
        Some(dir) => write_dir(dir, &generated),
        None => {
            let mut out = std::io::stdout().lock();
            write!(out, "{}---\n{}", generated.secret_yaml, generated.patch_yaml)?;
            out.flush()?;
            if generated.ca_key_pem.is_some() {
                eprintln!(
                    "note: the new CA's key was not saved; renewing later will need a new CA and caBundle \
                     (use --out-dir to keep it)"
                );
            }
            Ok(())
        }
    }
}

fn write_dir(dir: &Path, g: &Generated) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files: Vec<(&str, &str, bool)> = vec![
        ("ca.crt", &g.ca_cert_pem, false),
        ("tls.crt", &g.serving.cert_pem, false),
        ("tls.key", &g.serving.key_pem, true),
        ("ca-bundle.pem", &g.bundle_pem, false),
        ("secret.yaml", &g.secret_yaml, true),
        ("webhook-cabundle-patch.yaml", &g.patch_yaml, false),
    ];
    if let Some(key) = &g.ca_key_pem {
        files.push(("ca.key", key, true));
    }
    for (name, content, private) in &files {
        write_file(&dir.join(name), content, *private)?;
    }
    let b64 = certs::base64_encode(g.bundle_pem.as_bytes());
    write_file(&dir.join("ca-bundle.b64"), &format!("{b64}\n"), false)?;
    eprintln!(
        "wrote {} (serving certificate valid until {})",
        dir.display(),
        g.serving.not_after.date()
    );
    if g.ca_key_pem.is_some() {
        eprintln!(
            "keep {} safe: it signs the renewals (--ca-cert/--ca-key)",
            dir.join("ca.key").display()
        );
    }
    Ok(())
}

fn write_file(path: &Path, content: &str, private: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if private {
        // An existing file keeps its mode on open: tighten it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(content.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: CertsArgs,
    }

    fn parse(argv: &[&str]) -> CertsArgs {
        Cli::try_parse_from(std::iter::once("certs").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn writes_the_files_and_keeps_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tls");
        let args = parse(&["--out-dir", out.to_str().unwrap()]);
        run(&args).unwrap();
        for name in [
            "ca.crt",
            "ca.key",
            "tls.crt",
            "tls.key",
            "ca-bundle.pem",
            "ca-bundle.b64",
            "secret.yaml",
            "webhook-cabundle-patch.yaml",
        ] {
            assert!(out.join(name).is_file(), "{name} missing");
        }
        #[cfg(unix)]
        for name in ["ca.key", "tls.key", "secret.yaml"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    #[test]
    fn refuses_to_replace_a_ca_key_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        run(&parse(&["--out-dir", out])).unwrap();
        let key_before = std::fs::read(dir.path().join("ca.key")).unwrap();
        let err = run(&parse(&["--out-dir", out])).unwrap_err().to_string();
        assert!(err.contains("--ca-cert") && err.contains("--force"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), key_before);
        run(&parse(&["--out-dir", out, "--force"])).unwrap();
        assert_ne!(std::fs::read(dir.path().join("ca.key")).unwrap(), key_before);
    }

    #[test]
    fn renewal_with_the_same_ca_keeps_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        run(&parse(&["--out-dir", first.to_str().unwrap()])).unwrap();
        let ca_cert = first.join("ca.crt");
        let ca_key = first.join("ca.key");
        run(&parse(&[
            "--out-dir",
            second.to_str().unwrap(),
            "--ca-cert",
            ca_cert.to_str().unwrap(),
            "--ca-key",
            ca_key.to_str().unwrap(),
        ]))
        .unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(first.join("ca-bundle.b64")), read(second.join("ca-bundle.b64")));
        assert_ne!(read(first.join("tls.crt")), read(second.join("tls.crt")));
        assert!(!second.join("ca.key").exists(), "a reused CA's key is not copied");
    }

    #[test]
    fn ca_cert_needs_ca_key() {
        let err = Cli::try_parse_from(["certs", "--ca-cert", "x.crt"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn names_follow_the_flags() {
        let args = parse(&[
            "--service",
            "sd",
            "--namespace",
            "policy",
            "--secret-name",
            "sd-tls",
            "--webhook-configuration",
            "sd-webhook",
        ]);
        let g = generate(&args, OffsetDateTime::now_utc()).unwrap();
        let secret: serde_json::Value = serde_yaml::from_str(&g.secret_yaml).unwrap();
        assert_eq!(secret["metadata"]["name"], "sd-tls");
        assert_eq!(secret["metadata"]["namespace"], "policy");
        let patch: serde_json::Value = serde_yaml::from_str(&g.patch_yaml).unwrap();
        assert_eq!(patch["metadata"]["name"], "sd-webhook");
        let der = x509_der(&g.serving.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san.value.general_names.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            ["DNSName(sd.policy.svc)", "DNSName(sd.policy.svc.cluster.local)"]
        );
    }

    fn x509_der(pem: &str) -> Vec<u8> {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body).unwrap()
    }
}
