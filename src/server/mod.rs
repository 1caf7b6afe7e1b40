//! The webhook server: `POST /mutate` over TLS, and `/healthz`, `/readyz` and
//! `/metrics` on a separate plain-HTTP admin port.
//!
//! This module only moves bytes: it reads and bounds the body, hands the
//! review to [`crate::admission`], and logs and counts what came back.
//!
//! Timeouts, and why:
//! - TLS handshake and request headers: a few seconds (`handshake_timeout`,
//!   `header_timeout`), so idle or slow clients cannot hold connections.
//! - Body: `body_timeout`, shortened to the API server's own `?timeout=` (the
//!   webhook's `timeoutSeconds`). Past that deadline the API server has given
//!   up and applied its `failurePolicy`, so the body is abandoned with `408`
//!   and the connection closed; a review finished after it is logged and
//!   counted as `deadline_exceeded`.
//! - Waiting for memory: a body past 256 KiB waits, unread, for its share of
//!   the large-body budget ([`body_memory`]); still waiting at the body's
//!   deadline, it gets `503`.
//! - Keep-alive: 120 s, longer than the API server keeps idle connections (90 s),
//!   so it is the client that closes them, never a request racing our close.

pub mod body_memory;
pub mod dev_cert;
pub mod duration;
pub mod images;
pub mod metrics;
pub mod tls;

use crate::admission::{self, redact, BodyError, Outcome, Parsed, Reviewed};
use crate::cluster::namespaces::NamespaceCache;
use crate::config::Config;
use crate::engine::ImageFacts;
use actix_http::error::DispatchError;
use actix_http::{ConnectionType, HttpService, KeepAlive, Request, StatusCode};
use actix_rt::net::TcpStream;
use actix_server::ServerHandle;
use actix_service::{boxed, fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt};
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use actix_tls::accept::TlsError as AcceptError;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{AppConfig, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use body_memory::{BodyMemory, Reservation};
use futures_util::StreamExt;
use images::ImageService;
use metrics::{error_kind, Metrics};
use std::cell::Cell;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use thiserror::Error;
use tls::{CertResolver, CertSource, ClientCaReloader, FileReloader, TlsError};
use tokio::task::JoinHandle;

/// Two objects of up to 3 MB each (an UPDATE carries `object` and
/// `oldObject`) plus the review around them.
pub const MAX_BODY: usize = 7 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The TLS webhook port. Port 0 picks a free port ([`Running::addr`] says which).
    pub listen: SocketAddr,
    /// The plain-HTTP port for probes and metrics.
    pub admin_listen: SocketAddr,
    pub cert: CertSource,
    /// How often certificate files are read for a change.
    pub cert_reload_interval: Duration,
    pub config: Config,
    /// Offer HTTP/2 by ALPN. Off: the API server speaks HTTP/1.1 to webhooks.
    pub http2: bool,
    pub workers: usize,
    pub keep_alive: Duration,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// Bytes that bodies over [`body_memory::SMALL`] may hold at once, all
    /// workers together; more wait ([`body_memory`]).
    pub body_memory: usize,
    /// After a stop is asked for: unready, but still serving, this long.
    pub shutdown_delay: Duration,
    /// Then: requests in flight get this long to finish.
    pub shutdown_timeout: Duration,
    /// Per-namespace policy (`--namespace-policy`): the watched namespaces.
    pub namespaces: Option<NamespaceCache>,
    /// `--client-ca`: only clients with a certificate signed by a CA in this
    /// PEM bundle complete the TLS handshake. Reloaded like the serving pair.
    pub client_ca: Option<PathBuf>,
    /// What answers a review: [`harden`].
    pub reviewer: Reviewer,
    /// `identity: auto`: the image lookup run before each review.
    pub images: Option<Arc<ImageService>>,
}

impl Settings {
    pub fn new(cert: CertSource, config: Config) -> Settings {
        Settings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            cert,
            cert_reload_interval: Duration::from_secs(5),
            config,
            http2: false,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            keep_alive: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            body_memory: body_memory::DEFAULT_BYTES,
            shutdown_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(20),
            namespaces: None,
            client_ca: None,
            reviewer: harden,
            images: None,
        }
    }
}

/// How the server answers a body read within its limits: [`harden`] in the
/// webhook. The benchmarks' no-op endpoint (`examples/noop_webhook.rs`)
/// passes its own, to load the same HTTP and TLS stack without the engine.
/// `images` are the lookups of `identity: auto` ([`images`]), empty when
/// nothing was looked up.
pub type Reviewer = fn(&[u8], &AppState, &ImageFacts) -> Result<Reviewed, BodyError>;

/// The webhook: parse the review and answer it with the admission layer,
/// under the namespace's policy when there is one.
pub fn harden(body: &[u8], state: &AppState, images: &ImageFacts) -> Result<Reviewed, BodyError> {
    Ok(answer_parsed(admission::parse(body)?, state, images))
}

fn answer_parsed(parsed: Parsed, state: &AppState, images: &ImageFacts) -> Reviewed {
    match parsed {
        Parsed::Request(req) => match &state.namespaces {
            None => admission::review_with(&req, &state.config, images),
            Some(cache) => {
                let ns = req.namespace.as_deref().and_then(|name| cache.get(name));
                admission::namespace::review_with(&req, &state.config, ns.as_ref(), images)
            }
        },
        Parsed::Unreadable(request) => admission::unreadable(&request, &state.config),
    }
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot start the server")]
    Start(#[source] std::io::Error),
}

/// What every worker shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    /// False before start-up completes and once shutdown begins.
    pub ready: AtomicBool,
    pub body_timeout: Duration,
    pub max_body: usize,
    /// The budget of large bodies in flight.
    pub body_memory: BodyMemory,
    /// Per-namespace policy; `None` when off.
    pub namespaces: Option<NamespaceCache>,
    pub reviewer: Reviewer,
    /// `identity: auto`: the image lookup; `None` when no pod can be `auto`.
    pub images: Option<Arc<ImageService>>,
}

impl AppState {
    pub fn new(config: Config, body_timeout: Duration) -> AppState {
        let metrics = Arc::new(Metrics::new());
        AppState {
            config,
            body_memory: BodyMemory::new(body_memory::DEFAULT_BYTES, metrics.large_body_bytes.clone()),
            metrics,
            ready: AtomicBool::new(false),
            body_timeout,
            max_body: MAX_BODY,
            namespaces: None,
            reviewer: harden,
            images: None,
        }
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// The webhook's routes, for the TLS server and for in-process tests.
pub fn webhook_routes(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .service(web::resource("/mutate").route(web::post().to(mutate)));
    }
}

/// The admin routes: liveness, readiness, metrics.
pub fn admin_routes(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().body("ok\n") }))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics_text));
    }
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // With a namespace policy: once the namespaces are synced (or the wait timed out).
    if state.is_ready() && state.namespaces.as_ref().is_none_or(NamespaceCache::is_settled) {
        HttpResponse::Ok().body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable().body("not ready\n")
    }
}

async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(state.metrics.encode())
}

/// A request answered with an HTTP error instead of an AdmissionReview:
/// there is no readable review to answer.
struct Refusal {
    status: StatusCode,
    kind: &'static str,
    message: String,
    /// The message quotes the body (a decoder's message): logged without
    /// the quoted values. Other messages are ours, logged as they are.
    quotes_body: bool,
    /// Close the connection: the rest of the body was not read.
    close: bool,
}

impl Refusal {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            kind,
            message: message.into(),
            quotes_body: false,
            close: false,
        }
    }

    fn closing(self) -> Refusal {
        Refusal { close: true, ..self }
    }

    fn loggable(&self) -> std::borrow::Cow<'_, str> {
        if self.quotes_body {
            redact(&self.message).into()
        } else {
            self.message.as_str().into()
        }
    }
}

async fn mutate(req: HttpRequest, mut payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let deadline = api_server_timeout(req.query_string());
    let mut response = match read_body(&req, &mut payload, &state, deadline).await {
        // The reservation, if any, is given back with the body, after the review.
        Ok((body, _reservation)) => match review(&body, &state, deadline, started).await {
            Ok(reviewed) => answer(reviewed, &state, started, deadline),
            Err(e) => refuse(&state, started, body_error(e), payload),
        },
        Err(refusal) => refuse(&state, started, refusal, payload),
    };
    if !state.is_ready() {
        // Shutting down: each connection's next answer closes it, so the
        // client reconnects to a pod that is not going away.
        response.head_mut().set_connection_type(ConnectionType::Close);
    }
    response
}

/// The reviewer; or, with an image lookup (no other reviewer then), the
/// request parsed once, its images looked up (bounded by the budget), and
/// [`harden`]'s answer.
async fn review(
    body: &[u8],
    state: &AppState,
    deadline: Option<Duration>,
    started: Instant,
) -> Result<Reviewed, BodyError> {
    let Some(images) = &state.images else {
        return (state.reviewer)(body, state, &ImageFacts::default());
    };
    let parsed = admission::parse(body)?;
    let facts = match &parsed {
        Parsed::Request(req) => {
            let namespaces = state.namespaces.as_ref();
            images
                .facts(req, body, &state.config, namespaces, deadline, started, &state.metrics)
                .await
        }
        Parsed::Unreadable(_) => ImageFacts::default(),
    };
    Ok(answer_parsed(parsed, state, &facts))
}

fn body_error(e: BodyError) -> Refusal {
    let kind = match e {
        BodyError::Empty => error_kind::EMPTY_BODY,
        _ => error_kind::BAD_REQUEST,
    };
    let quotes_body = matches!(e, BodyError::NotJson(_) | BodyError::NotAReview(_));
    Refusal {
        quotes_body,
        ..Refusal::new(StatusCode::BAD_REQUEST, kind, e.to_string())
    }
}

/// The API server's `?timeout=10s`, if any.
fn api_server_timeout(query: &str) -> Option<Duration> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "timeout")
        .and_then(|(_, v)| duration::parse(v).ok())
        .filter(|d| !d.is_zero())
}

/// Read the body within the limits: its size, its deadline, and the memory
/// for large bodies (the [`Reservation`] returned with a body past
/// [`body_memory::SMALL`]).
async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
    deadline: Option<Duration>,
) -> Result<(web::BytesMut, Option<Reservation>), Refusal> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = content_type
        .as_deref()
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        let got = content_type.map_or("none".to_string(), |v| format!("{:?}", cut(&v, 100)));
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error_kind::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be application/json, got {got}"),
        )
        .closing());
    }
    let too_large = |size: String| {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            error_kind::PAYLOAD_TOO_LARGE,
            format!("body of {size} bytes exceeds the limit of {} bytes", state.max_body),
        )
        .closing()
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > state.max_body as u64) {
        return Err(too_large(len.to_string()));
    }
    let budget = deadline.map_or(state.body_timeout, |d| d.min(state.body_timeout));
    // Set while the body waits for memory, so a deadline passing then is told apart.
    let waiting = Cell::new(false);
    let read = async {
        // The declared length only sizes the first allocation up to 64 KiB:
        // a client declaring 7 MiB and sending nothing must not reserve 7 MiB.
        let mut body = web::BytesMut::with_capacity(declared.map_or(8 * 1024, |n| n as usize).min(64 * 1024));
        let mut reservation = None;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    error_kind::BODY_READ,
                    format!("cannot read the body: {e}"),
                )
                .closing()
            })?;
            if body.len() + chunk.len() > state.max_body {
                return Err(too_large(format!("more than {}", state.max_body)));
            }
            if reservation.is_none() && body.len() + chunk.len() > body_memory::SMALL {
                // Arrived, not only declared: now the whole body is reserved
                // and allocated once, instead of growing by doubling.
                let size = declared.map_or(state.max_body, |n| n as usize);
                reservation = Some(match state.body_memory.try_reserve(size) {
                    Some(r) => r,
                    None => {
                        state.metrics.large_body_waits.inc();
                        waiting.set(true);
                        let r = state.body_memory.reserve(size).await;
                        waiting.set(false);
                        r
                    }
                });
                body.reserve(size.saturating_sub(body.len()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, reservation))
    };
    match tokio::time::timeout(budget, read).await {
        Ok(result) => result,
        Err(_) if waiting.get() => Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            error_kind::BODY_MEMORY,
            format!(
                "busy: the body's {} ms deadline passed while it waited for memory ({} bytes of large bodies are read at once)",
                budget.as_millis(),
                state.body_memory.bytes()
            ),
        )
        .closing()),
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            error_kind::BODY_TIMEOUT,
            format!("body not received within {} ms", budget.as_millis()),
        )
        .closing()),
    }
}

fn answer(reviewed: Reviewed, state: &AppState, started: Instant, deadline: Option<Duration>) -> HttpResponse {
    let elapsed = started.elapsed();
    state.metrics.review(&reviewed.outcome, elapsed);
    log_review(&reviewed.outcome, elapsed);
    if deadline.is_some_and(|d| elapsed > d) {
        state.metrics.error(error_kind::DEADLINE_EXCEEDED);
        tracing::warn!(uid = %reviewed.outcome.uid, duration_ms = millis(elapsed), "answered after the API server's timeout");
    }
    match admission::encode(reviewed.response) {
        Ok(body) => HttpResponse::Ok().content_type("application/json").body(body),
        Err(e) => {
            // Only strings and maps: not expected to happen.
            state.metrics.error(error_kind::SERIALIZE);
            tracing::error!(error = %e, "cannot serialize the AdmissionReview");
            HttpResponse::InternalServerError().body("cannot serialize the AdmissionReview\n")
        }
    }
}

fn refuse(state: &AppState, started: Instant, refusal: Refusal, payload: web::Payload) -> HttpResponse {
    let elapsed = started.elapsed();
    state.metrics.refused(refusal.kind, elapsed);
    tracing::warn!(
        status = refusal.status.as_u16(),
        kind = refusal.kind,
        reason = %refusal.loggable(),
        duration_ms = millis(elapsed),
        "request refused"
    );
    let mut response = HttpResponse::build(refusal.status);
    if refusal.close {
        response.force_close();
    }
    let text = format!("{}\n", refusal.message.replace('\n', " "));
    response.content_type("text/plain; charset=utf-8").body(HoldingPayload {
        text: Some(web::Bytes::from(text)),
        _payload: payload,
    })
}

/// A refusal's body, which keeps the request body's receiver alive until the
/// answer is written. actix-http then sees a request body nobody read and
/// closes the connection (after `client_disconnect_timeout`). Dropped earlier,
/// actix-http would instead drain an unread chunked body for as long as the
/// client cares to send it: a way to hold connections open past every timeout.
struct HoldingPayload {
    text: Option<web::Bytes>,
    _payload: web::Payload,
}

impl MessageBody for HoldingPayload {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.text.as_ref().map_or(0, |t| t.len() as u64))
    }

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Poll::Ready(self.get_mut().text.take().map(Ok))
    }
}

/// One line per review: who, what, and what came of it. Names only, no content.
fn log_review(o: &Outcome, elapsed: Duration) {
    let mode = o.mode.as_str();
    let outcome = o.decision.as_str();
    let (problem, reason) = match &o.problem {
        Some(p) => (p.kind, p.loggable().into_owned()),
        None => ("", String::new()),
    };
    if o.problem.is_some() {
        tracing::warn!(uid = %o.uid, namespace = %o.namespace, name = %o.name, operation = o.operation, outcome, mode,
            dry_run = o.dry_run, added = o.added.len(), duration_ms = millis(elapsed), problem, reason = %reason, "review");
    } else {
        tracing::info!(uid = %o.uid, namespace = %o.namespace, name = %o.name, operation = o.operation, outcome, mode,
            dry_run = o.dry_run, added = o.added.len(), duration_ms = millis(elapsed), "review");
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// On shutdown, between no longer accepting and closing idle connections.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(250);

/// A started server.
pub struct Running {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    state: web::Data<AppState>,
    webhook: ServerHandle,
    admin: ServerHandle,
    webhook_task: JoinHandle<std::io::Result<()>>,
    admin_task: JoinHandle<std::io::Result<()>>,
    reloader: Option<JoinHandle<()>>,
    client_ca_reloader: Option<JoinHandle<()>>,
    resolver: Arc<CertResolver>,
    shutdown_delay: Duration,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

/// Bind both ports, load the certificate and start serving. Must run inside
/// a Tokio runtime (an actix System in the binary and in tests).
pub async fn start(settings: Settings) -> Result<Running, ServeError> {
    let provider = tls::provider();
    let (resolver, reloader) = match &settings.cert {
        CertSource::Files { cert, key } => {
            let reloader = FileReloader::load(cert, key, provider.clone())?;
            (reloader.resolver(), Some(reloader))
        }
        CertSource::Pem(pair) => {
            let key = tls::certified_key(pair, "in-memory certificate", &provider)?;
            (Arc::new(CertResolver::new(key)), None)
        }
    };
    let client_ca = match &settings.client_ca {
        Some(path) => Some(ClientCaReloader::load(path, provider.clone())?),
        None => None,
    };
    let tls_config = tls::server_config(
        resolver.clone(),
        provider,
        settings.http2,
        client_ca.as_ref().map(ClientCaReloader::verifier),
    )?;
    let mut state = AppState {
        namespaces: settings.namespaces.clone(),
        reviewer: settings.reviewer,
        images: settings.images.clone(),
        ..AppState::new(settings.config.clone(), settings.body_timeout)
    };
    state.body_memory = BodyMemory::new(settings.body_memory, state.metrics.large_body_bytes.clone());
    if let Some(t) = tls::not_after(&resolver.current()) {
        state.metrics.cert_expiry(t);
    }
    let state = web::Data::new(state);

    let bind = |addr: SocketAddr| TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source });
    let listener = bind(settings.listen)?;
    let admin_listener = bind(settings.admin_listen)?;
    let addr = listener.local_addr().map_err(ServeError::Start)?;
    let admin_addr = admin_listener.local_addr().map_err(ServeError::Start)?;

    let webhook = webhook_server(&settings, listener, tls_config, state.clone()).map_err(ServeError::Start)?;
    let webhook_handle = webhook.handle();
    let admin_state = state.clone();
    let admin = HttpServer::new(move || App::new().configure(admin_routes(admin_state.clone())))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(admin_listener)
        .map_err(ServeError::Start)?
        .run();
    let admin_handle = admin.handle();
    let webhook_task = tokio::spawn(webhook);
    let admin_task = tokio::spawn(admin);
    let reloader = reloader.map(|r| tokio::spawn(r.run(settings.cert_reload_interval, state.metrics.clone())));
    let client_ca_reloader = client_ca.map(|r| tokio::spawn(r.run(settings.cert_reload_interval)));

    state.ready.store(true, Ordering::SeqCst);
    tracing::info!(%addr, %admin_addr, http2 = settings.http2, client_auth = settings.client_ca.is_some(), mode = settings.config.mode.as_str(), "serving");
    Ok(Running {
        addr,
        admin_addr,
        state,
        webhook: webhook_handle,
        admin: admin_handle,
        webhook_task,
        admin_task,
        reloader,
        client_ca_reloader,
        resolver,
        shutdown_delay: settings.shutdown_delay,
        shutdown_timeout: settings.shutdown_timeout,
    })
}

/// The TLS server: actix-http services on actix-server, assembled here rather
/// than through `HttpServer::bind_rustls_0_23`, which always offers h2 by ALPN
/// and leaves TCP_NODELAY off (its `tcp_nodelay(true)` sets it only after the
/// handshake). Without TCP_NODELAY the first answer on a new connection waits
/// behind the TLS 1.3 session tickets for the client's delayed ACK: measured
/// at ~42 ms instead of ~1 ms.
fn webhook_server(
    settings: &Settings,
    listener: TcpListener,
    tls_config: rustls::ServerConfig,
    state: web::Data<AppState>,
) -> std::io::Result<actix_server::Server> {
    let mut builder = actix_server::Server::build()
        .workers(settings.workers.max(1))
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout.as_secs_f64().ceil() as u64);
    let drain = builder.graceful_shutdown_signal();
    let local_addr = listener.local_addr()?;
    let (keep_alive, header_timeout, handshake_timeout, http2) = (
        settings.keep_alive,
        settings.header_timeout,
        settings.handshake_timeout,
        settings.http2,
    );
    builder = builder.listen("secure-defaults-webhook", listener, move || {
        let drain = drain.clone();
        let http = HttpService::build()
            .keep_alive(KeepAlive::Timeout(keep_alive))
            .client_request_timeout(header_timeout)
            .client_disconnect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .local_addr(local_addr)
            // Idle keep-alive connections close at once on stop; busy ones after their answer.
            .graceful_shutdown_signal(move || {
                let drain = drain.clone();
                async move { drain.notified().await }
            });
        let app = app_factory(state.clone());
        let tls_config = tls_config.clone();
        let metrics = state.metrics.clone();
        // Before the handshake, so its records are not held back either.
        let nodelay = fn_service(|io: TcpStream| async move {
            io.set_nodelay(true).map_err(AcceptError::Tls)?;
            Ok::<_, AcceptError<std::io::Error, DispatchError>>(io)
        });
        if http2 {
            boxed::factory(
                nodelay
                    .and_then(http.finish(app).rustls_0_23_with_config(
                        tls_config,
                        actix_http::TlsAcceptorConfig::default().handshake_timeout(handshake_timeout),
                    ))
                    .map_err(|_| ()),
            )
        } else {
            let mut acceptor = Acceptor::new(tls_config);
            acceptor.set_handshake_timeout(handshake_timeout);
            boxed::factory(
                nodelay
                    .and_then(acceptor.map_err(move |e| {
                        metrics.error(error_kind::TLS_HANDSHAKE);
                        e.into_service_error()
                    }))
                    .map(|io: TlsStream<TcpStream>| {
                        let peer = io.get_ref().0.peer_addr().ok();
                        (io, peer)
                    })
                    .and_then(http.h1(app).map_err(AcceptError::Service))
                    .map_err(|_| ()),
            )
        }
    })?;
    Ok(builder.run())
}

/// The actix-web App as a plain actix-http service factory.
fn app_factory(
    state: web::Data<AppState>,
) -> impl ServiceFactory<Request, Config = (), Response = ServiceResponse<BoxBody>, Error = HttpResponse, InitError = ()>
{
    let app = App::new().configure(webhook_routes(state)).into_factory();
    // The AppConfig only feeds URL generation, which the webhook does not use.
    map_config(app, |_| AppConfig::default()).map_err(|e: actix_web::Error| e.error_response())
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn state(&self) -> &web::Data<AppState> {
        &self.state
    }

    /// The certificate served to new connections.
    pub fn resolver(&self) -> &Arc<CertResolver> {
        &self.resolver
    }

    /// Resolves if the webhook server stops on its own (it should not).
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        match (&mut self.webhook_task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Shut down the way Kubernetes expects: unready first, still serving for
    /// `shutdown_delay` (the API server keeps using open connections until the
    /// endpoint is gone), then stop accepting, let requests in flight finish
    /// within `shutdown_timeout`, and stop.
    pub async fn shutdown(self) {
        self.state.ready.store(false, Ordering::SeqCst);
        tracing::info!(
            delay_ms = self.shutdown_delay.as_millis() as u64,
            "shutting down: unready, still serving"
        );
        tokio::time::sleep(self.shutdown_delay).await;
        // Stop accepting first, and give connections accepted just before a
        // moment to send their first request: the drain below closes every
        // connection without a request in progress, and a client that had
        // just connected would lose the request it was writing (tests/faults.rs).
        self.webhook.pause().await;
        tokio::time::sleep(FIRST_REQUEST_GRACE).await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let grace = self.shutdown_timeout + Duration::from_secs(1);
        if tokio::time::timeout(grace, self.webhook.stop(true)).await.is_err() {
            tracing::warn!("requests still in flight after the shutdown timeout; closing them");
            self.webhook.stop(false).await;
        }
        self.admin.stop(true).await;
        for reloader in [self.reloader, self.client_ca_reloader].into_iter().flatten() {
            reloader.abort();
        }
        for task in [self.webhook_task, self.admin_task] {
            if let Ok(Err(e)) = task.await {
                tracing::error!(error = %e, "server stopped with an error");
            }
        }
        tracing::info!("stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_query_parameter() {
        assert_eq!(api_server_timeout("timeout=10s"), Some(Duration::from_secs(10)));
        assert_eq!(api_server_timeout("a=b&timeout=1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(api_server_timeout("timeout=bogus"), None);
        assert_eq!(api_server_timeout(""), None);
    }

    /// Only a decoder's message quotes the body; everything else is ours and
    /// logged whole.
    #[test]
    fn refusals_are_logged_redacted_only_where_they_quote_the_body() {
        let version = body_error(BodyError::Version {
            field: "apiVersion",
            found: "admission.k8s.io/v1beta1".into(),
        });
        assert_eq!(
            version.loggable(),
            "unsupported apiVersion \"admission.k8s.io/v1beta1\": this webhook speaks admission.k8s.io/v1 AdmissionReview (admissionReviewVersions: [v1])"
        );
        let shape = body_error(BodyError::NotAReview(
            r#"invalid type: string "hunter2", expected a sequence at line 1 column 9"#.into(),
        ));
        assert_eq!(
            shape.loggable(),
            r#"body is not an AdmissionReview: invalid type: string "...", expected a sequence at line 1 column 9"#
        );
    }
}
