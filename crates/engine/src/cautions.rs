//! What the hardened pod may not be able to do at run time, where the spec
//! alone decides it. Only one case is decidable without the image: a server
//! port below 1024 in a container that runs as non-root without
//! `NET_BIND_SERVICE` (the kernel refuses the bind unless
//! `net.ipv4.ip_unprivileged_port_start` is lowered).

use super::containers::{self, Slot};
use super::report::{Caution, Target};
use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The kernel's default `net.ipv4.ip_unprivileged_port_start`.
const PRIVILEGED_BELOW: i32 = 1024;
const SYSCTL: &str = "net.ipv4.ip_unprivileged_port_start";

/// One caution per container in `slots` (spec order) that declares or probes
/// a port below 1024 and cannot bind it as hardened.
pub(crate) fn low_ports(spec: &PodSpec, slots: &[Slot]) -> Vec<Caution> {
    // In a user namespace root may run the server; left unsaid (no noise).
    if spec.host_users == Some(false) {
        return Vec::new();
    }
    let pod = spec.security_context.as_ref();
    // A pod that lowers the threshold itself can bind the ports above it.
    let start = pod
        .and_then(|p| p.sysctls.as_ref())
        .into_iter()
        .flatten()
        .filter(|s| s.name == SYSCTL)
        .find_map(|s| s.value.trim().parse::<i32>().ok())
        .unwrap_or(PRIVILEGED_BELOW);
    // Only ports below 1024 are in question (the message says so).
    let threshold = start.min(PRIVILEGED_BELOW);
    let mut out = Vec::new();
    for &slot in slots {
        let Some(c) = containers::get(spec, slot) else {
            continue;
        };
        let sc = c.security_context();
        let user = sc.and_then(|s| s.run_as_user).or(pod.and_then(|p| p.run_as_user));
        let non_root = sc
            .and_then(|s| s.run_as_non_root)
            .or(pod.and_then(|p| p.run_as_non_root));
        // `None`: the image's user, which the spec does not tell.
        let runs_non_root = match user {
            Some(uid) => uid != 0,
            None => non_root == Some(true),
        };
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        let has = |list: Option<&Vec<String>>, cap: &str| list.is_some_and(|l| l.iter().any(|c| c == cap));
        let dropped = has(caps.and_then(|c| c.drop.as_ref()), "ALL")
            || has(caps.and_then(|c| c.drop.as_ref()), "NET_BIND_SERVICE");
        let added = has(caps.and_then(|c| c.add.as_ref()), "NET_BIND_SERVICE");
        if !runs_non_root || !dropped || added {
            continue;
        }
        let mut ports: Vec<i32> = c.ports().iter().map(|p| p.container_port).collect();
        if let Some(full) = containers::get_container(spec, slot) {
            ports.extend(probe_ports(full));
        }
        ports.retain(|p| *p > 0 && *p < threshold);
        ports.sort_unstable();
        ports.dedup();
        if !ports.is_empty() {
            out.push(Caution {
                target: Target::container(slot.kind, c.name()),
                ports,
            });
        }
    }
    out
}

/// Numeric ports the probes reach: the server listens there. Named ports
/// resolve to a `containerPort`, which is already counted.
fn probe_ports(c: &Container) -> impl Iterator<Item = i32> + '_ {
    let port = |p: &Probe| {
        let named = p
            .http_get
            .as_ref()
            .map(|g| &g.port)
            .or(p.tcp_socket.as_ref().map(|t| &t.port));
        let numeric = match named {
            Some(IntOrString::Int(n)) => Some(*n),
            _ => None,
        };
        numeric.or(p.grpc.as_ref().map(|g| g.port))
    };
    [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
        .into_iter()
        .filter_map(move |p| p.as_ref().and_then(port))
}
