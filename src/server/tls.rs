//! TLS: the rustls configuration and a serving certificate that can be
//! replaced while the server runs.
//!
//! Kubernetes mounts the certificate Secret as files and swaps them through a
//! `..data` symlink when the Secret changes, so the files are polled (their
//! content, read through the symlink) and a changed pair is loaded for new
//! handshakes. Connections already open keep their session; a pair that does
//! not load (unparsable, or a key that does not match the certificate, as
//! happens briefly while files are replaced one by one) keeps the old one.
//!
//! Optionally (`--client-ca`), clients must present a certificate signed by a
//! CA in a PEM bundle: the API server, configured with a client certificate
//! for the webhook (docs/install.md). Handshakes without one are refused by
//! rustls before any HTTP is read. The bundle is polled like the serving pair.

use super::metrics::Metrics;
use crate::error::Chain;
use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{what}: no PEM certificate found")]
    NoCertificate { what: String },
    #[error("{what}: invalid PEM certificate: {reason}")]
    BadCertificate { what: String, reason: String },
    #[error("{what}: invalid PEM private key: {reason}")]
    BadKey { what: String, reason: String },
    #[error("{what}: the private key does not match the certificate or is unsupported: {reason}")]
    KeyMismatch { what: String, reason: String },
    #[error("{what}: invalid client CA bundle: {reason}")]
    BadClientCa { what: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider, chosen explicitly: *ring* (no aws-lc-rs, so no
/// cmake), AEAD suites with forward secrecy only.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and key, in PEM.
#[derive(Clone)]
pub struct PemPair {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("PemPair { .. }")
    }
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files, reloaded when their content changes.
    Files { cert: PathBuf, key: PathBuf },
    /// In memory (the `--self-signed` dev certificate).
    Pem(PemPair),
}

/// Parse a PEM chain and key into a rustls `CertifiedKey`, checking the key matches.
pub fn certified_key(pair: &PemPair, what: &str, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certs = CertificateDer::pem_slice_iter(&pair.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what: what.to_string() });
    }
    let key = PrivateKeyDer::from_pem_slice(&pair.key).map_err(|e| TlsError::BadKey {
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| TlsError::KeyMismatch {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// When the leaf certificate of `key` expires (its notAfter, Unix seconds);
/// `None` if rustls accepted a certificate x509-parser cannot read.
pub fn not_after(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Serves whatever certificate is current; `swap` replaces it for new handshakes.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> CertResolver {
        CertResolver {
            current: ArcSwap::from_pointee(key),
        }
    }

    pub fn swap(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// TLS 1.2 and 1.3 only; ALPN `http/1.1` (the API server's webhook client
/// speaks HTTP/1.1), `h2` first only when HTTP/2 is asked for.
/// With `client_ca`, only clients presenting a certificate it signed complete the handshake.
pub fn server_config(
    resolver: Arc<CertResolver>,
    provider: Arc<CryptoProvider>,
    http2: bool,
    client_ca: Option<Arc<ClientCaVerifier>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    // actix-http puts h2 in front itself when HTTP/2 is enabled.
    config.alpn_protocols = if http2 { Vec::new() } else { vec![b"http/1.1".to_vec()] };
    Ok(config)
}

/// Reads a certificate pair from files and loads it when its content changes.
pub struct FileReloader {
    cert: PathBuf,
    key: PathBuf,
    resolver: Arc<CertResolver>,
    provider: Arc<CryptoProvider>,
    /// The last content tried, good or bad, so a bad pair is reported once.
    last: Option<(Vec<u8>, Vec<u8>)>,
}

impl FileReloader {
    /// Load the pair for the first time: an error here stops start-up.
    pub fn load(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<FileReloader, TlsError> {
        let pair = read_pair(cert, key)?;
        let certified = certified_key(&pair, &describe(cert, key), &provider)?;
        Ok(FileReloader {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            resolver: Arc::new(CertResolver::new(certified)),
            provider,
            last: Some((pair.cert, pair.key)),
        })
    }

    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// Read the files again; load them if they changed. `Ok(true)`: a new pair
    /// is served; `Ok(false)`: nothing changed; `Err`: the old pair stays.
    pub fn poll(&mut self) -> Result<bool, TlsError> {
        let pair = read_pair(&self.cert, &self.key)?;
        if self
            .last
            .as_ref()
            .is_some_and(|(c, k)| *c == pair.cert && *k == pair.key)
        {
            return Ok(false);
        }
        self.last = Some((pair.cert.clone(), pair.key.clone()));
        let certified = certified_key(&pair, &describe(&self.cert, &self.key), &self.provider)?;
        self.resolver.swap(certified);
        Ok(true)
    }

    /// Poll every `interval` until the task is dropped, logging and counting each reload.
    pub async fn run(mut self, interval: Duration, metrics: Arc<Metrics>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match self.poll() {
                Ok(false) => {}
                Ok(true) => {
                    metrics.cert_reload(true);
                    if let Some(t) = not_after(&self.resolver.current()) {
                        metrics.cert_expiry(t);
                    }
                    tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                }
                Err(e) => {
                    metrics.cert_reload(false);
                    tracing::error!(error = %Chain(&e), "serving certificate not reloaded; the previous one stays in use");
                }
            }
        }
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<PemPair, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    Ok(PemPair {
        cert: read(cert)?,
        key: read(key)?,
    })
}

fn describe(cert: &Path, key: &Path) -> String {
    format!("{} / {}", cert.display(), key.display())
}

/// Verifies client certificates against the current client CA bundle, which
/// `swap` replaces for new handshakes (rustls' `WebPkiClientVerifier` inside).
#[derive(Debug)]
pub struct ClientCaVerifier {
    current: ArcSwap<Arc<dyn ClientCertVerifier>>,
}

impl ClientCaVerifier {
    /// A verifier for the CAs in this PEM bundle; a client certificate is mandatory.
    pub fn from_pem(pem: &[u8], what: &str, provider: &Arc<CryptoProvider>) -> Result<ClientCaVerifier, TlsError> {
        Ok(ClientCaVerifier {
            current: ArcSwap::from_pointee(webpki_verifier(pem, what, provider)?),
        })
    }

    pub fn swap(&self, pem: &[u8], what: &str, provider: &Arc<CryptoProvider>) -> Result<(), TlsError> {
        self.current.store(Arc::new(webpki_verifier(pem, what, provider)?));
        Ok(())
    }

    fn inner(&self) -> Arc<Arc<dyn ClientCertVerifier>> {
        self.current.load_full()
    }
}

fn webpki_verifier(
    pem: &[u8],
    what: &str,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let bad = |reason: String| TlsError::BadClientCa {
        what: what.to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate found".to_string()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad(e.to_string()))
}

impl ClientCertVerifier for ClientCaVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No hints: a client whose certificate was signed by a CA added by a
    /// rotation still offers it (Go's client sends no certificate when the
    /// hints name other CAs). The CAs are not secret, just not needed here.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner().supported_verify_schemes()
    }
}

/// Reads the client CA bundle from a file and loads it when its content changes.
pub struct ClientCaReloader {
    path: PathBuf,
    verifier: Arc<ClientCaVerifier>,
    provider: Arc<CryptoProvider>,
    last: Vec<u8>,
}

impl ClientCaReloader {
    /// Load the bundle for the first time: an error here stops start-up.
    pub fn load(path: &Path, provider: Arc<CryptoProvider>) -> Result<ClientCaReloader, TlsError> {
        let pem = read(path)?;
        let verifier = ClientCaVerifier::from_pem(&pem, &path.display().to_string(), &provider)?;
        Ok(ClientCaReloader {
            path: path.to_path_buf(),
            verifier: Arc::new(verifier),
            provider,
            last: pem,
        })
    }

    pub fn verifier(&self) -> Arc<ClientCaVerifier> {
        self.verifier.clone()
    }

    /// Read the file again; load it if it changed. `Ok(true)`: a new bundle
    /// verifies new handshakes; `Err`: the old one stays.
    pub fn poll(&mut self) -> Result<bool, TlsError> {
        let pem = read(&self.path)?;
        if pem == self.last {
            return Ok(false);
        }
        self.last = pem.clone();
        self.verifier
            .swap(&pem, &self.path.display().to_string(), &self.provider)?;
        Ok(true)
    }

    /// Poll every `interval` until the task is dropped, logging each reload.
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match self.poll() {
                Ok(false) => {}
                Ok(true) => tracing::info!(client_ca = %self.path.display(), "client CA bundle reloaded"),
                Err(e) => {
                    tracing::error!(error = %Chain(&e), "client CA bundle not reloaded; the previous one stays in use")
                }
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}
