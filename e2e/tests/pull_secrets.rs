//! The image lookup's credentials from a real API server: a pod's
//! `imagePullSecrets` and its service account's, by Secret type.
//!
//! Needs only the control plane, not the node or the webhook: with
//! `e2e/run.sh`'s exports, `SD_NODE=0 e2e/controlplane/with-controlplane.sh
//! cargo test -p secure-defaults-e2e --test pull_secrets`.

use base64::Engine as _;
use k8s_openapi::api::core::v1::{LocalObjectReference, Namespace, Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::Api;
use secure_defaults::cluster::pull_secrets::PullSecrets;
use secure_defaults_e2e::{client, namespace};

fn docker_config(host: &str, user: &str) -> ByteString {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
    ByteString(format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#).into_bytes())
}

fn secret(name: &str, type_: &str, key: &str, data: ByteString) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        type_: Some(type_.to_string()),
        data: Some([(key.to_string(), data)].into()),
        ..Secret::default()
    }
}

#[tokio::test]
async fn pod_and_service_account_pull_secrets() -> anyhow::Result<()> {
    let client = client().await;
    let ns = namespace(&client, "pull-secrets", "privileged").await?;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    let json = "kubernetes.io/dockerconfigjson";
    for s in [
        secret(
            "pod-cred",
            json,
            ".dockerconfigjson",
            docker_config("reg.example:5000", "pod"),
        ),
        secret("sa-cred", json, ".dockerconfigjson", docker_config("sa.example", "sa")),
        secret(
            "opaque",
            "Opaque",
            ".dockerconfigjson",
            docker_config("opaque.example", "x"),
        ),
    ] {
        secrets.create(&pp, &s).await?;
    }
    let legacy = ByteString(br#"{"old.example": {"username": "old", "password": "pw"}}"#.to_vec());
    secrets
        .create(&pp, &secret("legacy", "kubernetes.io/dockercfg", ".dockercfg", legacy))
        .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("builder".to_string()),
            ..ObjectMeta::default()
        },
        image_pull_secrets: Some(
            ["sa-cred", "legacy", "missing"]
                .map(|n| LocalObjectReference { name: n.to_string() })
                .to_vec(),
        ),
        ..ServiceAccount::default()
    };
    accounts.create(&pp, &sa).await?;

    let pull = PullSecrets::new(client.clone());
    let names = ["pod-cred".to_string(), "opaque".to_string()];
    let creds = pull.credentials(&ns, "builder", &names).await;
    let user = |registry: &str| creds.for_registry(registry).map(|a| a.username.clone());
    assert_eq!(user("reg.example:5000").as_deref(), Some("pod"));
    assert_eq!(user("sa.example").as_deref(), Some("sa"));
    assert_eq!(user("old.example").as_deref(), Some("old"));
    assert_eq!(user("opaque.example"), None, "an Opaque secret is no pull secret");

    // No such service account: the pod's own secrets still count.
    let creds = pull.credentials(&ns, "nobody", &names[..1]).await;
    assert!(creds.for_registry("reg.example:5000").is_some());
    assert!(creds.for_registry("sa.example").is_none());

    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await?;
    Ok(())
}
