//! Shared by the real-socket server tests: a server on free loopback ports
//! with a certificate made for the test, and a rustls client (hyper for
//! well-behaved requests, raw bytes for misbehaving ones). Every network step
//! is bounded by a timeout so a hung server fails the test instead of hanging it.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use secure_defaults::config::Config;
use secure_defaults::server::dev_cert::{self, DevCert};
use secure_defaults::server::tls::CertSource;
use secure_defaults::server::{self, Running, Settings};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

pub const STEP: Duration = Duration::from_secs(10);

/// Fail the test if `fut` takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {limit:?}"),
    }
}

pub fn cert(ca_name: &str) -> DevCert {
    dev_cert::generate(ca_name, &["localhost", "127.0.0.1"]).expect("test certificate")
}

pub fn example_review() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/admission-review.json")).expect("example")
}

/// Settings for a test server on free loopback ports.
pub fn settings(cert: CertSource) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        shutdown_delay: Duration::ZERO,
        shutdown_timeout: Duration::from_secs(5),
        ..Settings::new(cert, Config::default())
    }
}

pub struct TestServer {
    pub running: Running,
    pub cert: DevCert,
}

impl TestServer {
    pub async fn start(tweak: impl FnOnce(&mut Settings)) -> TestServer {
        let cert = cert("test CA");
        let mut s = settings(CertSource::Pem(cert.serving.clone()));
        tweak(&mut s);
        let running = within(STEP, "server start", server::start(s))
            .await
            .expect("server starts");
        TestServer { running, cert }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    pub fn client(&self) -> Arc<ClientConfig> {
        client_config(&[&self.cert.ca_pem], &[b"h2", b"http/1.1"])
    }

    pub async fn connect(&self) -> TlsStream<TcpStream> {
        connect(self.addr(), self.client()).await
    }
}

/// A client trusting these CAs and offering these ALPN protocols (the API
/// server's Go client offers h2 and http/1.1). No session resumption, so each
/// connection sees the certificate served at that moment.
pub fn client_config(ca_pems: &[&str], alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for pem in ca_pems {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA cert");
        }
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

pub async fn try_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    within(STEP, "TLS connect", async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    })
    .await
}

pub async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    try_connect(addr, config).await.expect("TLS connection")
}

/// The end-entity certificate the server presented.
pub fn served_cert(tls: &TlsStream<TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().expect("server certificate")[0].to_vec()
}

pub fn der(pem: &[u8]) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem).expect("PEM cert").to_vec()
}

/// An HTTP/1.1 connection driven by hyper.
pub struct H1 {
    sender: http1::SendRequest<Full<Bytes>>,
}

pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl H1 {
    pub async fn new<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(stream: S) -> H1 {
        let (sender, conn) = within(STEP, "HTTP/1.1 handshake", http1::handshake(TokioIo::new(stream)))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(conn);
        H1 { sender }
    }

    pub async fn try_post(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Answer, hyper::Error> {
        within(STEP, "POST", async {
            self.sender.ready().await?;
            let req = hyper::Request::post(path)
                .header("host", "localhost")
                .header("content-type", content_type)
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let resp = self.sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok(Answer { status, headers, body })
        })
        .await
    }

    pub async fn post(&mut self, path: &str, body: Vec<u8>) -> Answer {
        self.try_post(path, "application/json", body)
            .await
            .expect("POST answered")
    }
}

/// `GET` on the plain-HTTP admin port: status and body.
pub async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    within(STEP, "admin GET", async {
        let tcp = TcpStream::connect(addr).await.expect("admin connect");
        let (mut sender, conn) = http1::handshake(TokioIo::new(tcp)).await.expect("admin handshake");
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.expect("admin answer");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("admin body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
    .await
}

/// Everything the server sends until it closes the connection (or `limit` passes).
pub async fn read_until_closed<S: AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "connection still open after {limit:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// The status code of a raw HTTP/1.1 response.
pub fn status_of(raw: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(raw);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

pub async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    within(STEP, "write", async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
}

pub fn request_head(content_type: &str, content_length: usize) -> String {
    format!(
        "POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {content_length}\r\n\r\n"
    )
}
