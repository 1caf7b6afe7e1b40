//! `secure-defaults serve`: the admission webhook.
//!
//! Every flag can also be set by an environment variable (`SECURE_DEFAULTS_*`),
//! which is how a Deployment usually configures it.

use crate::cluster::namespaces::NamespaceCache;
use crate::cluster::pull_secrets::PullSecrets;
use crate::config::Config;
use crate::images::Resolver;
use crate::server::images::ImageService;
use crate::server::tls::{CertSource, PemPair};
use crate::server::{self, dev_cert, duration, Reviewer, Settings};
use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the TLS webhook endpoint (POST /mutate).
    #[arg(long, env = "SECURE_DEFAULTS_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP admin endpoint (/healthz, /readyz, /metrics).
    #[arg(long, env = "SECURE_DEFAULTS_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    /// Serving certificate chain (PEM); reloaded when it changes on disk.
    #[arg(
        long,
        env = "SECURE_DEFAULTS_TLS_CERT",
        value_name = "FILE",
        required_unless_present = "self_signed",
        conflicts_with = "self_signed",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(
        long,
        env = "SECURE_DEFAULTS_TLS_KEY",
        value_name = "FILE",
        conflicts_with = "self_signed",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Development only: serve a certificate for localhost/127.0.0.1 signed by
    /// a CA made at start-up; the CA is written to --ca-out.
    #[arg(long, env = "SECURE_DEFAULTS_SELF_SIGNED")]
    pub self_signed: bool,
    /// Where --self-signed writes the CA certificate for clients (curl
    /// --cacert). Default: $XDG_CACHE_HOME/secure-defaults/dev-ca.pem, else
    /// ~/.cache/secure-defaults/dev-ca.pem (never the working directory).
    #[arg(long, env = "SECURE_DEFAULTS_CA_OUT", value_name = "FILE")]
    pub ca_out: Option<PathBuf>,
    /// Configuration file; the embedded default when omitted.
    #[arg(long, env = "SECURE_DEFAULTS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "SECURE_DEFAULTS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Level or tracing filter, e.g. `info` or `info,secure_defaults=debug`.
    #[arg(long, env = "SECURE_DEFAULTS_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Offer HTTP/2 by ALPN (the API server uses HTTP/1.1 for webhooks).
    #[arg(long, env = "SECURE_DEFAULTS_HTTP2")]
    pub http2: bool,
    /// Worker threads; the number of CPUs when omitted.
    #[arg(long, env = "SECURE_DEFAULTS_WORKERS")]
    pub workers: Option<usize>,
    /// On SIGTERM: unready, but still serving, this long.
    #[arg(long, env = "SECURE_DEFAULTS_SHUTDOWN_DELAY", default_value = "5s", value_parser = duration::parse)]
    pub shutdown_delay: Duration,
    /// Then: how long requests in flight get to finish.
    #[arg(long, env = "SECURE_DEFAULTS_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = duration::parse)]
    pub shutdown_timeout: Duration,
    /// How often the certificate files are checked for a change.
    #[arg(long, env = "SECURE_DEFAULTS_CERT_RELOAD_INTERVAL", default_value = "5s", value_parser = duration::parse)]
    pub cert_reload_interval: Duration,
    /// Time allowed for the request headers on a new connection.
    #[arg(long, env = "SECURE_DEFAULTS_HEADER_TIMEOUT", default_value = "5s", value_parser = duration::parse)]
    pub header_timeout: Duration,
    /// Time allowed for the request body (shortened to the API server's ?timeout=).
    #[arg(long, env = "SECURE_DEFAULTS_BODY_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub body_timeout: Duration,
    /// Memory, in MiB, for bodies over 256 KiB being read and reviewed at
    /// once, all workers together; more large bodies wait (unread) for it.
    /// Smaller bodies are not counted. At least 8 (the largest body is 7 MiB).
    #[arg(long, env = "SECURE_DEFAULTS_LARGE_BODY_MEMORY_MIB", default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(8..=65536))]
    pub large_body_memory_mib: u32,
    /// Require TLS client certificates signed by a CA in this PEM bundle (the
    /// API server's, from its AdmissionConfiguration kubeConfigFile); other
    /// handshakes are refused. Reloaded when it changes on disk.
    #[arg(long, env = "SECURE_DEFAULTS_CLIENT_CA", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Per-namespace policy: read namespace labels and annotations
    /// (`secure-defaults.io/*`) from a watch on the API server (kubeconfig or
    /// in-cluster config). Needs get/list/watch on namespaces.
    #[arg(long, env = "SECURE_DEFAULTS_NAMESPACE_POLICY")]
    pub namespace_policy: bool,
    /// How long /readyz waits for the first namespace sync before serving the cluster defaults.
    #[arg(long, env = "SECURE_DEFAULTS_NAMESPACE_SYNC_TIMEOUT", default_value = "30s", value_parser = duration::parse)]
    pub namespace_sync_timeout: Duration,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    run_with(args, server::harden)
}

/// [`run`] with another [`Reviewer`]: the benchmarks' no-op endpoint
/// (`examples/noop_webhook.rs`) is served this way, on the same stack.
pub fn run_with(args: &ServeArgs, reviewer: Reviewer) -> Result<()> {
    init_logging(args.log_format, &args.log_level)?;
    let config = Config::load_or_default(args.config.as_deref())?;
    let mut ca_path = None;
    let cert = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => {
            let path = ca_out(args.ca_out.as_deref())?;
            let pem = self_signed(&path)?;
            ca_path = Some(path);
            CertSource::Pem(pem)
        }
    };
    let defaults = Settings::new(cert, config);
    let settings = Settings {
        listen: args.listen,
        admin_listen: args.admin_listen,
        http2: args.http2,
        workers: args.workers.unwrap_or(defaults.workers),
        shutdown_delay: args.shutdown_delay,
        shutdown_timeout: args.shutdown_timeout,
        cert_reload_interval: args.cert_reload_interval.max(Duration::from_millis(100)),
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        body_memory: args.large_body_memory_mib as usize * 1024 * 1024,
        client_ca: args.client_ca.clone(),
        reviewer,
        ..defaults
    };
    actix_rt::System::new().block_on(async move {
        let mut settings = settings;
        if args.namespace_policy {
            let client = kube::Client::try_default()
                .await
                .context("--namespace-policy needs a kubeconfig or the in-cluster configuration")?;
            settings.namespaces = Some(NamespaceCache::start(client, args.namespace_sync_timeout));
        }
        settings.images = image_service(&settings.config, args.namespace_policy).await?;
        let mut running = server::start(settings).await?;
        if let Some(ca) = &ca_path {
            print_try_it(running.addr(), running.admin_addr(), ca);
        }
        tokio::select! {
            signal = stop_signal() => {
                tracing::info!(signal = signal?, "stop signal received");
                tokio::select! {
                    () = running.shutdown() => Ok(()),
                    // A second Ctrl-C skips the delay and the wait.
                    signal = stop_signal() => {
                        tracing::warn!(signal = signal?, "second stop signal: exiting now");
                        Ok(())
                    }
                }
            }
            stopped = running.stopped() => {
                stopped.context("the webhook server stopped")?;
                anyhow::bail!("the webhook server stopped unexpectedly")
            }
        }
    })
}

/// The image lookup, when some pod can get `identity: auto`; with the
/// cluster's pull secrets when `imageLookup.pullSecrets` and a cluster
/// configuration is at hand (without one, lookups are anonymous).
async fn image_service(config: &Config, namespace_policy: bool) -> Result<Option<Arc<ImageService>>> {
    if !server::images::auto_possible(config, namespace_policy) {
        return Ok(None);
    }
    let resolver = Resolver::new(config.image_lookup.clone()).context("cannot start the image lookup")?;
    let pull_secrets = if config.image_lookup.pull_secrets {
        match kube::Client::try_default().await {
            Ok(client) => Some(PullSecrets::new(client)),
            Err(e) => {
                tracing::warn!(error = %crate::error::Chain(&e), "no cluster configuration: image lookups use no pull secrets");
                None
            }
        }
    } else {
        None
    };
    Ok(Some(Arc::new(ImageService { resolver, pull_secrets })))
}

/// SIGTERM (the kubelet) or SIGINT (Ctrl-C).
async fn stop_signal() -> Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// --ca-out, else the user's cache directory: an installed binary must not
/// create files wherever it happens to run.
fn ca_out(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    let env_dir = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let cache = env_dir("XDG_CACHE_HOME")
        .or_else(|| env_dir("HOME").map(|home| home.join(".cache")))
        .context("--self-signed: neither XDG_CACHE_HOME nor HOME is set; pass --ca-out FILE")?;
    Ok(cache.join("secure-defaults").join("dev-ca.pem"))
}

fn self_signed(ca_out: &Path) -> Result<PemPair> {
    let dev = dev_cert::generate("secure-defaults dev CA", &dev_cert::LOCAL_NAMES)
        .context("cannot generate the self-signed certificate")?;
    if let Some(dir) = ca_out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(ca_out, &dev.ca_pem).with_context(|| format!("cannot write {}", ca_out.display()))?;
    Ok(dev.serving)
}

fn print_try_it(addr: SocketAddr, admin: SocketAddr, ca_out: &Path) {
    // The dev certificate names localhost and the loopback addresses only.
    let url = |addr: SocketAddr, scheme: &str| {
        let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        format!("{scheme}://{host}:{}", addr.port())
    };
    let webhook = format!("{}/mutate", url(addr, "https"));
    let ca = ca_out.display();
    println!(
        "\nsecure-defaults webhook (self-signed dev certificate): {webhook}
  admin:   {admin}/healthz  {admin}/readyz  {admin}/metrics
  CA:      {ca}

Try it with the sample Pod CREATE review:

  curl --cacert {ca} -H 'Content-Type: application/json' \\
    --data-binary @examples/admission-review.json '{webhook}?timeout=10s'

The patch comes back base64-encoded (as Go's []byte); to read it:

  curl -s --cacert {ca} -H 'Content-Type: application/json' \\
    --data-binary @examples/admission-review.json '{webhook}?timeout=10s' \\
    | jq '.response.patch |= (@base64d | fromjson)'

Ctrl-C stops it (after the shutdown delay).\n",
        admin = url(admin, "http"),
    );
}

fn init_logging(format: LogFormat, level: &str) -> Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).with_context(|| format!("invalid --log-level {level:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
