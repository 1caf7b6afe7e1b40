//! `scan`'s reads of a live cluster: a client by the usual kubeconfig rules,
//! and lists fetched page by page, each page handed over before the next is
//! fetched, so a cluster of thousands of pods is never held in memory at once.
//! Read-only: list and get, nothing else.

use crate::engine::manifest::ExtraKind;
use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ApiResource;
use kube::discovery::Discovery;
use kube::Client;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;
use std::path::Path;

/// A client from `kubeconfig` (default: $KUBECONFIG, ~/.kube/config, then
/// in-cluster) and `context` (default: the current one), with the context's
/// namespace.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<(Client, String)> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let kubeconfig =
                Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options).await?,
        (None, None) => kube::Config::infer()
            .await
            .context("no kubeconfig ($KUBECONFIG, ~/.kube/config) and not running in a cluster")?,
    };
    let namespace = config.default_namespace.clone();
    Ok((Client::try_from(config)?, namespace))
}

/// The kinds `scan` lists: bare pods and every workload with a pod template.
pub fn workload_kinds() -> [ApiResource; 7] {
    [
        ApiResource::erase::<Pod>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<DaemonSet>(&()),
        ApiResource::erase::<ReplicaSet>(&()),
        ApiResource::erase::<Job>(&()),
        ApiResource::erase::<CronJob>(&()),
    ]
}

/// The operator's `extraKinds` the cluster serves, by discovery of their
/// groups (each at its preferred version), and the ones it does not serve.
pub async fn extra_kinds(client: &Client, extra: &[ExtraKind]) -> Result<(Vec<ApiResource>, Vec<String>)> {
    if extra.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let groups: Vec<&str> = extra.iter().map(|e| e.group.as_str()).collect();
    let discovery = Discovery::new(client.clone())
        .filter(&groups)
        .run()
        .await
        .context("discovering the API groups of extraKinds")?;
    let (mut served, mut missing) = (Vec::new(), Vec::new());
    for e in extra {
        match discovery.get(&e.group).and_then(|g| g.recommended_kind(&e.kind)) {
            Some((resource, _)) => served.push(resource),
            None => missing.push(format!("{}/{}", e.group, e.kind)),
        }
    }
    Ok((served, missing))
}

/// List `api` with `params`, following continue tokens, and hand each page to
/// `page`. `what` names the list in errors (`listing {what}`).
pub async fn each_page<K>(
    api: &Api<K>,
    mut params: ListParams,
    what: &str,
    mut page: impl FnMut(&[K]) -> Result<()>,
) -> Result<()>
where
    K: Clone + DeserializeOwned + Debug,
{
    loop {
        let list = api.list(&params).await.with_context(|| format!("listing {what}"))?;
        page(&list.items)?;
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}

/// A listed object as the policy reads it: list items carry no apiVersion or
/// kind, so they are put back from `resource`.
pub fn object(item: &DynamicObject, resource: &ApiResource) -> Result<Value> {
    let mut object = serde_json::to_value(item)?;
    object["kind"] = resource.kind.clone().into();
    object["apiVersion"] = resource.api_version.clone().into();
    Ok(object)
}
