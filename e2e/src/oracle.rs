//! An independent reading of a pod, for the Pod Security conformance
//! scenario: does it state a value that `restricted` rejects? Written over
//! raw JSON and apart from the engine, so the two can disagree and the test
//! can fail.

use serde_json::Value;

const ALLOWED_VOLUME_SOURCES: [&str; 10] = [
    "name",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "image",
];
const SAFE_SYSCTLS: [&str; 13] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_slow_start_after_idle",
];

/// The first explicit value in `pod` that Pod Security `restricted` rejects,
/// described; `None` when every violation is a missing field.
pub fn explicit_violation(pod: &Value) -> Option<String> {
    let spec = &pod["spec"];
    let user_ns = spec["hostUsers"] == Value::Bool(false);
    for ns in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[ns] == Value::Bool(true) {
            return Some(format!("{ns}=true"));
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(k) = v
            .as_object()?
            .keys()
            .find(|k| !ALLOWED_VOLUME_SOURCES.contains(&k.as_str()))
        {
            return Some(format!("{k} volume"));
        }
    }
    let psc = &spec["securityContext"];
    if let Some(bad) = context_violation(psc, user_ns) {
        return Some(format!("pod {bad}"));
    }
    for s in psc["sysctls"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default();
        if !SAFE_SYSCTLS.contains(&name) {
            return Some(format!("sysctl {name}"));
        }
    }
    for (key, value) in pod["metadata"]["annotations"].as_object().into_iter().flatten() {
        let v = value.as_str().unwrap_or_default();
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !(v.is_empty() || v == "runtime/default" || v.starts_with("localhost/"))
        {
            return Some(format!("annotation {key}={v}"));
        }
    }
    for kind in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[kind].as_array().into_iter().flatten() {
            let sc = &c["securityContext"];
            let name = c["name"].as_str().unwrap_or_default();
            if let Some(bad) = context_violation(sc, user_ns) {
                return Some(format!("{name} {bad}"));
            }
            if sc["privileged"] == Value::Bool(true) {
                return Some(format!("{name} privileged"));
            }
            if sc["allowPrivilegeEscalation"] == Value::Bool(true) {
                return Some(format!("{name} allowPrivilegeEscalation=true"));
            }
            if let Some(add) = sc["capabilities"]["add"].as_array() {
                if add.iter().any(|a| a != "NET_BIND_SERVICE") {
                    return Some(format!("{name} capabilities.add={add:?}"));
                }
            }
            if let Some(drop) = sc["capabilities"]["drop"].as_array() {
                if !drop.iter().any(|d| d == "ALL") {
                    return Some(format!("{name} capabilities.drop={drop:?}"));
                }
            }
            if sc["procMount"].as_str().is_some_and(|m| m != "Default") {
                return Some(format!("{name} procMount"));
            }
            for p in c["ports"].as_array().into_iter().flatten() {
                if p["hostPort"].as_i64().is_some_and(|h| h != 0) {
                    return Some(format!("{name} hostPort"));
                }
            }
            let handlers = [
                &c["livenessProbe"],
                &c["readinessProbe"],
                &c["startupProbe"],
                &c["lifecycle"]["postStart"],
                &c["lifecycle"]["preStop"],
            ];
            for h in handlers {
                for kind in ["httpGet", "tcpSocket"] {
                    if h[kind]["host"].as_str().is_some_and(|s| !s.is_empty()) {
                        return Some(format!("{name} probe host"));
                    }
                }
            }
        }
    }
    None
}

/// Explicit values a pod or container securityContext may both carry.
fn context_violation(sc: &Value, user_ns: bool) -> Option<String> {
    if !user_ns && sc["runAsNonRoot"] == Value::Bool(false) {
        return Some("runAsNonRoot=false".into());
    }
    if !user_ns && sc["runAsUser"] == 0 {
        return Some("runAsUser=0".into());
    }
    if sc["seccompProfile"]["type"] == "Unconfined" {
        return Some("seccompProfile Unconfined".into());
    }
    if sc["appArmorProfile"]["type"] == "Unconfined" {
        return Some("appArmorProfile Unconfined".into());
    }
    if sc["windowsOptions"]["hostProcess"] == Value::Bool(true) {
        return Some("hostProcess".into());
    }
    let se = &sc["seLinuxOptions"];
    let allowed = [
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    if se["type"].as_str().is_some_and(|t| !allowed.contains(&t))
        || se["user"].as_str().is_some_and(|u| !u.is_empty())
        || se["role"].as_str().is_some_and(|r| !r.is_empty())
    {
        return Some(format!("seLinuxOptions {se}"));
    }
    None
}
