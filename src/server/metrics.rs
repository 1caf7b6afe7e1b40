//! Prometheus metrics, served as OpenMetrics text on the admin port.
//!
//! Label values come from closed sets (operations, outcomes, field and check
//! names, error kinds), never from request content, so cardinality is bounded.

use crate::admission::{self, Outcome};
use crate::engine::report::Target;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::time::Duration;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Seconds; a review takes well under a millisecond, a 3 MB object a few.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    outcome: &'static str,
    mode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabels {
    field: &'static str,
    level: &'static str,
    mode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeptLabels {
    field: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// Seconds; a cached answer takes microseconds, a registry round trip tens
/// of milliseconds, the budget is at most 4 s.
const LOOKUP_BUCKETS: [f64; 12] = [0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// How many times each distinct item occurs, in first-seen order (a handful
/// of distinct label sets per review: a linear search beats hashing).
fn tally<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<(T, u64)> {
    let mut counts: Vec<(T, u64)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(seen, _)| *seen == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    counts
}

/// Kinds of error counted in `secure_defaults_errors_total`.
pub mod error_kind {
    pub const EMPTY_BODY: &str = "empty_body";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const BODY_TIMEOUT: &str = "body_timeout";
    pub const BODY_READ: &str = "body_read";
    /// Deadline passed while a large body waited for memory (`503`).
    pub const BODY_MEMORY: &str = "body_memory";
    pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";
    pub const SERIALIZE: &str = "serialize";
    pub const TLS_HANDSHAKE: &str = "tls_handshake";
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    fields_added: Family<FieldLabels, Counter>,
    kept: Family<KeptLabels, Counter>,
    remaining: Family<CheckLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    cert_reloads: Family<ReloadLabels, Counter>,
    cert_expiry: Gauge,
    /// Bytes of the large-body budget reserved now (`server::body_memory`).
    pub large_body_bytes: Gauge,
    /// Large bodies that had to wait for the budget.
    pub large_body_waits: Counter,
    image_lookups: Family<LookupLabels, Counter>,
    image_lookup_duration: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("secure_defaults");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Histogram::new(LATENCY_BUCKETS);
        let fields_added = Family::<FieldLabels, Counter>::default();
        let kept = Family::<KeptLabels, Counter>::default();
        let remaining = Family::<CheckLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let cert_reloads = Family::<ReloadLabels, Counter>::default();
        let large_body_bytes = Gauge::default();
        let cert_expiry = Gauge::default();
        let large_body_waits = Counter::default();
        let image_lookups = Family::<LookupLabels, Counter>::default();
        let image_lookup_duration = Histogram::new(LOOKUP_BUCKETS);
        registry.register(
            "admission_requests",
            "Admission reviews by operation and outcome; in audit mode the outcome is what enforce mode would do",
            requests.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time from request headers to the answer, body read included",
            duration.clone(),
        );
        registry.register(
            "fields_added",
            "Baseline fields added to pods (in audit mode: that would be added)",
            fields_added.clone(),
        );
        registry.register(
            "explicit_values_kept",
            "Explicit values weaker than the baseline, kept as written",
            kept.clone(),
        );
        registry.register(
            "remaining_violations",
            "Pod Security restricted violations left after hardening, by check",
            remaining.clone(),
        );
        registry.register(
            "errors",
            "Requests that could not be answered normally, by kind",
            errors.clone(),
        );
        registry.register(
            "tls_certificate_reloads",
            "Serving certificate reloads from disk, by result",
            cert_reloads.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When the serving certificate in use expires (its notAfter), in Unix seconds",
            cert_expiry.clone(),
        );
        registry.register(
            "large_body_bytes",
            "Bytes of the large-body memory budget reserved by bodies being read or reviewed",
            large_body_bytes.clone(),
        );
        registry.register(
            "large_body_waits",
            "Large bodies that waited for the large-body memory budget",
            large_body_waits.clone(),
        );
        registry.register(
            "image_lookups",
            "Image lookups of identity: auto by result: hit (cached), fetched, failed, refused (egress guard or imageLookup.registries), timeout",
            image_lookups.clone(),
        );
        registry.register(
            "image_lookup_duration_seconds",
            "Time one image lookup took within its review, cache hits included",
            image_lookup_duration.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics {
            registry,
            requests,
            duration,
            fields_added,
            kept,
            remaining,
            errors,
            cert_reloads,
            cert_expiry,
            large_body_bytes,
            large_body_waits,
            image_lookups,
            image_lookup_duration,
        }
    }

    /// One image looked up for a review; `result` is [`crate::images::Looked::result`].
    pub fn image_lookup(&self, result: &'static str, elapsed: Duration) {
        self.image_lookups.get_or_create(&LookupLabels { result }).inc();
        self.image_lookup_duration.observe(elapsed.as_secs_f64());
    }

    /// One answered review.
    pub fn review(&self, outcome: &Outcome, elapsed: Duration) {
        let mode = outcome.mode.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                operation: outcome.operation,
                outcome: outcome.decision.as_str(),
                mode,
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
        // Counted per label set first, then added once per set: a review adds
        // the same field to each of its containers, and each family lookup
        // hashes its labels under a lock.
        let added = outcome.added.iter().map(|a| FieldLabels {
            field: a.field.as_str(),
            level: match a.target {
                Target::Pod => "pod",
                Target::Container { .. } => "container",
            },
            mode,
        });
        for (labels, n) in tally(added) {
            self.fields_added.get_or_create(&labels).inc_by(n);
        }
        for (labels, n) in tally(outcome.kept.iter().map(|f| KeptLabels { field: f.as_str() })) {
            self.kept.get_or_create(&labels).inc_by(n);
        }
        for (labels, n) in tally(outcome.remaining.iter().map(|c| CheckLabels { check: c.as_str() })) {
            self.remaining.get_or_create(&labels).inc_by(n);
        }
        if let Some(problem) = &outcome.problem {
            self.error(problem.kind);
        }
    }

    /// A request refused before review (bad body, too large, too slow, ...).
    pub fn refused(&self, kind: &'static str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                operation: "unknown",
                outcome: admission::Decision::Invalid.as_str(),
                mode: "none",
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
        self.error(kind);
    }

    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&ErrorLabels { kind }).inc();
    }

    pub fn cert_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.cert_reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The serving certificate now in use expires at `not_after` (Unix seconds).
    pub fn cert_expiry(&self, not_after: i64) {
        self.cert_expiry.set(not_after);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Decision;
    use crate::config::Mode;
    use crate::engine::{Added, Check, ContainerKind, Field};

    #[test]
    fn a_review_counts_each_field_per_level_once_per_occurrence() {
        let container = |name| Target::container(ContainerKind::Containers, name);
        let added = |field, target| Added { field, target };
        let outcome = Outcome {
            decision: Decision::Patched,
            mode: Mode::Enforce,
            uid: "u".into(),
            namespace: "ns".into(),
            name: "p".into(),
            operation: "CREATE",
            dry_run: false,
            added: vec![
                added(Field::RunAsNonRoot, Target::Pod),
                added(Field::AllowPrivilegeEscalation, container("a")),
                added(Field::AllowPrivilegeEscalation, container("b")),
                added(Field::DropCapabilities, container("a")),
                added(Field::AllowPrivilegeEscalation, container("c")),
            ],
            kept: vec![Field::RunAsUser, Field::RunAsUser],
            remaining: vec![Check::HostPorts, Check::Privileged, Check::HostPorts],
            denied: Vec::new(),
            problem: None,
        };
        let metrics = Metrics::new();
        metrics.review(&outcome, Duration::from_micros(50));
        metrics.review(&outcome, Duration::from_micros(50));
        let text = metrics.encode();
        for line in [
            r#"secure_defaults_fields_added_total{field="runAsNonRoot",level="pod",mode="enforce"} 2"#,
            r#"secure_defaults_fields_added_total{field="allowPrivilegeEscalation",level="container",mode="enforce"} 6"#,
            r#"secure_defaults_fields_added_total{field="capabilities",level="container",mode="enforce"} 2"#,
            r#"secure_defaults_explicit_values_kept_total{field="runAsUser"} 4"#,
            r#"secure_defaults_remaining_violations_total{check="hostPorts"} 4"#,
            r#"secure_defaults_remaining_violations_total{check="privileged"} 2"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn tally_counts_in_first_seen_order() {
        assert_eq!(
            tally(["b", "a", "b", "c", "b"].into_iter()),
            [("b", 3), ("a", 1), ("c", 1)]
        );
        assert!(tally(std::iter::empty::<u8>()).is_empty());
    }
}
