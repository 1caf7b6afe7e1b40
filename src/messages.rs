//! The engine's report in words: admission warnings for kubectl, and the
//! CLI's summary. Bounded so the API server accepts them: each message at
//! most 256 ASCII characters, all of them together under 4 KiB.

use crate::engine::{Check, Field, Report, Target};

pub const MAX_MESSAGE: usize = 256;
pub const MAX_TOTAL: usize = 4000;
const PREFIX: &str = "secure-defaults: ";

/// One line per decision a user should know about, in the report's order:
/// why the pod was left alone, guards that skipped a field, explicit values
/// kept that Pod Security does not reject, and what `restricted` still rejects.
pub fn warnings(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(reason) = report.untouched {
        out.push(format!("pod left unchanged: {}", reason.reason()));
    }
    for s in &report.skipped {
        out.push(match s.target {
            Target::Pod => format!("{} not added: {}", s.field, s.guard.reason()),
            ref t => format!("{} not added to {t}: {}", s.field, s.guard.reason()),
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
    bound(out.into_iter().map(|m| format!("{PREFIX}{m}")).collect())
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
    fn short_lists_are_untouched() {
        assert_eq!(bound(vec!["a".into(), "b".into()]), vec!["a", "b"]);
    }
}
