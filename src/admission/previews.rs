//! Workload previews: a Deployment, Job, ... is allowed as sent, with a
//! warning saying what admission will do to its pods.

use super::outcome::{Decision, Outcome, Reviewed};
use super::parse::{Object, Request};
use crate::config::Config;
use crate::engine::manifest::pod_template_path;
use crate::policy::{assess, messages};
use kube::core::admission::AdmissionResponse;
use kube::core::DynamicObject;
use serde_json::Value;

/// A workload: allowed as sent, with one warning previewing what admission
/// will do to its pods. An UPDATE that leaves the pod template as it was
/// (a scale, a label, a controller's bookkeeping) gets no warning.
pub(super) fn preview(req: &Request, config: &Config, outcome: Outcome) -> Reviewed {
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
