//! A small OCI registry for the image lookup tests, on 127.0.0.1 over plain
//! HTTP: hand-written HTTP/1.1 (one request per connection, as the egress
//! guard forwards plain HTTP with `Connection: close`), every request counted.
//!
//! Repositories, by name:
//! - `app`: `USER 1000:1000`; `root`: no `USER`; `named`: `USER nginx`;
//! - `multi`: an index (windows, linux on another arch, linux on this arch
//!   `USER 2000`);
//!
//! The whole registry needs credentials in [`Auth::Basic`] (`alice:s3cret`)
//! or [`Auth::Bearer`] (tokens from `/token` for `alice:s3cret`, the realm on
//! the `realm_host` it was started with).
//! - `redirect`: its manifest redirects to `localhost` (another host name);
//! - `bigmanifest`, `bigconfig`: 100 KiB manifest or config;
//! - `slow`: answers after 5 s.

#![allow(dead_code)]

use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const BASIC: &str = "Basic YWxpY2U6czNjcmV0"; // alice:s3cret

pub fn digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

pub fn own_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[derive(Clone)]
struct Blob {
    media_type: &'static str,
    body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Anonymous,
    Basic,
    Bearer,
}

pub struct Registry {
    pub port: u16,
    /// Request paths, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    /// Digests of the manifests, by repository (tag `1`).
    pub manifests: HashMap<String, String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(user: Option<&str>, pad: usize) -> Blob {
    let mut c =
        json!({"architecture": own_arch(), "os": "linux", "config": {"Env": ["PATH=/bin"]}, "pad": "x".repeat(pad)});
    if let Some(u) = user {
        c["config"]["User"] = json!(u);
    }
    Blob {
        media_type: CONFIG,
        body: serde_json::to_vec(&c).unwrap(),
    }
}

fn manifest(config: &Blob, pad: usize) -> Blob {
    let m = json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": digest(&config.body), "size": config.body.len()},
        "layers": [],
        "annotations": {"pad": "x".repeat(pad)}
    });
    Blob {
        media_type: MANIFEST,
        body: serde_json::to_vec(&m).unwrap(),
    }
}

impl Registry {
    pub async fn start() -> Registry {
        Registry::start_with(Auth::Anonymous, "127.0.0.1").await
    }

    /// `realm_host`: where the bearer realm points (same port).
    pub async fn start_with(auth: Auth, realm_host: &str) -> Registry {
        Registry::start_full(auth, realm_host, None).await
    }

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

    async fn start_full(auth: Auth, realm_host: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut blobs: HashMap<String, Blob> = HashMap::new();
        let mut tags: HashMap<String, Blob> = HashMap::new();
        let mut manifests = HashMap::new();
        let mut add = |repo: &str, cfg: Blob, manifest_pad: usize| {
            let m = manifest(&cfg, manifest_pad);
            blobs.insert(digest(&cfg.body), cfg);
            blobs.insert(digest(&m.body), m.clone());
            manifests.insert(repo.to_string(), digest(&m.body));
            tags.insert(repo.to_string(), m);
        };
        add("app", config(Some("1000:1000"), 0), 0);
        add("root", config(None, 0), 0);
        add("named", config(Some("nginx"), 0), 0);
        add("redirect", config(Some("1003"), 0), 0);
        add("slow", config(Some("1004"), 0), 0);
        add("bigmanifest", config(Some("1005"), 0), 100 * 1024);
        add("bigconfig", config(Some("1006"), 100 * 1024), 0);
        // The index: entries whose manifests hold other users.
        let other_arch = if own_arch() == "arm64" { "s390x" } else { "arm64" };
        let mut entries = Vec::new();
        for (os, arch, user) in [
            ("windows", own_arch(), "3000"),
            ("linux", other_arch, "3001"),
            ("linux", own_arch(), "2000"),
        ] {
            let cfg = config(Some(user), 0);
            let m = manifest(&cfg, 0);
            entries.push(
                json!({"mediaType": MANIFEST, "digest": digest(&m.body), "size": m.body.len(),
                                "platform": {"os": os, "architecture": arch}}),
            );
            blobs.insert(digest(&cfg.body), cfg);
            blobs.insert(digest(&m.body), m);
        }
        let index = Blob {
            media_type: INDEX,
            body: serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries})).unwrap(),
        };
        manifests.insert("multi".to_string(), digest(&index.body));
        tags.insert("multi".to_string(), index);

        let requests = Arc::new(Mutex::new(Vec::new()));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Shared {
            auth,
            port,
            scheme,
            realm: format!("{scheme}://{realm_host}:{port}/token"),
            blobs: Arc::new(blobs),
            tags: Arc::new(tags),
            requests: requests.clone(),
        };
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => shared.serve(stream).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                shared.serve(stream).await
                            }
                        }
                    }
                });
            }
        });
        Registry {
            port,
            requests,
            manifests,
            task,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn image(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}:1", self.port)
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Requests for manifests and blobs (not `/v2/` or `/token`).
    pub fn fetches(&self) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.contains("/manifests/") || p.contains("/blobs/"))
            .count()
    }
}

#[derive(Clone)]
struct Shared {
    auth: Auth,
    port: u16,
    scheme: &'static str,
    realm: String,
    blobs: Arc<HashMap<String, Blob>>,
    tags: Arc<HashMap<String, Blob>>,
    requests: Arc<Mutex<Vec<String>>>,
}

struct Answer {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn status(status: &'static str) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    fn header(mut self, k: &str, v: &str) -> Answer {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

impl Shared {
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(self, mut stream: S) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .unwrap_or_default()
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let auth = lines
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("authorization").then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        self.requests.lock().unwrap().push(path.clone());
        let answer = self.answer(&path, &auth).await;
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            answer.status,
            answer.body.len()
        );
        for (k, v) in &answer.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&answer.body);
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    }

    async fn answer(&self, path: &str, auth: &str) -> Answer {
        let basic_challenge = || Answer::status("401 Unauthorized").header("WWW-Authenticate", "Basic realm=\"test\"");
        let bearer_challenge = || {
            Answer::status("401 Unauthorized").header(
                "WWW-Authenticate",
                &format!(
                    "Bearer realm=\"{}\",service=\"test\",scope=\"repository:token:pull\"",
                    self.realm
                ),
            )
        };
        let challenge = || match self.auth {
            Auth::Basic => basic_challenge(),
            _ => bearer_challenge(),
        };
        let allowed = match self.auth {
            Auth::Anonymous => true,
            Auth::Basic => auth == BASIC,
            Auth::Bearer => auth == "Bearer t0ken",
        };
        if path == "/v2/" {
            return if allowed { Answer::status("200 OK") } else { challenge() };
        }
        if let Some(_query) = path.strip_prefix("/token") {
            if auth != BASIC {
                return basic_challenge();
            }
            return Answer {
                body: br#"{"token": "t0ken", "expires_in": 300}"#.to_vec(),
                ..Answer::status("200 OK").header("Content-Type", "application/json")
            };
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return Answer::status("404 Not Found");
        };
        let (repo, kind, reference) = match (rest.split_once("/manifests/"), rest.split_once("/blobs/")) {
            (Some((repo, r)), _) => (repo, "manifests", r),
            (_, Some((repo, r))) => (repo, "blobs", r),
            _ => return Answer::status("404 Not Found"),
        };
        if !allowed {
            return challenge();
        }
        match repo {
            "slow" => tokio::time::sleep(Duration::from_secs(5)).await,
            "redirect" if kind == "manifests" => {
                return Answer::status("307 Temporary Redirect").header(
                    "Location",
                    &format!("http://localhost:{}/v2/app/manifests/1", self.port),
                )
            }
            _ => {}
        }
        let blob = if kind == "manifests" && !reference.starts_with("sha256:") {
            self.tags.get(repo)
        } else {
            self.blobs.get(reference)
        };
        match blob {
            Some(blob) => Answer {
                body: blob.body.clone(),
                ..Answer::status("200 OK")
                    .header("Content-Type", blob.media_type)
                    .header("Docker-Content-Digest", &digest(&blob.body))
            },
            None => Answer::status("404 Not Found"),
        }
    }
}

/// `{"auths": {host: alice:s3cret}}`.
pub fn docker_config(host: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#)
}
