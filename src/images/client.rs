//! One registry's client: oci-client behind the egress guard, and reading
//! the image's `config.User` from the manifest and config it fetches.

use super::credentials::Auth;
use super::guard::{Proxy, Route, Stop};
use super::{Failure, FailureKind};
use crate::config::image_lookup::ImageLookup;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::ImageIndexEntry;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A lookup gives up after this even when no review waits for it any more
/// (its answer would still fill the cache); also each guarded connection's
/// lifetime, which bounds what a kept-alive connection relays.
pub const FETCH_LIMIT: Duration = Duration::from_secs(10);

/// A client for one registry and one credential: oci-client keeps stored
/// credentials and bearer tokens per registry, so a client shared between
/// credentials would lend one pod's token to another.
pub struct RegistryClient {
    oci: oci_client::Client,
    route: Arc<Route>,
    /// Closed with the client.
    _proxy: Proxy,
}

impl RegistryClient {
    /// `registry` as in the reference; `endpoint` the host oci-client connects to
    /// (`index.docker.io` for `docker.io`).
    /// Must run on a tokio runtime (the guard's listener is served there).
    pub fn new(
        settings: &ImageLookup,
        registry: &str,
        endpoint: &str,
        extra_roots: &[Vec<u8>],
    ) -> Result<RegistryClient, Failure> {
        let allowed = [registry.to_string(), endpoint.to_string()]
            .into_iter()
            .chain(settings.extra_hosts.iter().cloned());
        let route = Arc::new(Route::new(allowed, settings.max_response_bytes, FETCH_LIMIT));
        let proxy = Proxy::open(route.clone()).map_err(|e| Failure {
            kind: FailureKind::Failed,
            message: format!("cannot start the egress guard: {e}"),
        })?;
        let proxy_url = proxy.url.clone();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(settings.insecure_registries.clone()),
            platform_resolver: Some(Box::new(linux_resolver)),
            https_proxy: Some(proxy_url.clone()),
            http_proxy: Some(proxy_url.clone()),
            no_proxy: None,
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(FETCH_LIMIT),
            extra_root_certificates: extra_roots
                .iter()
                .map(|pem| oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            user_agent: "secure-defaults-image-lookup",
            ..ClientConfig::default()
        };
        let oci = oci_client::Client::try_from(config).map_err(|e| Failure {
            kind: FailureKind::Failed,
            message: format!("cannot build the registry client: {}", crate::error::Chain(&e)),
        })?;
        Ok(RegistryClient {
            oci,
            route,
            _proxy: proxy,
        })
    }

    /// The image's `config.User` (`""` when it sets none).
    pub async fn user(&self, reference: &Reference, auth: Option<&Auth>) -> Result<String, Failure> {
        let auth = match auth {
            Some(a) => RegistryAuth::Basic(a.username.clone(), a.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let started = Instant::now();
        let fetched = tokio::time::timeout(FETCH_LIMIT, self.oci.pull_manifest_and_config(reference, &auth)).await;
        match fetched {
            Ok(Ok((_, _, config))) => user_of(&config),
            Ok(Err(e)) => Err(match self.route.stop_since(started) {
                Some(Stop::Refused(message)) => Failure {
                    kind: FailureKind::Refused,
                    message,
                },
                Some(Stop::Failed(message)) => Failure {
                    kind: FailureKind::Failed,
                    message,
                },
                None => Failure {
                    kind: FailureKind::Failed,
                    message: describe(&e),
                },
            }),
            Err(_) => Err(Failure {
                kind: FailureKind::Timeout,
                message: format!("no answer within {}s", FETCH_LIMIT.as_secs()),
            }),
        }
    }
}

/// oci-client's error, shortened where its text is a whole HTTP envelope.
fn describe(e: &oci_client::errors::OciDistributionError) -> String {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => {
            "the registry refused the credentials (401): add an imagePullSecret".to_string()
        }
        E::ImageManifestNotFoundError(_) => "manifest not found".to_string(),
        E::ServerError { code, .. } => format!("registry answered HTTP {code}"),
        _ => {
            let text = crate::error::Chain(e).to_string();
            text.chars().take(300).collect()
        }
    }
}

#[derive(serde::Deserialize)]
struct ImageConfig {
    #[serde(default)]
    config: Option<Inner>,
}

#[derive(serde::Deserialize)]
struct Inner {
    #[serde(rename = "User", default)]
    user: Option<String>,
}

fn user_of(config: &str) -> Result<String, Failure> {
    let parsed: ImageConfig = serde_json::from_str(config).map_err(|e| Failure {
        kind: FailureKind::Failed,
        message: format!("the image configuration is not JSON: {e}"),
    })?;
    Ok(parsed.config.and_then(|c| c.user).unwrap_or_default())
}

/// Linux on the webhook's own architecture, else the first Linux entry.
fn linux_resolver(entries: &[ImageIndexEntry]) -> Option<String> {
    let linux = |e: &&ImageIndexEntry| e.platform.as_ref().is_some_and(|p| p.os.to_string() == "linux");
    let own = own_arch();
    entries
        .iter()
        .filter(linux)
        .find(|e| e.platform.as_ref().is_some_and(|p| p.architecture.to_string() == own))
        .or_else(|| entries.iter().find(linux))
        .map(|e| e.digest.clone())
}

/// The OCI (Go) name of the architecture this binary runs on.
fn own_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_from_config() {
        for (config, want) in [
            (r#"{"config": {"User": "1000:1000"}}"#, "1000:1000"),
            (r#"{"config": {"Env": []}}"#, ""),
            (r#"{"architecture": "amd64"}"#, ""),
            (r#"{"config": null}"#, ""),
        ] {
            assert_eq!(user_of(config).unwrap(), want, "{config}");
        }
        assert!(user_of("[").is_err());
    }

    #[test]
    fn index_resolution_prefers_own_arch_then_first_linux() {
        let own = own_arch();
        let other = if own == "arm64" { "s390x" } else { "arm64" };
        let entry = |digest: &str, os: &str, arch: &str| -> ImageIndexEntry {
            serde_json::from_value(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest, "size": 1,
                "platform": {"os": os, "architecture": arch}
            }))
            .unwrap()
        };
        let entries = [
            entry("sha256:win", "windows", own),
            entry("sha256:other", "linux", other),
            entry("sha256:own", "linux", own),
        ];
        assert_eq!(linux_resolver(&entries).as_deref(), Some("sha256:own"));
        assert_eq!(linux_resolver(&entries[..2]).as_deref(), Some("sha256:other"));
        assert_eq!(linux_resolver(&entries[..1]), None);
    }
}
