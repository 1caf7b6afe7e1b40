//! `mutate --resolve-images`: the images of every document looked up once,
//! as the webhook does ([`crate::images`]), before any is hardened.

use crate::config::Config;
use crate::engine::ImageFacts;
use crate::images::credentials::Credentials;
use crate::images::Resolver;
use crate::yaml;
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Look up the images of `texts` (name, text) with the credentials of
/// `pull_secrets`, or of the Docker config when there are none.
pub fn images(config: &Config, pull_secrets: &[PathBuf], texts: &[(String, String)]) -> Result<ImageFacts> {
    let mut images = BTreeSet::new();
    for (name, text) in texts {
        for doc in yaml::stream(text) {
            let doc = doc.with_context(|| format!("{name}: invalid YAML or JSON"))?;
            collect(&doc.value, &mut images);
        }
    }
    if images.is_empty() {
        return Ok(ImageFacts::default());
    }
    let credentials = credentials(pull_secrets)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the image lookup")?;
    let resolver = Resolver::new(config.image_lookup.clone()).context("cannot start the image lookup")?;
    let looked = runtime.block_on(resolver.lookup_all(
        images.iter().map(String::as_str),
        &credentials,
        config.image_lookup.timeout.0,
    ));
    Ok(crate::images::facts(looked))
}

/// Every `image` of every container list (`containers`, `initContainers`,
/// `ephemeralContainers`) anywhere in the document.
fn collect(value: &Value, images: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if matches!(key.as_str(), "containers" | "initContainers" | "ephemeralContainers") {
                    let found = v.as_array().into_iter().flatten();
                    images.extend(found.filter_map(|c| c.get("image")?.as_str()).map(str::to_string));
                }
                collect(v, images);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, images)),
        _ => {}
    }
}

fn credentials(pull_secrets: &[PathBuf]) -> Result<Credentials> {
    let mut creds = Credentials::default();
    let files: Vec<PathBuf> = if pull_secrets.is_empty() {
        docker_config().into_iter().filter(|p| p.exists()).collect()
    } else {
        pull_secrets.to_vec()
    };
    for file in files {
        add(&mut creds, &file)?;
    }
    Ok(creds)
}

fn add(creds: &mut Credentials, file: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    creds
        .add_docker_config(&bytes, false)
        .with_context(|| format!("{}: not a Docker config file", file.display()))
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_every_container_list() {
        let doc: Value = serde_json::from_str(
            r#"{"kind": "List", "items": [
                {"kind": "Deployment", "spec": {"template": {"spec": {
                    "initContainers": [{"name": "i", "image": "busybox"}],
                    "containers": [{"name": "a", "image": "nginx:1"}, {"name": "b"}]}}}},
                {"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "nginx:1"}],
                    "ephemeralContainers": [{"name": "d", "image": "debug"}]}}
            ]}"#,
        )
        .unwrap();
        let mut images = BTreeSet::new();
        collect(&doc, &mut images);
        assert_eq!(
            images,
            BTreeSet::from(["busybox", "debug", "nginx:1"].map(String::from))
        );
    }
}
