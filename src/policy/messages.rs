//! The engine's report in words: admission warnings for kubectl, and the
//! CLI's summary. Bounded so the API server accepts them: each message at
//! most 256 ASCII characters, all of them together under 2 KiB. The API
//! server allows 4 KiB of warnings per request from every source together
//! (its `warning.go` truncates, then drops, past that), and Pod Security's
//! own warning comes after this webhook's: half is left for it.

use crate::engine::{Check, Field, Guard, Report, Target};
use crate::policy::assess::{Assessment, Verdict};
use crate::policy::ModeInForce;
use std::collections::HashMap;

pub const MAX_MESSAGE: usize = 256;
pub const MAX_TOTAL: usize = 2048;
const PREFIX: &str = "secure-defaults: ";

/// One line per decision a user should know about, in the report's order:
/// why the pod was left alone, guards that skipped a field, explicit values
/// kept that Pod Security does not reject, what `restricted` still rejects,
/// and what the hardened pod cannot do at run time (a port below 1024).
pub fn warnings(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(reason) = report.untouched {
        out.push(format!("pod left unchanged: {}", reason.reason()));
    }
    // The identity decision, unless it is the plain default (a uid on the
    // containers that set none): user namespace, kept, or a fallback and why;
    // in `identity: auto` also a line per container decided from its image.
    if let Some(identity) = report.identity.as_ref().filter(|i| !i.is_plain_uid()) {
        out.extend(identity.messages());
    }
    // One line per target and guard, its fields in the report's order:
    // `runAsNonRoot, runAsUser not added to container "agent": it is privileged`.
    let mut groups: Vec<(&Target, Guard, Vec<&'static str>)> = Vec::new();
    let mut index: HashMap<(&Target, Guard), usize> = HashMap::new();
    for s in &report.skipped {
        let i = *index.entry((&s.target, s.guard)).or_insert_with(|| {
            groups.push((&s.target, s.guard, Vec::new()));
            groups.len() - 1
        });
        groups[i].2.push(s.field.as_str());
    }
    for (target, guard, fields) in groups {
        let fields = fields.join(", ");
        out.push(match target {
            Target::Pod => format!("{fields} not added: {}", guard.reason()),
            t => format!("{fields} not added to {t}: {}", guard.reason()),
        });
    }
    for k in &report.kept {
        let covered = check_for(k.field).is_some_and(|check| {
            report
                .remaining
                .iter()
                .any(|v| v.check == check && v.target == k.target)
        });
        if !covered {
            out.push(format!("{}: {}={} kept as written", k.target, k.field, k.value));
        }
    }
    for v in &report.remaining {
        out.push(format!("still violates PodSecurity \"restricted\": {v}"));
    }
    // Last: a rejected pod never runs, so the rejection comes first under the cap.
    out.extend(report.cautions.iter().map(|c| c.message()));
    bound(out.into_iter().map(|m| format!("{PREFIX}{m}")).collect())
}

/// The one warning of a workload preview: what the pods of this `kind` get
/// at admission and what `restricted` still rejects. `None` when there is
/// nothing to say (nothing to add, nothing rejected).
pub fn preview(kind: &str, a: &Assessment) -> Option<String> {
    // "8 fields" and, when they fit in one message, " (runAsNonRoot, ...)".
    let fields = |added: &[crate::engine::Added], names: bool| {
        let mut distinct: Vec<&str> = Vec::new();
        for f in added.iter().map(|x| x.field.as_str()) {
            if !distinct.contains(&f) {
                distinct.push(f);
            }
        }
        let n = added.len();
        let count = format!("{n} field{}", if n == 1 { "" } else { "s" });
        let names = if names {
            format!(" ({})", distinct.join(", "))
        } else {
            String::new()
        };
        (count, names)
    };
    let rejected = match a.verdict() {
        Verdict::NeedsChanges => {
            let mut checks: Vec<&str> = a.remaining.iter().map(|v| v.check.as_str()).collect();
            checks.sort_unstable();
            checks.dedup();
            let denied = if a.denied.is_empty() {
                ""
            } else {
                " (denied by secure-defaults here)"
            };
            format!("still rejected by \"restricted\": {}{denied}", checks.join(", "))
        }
        Verdict::Ready => "then admitted under \"restricted\"".to_string(),
    };
    let line = |names: bool| {
        let change = match (a.mode, a.untouched) {
            (ModeInForce::Off, _) => "off in this namespace: its pods are not hardened".to_string(),
            (_, Some(reason)) => format!("its pods are left unchanged: {}", reason.reason()),
            (ModeInForce::Audit, _) if !a.would_add.is_empty() => {
                let (count, names) = fields(&a.would_add, names);
                format!("audit mode: its pods are not changed; enforce would add {count}{names}")
            }
            _ if !a.added.is_empty() => {
                let (count, names) = fields(&a.added, names);
                format!("its pods get {count} at admission{names}")
            }
            _ if a.verdict() == Verdict::Ready => return None,
            _ => "nothing to add to its pods".to_string(),
        };
        Some(format!("{PREFIX}{kind} preview: {change}; {rejected}"))
    };
    let full = line(true)?;
    if full.len() <= MAX_MESSAGE {
        Some(full)
    } else {
        line(false)
    }
}

/// The Pod Security check an explicit value of this field fails, if any.
fn check_for(field: Field) -> Option<Check> {
    Some(match field {
        Field::RunAsNonRoot => Check::RunAsNonRoot,
        Field::RunAsUser => Check::RunAsUser,
        Field::SeccompProfile => Check::SeccompProfile,
        Field::AllowPrivilegeEscalation => Check::AllowPrivilegeEscalation,
        Field::DropCapabilities => Check::Capabilities,
        Field::AppArmorProfile => Check::AppArmorProfile,
        _ => return None,
    })
}

/// ASCII only, each message cut to `MAX_MESSAGE`, and no more messages than
/// fit in `MAX_TOTAL`, the last saying how many were left out.
pub fn bound(messages: Vec<String>) -> Vec<String> {
    let total = messages.len();
    let mut out: Vec<String> = Vec::new();
    let mut used = 0;
    for (i, m) in messages.into_iter().enumerate() {
        let m = truncate(&ascii(&m), MAX_MESSAGE);
        // Keep room for the "more" line.
        let reserve = if i + 1 < total { 128 } else { 0 };
        if used + m.len() + reserve > MAX_TOTAL {
            out.push(format!(
                "{PREFIX}... and {} more (see the audit annotations or run secure-defaults mutate)",
                total - i
            ));
            break;
        }
        used += m.len();
        out.push(m);
    }
    out
}

fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        format!("{}...", &s[..max - 3])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_ascii() {
        let long = format!("{}é{}", "x".repeat(300), "\u{7}");
        let out = bound(vec![long.clone(); 100]);
        assert!(out.iter().all(|m| m.len() <= MAX_MESSAGE && m.is_ascii()));
        assert!(out.iter().map(String::len).sum::<usize>() <= MAX_TOTAL + 100);
        assert!(out.last().unwrap().contains("more"), "{:?}", out.last());
    }

    #[test]
    fn guards_are_one_line_per_container_and_reason() {
        use crate::engine::ContainerKind;
        let agent = Target::container(ContainerKind::Containers, "agent");
        let root = Target::container(ContainerKind::InitContainers, "root");
        let mut report = Report::default();
        report.skipped(Field::RunAsNonRoot, agent.clone(), Guard::Privileged);
        report.skipped(Field::RunAsNonRoot, root.clone(), Guard::ExplicitRoot);
        report.skipped(Field::RunAsUser, agent.clone(), Guard::Privileged);
        report.skipped(Field::RunAsGroup, root, Guard::ExplicitRoot);
        report.skipped(Field::SeccompProfile, agent, Guard::LegacyAnnotation);
        assert_eq!(
            warnings(&report),
            [
                "secure-defaults: runAsNonRoot, runAsUser not added to container \"agent\": it is privileged",
                "secure-defaults: runAsNonRoot, runAsGroup not added to init container \"root\": it explicitly runs as root",
                "secure-defaults: seccompProfile not added to container \"agent\": a legacy annotation sets the profile",
            ]
        );
    }

    #[test]
    fn identity_decisions_other_than_the_plain_uid_are_a_warning() {
        use crate::engine::{Identity, IdentityChoice, IdentityReason};
        let mut report = Report::default();
        let mut identity = Identity {
            choice: IdentityChoice::Uid,
            reason: IdentityReason::UidMode,
            uid: Some(65532),
            containers: Vec::new(),
        };
        report.identity = Some(identity.clone());
        assert_eq!(warnings(&report), Vec::<String>::new());
        identity.reason = IdentityReason::HostNetwork;
        report.identity = Some(identity);
        assert_eq!(
            warnings(&report),
            ["secure-defaults: identity: uid 65532 where a container sets none (pod uses hostNetwork, which user namespaces do not allow)"]
        );
        report.identity = Some(Identity {
            choice: IdentityChoice::UserNamespace,
            reason: IdentityReason::NoIdentitySet,
            uid: Some(65532),
            containers: Vec::new(),
        });
        assert_eq!(
            warnings(&report),
            ["secure-defaults: identity: user namespace (hostUsers: false); root inside the container is unprivileged on the host"]
        );
    }

    #[test]
    fn cautions_are_one_line_per_container_after_the_rejections() {
        use crate::engine::{Caution, ContainerKind, Violation};
        let mut report = Report {
            cautions: vec![
                Caution {
                    target: Target::container(ContainerKind::InitContainers, "dns"),
                    ports: vec![53],
                },
                Caution {
                    target: Target::container(ContainerKind::Containers, "web"),
                    ports: vec![80, 443],
                },
            ],
            ..Report::default()
        };
        report.remaining.push(Violation {
            check: Check::HostPathVolumes,
            target: Target::Pod,
            detail: "hostPath volume \"logs\"".into(),
        });
        let out = warnings(&report);
        assert_eq!(
            out,
            [
                "secure-defaults: still violates PodSecurity \"restricted\": hostPathVolumes: hostPath volume \"logs\"",
                "secure-defaults: init container \"dns\" listens on port 53 (<1024): as non-root without NET_BIND_SERVICE it cannot bind it unless net.ipv4.ip_unprivileged_port_start is lower; use a port >= 1024 or set that sysctl in the pod's securityContext.sysctls",
                "secure-defaults: container \"web\" listens on ports 80, 443 (<1024): as non-root without NET_BIND_SERVICE it cannot bind them unless net.ipv4.ip_unprivileged_port_start is lower; use a port >= 1024 or set that sysctl in the pod's securityContext.sysctls",
            ]
        );
        assert!(out.iter().all(|m| m.len() <= MAX_MESSAGE), "{out:?}");
    }

    #[test]
    fn short_lists_are_untouched() {
        assert_eq!(bound(vec!["a".into(), "b".into()]), vec!["a", "b"]);
    }
}
