//! The admission layer: an AdmissionReview's request in, the response and
//! what happened (the [`Outcome`]) out.
//!
//! Pure: no I/O, no clock, no logging. The server reads the body, measures
//! time and turns the outcome into a log line and metrics, so every decision
//! made here is testable without HTTP.
//!
//! Handled: Pod CREATE (the whole pod) and UPDATE of `pods/ephemeralcontainers`
//! (only the ephemeral containers that are new, as `kubectl debug` adds them).
//! Workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob)
//! get a preview: allowed unchanged, with one warning saying what their pods
//! will get and what `restricted` will still reject. Anything else is
//! allowed untouched.
//!
//! [`namespace`] wraps [`review`] with the namespace policy.

pub mod namespace;

use crate::config::{Config, Mode};
use crate::engine::annotations::{SKIP, SKIP_FIELDS};
use crate::engine::manifest::{into_prefixed, pod_template_path};
use crate::engine::report::{Added, ContainerKind, Target};
use crate::engine::{self, Check, Field, Hardening, ImageFacts, Policy, Report, Scope, Violation};
use crate::policy::assess;
use crate::policy::messages;
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::response::StatusSummary;
use kube::core::{ApiResource, DynamicObject, DynamicResourceScope, Resource, TypeMeta};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeSet;
use thiserror::Error;

/// The only AdmissionReview version this webhook speaks.
pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// Audit annotation keys. The API server prefixes them with the webhook's
/// name, so each must be a valid qualified name of at most 63 characters.
pub mod keys {
    pub const MODE: &str = "mode";
    pub const ADDED: &str = "added";
    pub const WOULD_ADD: &str = "would-add";
    pub const DENIED: &str = "denied";
    pub const WOULD_DENY: &str = "would-deny";
    pub const OPT_OUT: &str = "opt-out";
    pub const ERROR: &str = "error";
    pub const ALL: [&str; 7] = [MODE, ADDED, WOULD_ADD, DENIED, WOULD_DENY, OPT_OUT, ERROR];
}

const PREFIX: &str = "secure-defaults: ";
/// Audit annotation values and the deny message are cut here: the audit log
/// and `kubectl` output stay readable, and the warnings carry the rest.
const MAX_VALUE: usize = 2048;

/// Why a body is not an AdmissionReview this webhook can answer. The server
/// answers `400 Bad Request` with this one line: there is no uid to answer to.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BodyError {
    #[error("empty body: expected an AdmissionReview")]
    Empty,
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not an AdmissionReview: {0}")]
    NotAReview(String),
    #[error("unsupported {field} {found:?}: this webhook speaks {API_VERSION} {KIND} (admissionReviewVersions: [v1])")]
    Version { field: &'static str, found: String },
    #[error("AdmissionReview has no request")]
    NoRequest,
}

/// An admission request as this webhook reads it.
pub type Request = AdmissionRequest<Object>;

/// A body that is an AdmissionReview.
#[derive(Debug)]
pub enum Parsed {
    Request(Box<Request>),
    /// A review with a uid whose request does not parse (for example its
    /// object's metadata has an unexpected shape). It is answered, not refused.
    Unreadable(Unreadable),
}

/// What a review that does not parse still says about its request, for the
/// answer, the log line and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub uid: String,
    pub reason: String,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`, or `unknown`.
    pub operation: &'static str,
    pub namespace: String,
    pub name: String,
}

/// The AdmissionReview around a request. Not kube's `AdmissionReview`: its
/// flattened `TypeMeta` makes serde buffer the whole review (every string
/// and map of the object) before reading it, and a buffered object cannot
/// be kept as raw JSON ([`Object`]).
#[derive(Deserialize)]
struct Review {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    request: Option<Box<Request>>,
}

/// Read a request body. serde_json's recursion limit (128) stays on, so deeply
/// nested JSON is an error, not a stack overflow (what is only skipped, like
/// fields the bindings do not know, is skipped without recursion).
pub fn parse(body: &[u8]) -> Result<Parsed, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    // JSON is UTF-8 (RFC 8259). Checked once for the whole body, fields that
    // are only skipped included (serde_json does not check those), and then
    // serde_json reads text and checks no string again.
    let body = std::str::from_utf8(body)
        .map_err(|e| BodyError::NotJson(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    match serde_json::from_str::<Review>(body) {
        Ok(review) => {
            check_version(&review.api_version, &review.kind)?;
            let mut request = review.request.ok_or(BodyError::NoRequest)?;
            request.types = TypeMeta {
                api_version: review.api_version,
                kind: review.kind,
            };
            Ok(Parsed::Request(request))
        }
        Err(e) if e.classify() != serde_json::error::Category::Data => Err(BodyError::NotJson(e.to_string())),
        Err(e) => {
            // Valid JSON of the wrong shape: answer with a review if it says which request it is.
            let value: Value = serde_json::from_str(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
            if !value.is_object() {
                return Err(BodyError::NotAReview(e.to_string()));
            }
            let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
            check_version(&field("apiVersion"), &field("kind"))?;
            let request = |name: &str| value.pointer(&format!("/request/{name}")).and_then(Value::as_str);
            match request("uid") {
                Some(uid) if !uid.is_empty() => Ok(Parsed::Unreadable(Unreadable {
                    uid: uid.to_string(),
                    // The decoder's position is in the AdmissionReview's
                    // body, which the pod's author never saw.
                    reason: without_position(&e),
                    operation: value
                        .pointer("/request/operation")
                        .and_then(|op| Operation::deserialize(op).ok())
                        .map_or("unknown", operation_str),
                    namespace: request("namespace").unwrap_or_default().to_string(),
                    name: request("name").unwrap_or_default().to_string(),
                })),
                _ if value.get("request").is_none_or(Value::is_null) => Err(BodyError::NoRequest),
                _ => Err(BodyError::NotAReview(e.to_string())),
            }
        }
    }
}

/// The body of the answer: the AdmissionReview around `response`, with the
/// patch as base64, the encoding of Go's `[]byte` that the API server
/// documents. kube's own serialization writes the patch as a JSON array of
/// numbers (kube-rs issue 1781): also accepted, but about 3.5 bytes per patch
/// byte instead of 1.33, and a number to format for each.
pub fn encode(mut response: AdmissionResponse) -> serde_json::Result<Vec<u8>> {
    use base64::Engine as _;

    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'a str,
        kind: &'a str,
        response: &'a AdmissionResponse,
    }

    // `patchType` stays on the response, set by `with_patch`.
    let patch = response.patch.take();
    // Sized for the whole answer up front rather than grown by doubling.
    let strings = |v: Option<&Vec<String>>| v.into_iter().flatten().map(|s| s.len() + 3).sum::<usize>();
    let estimate = 256
        + response.uid.len()
        + strings(response.warnings.as_ref())
        + response
            .audit_annotations
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>()
        + response.result.message.len()
        + patch.as_ref().map_or(0, |p| p.len() / 3 * 4 + 16);
    let mut body = Vec::with_capacity(estimate);
    serde_json::to_writer(
        &mut body,
        &Body {
            api_version: &response.types.api_version,
            kind: &response.types.kind,
            response: &response,
        },
    )?;
    if let Some(patch) = patch {
        // The patch goes last in `response`, written straight into the body:
        // base64 needs no JSON escaping, and a serializer would look at each
        // of its bytes for some.
        debug_assert!(body.ends_with(b"}}"));
        body.truncate(body.len() - 2);
        body.extend_from_slice(br#","patch":""#);
        let start = body.len();
        body.resize(
            start + base64::encoded_len(patch.len(), true).expect("no overflow below isize::MAX"),
            0,
        );
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(&patch, &mut body[start..])
            .expect("sized by encoded_len");
        body.truncate(start + written);
        body.extend_from_slice(br#""}}"#);
    }
    Ok(body)
}

/// A request's `object` or `oldObject`, read in one pass: `apiVersion`,
/// `kind` and `metadata` typed; a Pod's `spec` read straight into the
/// engine's input ([`engine::read_spec`]), when `kind: Pod` comes first, as
/// the API server writes it; every other member kept as the raw JSON it came
/// in, to be read on demand into the type the request is about
/// ([`Object::parse_field`]). So the object is parsed once, into typed
/// structs, rather than into a `serde_json::Value` and then again from it,
/// and members nobody reads are only scanned.
#[derive(Debug, Clone)]
pub struct Object {
    /// `apiVersion` and `kind`, when the object has both.
    pub types: Option<TypeMeta>,
    pub metadata: ObjectMeta,
    /// A Pod's spec, when it was read as the object was parsed (then it is
    /// not among `fields`). Boxed: a request is moved about as it is read,
    /// and a `PodSpec` is large.
    pod_spec: Option<Box<PodSpec>>,
    /// The other members (`spec`, `status`, ...), in order.
    fields: Vec<(String, Box<RawValue>)>,
}

impl Object {
    /// The object's pod spec as the engine reads it (only the fields the
    /// engine looks at). `None` when the object has no spec or a `null` one.
    pub fn pod_spec(&self) -> Option<serde_json::Result<Cow<'_, PodSpec>>> {
        if let Some(spec) = &self.pod_spec {
            return Some(Ok(Cow::Borrowed(spec)));
        }
        self.field("spec")
            .filter(|raw| raw.get() != "null")
            .map(|raw| engine::read_spec(raw.get()).map(Cow::Owned))
    }

    /// A member other than `apiVersion`, `kind` and `metadata`, as it came in.
    pub fn field(&self, name: &str) -> Option<&RawValue> {
        self.fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| &**v)
    }

    /// Read a member into `T` (for example a struct with only the fields a
    /// caller needs; what `T` does not name is skipped, not read). `None`
    /// when the member is absent or `null`.
    pub fn parse_field<'a, T: Deserialize<'a>>(&'a self, name: &str) -> Option<serde_json::Result<T>> {
        self.field(name)
            .filter(|raw| raw.get() != "null")
            .map(|raw| serde_json::from_str(raw.get()))
    }

    /// The object as a [`DynamicObject`] (a `serde_json::Value`), for code
    /// off the hot path that wants one. Not for Pods: their spec is read
    /// into the engine's input and is not kept.
    pub fn to_dynamic(&self) -> serde_json::Result<DynamicObject> {
        let mut data = serde_json::Map::new();
        for (k, v) in &self.fields {
            data.insert(k.clone(), serde_json::from_str(v.get())?);
        }
        Ok(DynamicObject {
            types: self.types.clone(),
            metadata: self.metadata.clone(),
            data: Value::Object(data),
        })
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
        let (mut api_version, mut kind, mut metadata, mut pod_spec) = (None, None, None, None);
        let mut fields = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "apiVersion" => api_version = map.next_value::<Option<String>>()?,
                "kind" => kind = map.next_value::<Option<String>>()?,
                "metadata" => metadata = Some(map.next_value::<ObjectMeta>()?),
                "spec" if kind.as_deref() == Some("Pod") => {
                    let read = map.next_value::<engine::SpecInput>().map_err(|e| {
                        de::Error::custom(format_args!(
                            "the Pod's spec cannot be read: {}",
                            strip_position(&e.to_string())
                        ))
                    })?;
                    fields.retain(|(k, _)| k != "spec");
                    pod_spec = read.0.map(Box::new);
                }
                _ => fields.push((key, map.next_value::<Box<RawValue>>()?)),
            }
        }
        let types = match (api_version, kind) {
            (Some(api_version), Some(kind)) => Some(TypeMeta { api_version, kind }),
            _ => None,
        };
        Ok(Object {
            types,
            metadata: metadata.unwrap_or_default(),
            pod_spec,
            fields,
        })
    }
}

/// kube's admission types need a [`Resource`]; like [`DynamicObject`], its
/// type is known at run time only.
impl Resource for Object {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A message without a trailing ` at line L column C` (serde_json's
/// position), for errors that reach us only as text.
fn strip_position(message: &str) -> &str {
    match message.rsplit_once(" at line ") {
        Some((m, tail))
            if tail
                .split_once(" column ")
                .is_some_and(|(l, c)| l.parse::<u64>().is_ok() && c.parse::<u64>().is_ok()) =>
        {
            m
        }
        _ => message,
    }
}

/// A serde_json message without its position: positions inside the object
/// would read as positions in the body.
fn without_position(e: &serde_json::Error) -> String {
    strip_position(&e.to_string()).to_string()
}

fn check_version(api_version: &str, kind: &str) -> Result<(), BodyError> {
    if api_version != API_VERSION {
        return Err(BodyError::Version {
            field: "apiVersion",
            found: api_version.to_string(),
        });
    }
    if kind != KIND {
        return Err(BodyError::Version {
            field: "kind",
            found: kind.to_string(),
        });
    }
    Ok(())
}

/// What the webhook decided, as the metric label `outcome`. In audit mode it
/// is what enforce mode would have done; nothing is patched or denied then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Baseline fields added (a JSONPatch in enforce mode).
    Patched,
    /// A pod with nothing to add.
    Unchanged,
    /// The hardened pod fails a check on the deny list.
    Denied,
    /// Not a request this webhook handles (kind, operation, subresource).
    Skipped,
    /// A workload: allowed unchanged, with a warning previewing its pods.
    Previewed,
    /// The object cannot be read as a Pod: allowed untouched, with a warning.
    Invalid,
    /// An internal error: allowed untouched, with a warning.
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Patched => "patched",
            Decision::Unchanged => "unchanged",
            Decision::Denied => "denied",
            Decision::Skipped => "skipped",
            Decision::Previewed => "previewed",
            Decision::Invalid => "invalid",
            Decision::Error => "error",
        }
    }
}

/// Everything the server logs and counts about one review. No object content
/// beyond names: logs must not carry secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub decision: Decision,
    pub mode: Mode,
    pub uid: String,
    pub namespace: String,
    /// The object's name; `generateName*` before the API server picks one.
    pub name: String,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`, or `unknown` for an unreadable request.
    pub operation: &'static str,
    pub dry_run: bool,
    /// Fields added; in audit mode, fields that would be added.
    pub added: Vec<Added>,
    /// Explicit values weaker than the baseline, kept as written.
    pub kept: Vec<Field>,
    /// Pod Security `restricted` checks the result still fails.
    pub remaining: Vec<Check>,
    /// The checks of `remaining` on the deny list.
    pub denied: Vec<Check>,
    /// For `Invalid` and `Error`: a short kind (a metric label) and the reason.
    pub problem: Option<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// One of [`problem`]'s kinds.
    pub kind: &'static str,
    pub reason: String,
    /// The reason quotes the pod: a decoder's message, which names the
    /// values it could not read (`invalid type: string "..."`). Logs keep
    /// such a reason without the quoted values; every other reason is ours
    /// and logged as it is.
    pub quotes_pod: bool,
}

impl Problem {
    /// The reason as logs may keep it.
    pub fn loggable(&self) -> std::borrow::Cow<'_, str> {
        if self.quotes_pod {
            redact(&self.reason).into()
        } else {
            self.reason.as_str().into()
        }
    }
}

/// A decoder's message without the values it quotes (between `"` or
/// backticks, as serde writes them): what a log may keep of a message about
/// the pod.
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            None if c == '"' || c == '`' => {
                out.push(c);
                out.push_str("...");
                open = Some(c);
            }
            None => out.push(c),
            Some(q) if c == q => {
                out.push(c);
                open = None;
            }
            Some(_) => {}
        }
    }
    if let Some(q) = open {
        out.push(q);
    }
    out
}

/// Kinds of [`Problem`] (the `kind` label of `secure_defaults_errors_total`).
pub mod problem {
    /// The object cannot be read as a Pod (or the request as a review).
    pub const INVALID_OBJECT: &str = "invalid_object";
    /// The engine refused to produce a patch.
    pub const ENGINE: &str = "engine";
    /// The patch could not be serialized.
    pub const PATCH: &str = "patch";
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub response: AdmissionResponse,
    pub outcome: Outcome,
}

/// Answer a review whose request could not be read ([`Parsed::Unreadable`]):
/// allowed, untouched, with a warning saying why.
pub fn unreadable(request: &Unreadable, config: &Config) -> Reviewed {
    let mut response = AdmissionResponse::invalid("");
    response.uid = request.uid.clone();
    response.allowed = true;
    response.result = Default::default();
    let outcome = Outcome {
        uid: request.uid.clone(),
        operation: request.operation,
        namespace: request.namespace.clone(),
        name: request.name.clone(),
        ..Outcome::new(Decision::Invalid, config.mode)
    };
    finish_unreadable(response, outcome, config, &request.reason)
}

/// Answer one admission request.
pub fn review(req: &Request, config: &Config) -> Reviewed {
    review_with(req, config, &ImageFacts::default())
}

/// [`review`] with the images looked up for `identity: auto` (the server
/// looks them up before, as the engine does no I/O).
pub fn review_with(req: &Request, config: &Config, images: &ImageFacts) -> Reviewed {
    let outcome = Outcome::of(req, config.mode);
    let response = AdmissionResponse::from(req);
    match subject(req) {
        None => Reviewed {
            response,
            outcome: Outcome {
                decision: Decision::Skipped,
                ..outcome
            },
        },
        Some(Subject::WorkloadPreview) => preview(req, config, outcome),
        Some(Subject::Pod(change)) => match harden(req, change, config, images) {
            Ok(Some(hardened)) => decide(req, config, hardened, outcome),
            Ok(None) => Reviewed {
                response,
                outcome: Outcome {
                    decision: Decision::Unchanged,
                    ..outcome
                },
            },
            Err(problem) => {
                let decision = match problem.kind {
                    problem::INVALID_OBJECT => Decision::Invalid,
                    _ => Decision::Error,
                };
                let reason = problem.reason.clone();
                let outcome = Outcome {
                    decision,
                    problem: Some(problem),
                    ..outcome
                };
                finish_unreadable(response, outcome, config, &reason)
            }
        },
    }
}

impl Outcome {
    fn new(decision: Decision, mode: Mode) -> Outcome {
        Outcome {
            decision,
            mode,
            uid: String::new(),
            namespace: String::new(),
            name: String::new(),
            operation: "unknown",
            dry_run: false,
            added: Vec::new(),
            kept: Vec::new(),
            remaining: Vec::new(),
            denied: Vec::new(),
            problem: None,
        }
    }

    fn of(req: &Request, mode: Mode) -> Outcome {
        let generate_name = req
            .object
            .as_ref()
            .and_then(|o| o.metadata.generate_name.as_deref())
            .filter(|_| req.name.is_empty());
        Outcome {
            uid: req.uid.clone(),
            namespace: req.namespace.clone().unwrap_or_default(),
            name: match generate_name {
                Some(g) => format!("{g}*"),
                None => req.name.clone(),
            },
            operation: operation_str(req.operation.clone()),
            dry_run: req.dry_run,
            ..Outcome::new(Decision::Skipped, mode)
        }
    }
}

fn operation_str(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// The requests this webhook handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// Hardened.
    Pod(PodChange),
    /// CREATE or UPDATE of a workload with a pod template: never patched
    /// (its pods are hardened when they are created; GitOps sees no drift).
    WorkloadPreview,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodChange {
    Create,
    /// `kubectl debug`: the only change to a running pod that adds containers.
    EphemeralContainersUpdate,
}

/// The workloads previewed, as `(group, resource, kind)`.
const WORKLOADS: [(&str, &str, &str); 6] = [
    ("apps", "deployments", "Deployment"),
    ("apps", "statefulsets", "StatefulSet"),
    ("apps", "daemonsets", "DaemonSet"),
    ("apps", "replicasets", "ReplicaSet"),
    ("batch", "jobs", "Job"),
    ("batch", "cronjobs", "CronJob"),
];

fn subject(req: &Request) -> Option<Subject> {
    let pods = req.resource.group.is_empty()
        && req.resource.version == "v1"
        && req.resource.resource == "pods"
        && req.kind.kind == "Pod";
    let workload = req.resource.version == "v1"
        && WORKLOADS.iter().any(|&(group, resource, kind)| {
            req.resource.group == group && req.resource.resource == resource && req.kind.kind == kind
        });
    match (&req.operation, req.sub_resource.as_deref().filter(|s| !s.is_empty())) {
        (Operation::Create, None) if pods => Some(Subject::Pod(PodChange::Create)),
        (Operation::Update, Some("ephemeralcontainers")) if pods => {
            Some(Subject::Pod(PodChange::EphemeralContainersUpdate))
        }
        (Operation::Create | Operation::Update, None) if workload => Some(Subject::WorkloadPreview),
        _ => None,
    }
}

struct Hardened {
    scope: Scope,
    hardening: Hardening,
}

/// Run the engine on the request's pod. `Ok(None)`: nothing in scope
/// (an ephemeral-containers update that adds none).
fn harden(req: &Request, change: PodChange, config: &Config, images: &ImageFacts) -> Result<Option<Hardened>, Problem> {
    let invalid = |reason: String| Problem {
        kind: problem::INVALID_OBJECT,
        reason,
        quotes_pod: false,
    };
    let object = req
        .object
        .as_ref()
        .ok_or_else(|| invalid("the request has no object".into()))?;
    let spec = match object.pod_spec() {
        Some(Ok(spec)) => spec,
        None => return Err(invalid("the Pod has no spec".into())),
        Some(Err(e)) => {
            return Err(Problem {
                quotes_pod: true,
                ..invalid(format!("the Pod's spec cannot be read: {}", without_position(&e)))
            })
        }
    };
    let scope = match change {
        PodChange::Create => Scope::Pod,
        PodChange::EphemeralContainersUpdate => {
            let old = req
                .old_object
                .as_ref()
                .ok_or_else(|| invalid("the update has no oldObject".into()))?;
            let before = old_ephemeral_names(old);
            let before: BTreeSet<&str> = before.iter().map(String::as_str).collect();
            let new: Vec<String> = spec
                .ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.clone())
                .filter(|name| !before.contains(name.as_str()))
                .collect();
            if new.is_empty() {
                return Ok(None);
            }
            Scope::EphemeralContainers(new)
        }
    };
    let policy = Policy {
        baseline: &config.baseline,
        allow_opt_out: config.allow_pod_opt_out,
        images,
    };
    let hardening = engine::harden(&object.metadata, &spec, &scope, policy).map_err(|e| Problem {
        kind: problem::ENGINE,
        reason: e.to_string(),
        quotes_pod: false,
    })?;
    Ok(Some(Hardened { scope, hardening }))
}

/// A workload: allowed as sent, with one warning previewing what admission
/// will do to its pods. An UPDATE that leaves the pod template as it was
/// (a scale, a label, a controller's bookkeeping) gets no warning.
fn preview(req: &Request, config: &Config, outcome: Outcome) -> Reviewed {
    let response = AdmissionResponse::from(req);
    let skipped = |response| Reviewed {
        response,
        outcome: Outcome {
            decision: Decision::Skipped,
            ..outcome.clone()
        },
    };
    let kind = req.kind.kind.as_str();
    let Some(object) = req.object.as_ref() else {
        return skipped(response);
    };
    // Off the pod hot path: the workload as a Value is fine here.
    let Ok(object) = object.to_dynamic() else {
        return skipped(response);
    };
    let template_pointer = |o: &DynamicObject| {
        let path = pod_template_path(&req.kind.group, kind, &[]).unwrap_or_default();
        path.iter()
            .skip(1) // `spec`: the object's data holds everything but metadata
            .try_fold(o.data.get("spec")?, |v, key| v.get(key))
            .cloned()
    };
    if let Some(Ok(old)) = req.old_object.as_ref().map(Object::to_dynamic) {
        if template_pointer(&old) == template_pointer(&object) {
            return skipped(response);
        }
    }
    let mut value = match serde_json::to_value(&object) {
        Ok(v) => v,
        Err(_) => return skipped(response),
    };
    value["kind"] = Value::String(kind.to_string());
    value["apiVersion"] = Value::String(match req.kind.group.as_str() {
        "" => req.kind.version.clone(),
        group => format!("{group}/{}", req.kind.version),
    });
    // A template the engine cannot read is the API server's to refuse (or
    // the pods' admission to report): a preview stays silent about it.
    let assessment = match assess::assess(&value, config, false) {
        Ok(Some(a)) => a,
        _ => return skipped(response),
    };
    let Some(line) = messages::preview(kind, &assessment) else {
        return skipped(response);
    };
    let mut response = response;
    response.warnings = Some(messages::bound(vec![line]));
    Reviewed {
        response,
        outcome: Outcome {
            decision: Decision::Previewed,
            ..outcome
        },
    }
}

/// The names of the ephemeral containers the pod had before the update. An
/// old object without a readable spec counts as having none, so every
/// ephemeral container of the new object is hardened.
fn old_ephemeral_names(old: &Object) -> Vec<String> {
    let Some(Ok(spec)) = old.pod_spec() else {
        return Vec::new();
    };
    spec.ephemeral_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect()
}

fn decide(req: &Request, config: &Config, Hardened { scope, hardening }: Hardened, outcome: Outcome) -> Reviewed {
    let audit = config.mode == Mode::Audit;
    let mut report = hardening.report;
    if let Scope::EphemeralContainers(names) = &scope {
        // The rest of the pod is immutable here and was admitted before:
        // warn and deny only about the containers being added.
        report.remaining.retain(|v| is_new_ephemeral(&v.target, names));
    }
    if audit {
        // Nothing is added: the pod runs as written, not as hardened.
        report.cautions.clear();
    }
    let denied: Vec<&Violation> = report
        .remaining
        .iter()
        .filter(|v| config.deny.contains(&v.check))
        .collect();
    let decision = if !denied.is_empty() {
        Decision::Denied
    } else if !hardening.ops.is_empty() {
        Decision::Patched
    } else {
        Decision::Unchanged
    };

    let mut lines = Vec::new();
    if audit && !denied.is_empty() {
        lines.push(format!(
            "audit mode: this pod would be denied: {}",
            join_violations(&denied)
        ));
    }
    let opt_out = &hardening.opt_out;
    if !opt_out.is_empty() && !hardening.opt_out_honoured {
        lines.push(format!(
            "{SKIP} and {SKIP_FIELDS} ignored: this cluster does not allow pods to opt out"
        ));
    }
    if !opt_out.unknown.is_empty() {
        let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
        lines.push(format!(
            "unknown field names in {SKIP_FIELDS} ignored: {} (known: {})",
            opt_out.unknown.join(", "),
            known.join(", ")
        ));
    }
    if audit {
        lines.extend(would_add(&report));
    }
    let mut warnings: Vec<String> = lines.into_iter().map(|l| format!("{PREFIX}{l}")).collect();
    warnings.extend(messages::warnings(&report));
    let warnings = messages::bound(warnings);

    let mut annotations = vec![(keys::MODE, config.mode.as_str().to_string())];
    let added_now = decision == Decision::Patched || (audit && !report.added.is_empty());
    if added_now {
        let key = if audit { keys::WOULD_ADD } else { keys::ADDED };
        annotations.push((key, added_list(&report)));
    }
    if !denied.is_empty() {
        let checks: BTreeSet<&str> = denied.iter().map(|v| v.check.as_str()).collect();
        let key = if audit { keys::WOULD_DENY } else { keys::DENIED };
        annotations.push((key, checks.into_iter().collect::<Vec<_>>().join(",")));
    }
    if !opt_out.is_empty() {
        let value = if hardening.opt_out_honoured {
            "honoured"
        } else {
            "ignored"
        };
        annotations.push((keys::OPT_OUT, value.to_string()));
    }

    let base = AdmissionResponse::from(req);
    let mut outcome = Outcome {
        decision,
        added: if added_now { report.added.clone() } else { Vec::new() },
        kept: report.kept.iter().map(|k| k.field).collect(),
        remaining: report.remaining.iter().map(|v| v.check).collect(),
        denied: denied.iter().map(|v| v.check).collect(),
        ..outcome
    };
    let mut response = match (decision, audit) {
        (Decision::Denied, false) => {
            let mut r = base.deny(cut(
                format!(
                    "violates Pod Security \"restricted\" checks this cluster denies: {}",
                    join_violations(&denied)
                ),
                MAX_VALUE,
            ));
            r.result.status = Some(StatusSummary::Failure);
            r.result.code = 403;
            r.result.reason = "Forbidden".into();
            r
        }
        (Decision::Patched, false) => {
            let patch = into_prefixed(&PointerBuf::from_tokens(["spec"]), hardening.ops);
            match base.clone().with_patch(patch) {
                Ok(r) => r,
                Err(e) => {
                    // Never a patchType without a patch: answer unpatched.
                    let reason = format!("cannot serialize the patch: {e}");
                    outcome.decision = Decision::Error;
                    outcome.added.clear();
                    outcome.problem = Some(Problem {
                        kind: problem::PATCH,
                        reason: reason.clone(),
                        quotes_pod: false,
                    });
                    return finish_unreadable(base, outcome, config, &reason);
                }
            }
        }
        _ => base,
    };
    response.warnings = (!warnings.is_empty()).then_some(warnings);
    response.audit_annotations = annotations
        .into_iter()
        .map(|(k, v)| (k.to_string(), cut(v, MAX_VALUE)))
        .collect();
    Reviewed { response, outcome }
}

/// An allowed, unpatched answer with a warning saying why the pod was not
/// hardened. The API server has decoded the object already, so one this
/// webhook cannot read means version skew, not an attack; refusing it would
/// break an admissible pod. The outcome makes it visible in metrics and logs.
fn finish_unreadable(mut response: AdmissionResponse, outcome: Outcome, config: &Config, reason: &str) -> Reviewed {
    let what = match outcome.decision {
        Decision::Error => "internal error",
        _ => "cannot read the request",
    };
    response.warnings = Some(messages::bound(vec![format!(
        "{PREFIX}pod not hardened ({what}): {reason}"
    )]));
    response.audit_annotations = [
        (keys::MODE.to_string(), config.mode.as_str().to_string()),
        (keys::ERROR.to_string(), cut(format!("{what}: {reason}"), MAX_VALUE)),
    ]
    .into_iter()
    .collect();
    let outcome = Outcome {
        problem: outcome.problem.or_else(|| {
            Some(Problem {
                kind: problem::INVALID_OBJECT,
                reason: reason.to_string(),
                quotes_pod: true,
            })
        }),
        ..outcome
    };
    Reviewed { response, outcome }
}

fn is_new_ephemeral(target: &Target, names: &[String]) -> bool {
    matches!(target, Target::Container { kind: ContainerKind::EphemeralContainers, name } if names.contains(name))
}

fn join_violations(violations: &[&Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `pod.runAsNonRoot,container/app.allowPrivilegeEscalation,...`, written
/// into one string (a review adds a dozen or more).
fn added_list(report: &Report) -> String {
    let mut list = String::with_capacity(report.added.len() * 40);
    for (i, a) in report.added.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        match &a.target {
            Target::Pod => list.push_str("pod"),
            Target::Container { kind, name } => {
                list.push_str(match kind {
                    ContainerKind::InitContainers => "initContainer/",
                    ContainerKind::Containers => "container/",
                    ContainerKind::EphemeralContainers => "ephemeralContainer/",
                });
                list.push_str(name);
            }
        }
        list.push('.');
        list.push_str(a.field.as_str());
    }
    list
}

/// One warning per target: `audit mode: would add to container "app": allowPrivilegeEscalation, capabilities`.
fn would_add(report: &Report) -> Vec<String> {
    let mut by_target: Vec<(&Target, Vec<&str>)> = Vec::new();
    for a in &report.added {
        match by_target.iter_mut().find(|(t, _)| *t == &a.target) {
            Some((_, fields)) => fields.push(a.field.as_str()),
            None => by_target.push((&a.target, vec![a.field.as_str()])),
        }
    }
    by_target
        .into_iter()
        .map(|(target, fields)| format!("audit mode: would add to {target}: {}", fields.join(", ")))
        .collect()
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str("...");
    s
}

/// Whether `key` is valid as the name part of a qualified name (what the API
/// server requires of `<webhook name>/<key>`).
pub fn is_valid_annotation_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn audit_annotation_keys_are_valid_qualified_names() {
        for key in keys::ALL {
            assert!(is_valid_annotation_key(key), "{key}");
        }
        assert!(!is_valid_annotation_key("-x"));
        assert!(!is_valid_annotation_key(&"a".repeat(64)));
        assert!(!is_valid_annotation_key("a/b"));
    }

    #[test]
    fn cut_keeps_char_boundaries() {
        assert_eq!(cut("abcdef".into(), 6), "abcdef");
        assert_eq!(cut("abcdefg".into(), 6), "abc...");
        assert_eq!(cut("ééééé".into(), 6), "é...");
    }

    #[test]
    fn bodies_that_are_not_reviews_say_why() {
        assert_eq!(parse(b"").unwrap_err(), BodyError::Empty);
        assert_eq!(parse(b" \n").unwrap_err(), BodyError::Empty);
        assert!(matches!(parse(b"{not json").unwrap_err(), BodyError::NotJson(_)));
        assert!(matches!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#).unwrap_err(),
            BodyError::Version {
                field: "apiVersion",
                ..
            }
        ));
        assert_eq!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).unwrap_err(),
            BodyError::NoRequest
        );
        assert!(matches!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#).unwrap_err(),
            BodyError::NotAReview(_)
        ));
    }

    /// Invalid UTF-8 is refused wherever it is, in a field only skipped too
    /// (fuzz/regressions/review: it was once read past there).
    #[test]
    fn invalid_utf8_is_refused_even_in_a_skipped_field() {
        let regression = include_bytes!("../../fuzz/regressions/review/invalid-utf8-in-an-ignored-field.json");
        let at = regression.iter().position(|b| *b == 0xff).unwrap();
        assert_eq!(
            parse(regression).unwrap_err(),
            BodyError::NotJson(format!("invalid UTF-8 at byte {at}"))
        );
        let mut valid = String::from_utf8_lossy(regression).into_owned().into_bytes();
        assert!(
            matches!(parse(&valid), Ok(Parsed::Request(_))),
            "the same review, valid, is read"
        );
        valid.extend([0xff]);
        assert!(matches!(parse(&valid).unwrap_err(), BodyError::NotJson(_)));
    }

    #[test]
    fn nesting_beyond_the_recursion_limit_is_an_error() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse(deep.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        let deep_object = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","object":{}0{}}}}}"#,
            r#"{"a":"#.repeat(50_000),
            "}".repeat(50_000)
        );
        let err = parse(deep_object.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        // Without the innermost value it is not JSON: the object is skipped
        // (kept raw) without recursion, so the error is found at the bottom.
        let broken = deep_object.replace(":0}", ":}");
        assert!(matches!(parse(broken.as_bytes()).unwrap_err(), BodyError::NotJson(_)));
    }

    #[test]
    fn deep_nesting_in_fields_the_bindings_do_not_know_is_skipped_not_refused() {
        let wrap = |object: &str| {
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u",
                "kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},
                "operation":"CREATE","userInfo":{{}},"object":{object}}}}}"#
            )
        };
        let deep = format!("{}0{}", r#"{"a":"#.repeat(1_000), "}".repeat(1_000));
        let body = wrap(&format!(
            r#"{{"metadata":{{"name":"p"}},"spec":{{"containers":[{{"name":"app","image":"app","x":{deep}}}]}},"y":{deep}}}"#
        ));
        let Ok(Parsed::Request(req)) = parse(body.as_bytes()) else {
            panic!("parses")
        };
        let reviewed = review(&req, &Config::default());
        assert_eq!(reviewed.outcome.decision, Decision::Patched);
    }

    #[test]
    fn the_answer_is_kubes_review_with_a_base64_patch() {
        use base64::Engine as _;
        let patch = json_patch::Patch(vec![json_patch::PatchOperation::Add(json_patch::AddOperation {
            path: jsonptr::PointerBuf::from_tokens(["spec", "securityContext"]),
            value: serde_json::json!({"runAsNonRoot": true}),
        })]);
        let mut response = AdmissionResponse::invalid("");
        response.types = TypeMeta {
            api_version: "admission.k8s.io/v1".into(),
            kind: "AdmissionReview".into(),
        };
        response.uid = "u".into();
        response.allowed = true;
        response.result = Default::default();
        response.warnings = Some(vec!["w".into()]);
        response.audit_annotations.insert("k".into(), "v".into());
        let response = response.with_patch(patch).unwrap();

        let ours: Value = serde_json::from_slice(&encode(response.clone()).unwrap()).unwrap();
        let mut kubes = serde_json::to_value(response.clone().into_review()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(response.patch.as_ref().unwrap());
        kubes["response"]["patch"] = Value::String(b64);
        assert_eq!(ours, kubes);
        assert_eq!(ours["response"]["patchType"], "JSONPatch");

        let mut unpatched = response;
        unpatched.patch = None;
        let ours: Value = serde_json::from_slice(&encode(unpatched.clone()).unwrap()).unwrap();
        assert_eq!(ours, serde_json::to_value(unpatched.into_review()).unwrap());
        assert_eq!(ours["response"].get("patch"), None);
    }

    #[test]
    fn the_object_is_read_into_typed_parts() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",
            "kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
            "operation":"CREATE","userInfo":{},
            "object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"a":"b"}},
                      "spec":{"containers":[]},"newField":{"x":[1,2]}}}}"#;
        let Ok(Parsed::Request(req)) = parse(body) else {
            panic!("parses")
        };
        assert_eq!(req.types.api_version, API_VERSION);
        let object = req.object.as_ref().expect("object");
        assert_eq!(object.metadata.name.as_deref(), Some("p"));
        assert_eq!(object.types.as_ref().map(|t| t.kind.as_str()), Some("Pod"));
        let dynamic = object.to_dynamic().expect("dynamic");
        assert_eq!(dynamic.data["newField"], serde_json::json!({"x": [1, 2]}));
        assert_eq!(dynamic.metadata.annotations.expect("annotations")["a"], "b");
        assert_eq!(object.field("newField").map(RawValue::get), Some(r#"{"x":[1,2]}"#));
        assert!(object.field("metadata").is_none());
        // The Pod's spec went straight into the engine's input.
        assert!(object.field("spec").is_none());
        let spec = object.pod_spec().expect("a spec").expect("readable");
        assert!(matches!(spec, Cow::Borrowed(_)));
        assert_eq!(spec.containers, vec![]);
    }

    #[test]
    fn a_pod_spec_before_its_kind_is_read_on_demand_the_same_way() {
        let object = |members: &str| {
            let body = format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u",
                "kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},
                "operation":"CREATE","userInfo":{{}},"object":{{{members}}}}}}}"#
            );
            let Ok(Parsed::Request(req)) = parse(body.as_bytes()) else {
                panic!("parses: {body}")
            };
            req.object.expect("object")
        };
        let spec =
            r#""spec":{"hostPID":true,"containers":[{"name":"a","image":"x","securityContext":{"privileged":true}}]}"#;
        let first = object(&format!(r#"{spec},"apiVersion":"v1","kind":"Pod""#));
        let last = object(&format!(r#""apiVersion":"v1","kind":"Pod",{spec}"#));
        assert!(first.field("spec").is_some());
        let (first, last) = (first.pod_spec().unwrap().unwrap(), last.pod_spec().unwrap().unwrap());
        assert!(matches!(first, Cow::Owned(_)));
        assert_eq!(first, last);
        assert_eq!(first.host_pid, Some(true));
        assert!(object(r#""kind":"Pod","spec":null"#).pod_spec().is_none());
    }

    #[test]
    fn an_unreadable_pod_spec_is_named_in_the_reason() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",
            "kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
            "operation":"CREATE","userInfo":{},
            "object":{"apiVersion":"v1","kind":"Pod","spec":{"containers":"not a list"}}}}"#;
        let Ok(Parsed::Unreadable(Unreadable {
            uid, reason, operation, ..
        })) = parse(body)
        else {
            panic!("an unreadable request")
        };
        assert_eq!((uid.as_str(), operation), ("u", "CREATE"));
        // No position: it would be one in the AdmissionReview's body.
        assert_eq!(
            reason,
            "the Pod's spec cannot be read: invalid type: string \"not a list\", expected a sequence"
        );
    }

    #[rstest]
    #[case::string(
        r#"invalid type: string "hunter2", expected a sequence"#,
        r#"invalid type: string "...", expected a sequence"#
    )]
    #[case::variant(
        "unknown variant `Hunter2`, expected `Always`",
        "unknown variant `...`, expected `...`"
    )]
    #[case::unterminated(r#"open "quote"#, r#"open "...""#)]
    #[case::nothing_quoted("the Pod has no spec", "the Pod has no spec")]
    fn redact_removes_quoted_values(#[case] message: &str, #[case] logged: &str) {
        assert_eq!(redact(message), logged);
    }

    /// Logs redact what came from the pod, and keep what is ours.
    #[test]
    fn problems_are_logged_redacted_only_where_they_quote_the_pod() {
        let reason = r#"the Pod's spec cannot be read: invalid type: string "hunter2", expected a sequence"#;
        let decoding = Problem {
            kind: problem::INVALID_OBJECT,
            reason: reason.into(),
            quotes_pod: true,
        };
        assert_eq!(
            decoding.loggable(),
            r#"the Pod's spec cannot be read: invalid type: string "...", expected a sequence"#
        );
        let ours = Problem {
            kind: problem::PATCH,
            reason: r#"cannot serialize the patch: key "a""#.into(),
            quotes_pod: false,
        };
        assert_eq!(ours.loggable(), ours.reason);
    }

    #[test]
    fn strip_position_removes_only_a_position() {
        assert_eq!(strip_position("bad at line 1 column 20"), "bad");
        assert_eq!(strip_position("bad at line one column 20"), "bad at line one column 20");
        assert_eq!(strip_position("bad"), "bad");
    }
}
