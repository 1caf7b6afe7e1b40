//! YAML that kubectl reads back as the same JSON.
//!
//! kubectl reads manifests with go-yaml v2, a YAML 1.1 reader: a plain
//! `on`, `no`, `y`, `0644` or `1_000` is a boolean or a number there, while
//! YAML 1.2 writers (serde_norway among them) leave them unquoted because
//! they are strings in 1.2. A label `feature: "on"` written back as
//! `feature: on` is refused by kubectl. This writer leaves a string plain
//! only when it is a string under both versions, and double-quotes it
//! otherwise; multi-line strings are literal blocks. The layout is the one
//! `kubectl get -o yaml` uses (block style, sequences at their key's indent).

use serde_json::{Map, Value};

/// The document `value` as YAML, ending in a newline.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => mapping(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => sequence(&mut out, a, 0, false),
        other => {
            scalar(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

/// Entries at `indent`; with `inline_first` the first one continues the
/// current line (after a sequence's `- `).
fn mapping(out: &mut String, m: &Map<String, Value>, indent: usize, inline_first: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        string_inline(out, k);
        out.push(':');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                mapping(out, m, indent + 2, false);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                sequence(out, a, indent, false);
            }
            _ => {
                out.push(' ');
                scalar(out, v, indent + 2);
                out.push('\n');
            }
        }
    }
}

fn sequence(out: &mut String, a: &[Value], indent: usize, inline_first: bool) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => mapping(out, m, indent + 2, true),
            Value::Array(a) if !a.is_empty() => sequence(out, a, indent + 2, true),
            _ => {
                scalar(out, v, indent + 2);
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection, without the line's end. A multi-line
/// string becomes a literal block whose lines sit at `indent`.
fn scalar(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) if literal_ok(s) => literal(out, s, indent),
        Value::String(s) => string_inline(out, s),
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A string on one line: plain when safe, double-quoted otherwise.
fn string_inline(out: &mut String, s: &str) {
    if plain_ok(s) {
        out.push_str(s);
    } else {
        double_quoted(out, s);
    }
}

/// Words YAML 1.1 reads as booleans or null (go-yaml v2's resolve table).
const RESERVED: [&str; 25] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on",
    "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL",
];

/// Whether `s` reads as the same string, plain, in YAML 1.1 and 1.2 in block
/// context. Deliberately narrow: anything starting with a digit, sign or dot
/// (numbers, 1.1's octals, sexagesimals and timestamps) is quoted, and so is
/// anything with an indicator character.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && !s.ends_with([' ', ':'])
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '.' | '/' | ':' | '@' | '=' | ',' | '+' | '-' | '~')
        })
        && !s.contains(": ")
        && !RESERVED.contains(&s)
}

/// Whether `s` can be a literal block: several lines, no characters a
/// block cannot hold, and a first line that fixes the indentation.
fn literal_ok(s: &str) -> bool {
    s.contains('\n') && !s.starts_with([' ', '\n']) && s.chars().all(|c| c == '\n' || (c != '\t' && !needs_escape(c)))
}

/// `|-`, `|` or `|+` by the number of trailing line breaks, then the lines.
fn literal(out: &mut String, s: &str, indent: usize) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

/// Characters YAML does not allow raw, or reads as line breaks.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

fn double_quoted(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Strings YAML 1.1 (kubectl) or 1.2 would read as something else plain.
    const TRICKY: &[&str] = &[
        "on",
        "off",
        "yes",
        "no",
        "y",
        "N",
        "true",
        "False",
        "null",
        "~",
        "",
        " ",
        " lead",
        "trail ",
        "0644",
        "1_000",
        "1:20",
        "2026-11-29",
        "1e3",
        ".5",
        "-1",
        "+1",
        ".inf",
        "0x1F",
        "0o17",
        "<<",
        "=",
        "a: b",
        "a #b",
        "#c",
        "- x",
        "? x",
        "[x]",
        "{x}",
        "*ref",
        "&anchor",
        "!tag",
        "%dir",
        "@at",
        "`tick",
        "'q'",
        "\"dq\"",
        "a\\b",
        "tab\there",
        "del\u{7f}",
        "nel\u{85}",
        "ls\u{2028}",
        "bom\u{feff}",
        "ünï",
        "key:",
        "100m",
        "128Mi",
    ];
    /// Strings written plain.
    const PLAIN: &[&str] = &[
        "nginx",
        "RuntimeDefault",
        "/dev/termination-log",
        "a.b/c-d_e",
        "key=value",
        "x y",
        "a:b",
        "registry.io/app:1.2.3",
    ];
    /// Multi-line strings, as literal blocks or quoted.
    const LINES: &[&str] = &[
        "a\nb",
        "a\nb\n",
        "a\nb\n\n",
        "a\n\n\nb",
        "a\n  indented\n",
        "\nfirst empty",
        " first spaced\nb",
        "a\n \nb",
        "tab\tin\nblock",
        "cr\r\nlf",
        "#!/bin/sh\nset -e\necho \"on\"\n",
    ];

    fn round_trip(value: &Value) -> Value {
        let text = to_string(value);
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn every_string_reads_back_as_itself() {
        for s in TRICKY.iter().chain(PLAIN).chain(LINES) {
            let doc = json!({"k": s, s.to_string(): [s, {"k": s}], "l": [[s, s]]});
            assert_eq!(round_trip(&doc), doc, "{s:?} written as\n{}", to_string(&doc));
        }
    }

    #[test]
    fn strings_that_yaml_1_1_reads_otherwise_are_quoted() {
        for s in TRICKY {
            let mut out = String::new();
            string_inline(&mut out, s);
            assert!(out.starts_with('"'), "{s:?} written as {out}");
        }
        for s in PLAIN {
            let mut out = String::new();
            string_inline(&mut out, s);
            assert_eq!(out, *s);
        }
    }

    #[test]
    fn layout_is_kubectls() {
        let doc = json!({
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"feature": "on"}, "annotations": {}},
            "spec": {"containers": [{"name": "app", "args": ["-c", "a\nb\n"], "env": []}], "x": [[1, 2], {}]},
        });
        assert_eq!(
            to_string(&doc),
            "kind: Pod\nmetadata:\n  name: p\n  labels:\n    feature: \"on\"\n  annotations: {}\nspec:\n  containers:\n  - name: app\n    args:\n    - \"-c\"\n    - |\n      a\n      b\n    env: []\n  x:\n  - - 1\n    - 2\n  - {}\n"
        );
        assert_eq!(round_trip(&doc), doc);
    }

    #[test]
    fn scalars_and_empty_documents() {
        for doc in [
            json!(null),
            json!(1),
            json!(true),
            json!("on"),
            json!({}),
            json!([]),
            json!(1.5),
        ] {
            assert_eq!(round_trip(&doc), doc, "{doc}");
        }
    }
}
