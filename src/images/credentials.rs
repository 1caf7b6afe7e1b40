//! Registry credentials from Docker config files (the data of
//! `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg` Secrets, or
//! `~/.docker/config.json`), and which one a registry gets.
//!
//! Matching is a simplified form of the kubelet's: a key matches a registry
//! when, without its `https://`/`http://` scheme and any path, it equals the
//! registry's host and port; failing that, its host alone (`reg.io:5000` and
//! `reg.io` match each other). `docker.io`, `index.docker.io` and
//! `registry-1.docker.io` are one registry. The kubelet's wildcards
//! (`*.reg.io`) and path prefixes are not matched; the first matching
//! credential is used (pod secrets first, then the service account's), where
//! the kubelet would try each in turn.

use base64::Engine as _;
use serde::Deserialize;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use thiserror::Error;

/// A user name and password. Never printed: its `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    /// A per-process keyed hash: tells credentials apart in cache keys
    /// without putting them there.
    pub fn identity(&self) -> u64 {
        static KEY: OnceLock<RandomState> = OnceLock::new();
        KEY.get_or_init(RandomState::new)
            .hash_one((&self.username, &self.password))
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("not a Docker config file: {0}")]
    Parse(String),
}

/// Credentials by registry key, in the order they were added.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    entries: Vec<(String, Auth)>,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: HashMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    username: Option<String>,
    password: Option<String>,
    auth: Option<String>,
}

impl Credentials {
    /// Add the entries of a `config.json` / `.dockerconfigjson` (`{"auths": {...}}`),
    /// or with `legacy`, of a `.dockercfg` (the map itself).
    pub fn add_docker_config(&mut self, bytes: &[u8], legacy: bool) -> Result<(), CredentialError> {
        // Only the position: serde_json's messages may quote a value (a password).
        let err =
            |e: serde_json::Error| CredentialError::Parse(format!("error at line {} column {}", e.line(), e.column()));
        let auths = if legacy {
            serde_json::from_slice::<HashMap<String, Entry>>(bytes).map_err(err)?
        } else {
            serde_json::from_slice::<ConfigJson>(bytes).map_err(err)?.auths
        };
        let mut added: Vec<(String, Auth)> = auths
            .into_iter()
            .filter_map(|(key, entry)| Some((normalize(&key), entry.auth()?)))
            .collect();
        // A JSON object has no order: sort so the choice is stable.
        added.sort_by(|a, b| a.0.cmp(&b.0));
        self.entries.extend(added);
        Ok(())
    }

    /// The credential for `registry` (`host[:port]` as in the image reference).
    pub fn for_registry(&self, registry: &str) -> Option<&Auth> {
        let wanted = normalize(registry);
        let exact = self.entries.iter().find(|(k, _)| same_registry(k, &wanted));
        exact
            .or_else(|| {
                let host = strip_port(&wanted);
                self.entries.iter().find(|(k, _)| strip_port(k) == host)
            })
            .map(|(_, auth)| auth)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Entry {
    fn auth(self) -> Option<Auth> {
        if let (Some(username), Some(password)) = (&self.username, &self.password) {
            if !username.is_empty() {
                return Some(Auth {
                    username: username.clone(),
                    password: password.clone(),
                });
            }
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth?.trim())
            .ok()?;
        let (user, pass) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        Some(Auth {
            username: user.to_string(),
            password: pass.to_string(),
        })
    }
}

const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

fn same_registry(a: &str, b: &str) -> bool {
    a == b || (DOCKER_HUB.contains(&a) && DOCKER_HUB.contains(&b))
}

/// `https://Reg.io:5000/v1/` → `reg.io:5000`.
fn normalize(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or_default().to_ascii_lowercase()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(json: &str, legacy: bool) -> Credentials {
        let mut c = Credentials::default();
        c.add_docker_config(json.as_bytes(), legacy).unwrap();
        c
    }

    fn user(c: &Credentials, registry: &str) -> Option<String> {
        c.for_registry(registry)
            .map(|a| format!("{}:{}", a.username, a.password))
    }

    #[test]
    fn matching_table() {
        // "auth" is base64("bob:pw2").
        let c = creds(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"username": "hub", "password": "pw1"},
                "reg.example:5000": {"auth": "Ym9iOnB3Mg=="},
                "other.example": {"username": "o", "password": "pw3"}
            }}"#,
            false,
        );
        for (registry, want) in [
            ("docker.io", Some("hub:pw1")),
            ("registry-1.docker.io", Some("hub:pw1")),
            ("reg.example:5000", Some("bob:pw2")),
            ("reg.example", Some("bob:pw2")),
            ("other.example:8443", Some("o:pw3")),
            ("REG.example:5000", Some("bob:pw2")),
            ("ghcr.io", None),
        ] {
            assert_eq!(user(&c, registry).as_deref(), want, "{registry}");
        }
    }

    #[test]
    fn exact_port_wins_over_host() {
        let c = creds(
            r#"{"auths": {"reg.example": {"username": "a", "password": "1"},
                          "reg.example:5000": {"username": "b", "password": "2"}}}"#,
            false,
        );
        assert_eq!(user(&c, "reg.example:5000").as_deref(), Some("b:2"));
        assert_eq!(user(&c, "reg.example").as_deref(), Some("a:1"));
    }

    #[test]
    fn legacy_dockercfg_and_errors() {
        let c = creds(r#"{"reg.example": {"username": "a", "password": "1"}}"#, true);
        assert_eq!(user(&c, "reg.example").as_deref(), Some("a:1"));
        let mut c = Credentials::default();
        let err = c
            .add_docker_config(b"{\"auths\": {\"r\": \"secret\"}}", false)
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn debug_hides_the_password() {
        let c = creds(r#"{"auths": {"r": {"username": "a", "password": "hunter2"}}}"#, false);
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("\"a\""), "{printed}");
        let a = c.for_registry("r").unwrap();
        assert_eq!(a.identity(), a.clone().identity());
        let other = Auth {
            username: "a".into(),
            password: "x".into(),
        };
        assert_ne!(a.identity(), other.identity());
    }
}
