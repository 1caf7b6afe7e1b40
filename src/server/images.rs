//! The webhook's image lookup for `identity: auto`: before the review, for
//! the CREATE of a Pod whose effective identity is `auto`, look its images up
//! ([`crate::images`]) within the budget, and count what happened.
//!
//! Only present when the configuration can make a pod's identity `auto`
//! (the cluster's `baseline.identity`, or namespace overrides): otherwise the
//! review path does not read the body for it. Workload previews (a
//! Deployment's warning) are not looked up: they show `identityFallback` for
//! images not looked up, and the pods themselves are.

use super::metrics::Metrics;
use crate::cluster::namespaces::NamespaceCache;
use crate::cluster::pull_secrets::PullSecrets;
use crate::config::Config;
use crate::engine::baseline::IdentityMode;
use crate::engine::ImageFacts;
use crate::images::credentials::Credentials;
use crate::images::Resolver;
use crate::policy::namespace::effective;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Kept between the lookup's budget and the API server's own deadline, for
/// the review and the answer's way back.
const MARGIN: Duration = Duration::from_millis(500);

pub struct ImageService {
    pub resolver: Resolver,
    /// `None`: no cluster access (or `imageLookup.pullSecrets: false`).
    pub pull_secrets: Option<PullSecrets>,
}

impl std::fmt::Debug for ImageService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageService")
            .field("resolver", &self.resolver)
            .finish()
    }
}

/// Whether any pod can get `identity: auto` under `config`.
pub fn auto_possible(config: &Config, namespace_policy: bool) -> bool {
    config.baseline.identity == IdentityMode::Auto || (namespace_policy && config.namespace_policy.allow_overrides)
}

/// Only what the lookup needs of a review; the rest is skipped unread.
#[derive(Deserialize)]
struct Review {
    request: Option<Req>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Req {
    #[serde(default)]
    operation: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    kind: Kind,
    #[serde(default)]
    sub_resource: Option<String>,
    object: Option<PodObject>,
}

#[derive(Deserialize, Default)]
struct Kind {
    #[serde(default)]
    group: String,
    #[serde(default)]
    kind: String,
}

#[derive(Deserialize)]
struct PodObject {
    spec: Option<Spec>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    init_containers: Vec<Container>,
    #[serde(default)]
    image_pull_secrets: Vec<Name>,
    #[serde(default)]
    service_account_name: Option<String>,
}

#[derive(Deserialize)]
struct Container {
    image: Option<String>,
}

#[derive(Deserialize)]
struct Name {
    #[serde(default)]
    name: String,
}

impl ImageService {
    /// The facts for the review in `body`: empty unless it creates a Pod
    /// whose identity is `auto`. Returns within the budget: the smaller of
    /// `imageLookup.timeout` and the API server's deadline less a margin.
    pub async fn facts(
        &self,
        body: &[u8],
        config: &Config,
        namespaces: Option<&NamespaceCache>,
        deadline: Option<Duration>,
        started: Instant,
        metrics: &Metrics,
    ) -> ImageFacts {
        let Ok(Review { request: Some(req) }) = serde_json::from_slice::<Review>(body) else {
            return ImageFacts::default();
        };
        if req.operation != "CREATE"
            || !req.kind.group.is_empty()
            || req.kind.kind != "Pod"
            || req.sub_resource.is_some()
        {
            return ImageFacts::default();
        }
        let namespace = req.namespace.unwrap_or_default();
        let identity = match namespaces.and_then(|cache| cache.get(&namespace)) {
            Some(ns) => effective(config, &ns).config.baseline.identity,
            None => config.baseline.identity,
        };
        let Some(spec) = req.object.and_then(|o| o.spec) else {
            return ImageFacts::default();
        };
        if identity != IdentityMode::Auto {
            return ImageFacts::default();
        }
        let images: Vec<String> = spec
            .containers
            .iter()
            .chain(&spec.init_containers)
            .filter_map(|c| c.image.clone())
            .filter(|i| !i.is_empty())
            .collect();
        if images.is_empty() {
            return ImageFacts::default();
        }
        let settings = self.resolver.settings();
        let mut budget = settings.timeout.0;
        if let Some(deadline) = deadline {
            budget = budget.min(deadline.saturating_sub(started.elapsed() + MARGIN));
        }
        let until = tokio::time::Instant::now() + budget;
        let credentials = match (&self.pull_secrets, settings.pull_secrets) {
            (Some(secrets), true) => {
                let names: Vec<String> = spec.image_pull_secrets.into_iter().map(|n| n.name).collect();
                let sa = spec.service_account_name.unwrap_or_default();
                tokio::time::timeout_at(until, secrets.credentials(&namespace, &sa, &names))
                    .await
                    .unwrap_or_default()
            }
            _ => Credentials::default(),
        };
        let looked = self
            .resolver
            .lookup_until(images.iter().map(String::as_str), &credentials, until, budget)
            .await;
        for l in &looked {
            metrics.image_lookup(l.result(), l.elapsed);
            if let Err(failure) = &l.answer {
                tracing::info!(namespace = %namespace, image = %l.image, result = l.result(), reason = %failure.message, "image lookup failed: identityFallback applies");
            }
        }
        crate::images::facts(looked)
    }
}
