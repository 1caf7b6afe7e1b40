//! The webhook's image lookup for `identity: auto`: before the review, for
//! the CREATE of a Pod whose effective identity is `auto`, look its images up
//! ([`crate::images`]) within the budget, and count what happened.
//!
//! Only present when the configuration can make a pod's identity `auto`
//! (the cluster's `baseline.identity`, or namespace overrides); the request
//! is parsed once either way, and a pod whose identity is not `auto` costs a
//! namespace lookup more. Workload previews (a
//! Deployment's warning) are not looked up: they show `identityFallback` for
//! images not looked up, and the pods themselves are.

use super::metrics::Metrics;
use crate::admission::Request;
use crate::cluster::namespaces::NamespaceCache;
use crate::cluster::pull_secrets::PullSecrets;
use crate::config::Config;
use crate::engine::baseline::IdentityMode;
use crate::engine::ImageFacts;
use crate::images::credentials::Credentials;
use crate::images::Resolver;
use crate::policy::namespace::effective;
use kube::core::admission::Operation;
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

/// The pull secrets and service account of the pod in a review: read from
/// the body again only for a pod that is looked up (the admission layer's
/// reading of the spec keeps only what the engine needs).
#[derive(Deserialize)]
struct Review {
    request: Req,
}

#[derive(Deserialize)]
struct Req {
    object: PodObject,
}

#[derive(Deserialize)]
struct PodObject {
    spec: Spec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    image_pull_secrets: Vec<Name>,
    #[serde(default)]
    service_account_name: Option<String>,
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
    #[allow(clippy::too_many_arguments)]
    pub async fn facts(
        &self,
        req: &Request,
        body: &[u8],
        config: &Config,
        namespaces: Option<&NamespaceCache>,
        deadline: Option<Duration>,
        started: Instant,
        metrics: &Metrics,
    ) -> ImageFacts {
        if req.operation != Operation::Create
            || !req.kind.group.is_empty()
            || req.kind.kind != "Pod"
            || req.sub_resource.is_some()
        {
            return ImageFacts::default();
        }
        let namespace = req.namespace.clone().unwrap_or_default();
        let identity = match namespaces.and_then(|cache| cache.get(&namespace)) {
            Some(ns) => effective(config, &ns).config.baseline.identity,
            None => config.baseline.identity,
        };
        if identity != IdentityMode::Auto {
            return ImageFacts::default();
        }
        let Some(Ok(spec)) = req.object.as_ref().and_then(|o| o.pod_spec()) else {
            return ImageFacts::default();
        };
        let images: Vec<String> = spec
            .containers
            .iter()
            .filter_map(|c| c.image.clone())
            .chain(spec.init_containers.iter().flatten().filter_map(|c| c.image.clone()))
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
                let spec =
                    serde_json::from_slice::<Review>(body).map_or_else(|_| Spec::default(), |r| r.request.object.spec);
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
