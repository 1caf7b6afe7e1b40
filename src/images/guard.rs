//! The egress guard: a forward proxy on 127.0.0.1 that every registry
//! connection of the image lookup goes through (see the threat model in
//! [`super`]).
//!
//! Each registry client gets a [`Route`] (the hosts it may reach) and a
//! [`Proxy`] for it: a listener of its own, whose URL carries a random token
//! (sent as `Proxy-Authorization`) that every relayed request must bear. The
//! guard accepts `CONNECT host:port` (HTTPS) and absolute-form
//! `http://` requests (plain-HTTP registries, forwarded with
//! `Connection: close`); it resolves the name itself, refuses the addresses of
//! [`vet`](super::vet), connects to the vetted address (no second
//! resolution), caps the bytes relayed back and the connection's lifetime,
//! and records why it refused or cut a connection, for the lookup's error.

use super::vet;
use base64::Engine as _;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A request head longer than this is refused (registry clients send a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;
/// For the request head, and for connecting to the registry.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection was refused or cut. `Refused` is the operator's policy
/// (a host or address not allowed, too large a response); `Failed` is the
/// network (no such host, connection refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Refused(String),
    Failed(String),
}

/// What one registry client may reach.
#[derive(Debug)]
pub struct Route {
    /// Hosts, lowercase, with a port or `None` for the default ports (443 and 80).
    allowed: Vec<(String, Option<u16>)>,
    max_bytes: u64,
    lifetime: Duration,
    stop: Mutex<Option<(Instant, Stop)>>,
}

impl Route {
    pub fn new(allowed: impl IntoIterator<Item = String>, max_bytes: u64, lifetime: Duration) -> Route {
        Route {
            allowed: allowed
                .into_iter()
                .filter_map(|h| split_host_port(&h, 0))
                .map(|(host, port)| (host, (port != 0).then_some(port)))
                .collect(),
            max_bytes,
            lifetime,
            stop: Mutex::new(None),
        }
    }

    /// The last refusal or cut at or after `since`: why a lookup started then failed.
    pub fn stop_since(&self, since: Instant) -> Option<Stop> {
        let stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        stop.as_ref().filter(|(at, _)| *at >= since).map(|(_, s)| s.clone())
    }

    fn record(&self, stop: Stop) {
        tracing::debug!(?stop, "image lookup egress stopped");
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), stop));
    }

    fn allows(&self, host: &str, port: u16) -> bool {
        self.allowed.iter().any(|(h, p)| {
            h == host
                && match p {
                    Some(p) => *p == port,
                    None => port == 443 || port == 80,
                }
        })
    }
}

/// One route's proxy: its own listener on 127.0.0.1, so a request is tied to
/// its route by the port it came to, even when the client leaves out its
/// `Proxy-Authorization` (reqwest drops it on a redirect to another host).
/// Dropping it stops accepting; connections in flight end with the route's
/// lifetime.
#[derive(Debug)]
pub struct Proxy {
    /// `http://TOKEN:x@127.0.0.1:PORT`, oci-client's proxy.
    pub url: String,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// Listen for `route` and serve on the current tokio runtime.
    pub fn open(route: Arc<Route>) -> io::Result<Proxy> {
        let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let token = token();
        let url = format!("http://{token}:x@{addr}");
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors and the like: back off, do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (route, token) = (route.clone(), token.clone());
                tokio::spawn(async move { serve(stream, &route, &token).await });
            }
        });
        Ok(Proxy { url, accept })
    }
}

/// 128 random bits in hex, from the standard library's randomly keyed hasher
/// (no RNG crate for this): unguessable by a process that did not get the URL.
fn token() -> String {
    let a = RandomState::new().hash_one(Instant::now());
    let b = RandomState::new().hash_one(std::process::id());
    format!("{a:016x}{b:016x}")
}

/// 4 MiB, 512 KiB, or bytes.
pub fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

struct Head {
    method: String,
    target: String,
    lines: Vec<String>,
    /// Bytes read past the head.
    rest: Vec<u8>,
}

async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Head>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let Ok(text) = std::str::from_utf8(&buf[..end]) else {
        return Ok(None);
    };
    let mut lines = text.split("\r\n").map(str::to_string);
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        lines: lines.collect(),
        rest: buf[end + 4..].to_vec(),
    }))
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether `Proxy-Authorization: Basic base64(token:x)` carries `token`.
fn authorized(lines: &[String], token: &str) -> bool {
    let Some(value) = header(lines, "proxy-authorization") else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return false;
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap_or_default();
    decoded.split(|b| *b == b':').next() == Some(token.as_bytes())
}

/// `host:port` (or `[v6]:port`) into a lowercase host without brackets and the port.
fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let authority = authority.to_ascii_lowercase();
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority, default_port)),
    }
}

async fn respond(stream: &mut TcpStream, status: &str) {
    let _ = stream
        .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
        .await;
}

async fn serve(mut stream: TcpStream, route: &Route, token: &str) {
    let Ok(Ok(Some(head))) = tokio::time::timeout(STEP_TIMEOUT, read_head(&mut stream)).await else {
        return respond(&mut stream, "400 Bad Request").await;
    };
    let connect = head.method.eq_ignore_ascii_case("CONNECT");
    let (authority, path) = if connect {
        (head.target.clone(), String::new())
    } else if let Some(rest) = head.target.strip_prefix("http://") {
        match rest.find('/') {
            Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
            None => (rest.to_string(), "/".to_string()),
        }
    } else {
        return respond(&mut stream, "400 Bad Request").await;
    };
    let Some((host, port)) = split_host_port(&authority, if connect { 443 } else { 80 }) else {
        return respond(&mut stream, "400 Bad Request").await;
    };
    if !route.allows(&host, port) {
        route.record(Stop::Refused(format!(
            "connection to {host}:{port} refused: not an allowed host (a redirect or token server must be in imageLookup.extraHosts)"
        )));
        return respond(&mut stream, "403 Forbidden").await;
    }
    // Checked after the host, so a redirect (which loses the header) is
    // still reported by where it went; without the token nothing is relayed.
    if !authorized(&head.lines, token) {
        route.record(Stop::Refused(format!(
            "request to {host}:{port} without the proxy token refused (a redirect?)"
        )));
        return respond(&mut stream, "407 Proxy Authentication Required").await;
    }
    let upstream = match vetted_connect(&host, port).await {
        Ok(upstream) => upstream,
        Err(stop) => {
            let status = match stop {
                Stop::Refused(_) => "403 Forbidden",
                Stop::Failed(_) => "502 Bad Gateway",
            };
            route.record(stop);
            return respond(&mut stream, status).await;
        }
    };
    let mut upstream = upstream;
    if connect {
        if stream
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        if !head.rest.is_empty() && upstream.write_all(&head.rest).await.is_err() {
            return;
        }
    } else {
        let mut out = format!("{} {path} HTTP/1.1\r\n", head.method);
        for line in &head.lines {
            let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
            if !matches!(
                name.as_str(),
                "proxy-authorization" | "proxy-connection" | "connection" | "keep-alive"
            ) {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&head.rest);
        if upstream.write_all(&bytes).await.is_err() {
            return;
        }
    }
    relay(stream, upstream, route).await;
}

/// Resolve `host` once, refuse forbidden addresses, connect to the first allowed one.
async fn vetted_connect(host: &str, port: u16) -> Result<TcpStream, Stop> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(Stop::Failed(format!("cannot resolve {host}: {e}"))),
            Err(_) => return Err(Stop::Failed(format!("cannot resolve {host}: timed out"))),
        },
    };
    let Some(addr) = addrs.iter().find(|a| vet::refusal(a.ip()).is_none()) else {
        let first = addrs.first().map(|a| a.ip());
        return Err(match first {
            Some(ip) => {
                let reason = vet::refusal(ip).unwrap_or("refused");
                if host.parse::<IpAddr>().is_ok() {
                    Stop::Refused(format!("{ip} is {reason}"))
                } else {
                    Stop::Refused(format!("{host} resolves to {ip}, {reason}"))
                }
            }
            None => Stop::Failed(format!("cannot resolve {host}: no addresses")),
        });
    };
    match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(Stop::Failed(format!("cannot connect to {host}:{port}: {e}"))),
        Err(_) => Err(Stop::Failed(format!("cannot connect to {host}:{port}: timed out"))),
    }
}

/// Copy both ways until either side closes, the response passes the route's
/// byte cap, or the route's lifetime ends.
async fn relay(client: TcpStream, upstream: TcpStream, route: &Route) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let up = tokio::io::copy(&mut client_read, &mut up_write);
    let down = async {
        let mut total = 0u64;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match up_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            total += n as u64;
            if total > route.max_bytes {
                route.record(Stop::Refused(format!(
                    "response larger than {} (imageLookup.maxResponseBytes)",
                    human_bytes(route.max_bytes)
                )));
                return;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = tokio::time::sleep(route.lifetime) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(proxy: &Proxy, token: Option<&str>, request_line: &str) -> String {
        let rest = proxy.url.trim_start_matches("http://");
        let (own, addr) = rest.split_once(":x@").unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:x", token.unwrap_or(own)));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("{request_line}\r\nProxy-Authorization: Basic {auth}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn refusals_are_answered_and_recorded() {
        let route = Arc::new(Route::new(
            [
                "registry.example".to_string(),
                "169.254.169.254:5000".to_string(),
                "100.100.100.200".to_string(),
            ],
            1024,
            Duration::from_secs(5),
        ));
        let proxy = Proxy::open(route.clone()).unwrap();
        let since = Instant::now();
        for (line, want) in [
            (
                "CONNECT other.example:443 HTTP/1.1",
                "connection to other.example:443 refused: not an allowed host",
            ),
            (
                "CONNECT registry.example:8443 HTTP/1.1",
                "registry.example:8443 refused",
            ),
            (
                "CONNECT 169.254.169.254:5000 HTTP/1.1",
                "169.254.169.254 is a link-local address",
            ),
            (
                "GET http://100.100.100.200/v2/ HTTP/1.1",
                "100.100.100.200 is a cloud metadata address",
            ),
        ] {
            let answer = ask(&proxy, None, line).await;
            assert!(answer.starts_with("HTTP/1.1 403"), "{line}: {answer}");
            match route.stop_since(since) {
                Some(Stop::Refused(why)) => assert!(why.contains(want), "{line}: {why}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_wrong_token_gets_407() {
        let route = Arc::new(Route::new(["127.0.0.1:1".to_string()], 1024, Duration::from_secs(5)));
        let proxy = Proxy::open(route.clone()).unwrap();
        let since = Instant::now();
        let answer = ask(&proxy, Some("guess"), "CONNECT 127.0.0.1:1 HTTP/1.1").await;
        assert!(answer.starts_with("HTTP/1.1 407"), "{answer}");
        assert!(matches!(route.stop_since(since), Some(Stop::Refused(why)) if why.contains("without the proxy token")));
    }

    #[tokio::test]
    async fn plain_http_is_forwarded_with_connection_close_and_capped() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = upstream.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = "x".repeat(4096);
            let _ = s
                .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n{body}").as_bytes())
                .await;
            request
        });
        let route = Arc::new(Route::new([format!("127.0.0.1:{port}")], 1024, Duration::from_secs(5)));
        let proxy = Proxy::open(route.clone()).unwrap();
        let since = Instant::now();
        let answer = ask(&proxy, None, &format!("GET http://127.0.0.1:{port}/v2/ HTTP/1.1")).await;
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /v2/ HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Connection: close"), "{request}");
        assert!(
            !request.to_ascii_lowercase().contains("proxy-authorization"),
            "{request}"
        );
        assert!(answer.len() <= 1024, "{} bytes relayed", answer.len());
        assert_eq!(
            route.stop_since(since),
            Some(Stop::Refused(
                "response larger than 1 KiB (imageLookup.maxResponseBytes)".to_string()
            ))
        );
    }

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("Reg.io", 443), Some(("reg.io".into(), 443)));
        assert_eq!(split_host_port("reg.io:5000", 443), Some(("reg.io".into(), 5000)));
        assert_eq!(split_host_port("[fe80::1]:5000", 443), Some(("fe80::1".into(), 5000)));
        assert_eq!(split_host_port("[::1]", 80), Some(("::1".into(), 80)));
        assert_eq!(split_host_port("reg.io:x", 443), None);
    }
}
