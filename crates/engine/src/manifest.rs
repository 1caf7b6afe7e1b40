//! Kubernetes objects that carry a pod spec: where the spec sits in each
//! kind, and the engine's patch with paths for the whole object.

use crate::{EngineError, Hardening, Policy, Scope};
use json_patch::{
    AddOperation, CopyOperation, MoveOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation,
};
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
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

/// Where the pod template sits in an object of this kind: the path of the
/// object holding `metadata` and `spec`. `None` for kinds without one.
pub fn pod_template_path(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &[],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "ReplicationController" | "Job" => {
            &["spec", "template"]
        }
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        "PodTemplate" => &["template"],
        _ => return None,
    })
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
    pub spec_path: Vec<&'static str>,
}

/// Read the pod (template) of `object`. `Ok(None)` for kinds without a pod spec.
pub fn template(object: &Value) -> Result<Option<Template>, ManifestError> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(template) = pod_template_path(kind) else {
        return Ok(None);
    };
    let mut holder = object;
    for (i, key) in template.iter().enumerate() {
        holder = holder.get(key).ok_or_else(|| ManifestError::Missing {
            kind: kind.to_string(),
            path: dotted(&template[..=i]),
        })?;
    }
    let spec_path: Vec<&'static str> = template.iter().copied().chain(["spec"]).collect();
    let meta_path: Vec<&str> = template.iter().copied().chain(["metadata"]).collect();
    let spec_value = holder.get("spec").ok_or_else(|| ManifestError::Missing {
        kind: kind.to_string(),
        path: dotted(&spec_path),
    })?;
    let spec = PodSpec::deserialize(spec_value).map_err(|_| ManifestError::InvalidPodSpec {
        kind: kind.to_string(),
        path: dotted(&spec_path),
        reason: type_error::<PodSpec>(spec_value, &dotted(&spec_path)),
    })?;
    let metadata = match holder.get("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(m) => ObjectMeta::deserialize(m).map_err(|_| ManifestError::InvalidMetadata {
            kind: kind.to_string(),
            path: dotted(&meta_path),
            reason: type_error::<ObjectMeta>(m, &dotted(&meta_path)),
        })?,
    };
    Ok(Some(Template {
        metadata,
        spec,
        spec_path,
    }))
}

/// Harden the pod (template) of `object`. `Ok(None)` for kinds without a pod spec.
pub fn harden_object(object: &Value, policy: Policy) -> Result<Option<ObjectHardening>, ManifestError> {
    let Some(t) = template(object)? else {
        return Ok(None);
    };
    let hardening = crate::harden(&t.metadata, &t.spec, &Scope::Pod, policy)?;
    let prefix = PointerBuf::from_tokens(t.spec_path);
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
