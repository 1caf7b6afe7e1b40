//! `imageLookup`: how `identity: auto` reads each image's configuration from
//! its registry (README, "Looking up images").

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::time::Duration;

/// The lookup's budget may not come near the webhook's `timeoutSeconds`
/// (the chart's default is 5s): past this, the configuration is refused.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ImageLookup {
    /// Registries (`host` or `host:port`) whose images are looked up; others
    /// are not contacted and get the fallback. Empty: any image's own registry.
    pub registries: Vec<String>,
    /// More hosts a lookup may connect to: token servers and blob CDNs a
    /// registry redirects to (Docker Hub: `auth.docker.io`,
    /// `production.cloudflare.docker.com`).
    pub extra_hosts: Vec<String>,
    /// Registries spoken to over plain HTTP (local and test registries).
    pub insecure_registries: Vec<String>,
    /// The time all lookups of one review may take together (`2s`; at most 4s).
    pub timeout: Span,
    /// Answers cached at most.
    pub cache_size: usize,
    /// How long an answer is cached (`10m`); a failure is cached for at most 30s.
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: Span,
    /// Bytes a registry connection may send back (manifest and config together).
    pub max_response_bytes: u64,
    /// Use the pod's `imagePullSecrets` and its service account's.
    pub pull_secrets: bool,
}

impl Default for ImageLookup {
    fn default() -> Self {
        ImageLookup {
            registries: Vec::new(),
            extra_hosts: Vec::new(),
            insecure_registries: Vec::new(),
            timeout: Span(Duration::from_secs(2)),
            cache_size: 1000,
            cache_ttl: Span(Duration::from_secs(600)),
            max_response_bytes: 4 * 1024 * 1024,
            pull_secrets: true,
        }
    }
}

impl ImageLookup {
    /// Why the settings cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if self.timeout.0.is_zero() || self.timeout.0 > MAX_TIMEOUT {
            Some(format!(
                "timeout {} must be above 0 and at most {} (well below the webhook's timeoutSeconds)",
                self.timeout,
                Span(MAX_TIMEOUT)
            ))
        } else if self.cache_size == 0 {
            Some("cacheSize must be at least 1".to_string())
        } else if self.max_response_bytes < 1024 {
            Some("maxResponseBytes must be at least 1024".to_string())
        } else {
            self.registries
                .iter()
                .chain(&self.extra_hosts)
                .chain(&self.insecure_registries)
                .find(|h| h.is_empty() || h.contains(['/', ' ', '@']))
                .map(|bad| format!("{bad:?} is not a host or host:port"))
        }
    }
}

/// A duration written as a number and one unit: `500ms`, `2s`, `10m`, `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            _ if ms.is_multiple_of(3_600_000) && ms > 0 => write!(f, "{}h", ms / 3_600_000),
            _ if ms.is_multiple_of(60_000) && ms > 0 => write!(f, "{}m", ms / 60_000),
            _ if ms.is_multiple_of(1000) => write!(f, "{}s", ms / 1000),
            _ => write!(f, "{ms}ms"),
        }
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(text: &str) -> Result<Span, String> {
        let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(digits);
        let unit_ms = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => 0,
        };
        match number.parse::<u64>() {
            Ok(n) if unit_ms > 0 => Ok(Span(Duration::from_millis(n.saturating_mul(unit_ms)))),
            _ => Err(format!(
                "invalid duration {text:?}: expected a number and one unit (ms, s, m, h), like 2s"
            )),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Span {
    fn schema_name() -> Cow<'static, str> {
        "Span".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        for (text, ms) in [("500ms", 500), ("2s", 2000), ("10m", 600_000), ("1h", 3_600_000)] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.0.as_millis(), ms, "{text}");
            assert_eq!(span.to_string(), text);
        }
        for bad in ["", "2", "s", "1.5s", "-1s", "2 s", "1d"] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn problems() {
        let ok = ImageLookup::default();
        assert_eq!(ok.problem(), None);
        for (change, want) in [
            (
                Box::new(|c: &mut ImageLookup| c.timeout = Span(Duration::from_secs(5)))
                    as Box<dyn Fn(&mut ImageLookup)>,
                "timeout 5s",
            ),
            (
                Box::new(|c: &mut ImageLookup| c.timeout = Span(Duration::ZERO)),
                "timeout 0s",
            ),
            (Box::new(|c: &mut ImageLookup| c.cache_size = 0), "cacheSize"),
            (
                Box::new(|c: &mut ImageLookup| c.max_response_bytes = 10),
                "maxResponseBytes",
            ),
            (
                Box::new(|c: &mut ImageLookup| c.extra_hosts = vec!["https://x/".into()]),
                "not a host",
            ),
        ] {
            let mut c = ok.clone();
            change(&mut c);
            let problem = c.problem().unwrap_or_default();
            assert!(problem.contains(want), "{problem}");
        }
    }
}
