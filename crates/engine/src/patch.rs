//! Turning the rules' result into an RFC 6902 patch that only adds.
//!
//! The rules only ever fill in absent fields, so the hardened spec differs
//! from the submitted one by new object members alone. The diff below walks
//! the two securityContexts (and `hostUsers`) the rules may touch and emits an `add` for each
//! new member; anything else is a bug in a rule and is reported as an error
//! rather than turned into a `replace` or `remove`.
//!
//! Paths come from the typed spec, and are the same in the raw JSON the API
//! server holds, so fields the bindings do not know are never touched.

use super::containers;
use super::EngineError;
use json_patch::{AddOperation, PatchOperation};
use jsonptr::PointerBuf;
use k8s_openapi::api::core::v1::PodSpec;
use serde::Serialize;
use serde_json::Value;

/// The `add` operations that turn `orig` into `hardened`, with paths relative to the pod spec.
pub(crate) fn add_only(orig: &PodSpec, hardened: &PodSpec) -> Result<Vec<PatchOperation>, EngineError> {
    let mut ops = Vec::new();
    // `hostUsers: false`, the one pod-spec field outside a securityContext.
    match (orig.host_users, hardened.host_users) {
        (before, after) if before == after => {}
        (None, Some(after)) => ops.push(add(&PointerBuf::from_tokens(["hostUsers"]), Value::Bool(after))),
        _ => return Err(EngineError::NotAddOnly("/hostUsers".to_string())),
    }
    diff_member(
        &mut PointerBuf::from_tokens(["securityContext"]),
        orig.security_context.as_ref(),
        hardened.security_context.as_ref(),
        &mut ops,
    )?;
    for ((slot, before), (_, after)) in containers::all(orig).zip(containers::all(hardened)) {
        let mut path = PointerBuf::from_tokens([slot.kind.as_str().to_string(), slot.index.to_string()]);
        path.push_back("securityContext");
        diff_member(&mut path, before.security_context(), after.security_context(), &mut ops)?;
    }
    Ok(ops)
}

fn diff_member<T: Serialize>(
    path: &mut PointerBuf,
    before: Option<&T>,
    after: Option<&T>,
    ops: &mut Vec<PatchOperation>,
) -> Result<(), EngineError> {
    let to_value = |v| serde_json::to_value(v).map_err(|e| EngineError::Serialize(e.to_string()));
    match (before, after) {
        (_, None) => Ok(()),
        (None, Some(after)) => {
            ops.push(add(path, to_value(after)?));
            Ok(())
        }
        (Some(before), Some(after)) => diff(path, &to_value(before)?, to_value(after)?, ops),
    }
}

fn diff(path: &mut PointerBuf, before: &Value, after: Value, ops: &mut Vec<PatchOperation>) -> Result<(), EngineError> {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            if let Some(gone) = b.keys().find(|k| !a.contains_key(*k)) {
                path.push_back(gone.as_str());
                return Err(EngineError::NotAddOnly(path.to_string()));
            }
            for (key, value) in a {
                path.push_back(key.as_str());
                match b.get(&key) {
                    None | Some(Value::Null) => ops.push(add(path, value)),
                    Some(old) => diff(path, old, value, ops)?,
                }
                path.pop_back();
            }
            Ok(())
        }
        (b, a) if *b == a => Ok(()),
        _ => Err(EngineError::NotAddOnly(path.to_string())),
    }
}

fn add(path: &PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: path.clone(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext};

    fn spec(sc: Option<PodSecurityContext>, c: Option<SecurityContext>) -> PodSpec {
        PodSpec {
            security_context: sc,
            containers: vec![Container {
                name: "app".into(),
                security_context: c,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn paths(ops: &[PatchOperation]) -> Vec<String> {
        ops.iter().map(|op| op.path().to_string()).collect()
    }

    #[test]
    fn absent_object_is_added_whole() {
        let before = spec(None, None);
        let after = spec(
            Some(PodSecurityContext {
                run_as_user: Some(1),
                ..Default::default()
            }),
            None,
        );
        let ops = add_only(&before, &after).unwrap();
        assert_eq!(paths(&ops), ["/securityContext"]);
    }

    #[test]
    fn present_object_gets_members() {
        let c = SecurityContext {
            privileged: Some(false),
            ..Default::default()
        };
        let before = spec(None, Some(c.clone()));
        let after = spec(
            None,
            Some(SecurityContext {
                run_as_user: Some(1),
                run_as_group: Some(2),
                ..c
            }),
        );
        let ops = add_only(&before, &after).unwrap();
        assert_eq!(
            paths(&ops),
            [
                "/containers/0/securityContext/runAsGroup",
                "/containers/0/securityContext/runAsUser"
            ]
        );
    }

    #[test]
    fn a_changed_value_is_an_error_not_a_replace() {
        let before = spec(
            Some(PodSecurityContext {
                run_as_user: Some(0),
                ..Default::default()
            }),
            None,
        );
        let after = spec(
            Some(PodSecurityContext {
                run_as_user: Some(1),
                ..Default::default()
            }),
            None,
        );
        assert_eq!(
            add_only(&before, &after),
            Err(EngineError::NotAddOnly("/securityContext/runAsUser".into()))
        );
    }

    #[test]
    fn a_removed_value_is_an_error() {
        let before = spec(
            Some(PodSecurityContext {
                run_as_user: Some(0),
                ..Default::default()
            }),
            None,
        );
        let after = spec(Some(PodSecurityContext::default()), None);
        assert!(add_only(&before, &after).is_err());
    }
}
