//! Reading a request body: the AdmissionReview, its request, and the
//! request's object (a Pod's spec straight into the engine's input).

use crate::engine;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionRequest, Operation};
use kube::core::{ApiResource, DynamicObject, DynamicResourceScope, Resource, TypeMeta};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use thiserror::Error;

/// The only AdmissionReview version this webhook speaks.
pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

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
pub(super) fn strip_position(message: &str) -> &str {
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
pub(super) fn without_position(e: &serde_json::Error) -> String {
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

pub(super) fn operation_str(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{review, Decision};
    use crate::config::Config;

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

    #[test]
    fn strip_position_removes_only_a_position() {
        assert_eq!(strip_position("bad at line 1 column 20"), "bad");
        assert_eq!(strip_position("bad at line one column 20"), "bad at line one column 20");
        assert_eq!(strip_position("bad"), "bad");
    }
}
