//! The loopback OCI registry of `oci.rs`, and the same over HTTPS (which
//! needs this crate's certificates, so the e2e suite includes `oci.rs` alone).

#![allow(dead_code)]

mod oci;

pub use oci::*;
use std::sync::Arc;

impl Registry {
    /// Over HTTPS with a certificate for 127.0.0.1 and localhost; also the
    /// PEM of the CA that signed it, for the client to trust.
    pub async fn start_tls(auth: Auth) -> (Registry, Vec<u8>) {
        use secure_defaults::server::{dev_cert, tls};
        let cert = dev_cert::generate("test registry CA", &dev_cert::LOCAL_NAMES).unwrap();
        let provider = tls::provider();
        let key = tls::certified_key(&cert.serving, "test registry", &provider).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(tls::CertResolver::new(key)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let registry = Registry::start_full(auth, "127.0.0.1", Some(acceptor)).await;
        (registry, cert.ca_pem.into_bytes())
    }
}
