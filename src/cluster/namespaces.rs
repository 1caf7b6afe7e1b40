//! The cluster's namespaces for the namespace policy: a watch-backed store
//! (kube-runtime reflector), read on every review, never a request to the API
//! server per review. When the API server is unreachable the last known state
//! keeps serving.

use crate::policy::namespace::NamespaceInfo;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The cluster's namespaces, kept current by a watch. Cheap to clone.
#[derive(Clone)]
pub struct NamespaceCache {
    store: Store<Namespace>,
    settled: Arc<AtomicBool>,
}

impl std::fmt::Debug for NamespaceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceCache")
            .field("namespaces", &self.store.len())
            .field("settled", &self.is_settled())
            .finish()
    }
}

impl NamespaceCache {
    /// Start watching namespaces (on the current Tokio runtime). The cache is
    /// settled after the first full list, or after `sync_timeout` without
    /// one; until it has namespaces, reviews use the cluster defaults. Watch
    /// errors are logged and retried with backoff; the store keeps the last
    /// known state meanwhile.
    pub fn start(client: kube::Client, sync_timeout: Duration) -> NamespaceCache {
        let (store, writer) = reflector::store();
        let api = kube::Api::<Namespace>::all(client);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "namespace watch failed; serving the last known namespaces");
                }
            }
        });
        let settled = Arc::new(AtomicBool::new(false));
        tokio::spawn({
            let store = store.clone();
            let settled = settled.clone();
            async move {
                match tokio::time::timeout(sync_timeout, store.wait_until_ready()).await {
                    Ok(_) => tracing::info!(namespaces = store.len(), "namespace policy: namespaces synced"),
                    Err(_) => tracing::warn!(
                        timeout_ms = sync_timeout.as_millis() as u64,
                        "namespace policy: namespaces not synced in time; cluster defaults apply until they are"
                    ),
                }
                settled.store(true, Ordering::SeqCst);
            }
        });
        NamespaceCache { store, settled }
    }

    /// Synced, or gave up waiting: `/readyz` may say ready.
    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::SeqCst)
    }

    pub fn get(&self, name: &str) -> Option<NamespaceInfo> {
        self.store
            .get(&ObjectRef::new(name))
            .map(|ns| NamespaceInfo::from_namespace(&ns))
    }
}
