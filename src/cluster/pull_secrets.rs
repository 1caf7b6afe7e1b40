//! A pod's registry credentials from the cluster: its `imagePullSecrets`,
//! then its service account's, each a Secret of type
//! `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`. Needs `get`
//! on serviceaccounts and secrets (the chart grants it when `identity` can be
//! `auto`). Read for `identity: auto` only, cached briefly per namespace,
//! service account and secret names. Secret contents are never logged.

use crate::images::cache::{Cache, Entry};
use crate::images::credentials::{CredentialError, Credentials};
use futures_util::FutureExt;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Api;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Secret changed (a rotated password) is read again after this.
const TTL: Duration = Duration::from_secs(30);
const CACHED: usize = 1000;

pub struct PullSecrets {
    client: kube::Client,
    cache: Arc<Cache<Credentials>>,
}

impl std::fmt::Debug for PullSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullSecrets")
    }
}

impl PullSecrets {
    pub fn new(client: kube::Client) -> PullSecrets {
        PullSecrets {
            client,
            cache: Arc::new(Cache::new(CACHED)),
        }
    }

    /// The credentials of a pod in `namespace` with these secret names and
    /// service account (`default` when empty). Secrets that are missing,
    /// unreadable or of another type are skipped (and logged by name).
    pub async fn credentials(&self, namespace: &str, service_account: &str, names: &[String]) -> Credentials {
        let service_account = if service_account.is_empty() {
            "default"
        } else {
            service_account
        };
        let key = format!("{namespace}/{service_account}/{}", names.join(","));
        let client = self.client.clone();
        let cache = self.cache.clone();
        let (namespace, service_account, names) = (namespace.to_string(), service_account.to_string(), names.to_vec());
        let entry = self.cache.lookup(&key.clone(), Instant::now(), move || {
            async move {
                let creds = read(client, &namespace, &service_account, &names).await;
                let now = Instant::now();
                cache.complete(&key, creds.clone(), now, now + TTL);
                creds
            }
            .boxed()
            .shared()
        });
        match entry {
            Entry::Hit(creds) => creds,
            Entry::Joined(p) | Entry::Started(p) => p.await,
        }
    }
}

async fn read(client: kube::Client, namespace: &str, service_account: &str, names: &[String]) -> Credentials {
    let mut names = names.to_vec();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    match accounts.get_opt(service_account).await {
        Ok(Some(sa)) => names.extend(
            sa.image_pull_secrets
                .into_iter()
                .flatten()
                .map(|r| r.name)
                .filter(|n| !n.is_empty()),
        ),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(namespace, service_account, error = %crate::error::Chain(&e), "cannot read the service account for its imagePullSecrets")
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let mut creds = Credentials::default();
    let mut seen = std::collections::BTreeSet::new();
    for name in names.iter().filter(|n| seen.insert(n.as_str())) {
        let secret = match secrets.get_opt(name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(namespace, secret = %name, error = %crate::error::Chain(&e), "cannot read an image pull secret");
                continue;
            }
        };
        if let Err(e) = add(&mut creds, &secret) {
            tracing::warn!(namespace, secret = %name, error = %e, "image pull secret is not a Docker config");
        }
    }
    creds
}

/// Add a Secret's registry credentials; one of another type adds nothing.
fn add(creds: &mut Credentials, secret: &Secret) -> Result<(), CredentialError> {
    let (key, legacy) = match secret.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => (".dockerconfigjson", false),
        Some("kubernetes.io/dockercfg") => (".dockercfg", true),
        _ => return Ok(()),
    };
    match secret.data.as_ref().and_then(|d| d.get(key)) {
        Some(data) => creds.add_docker_config(&data.0, legacy),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(type_: &str, key: &str, data: &str) -> Secret {
        Secret {
            type_: Some(type_.to_string()),
            data: Some([(key.to_string(), ByteString(data.as_bytes().to_vec()))].into()),
            ..Secret::default()
        }
    }

    #[test]
    fn secret_types() {
        let json = r#"{"auths": {"reg.example": {"username": "a", "password": "1"}}}"#;
        let legacy = r#"{"old.example": {"username": "b", "password": "2"}}"#;
        let mut creds = Credentials::default();
        add(
            &mut creds,
            &secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", json),
        )
        .unwrap();
        add(&mut creds, &secret("kubernetes.io/dockercfg", ".dockercfg", legacy)).unwrap();
        add(
            &mut creds,
            &secret(
                "Opaque",
                ".dockerconfigjson",
                r#"{"auths": {"x.example": {"username": "c", "password": "3"}}}"#,
            ),
        )
        .unwrap();
        add(&mut creds, &secret("kubernetes.io/dockerconfigjson", "other", json)).unwrap();
        assert_eq!(
            creds.for_registry("reg.example").map(|a| a.username.as_str()),
            Some("a")
        );
        assert_eq!(
            creds.for_registry("old.example").map(|a| a.username.as_str()),
            Some("b")
        );
        assert!(
            creds.for_registry("x.example").is_none(),
            "an Opaque secret is not a pull secret"
        );
        assert!(add(
            &mut creds,
            &secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", "{")
        )
        .is_err());
    }
}
