//! Kubernetes objects that carry a pod spec: where the spec sits in each
//! kind (by API group and kind), and the engine's patch with paths for the
//! whole object.

use crate::{decode, EngineError, Hardening, Policy, Scope};
use json_patch::{
    AddOperation, CopyOperation, MoveOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation,
};
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("{kind} has no {path}")]
    Missing { kind: String, path: String },
    #[error("{kind} {path} is not a valid pod spec: {reason}")]
    InvalidPodSpec { kind: String, path: String, reason: String },
    #[error("{kind} {path} has invalid metadata: {reason}")]
    InvalidMetadata { kind: String, path: String, reason: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A kind the operator names in the configuration (`extraKinds`): objects
/// of it are hardened like the built-in workloads. For custom resources
/// whose controller makes pods from a template (an Argo `Rollout`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraKind {
    /// The API group, without the version (`argoproj.io`); empty for the core group.
    pub group: String,
    pub kind: String,
    /// Where the pod template (the object with `metadata` and `spec`, a
    /// PodTemplateSpec) sits, as dotted keys: `spec.template`.
    pub template_path: String,
}

impl ExtraKind {
    fn path(&self) -> Vec<&str> {
        self.template_path.split('.').filter(|k| !k.is_empty()).collect()
    }
}

/// The API group of an `apiVersion`: `apps` for `apps/v1`, empty for `v1`.
pub fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Where the pod template sits in an object of this group and kind: the
/// path of the object holding `metadata` and `spec`. Built-in kinds first,
/// then `extra`. `None` for other kinds: a custom resource that shares a
/// built-in's name (`batch.volcano.sh` `Job`) is not that kind.
pub fn pod_template_path<'a>(group: &str, kind: &str, extra: &'a [ExtraKind]) -> Option<Vec<&'a str>> {
    let builtin: Option<&'static [&'static str]> = match (group, kind) {
        ("", "Pod") => Some(&[]),
        ("", "PodTemplate") => Some(&["template"]),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => Some(&["spec", "template"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    };
    builtin.map(<[_]>::to_vec).or_else(|| {
        extra
            .iter()
            .find(|e| e.group == group && e.kind == kind)
            .map(ExtraKind::path)
    })
}

/// For an object of a kind without a known pod template: the dotted path
/// of something in it that looks like one (a mapping whose `spec` has a
/// `containers` list), so the CLI can say it passed through unhardened.
pub fn unrecognized_template(object: &Value) -> Option<String> {
    fn find(value: &Value, path: &mut Vec<String>, depth: usize) -> Option<String> {
        // Templates sit a few levels down; the bound keeps a hostile document cheap.
        if depth > 8 {
            return None;
        }
        match value {
            Value::Object(map) => {
                if !path.is_empty()
                    && map
                        .get("spec")
                        .and_then(|s| s.get("containers"))
                        .is_some_and(Value::is_array)
                {
                    return Some(path.join("."));
                }
                for (key, v) in map.iter().filter(|(k, _)| *k != "metadata") {
                    path.push(key.clone());
                    let found = find(v, path, depth + 1);
                    path.pop();
                    if found.is_some() {
                        return found;
                    }
                }
                None
            }
            Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
                let last = path.pop().unwrap_or_default();
                path.push(format!("{last}[{i}]"));
                let found = find(v, path, depth + 1);
                path.pop();
                path.push(last);
                found
            }),
            _ => None,
        }
    }
    find(object, &mut Vec::new(), 0)
}

/// The engine's answer for a whole object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectHardening {
    /// Paths relative to the object.
    pub patch: Patch,
    pub hardening: Hardening,
}

/// The pod (template) of an object: its metadata and spec, read as the
/// engine's typed input, and where the spec sits.
#[derive(Debug, Clone)]
pub struct Template {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    /// Path of the pod spec in the object: `["spec"]`, `["spec", "template", "spec"]`, ...
    pub spec_path: Vec<String>,
}

/// Read the pod (template) of `object`, a built-in kind. `Ok(None)` for
/// kinds without a pod spec.
pub fn template(object: &Value) -> Result<Option<Template>, ManifestError> {
    template_with(object, &[])
}

/// [`template`], also for the operator's `extra` kinds. The template is
/// read as the API server stores it ([`decode::as_stored`]).
pub fn template_with(object: &Value, extra: &[ExtraKind]) -> Result<Option<Template>, ManifestError> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let Some(template) = pod_template_path(group(api_version), kind, extra) else {
        return Ok(None);
    };
    let mut holder = object;
    for (i, key) in template.iter().enumerate() {
        holder = holder.get(key).ok_or_else(|| ManifestError::Missing {
            kind: kind.to_string(),
            path: dotted(&template[..=i]),
        })?;
    }
    let spec_path: Vec<String> = template.iter().copied().chain(["spec"]).map(String::from).collect();
    let meta_path: Vec<&str> = template.iter().copied().chain(["metadata"]).collect();
    let mut spec_value = holder.get("spec").cloned().ok_or_else(|| ManifestError::Missing {
        kind: kind.to_string(),
        path: spec_path.join("."),
    })?;
    decode::as_stored(&mut spec_value);
    let spec = PodSpec::deserialize(&spec_value).map_err(|_| ManifestError::InvalidPodSpec {
        kind: kind.to_string(),
        path: spec_path.join("."),
        reason: type_error::<PodSpec>(&spec_value, &spec_path.join(".")),
    })?;
    let metadata = match holder.get("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(m) => {
            let mut m = m.clone();
            decode::as_stored(&mut m);
            ObjectMeta::deserialize(&m).map_err(|_| ManifestError::InvalidMetadata {
                kind: kind.to_string(),
                path: dotted(&meta_path),
                reason: type_error::<ObjectMeta>(&m, &dotted(&meta_path)),
            })?
        }
    };
    Ok(Some(Template {
        metadata,
        spec,
        spec_path,
    }))
}

/// Harden the pod (template) of `object`, a built-in kind. `Ok(None)` for
/// kinds without a pod spec.
pub fn harden_object(object: &Value, policy: Policy) -> Result<Option<ObjectHardening>, ManifestError> {
    harden_object_with(object, policy, &[])
}

/// [`harden_object`], also for the operator's `extra` kinds. The engine sees
/// the template as the API server stores it, and an `add` of a field the
/// manifest wrote as `[]` or `null` sets it, as the webhook's add does on
/// the stored pod.
pub fn harden_object_with(
    object: &Value,
    policy: Policy,
    extra: &[ExtraKind],
) -> Result<Option<ObjectHardening>, ManifestError> {
    let Some(t) = template_with(object, extra)? else {
        return Ok(None);
    };
    let hardening = crate::harden(&t.metadata, &t.spec, &Scope::Pod, policy)?;
    let prefix = PointerBuf::from_tokens(&t.spec_path);
    let patch = prefixed(&prefix, &hardening.ops);
    Ok(Some(ObjectHardening { patch, hardening }))
}

/// The operations with `prefix` put in front of each path.
pub fn prefixed(prefix: &PointerBuf, ops: &[PatchOperation]) -> Patch {
    into_prefixed(prefix, ops.to_vec())
}

/// [`prefixed`] for operations the caller owns: the values are not copied.
pub fn into_prefixed(prefix: &PointerBuf, mut ops: Vec<PatchOperation>) -> Patch {
    for op in &mut ops {
        match op {
            PatchOperation::Add(AddOperation { path, .. })
            | PatchOperation::Remove(RemoveOperation { path })
            | PatchOperation::Replace(ReplaceOperation { path, .. })
            | PatchOperation::Test(TestOperation { path, .. }) => *path = prefix.concat(path),
            PatchOperation::Move(MoveOperation { from, path }) | PatchOperation::Copy(CopyOperation { from, path }) => {
                *from = prefix.concat(from);
                *path = prefix.concat(path);
            }
        }
    }
    Patch(ops)
}

/// Why `value` is not a `T`, with the path of the field at fault from the
/// object's root (`spec.containers[0].ports`). Read again only on failure,
/// so the path costs nothing when the object is valid.
fn type_error<'de, T: Deserialize<'de>>(value: &'de Value, root: &str) -> String {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(_) => "invalid".to_string(),
        Err(e) => {
            let field = e.path().to_string();
            let reason = e.into_inner();
            match field.as_str() {
                "." => format!("{root}: {reason}"),
                f if f.starts_with('[') => format!("{root}{f}: {reason}"),
                f => format!("{root}.{f}: {reason}"),
            }
        }
    }
}

fn dotted(path: &[&str]) -> String {
    path.join(".")
}
