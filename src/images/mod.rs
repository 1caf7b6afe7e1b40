//! The image lookup of `identity: auto`: each container image's `USER`, read
//! from its registry's manifest and config, for the engine's [`ImageFacts`].
//!
//! # Threat model
//!
//! A pod's author chooses the image reference, so without care the webhook
//! would connect wherever a pod says: to the cloud's metadata service
//! (`169.254.169.254:80/x`), to in-cluster services, or, through redirects
//! and bearer-token realms the registry names, to any host. oci-client
//! builds its own HTTP client with no hook for redirects or name
//! resolution, so every connection it makes goes through the [`guard`], a
//! forward proxy inside the process on 127.0.0.1, set as its only proxy:
//!
//! - a registry not in `imageLookup.registries` (when set) is not contacted;
//! - a connection goes only to the image's own registry host or to
//!   `imageLookup.extraHosts`: a redirect or token realm elsewhere fails;
//! - the guard resolves the name itself, refuses link-local (169.254.0.0/16,
//!   fe80::/10), metadata (169.254.169.254, fd00:ec2::254, 100.100.100.200),
//!   unspecified, multicast and broadcast addresses, and connects to the
//!   address it vetted (a second resolution cannot rebind it);
//! - it relays at most `imageLookup.maxResponseBytes` back per connection, and
//!   a connection lives at most [`client::FETCH_LIMIT`].
//!
//! Loopback and private addresses are allowed (a registry on the node, an
//! in-cluster registry): narrow them with `imageLookup.registries`. The
//! guard only relays requests carrying its client's random token, so another
//! local process cannot use it as an open proxy.
//!
//! Each review waits at most its budget (`imageLookup.timeout`) for all its
//! lookups; what is unanswered by then is `Failed("... timed out after 2s")`
//! and the engine applies `baseline.identityFallback`. The requests
//! themselves run on the lookup's own thread and fill the cache when they end.

pub mod cache;
pub mod client;
pub mod credentials;
pub mod guard;
pub mod vet;

use crate::config::image_lookup::{ImageLookup as Settings, Span};
use crate::engine::{ImageFacts, ImageLookup, ImageUser};
use cache::{Cache, Entry};
use client::RegistryClient;
use credentials::{Auth, Credentials};
use futures_util::FutureExt;
use oci_client::Reference;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A failure is cached this long at most, so a registry that is down costs
/// one budget per this period, not one per admission.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Registry clients kept (one per registry and credential); past this, all
/// are dropped and made again.
const MAX_CLIENTS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The network or the registry: down, 401, not found, not an image.
    Failed,
    /// The egress guard or the configuration refused it.
    Refused,
    /// Not answered within the budget.
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// The image's `config.User` (`""`: none), or why it is not known.
pub type Answer = Result<String, Failure>;

/// One image's lookup in one review.
#[derive(Debug, Clone)]
pub struct Looked {
    /// As written in the container.
    pub image: String,
    pub answer: Answer,
    /// From the cache without a request.
    pub cached: bool,
    pub elapsed: Duration,
}

impl Looked {
    /// The metric label: `hit`, `fetched`, `failed`, `refused` or `timeout`.
    pub fn result(&self) -> &'static str {
        match &self.answer {
            Ok(_) if self.cached => "hit",
            Ok(_) => "fetched",
            Err(f) => match f.kind {
                FailureKind::Failed => "failed",
                FailureKind::Refused => "refused",
                FailureKind::Timeout => "timeout",
            },
        }
    }
}

/// Looks images up; shared by every worker. Owns a thread running the
/// guard and the requests; dropping the resolver stops it.
pub struct Resolver {
    inner: Arc<Inner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

type ClientKey = (String, Option<u64>);

struct Inner {
    settings: Settings,
    runtime: tokio::runtime::Handle,
    /// By registry and credential identity.
    clients: Mutex<HashMap<ClientKey, Arc<RegistryClient>>>,
    cache: Cache<Answer>,
    /// PEM roots trusted beside the system's (tests' own registries).
    extra_roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Resolver {
    pub fn new(settings: Settings) -> std::io::Result<Resolver> {
        Resolver::with_roots(settings, Vec::new())
    }

    /// [`Resolver::new`], also trusting these PEM certificates.
    pub fn with_roots(settings: Settings, extra_roots: Vec<Vec<u8>>) -> std::io::Result<Resolver> {
        // oci-client's reqwest brings no crypto provider (no aws-lc-rs): it
        // takes the process default, ring, as the rest of the binary does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("image-lookup".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async move {
                    let _ = stop_rx.await;
                });
            })?;
        let runtime = ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the image lookup thread ended"))??;
        let cache = Cache::new(settings.cache_size);
        Ok(Resolver {
            inner: Arc::new(Inner {
                settings,
                runtime,
                clients: Mutex::default(),
                cache,
                extra_roots,
            }),
            stop: Some(stop_tx),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Look up every distinct image of `images`, all within `budget`.
    pub async fn lookup_all<'a>(
        &self,
        images: impl IntoIterator<Item = &'a str>,
        credentials: &Credentials,
        budget: Duration,
    ) -> Vec<Looked> {
        self.lookup_until(images, credentials, tokio::time::Instant::now() + budget, budget)
            .await
    }

    /// [`Resolver::lookup_all`] until `deadline`, the end of `budget` (which
    /// the timeout message names) begun earlier.
    pub async fn lookup_until<'a>(
        &self,
        images: impl IntoIterator<Item = &'a str>,
        credentials: &Credentials,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> Vec<Looked> {
        let distinct: BTreeSet<&str> = images.into_iter().collect();
        let lookups = distinct.into_iter().map(|image| {
            let started = Instant::now();
            let entry = self.entry(image, credentials);
            async move {
                let (pending, cached) = match entry {
                    Ok(Entry::Hit(answer)) => {
                        return Looked {
                            image: image.to_string(),
                            cached: true,
                            answer,
                            elapsed: started.elapsed(),
                        }
                    }
                    Ok(Entry::Joined(p)) | Ok(Entry::Started(p)) => (p, false),
                    Err(failure) => {
                        return Looked {
                            image: image.to_string(),
                            cached: false,
                            answer: Err(failure),
                            elapsed: started.elapsed(),
                        }
                    }
                };
                let answer = match tokio::time::timeout_at(deadline, pending).await {
                    Ok(answer) => answer,
                    Err(_) => Err(Failure {
                        kind: FailureKind::Timeout,
                        message: format!("timed out after {}", Span(budget)),
                    }),
                };
                Looked {
                    image: image.to_string(),
                    answer,
                    cached,
                    elapsed: started.elapsed(),
                }
            }
        });
        futures_util::future::join_all(lookups).await
    }

    /// The cache's entry for `image`, starting its request when there is none.
    fn entry(&self, image: &str, credentials: &Credentials) -> Result<Entry<Answer>, Failure> {
        let reference: Reference = image.parse().map_err(|_| Failure {
            kind: FailureKind::Failed,
            message: "not an image reference".to_string(),
        })?;
        let registry = reference.registry().to_ascii_lowercase();
        let settings = &self.inner.settings;
        if !settings.registries.is_empty() && !settings.registries.iter().any(|r| r.eq_ignore_ascii_case(&registry)) {
            return Err(Failure {
                kind: FailureKind::Refused,
                message: format!("registry {registry} is not in imageLookup.registries"),
            });
        }
        let auth = if settings.pull_secrets {
            credentials.for_registry(&registry).cloned()
        } else {
            None
        };
        let identity = auth.as_ref().map(Auth::identity);
        // By digest when there is one: the tag beside it does not matter.
        let what = match reference.digest() {
            Some(digest) => format!("{registry}/{}@{digest}", reference.repository()),
            None => reference.whole(),
        };
        let key = format!("{what}#{identity:?}");
        let inner = self.inner.clone();
        Ok(self.inner.cache.lookup(&key.clone(), Instant::now(), move || {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let runtime = inner.runtime.clone();
            runtime.spawn(async move {
                let answer = inner.fetch(&reference, &registry, auth.as_ref(), identity).await;
                let now = Instant::now();
                let ttl = match &answer {
                    Ok(_) => inner.settings.cache_ttl.0,
                    Err(_) => inner.settings.cache_ttl.0.min(NEGATIVE_TTL),
                };
                inner.cache.complete(&key, answer.clone(), now, now + ttl);
                let _ = tx.send(answer);
            });
            rx.map(|sent| {
                sent.unwrap_or_else(|_| {
                    Err(Failure {
                        kind: FailureKind::Failed,
                        message: "the lookup ended without an answer".to_string(),
                    })
                })
            })
            .boxed()
            .shared()
        }))
    }
}

impl Inner {
    async fn fetch(&self, reference: &Reference, registry: &str, auth: Option<&Auth>, identity: Option<u64>) -> Answer {
        let client = self.client(registry, reference.resolve_registry(), identity)?;
        client.user(reference, auth).await
    }

    fn client(&self, registry: &str, endpoint: &str, identity: Option<u64>) -> Result<Arc<RegistryClient>, Failure> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = (registry.to_string(), identity);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let client = Arc::new(RegistryClient::new(
            &self.settings,
            registry,
            endpoint,
            &self.extra_roots,
        )?);
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// The engine's facts from the lookups; a failure reads `registry: why`.
pub fn facts(looked: Vec<Looked>) -> ImageFacts {
    looked
        .into_iter()
        .map(|l| {
            let lookup = match l.answer {
                Ok(user) => ImageLookup::Found(ImageUser::parse(&user)),
                Err(failure) => {
                    let registry = l
                        .image
                        .parse::<Reference>()
                        .map(|r| r.registry().to_string())
                        .unwrap_or_else(|_| l.image.clone());
                    ImageLookup::Failed(format!("{registry}: {}", failure.message))
                }
            };
            (l.image, lookup)
        })
        .collect()
}
