//! A pod template as the API server stores it, not as it was written.
//!
//! The API server decodes JSON into Go structs and encodes them back before
//! admission, so a field tagged `omitempty` that is empty, and any `null`,
//! is gone by the time the webhook sees the pod (k8s.io/api core/v1
//! types.go). `mutate` and `scan` read manifests as written; they decode
//! them the same way first, or they would keep what the cluster drops
//! (`capabilities.drop: []` kept, where the webhook adds `[ALL]`).
//!
//! What changes, in the pod template's `metadata` and `spec`:
//! - `null` anywhere: a nil pointer, slice or map, omitted.
//! - `[]` anywhere but `containers` (the only list in a pod spec without
//!   `omitempty`, and required): `capabilities.add`/`drop`,
//!   `supplementalGroups`, `sysctls`, `initContainers`, `volumes`, ...
//! - `{}` only for map fields ([`MAPS`]). A struct pointer such as
//!   `securityContext: {}`, `seLinuxOptions: {}` or `capabilities: {}` is
//!   kept as `{}`: `omitempty` drops a nil pointer, not an empty struct.

use serde_json::Value;

/// The map-typed fields of a pod template (`map[string]string`,
/// `ResourceList`), the only objects `omitempty` drops when empty.
pub const MAPS: [&str; 6] = [
    "labels",
    "annotations",
    "nodeSelector",
    "limits",
    "requests",
    "overhead",
];

/// Lists without `omitempty`: kept when empty.
const REQUIRED_LISTS: [&str; 1] = ["containers"];

/// Drop what the API server's decoding drops from a pod template's
/// `metadata` or `spec` (see the module). Array elements are left alone:
/// the API server decodes them as values, not pointers.
pub fn as_stored(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|key, v| {
            as_stored(v);
            match v {
                Value::Null => false,
                Value::Array(a) => !a.is_empty() || REQUIRED_LISTS.contains(&key.as_str()),
                Value::Object(o) => !o.is_empty() || !MAPS.contains(&key.as_str()),
                _ => true,
            }
        });
    } else if let Value::Array(items) = value {
        items.iter_mut().for_each(as_stored);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case::empty_drop(json!({"capabilities": {"drop": []}}), json!({"capabilities": {}}))]
    #[case::null_drop(json!({"capabilities": {"drop": null, "add": ["NET_RAW"]}}), json!({"capabilities": {"add": ["NET_RAW"]}}))]
    #[case::empty_struct_kept(json!({"securityContext": {}, "seLinuxOptions": {}}), json!({"securityContext": {}, "seLinuxOptions": {}}))]
    #[case::empty_maps(json!({"annotations": {}, "nodeSelector": {}, "limits": {}}), json!({}))]
    #[case::lists(json!({"supplementalGroups": [], "sysctls": [], "volumes": []}), json!({}))]
    #[case::containers_kept(json!({"containers": []}), json!({"containers": []}))]
    #[case::null_struct(json!({"securityContext": null}), json!({}))]
    #[case::in_containers(
        json!({"containers": [{"name": "a", "securityContext": {"capabilities": {"drop": []}, "seccompProfile": null}}]}),
        json!({"containers": [{"name": "a", "securityContext": {"capabilities": {}}}]})
    )]
    fn decodes_as_the_api_server(#[case] mut written: Value, #[case] stored: Value) {
        as_stored(&mut written);
        assert_eq!(written, stored);
    }
}
