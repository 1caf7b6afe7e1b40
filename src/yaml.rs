//! YAML as kubectl reads and writes it.
//!
//! kubectl reads manifests with go-yaml v2, a YAML 1.1 reader: a plain
//! `on`, `no` or `y` is a boolean there, `0644` is octal 420 and `1_000` is
//! 1000, while YAML 1.2 readers and writers (serde_norway among them) take
//! them for strings. [`documents`] reads a stream the way kubectl does, from
//! the parser's events, so that a chart's `defaultMode: 0644` is the number
//! kubectl would send. [`to_string`] leaves a string plain only when it is a
//! string under both versions, and double-quotes it otherwise (a label
//! `feature: "on"` written back as `feature: on` is refused by kubectl);
//! multi-line strings are literal blocks. The layout is the one
//! `kubectl get -o yaml` uses (block style, sequences at their key's indent).

use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use thiserror::Error;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The document `value` as YAML, ending in a newline.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => mapping(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => sequence(&mut out, a, 0, false),
        // A block scalar at the top would hold lines at column 0, where
        // `---` ends a document.
        Value::String(s) => {
            string_inline(&mut out, s);
            out.push('\n');
        }
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
        let start = out.len();
        string_inline(out, k);
        // A key written on its own is at most 1024 characters in YAML; a
        // longer one takes the explicit form, `? key` then `: value`.
        let explicit = out[start..].chars().nth(MAX_SIMPLE_KEY).is_some();
        if explicit {
            out.insert_str(start, "? ");
            out.push('\n');
            pad(out, indent);
        }
        out.push(':');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                mapping(out, m, indent + 2, false);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                sequence(out, a, if explicit { indent + 2 } else { indent }, false);
            }
            _ => {
                out.push(' ');
                scalar(out, v, indent + 2);
                out.push('\n');
            }
        }
    }
}

/// Characters of the longest key written in the simple form (YAML allows 1024).
const MAX_SIMPLE_KEY: usize = 1000;

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

/// Whether `s` reads as the same string, plain, in YAML 1.1 and 1.2 in block
/// context. Deliberately narrow: anything starting with a digit, sign or dot
/// (numbers, 1.1's octals, sexagesimals and timestamps) is quoted, and so is
/// anything with an indicator character; of the words left, those the
/// reader below resolves to a boolean or null (1.1's `on`, `no`, `y`, ...,
/// a superset of 1.2's) are quoted too.
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
        && plain_value(s).is_ok_and(|v| v.is_string())
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

/// Why a YAML stream could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line} column {column}: {reason}")]
pub struct ReadError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

impl ReadError {
    fn at(mark: Marker, reason: impl Into<String>) -> ReadError {
        ReadError {
            line: mark.line(),
            column: mark.col() + 1,
            reason: reason.into(),
        }
    }
}

/// Nesting deeper than this is refused, as serde_json and serde_norway do:
/// the values are later read and dropped recursively.
const MAX_DEPTH: usize = 128;

/// One document of a stream: where it starts and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The line (from 1) of its `---`, or of its first content when it has none.
    pub line: usize,
    /// `null` for an empty document.
    pub value: Value,
}

/// Every document of a YAML stream as JSON, as kubectl reads it: plain
/// scalars resolved by YAML 1.1 (go-yaml v2), anchors and aliases expanded,
/// merge keys (`<<`) applied with the mapping's own keys winning. Empty
/// documents read as `null`. JSON is YAML and reads the same way.
pub fn documents(text: &str) -> Result<Vec<Value>, ReadError> {
    stream(text).map(|d| d.map(|d| d.value)).collect()
}

/// The documents of `text` one at a time, as [`documents`] reads them: a
/// document is built only when asked for, so a long stream is never held
/// whole, and a malformed document fails only once the ones before it are out.
pub fn stream(text: &str) -> Stream<'_> {
    Stream {
        parser: Parser::new_from_str(text),
        // Aliases may repeat a node many times ("billion laughs"): the values
        // built may not exceed the text's length by much.
        budget: text.len().saturating_mul(4).saturating_add(100_000),
        done: false,
    }
}

/// See [`stream`]. After an error it yields nothing more.
pub struct Stream<'a> {
    parser: Parser<std::str::Chars<'a>>,
    budget: usize,
    done: bool,
}

impl Iterator for Stream<'_> {
    type Item = Result<Document, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.read_document().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

impl Stream<'_> {
    /// The next document, `None` at the end of the stream.
    fn read_document(&mut self) -> Result<Option<Document>, ReadError> {
        let mut doc: Option<(usize, Tree)> = None;
        loop {
            let (event, mark) = self
                .parser
                .next_token()
                .map_err(|e| ReadError::at(*e.marker(), e.info()))?;
            match (event, &mut doc) {
                (Event::StreamEnd, _) => return Ok(None),
                (Event::DocumentStart, _) => doc = Some((mark.line(), Tree::default())),
                (Event::DocumentEnd, Some((line, tree))) => {
                    return Ok(Some(Document {
                        line: *line,
                        value: std::mem::take(&mut tree.root).unwrap_or(Value::Null),
                    }))
                }
                (event, Some((_, tree))) => tree.event(event, mark, &mut self.budget)?,
                (_, None) => {}
            }
        }
    }
}

/// The values of one document as its events arrive.
#[derive(Default)]
struct Tree {
    /// Collections being read, innermost last.
    open: Vec<Open>,
    /// Anchored values by the parser's anchor id, with their node count.
    anchors: HashMap<usize, (Value, usize)>,
    root: Option<Value>,
}

struct Open {
    anchor: usize,
    mark: Marker,
    node: OpenNode,
}

enum OpenNode {
    Sequence(Vec<Value>, usize),
    Mapping {
        map: Map<String, Value>,
        /// Mappings merged in by `<<`, in order: earlier ones win.
        merged: Vec<Map<String, Value>>,
        /// The key read, waiting for its value.
        key: Option<Key>,
        nodes: usize,
    },
}

enum Key {
    Name(String),
    Merge,
}

impl Tree {
    fn event(&mut self, event: Event, mark: Marker, budget: &mut usize) -> Result<(), ReadError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let merge_key = style == TScalarStyle::Plain && tag.is_none() && text == "<<";
                if merge_key && self.awaits_key() {
                    return self.set_key(Key::Merge, mark);
                }
                let value = scalar_value(&text, style, tag.as_ref()).map_err(|reason| ReadError::at(mark, reason))?;
                self.complete(value, 1, anchor, mark, budget)
            }
            Event::Alias(id) => {
                let (value, nodes) = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| ReadError::at(mark, "alias to an unknown anchor"))?;
                self.complete(value, nodes, 0, mark, budget)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.open.len() >= MAX_DEPTH {
                    return Err(ReadError::at(mark, format!("nested deeper than {MAX_DEPTH} levels")));
                }
                let node = match event {
                    Event::SequenceStart(..) => OpenNode::Sequence(Vec::new(), 1),
                    _ => OpenNode::Mapping {
                        map: Map::new(),
                        merged: Vec::new(),
                        key: None,
                        nodes: 1,
                    },
                };
                self.open.push(Open { anchor, mark, node });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = self.open.pop() else {
                    return Err(ReadError::at(mark, "unbalanced end of a collection"));
                };
                let (value, nodes) = match open.node {
                    OpenNode::Sequence(items, nodes) => (Value::Array(items), nodes),
                    OpenNode::Mapping {
                        mut map, merged, nodes, ..
                    } => {
                        for source in merged {
                            for (k, v) in source {
                                map.entry(k).or_insert(v);
                            }
                        }
                        (Value::Object(map), nodes)
                    }
                };
                self.complete(value, nodes, open.anchor, open.mark, budget)
            }
            _ => Ok(()),
        }
    }

    fn awaits_key(&self) -> bool {
        matches!(
            self.open.last(),
            Some(Open {
                node: OpenNode::Mapping { key: None, .. },
                ..
            })
        )
    }

    fn set_key(&mut self, new: Key, mark: Marker) -> Result<(), ReadError> {
        if let Some(Open {
            node: OpenNode::Mapping { map, key, .. },
            ..
        }) = self.open.last_mut()
        {
            if let Key::Name(name) = &new {
                if map.contains_key(name) {
                    return Err(ReadError::at(mark, format!("duplicate key {name:?}")));
                }
            }
            *key = Some(new);
        }
        Ok(())
    }

    /// A finished node of `nodes` values: anchored if it has an anchor, then
    /// placed into the collection it belongs to.
    fn complete(
        &mut self,
        value: Value,
        nodes: usize,
        anchor: usize,
        mark: Marker,
        budget: &mut usize,
    ) -> Result<(), ReadError> {
        *budget = budget
            .checked_sub(nodes)
            .ok_or_else(|| ReadError::at(mark, "aliases expand to too many values"))?;
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), nodes));
        }
        let Some(open) = self.open.last_mut() else {
            self.root = Some(value);
            return Ok(());
        };
        match &mut open.node {
            OpenNode::Sequence(items, total) => {
                items.push(value);
                *total += nodes;
            }
            OpenNode::Mapping {
                map,
                merged,
                key,
                nodes: total,
            } => {
                *total += nodes;
                match key.take() {
                    None => {
                        let name =
                            key_name(value).ok_or_else(|| ReadError::at(mark, "a mapping key must be a scalar"))?;
                        return self.set_key(Key::Name(name), mark);
                    }
                    Some(Key::Name(name)) => {
                        map.insert(name, value);
                    }
                    Some(Key::Merge) => match value {
                        Value::Object(m) => merged.push(m),
                        Value::Array(items) if items.iter().all(Value::is_object) => {
                            merged.extend(items.into_iter().filter_map(|v| match v {
                                Value::Object(m) => Some(m),
                                _ => None,
                            }))
                        }
                        _ => {
                            return Err(ReadError::at(
                                mark,
                                "a merge key (<<) takes a mapping or a list of mappings",
                            ))
                        }
                    },
                }
            }
        }
        Ok(())
    }
}

/// A mapping key as JSON's string, as kubectl converts it (`true: x` has
/// the key "true", `1: x` the key "1").
fn key_name(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some("null".to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

/// A scalar's value: quoted and block scalars are strings, plain ones are
/// resolved by YAML 1.1; a core tag (`!!str`, `!!int`, ...) decides.
fn scalar_value(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let core = tag.filter(|t| t.handle == CORE_TAG).map(|t| t.suffix.as_str());
    match (core, style) {
        (Some("str" | "binary" | "timestamp"), _) => Ok(Value::String(text.to_string())),
        (Some(kind @ ("int" | "float" | "bool" | "null")), _) => {
            let value = plain_value(text)?;
            let fits = match (kind, &value) {
                ("int", Value::Number(n)) => n.is_i64() || n.is_u64(),
                ("float", Value::Number(_)) | ("bool", Value::Bool(_)) | ("null", Value::Null) => true,
                _ => false,
            };
            if fits {
                Ok(value)
            } else {
                Err(format!("cannot read {text:?} as !!{kind}"))
            }
        }
        // Another tag (`!custom`) or none: by style.
        (_, TScalarStyle::Plain) if tag.is_none() => plain_value(text),
        _ => Ok(Value::String(text.to_string())),
    }
}

/// A plain scalar as go-yaml v2 resolves it (its `resolve`): YAML 1.1
/// booleans and null, then by the first character, numbers in any base Go's
/// `ParseInt(s, 0, 64)` reads (underscores dropped, `0644` octal) or YAML
/// floats. Timestamps stay strings (kubectl would make `2026-11-29` a full
/// RFC 3339 time).
fn plain_value(s: &str) -> Result<Value, String> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Ok(Value::Bool(true))
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Ok(Value::Bool(false))
        }
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf"
        | "-.INF" => return Err(format!("{s} has no JSON number")),
        _ => {}
    }
    let number = match s.as_bytes()[0] {
        b'.' => s.parse::<f64>().ok().and_then(float),
        b'0'..=b'9' | b'+' | b'-' => {
            let digits = s.replace('_', "");
            go_int(&digits).or_else(|| {
                yaml_float(&digits)
                    .then(|| digits.parse::<f64>().ok())
                    .flatten()
                    .and_then(float)
            })
        }
        _ => None,
    };
    Ok(number.map_or_else(|| Value::String(s.to_string()), Value::Number))
}

/// A float as kubectl sends it: Go's JSON writes `1e3` as `1000`, which
/// then reads as an integer.
fn float(f: f64) -> Option<Number> {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        Some(Number::from(f as i64))
    } else {
        Number::from_f64(f)
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: a sign, then `0x`,
/// `0o`, `0b` or a leading `0` (octal) for the base.
fn go_int(s: &str) -> Option<Number> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let prefixed = |p: [&str; 2]| unsigned.strip_prefix(p[0]).or_else(|| unsigned.strip_prefix(p[1]));
    let (radix, body) = if let Some(b) = prefixed(["0x", "0X"]) {
        (16, b)
    } else if let Some(b) = prefixed(["0o", "0O"]) {
        (8, b)
    } else if let Some(b) = prefixed(["0b", "0B"]) {
        (2, b)
    } else if unsigned.len() > 1 && unsigned.starts_with('0') {
        (8, &unsigned[1..])
    } else {
        (10, unsigned)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if negative {
        let v = i64::try_from(magnitude)
            .ok()
            .map(|m| -m)
            .or((magnitude == 1 << 63).then_some(i64::MIN))?;
        Some(Number::from(v))
    } else {
        Some(Number::from(magnitude))
    }
}

/// go-yaml's float pattern: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
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

    /// Written, then read back by YAML 1.2 (serde_norway) and YAML 1.1 as
    /// kubectl reads it ([`documents`]): the same value both ways.
    fn round_trip(value: &Value) -> Value {
        let text = to_string(value);
        let v12: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let v11 = documents(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            v11,
            std::slice::from_ref(&v12),
            "YAML 1.1 and 1.2 read\n{text}\ndifferently"
        );
        v12
    }

    fn read(text: &str) -> Value {
        let docs = documents(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.into_iter().next().unwrap()
    }

    #[rstest::rstest]
    #[case::yaml_1_1_booleans("[y, Yes, on, OFF, n, NO, true, False]", json!([true, true, true, false, false, false, true, false]))]
    #[case::quoted_is_a_string("['on', \"no\", 'y']", json!(["on", "no", "y"]))]
    #[case::nulls("{a: ~, b: null, c: , d: NULL}", json!({"a": null, "b": null, "c": null, "d": null}))]
    #[case::octal_hex_binary("[0644, 0o644, 0x1F, 0b101, -0x10, 00, 0]", json!([420, 420, 31, 5, -16, 0, 0]))]
    #[case::underscores_and_signs("[1_000, +1, -1, -0]", json!([1000, 1, -1, 0]))]
    #[case::floats("[1.5, .5, 1e3, 08, -2.5e-1, 1.]", json!([1.5, 0.5, 1000, 8, -0.25, 1]))]
    #[case::large_integers("[9223372036854775807, 9223372036854775808, -9223372036854775808]", json!([i64::MAX, 9_223_372_036_854_775_808_u64, i64::MIN]))]
    #[case::strings_that_look_numeric("[1:20, 2026-11-29, 100m, 128Mi, 1.2.3, 0x, 0o9, '0644', +]", json!(["1:20", "2026-11-29", "100m", "128Mi", "1.2.3", "0x", "0o9", "0644", "+"]))]
    #[case::core_tags("[!!str 0644, !!int '12', !!float '1', !!bool 'on', !!null '', !custom on]", json!(["0644", 12, 1, true, null, "on"]))]
    #[case::keys_as_kubectl_converts_them("{on: a, 1: b, null: c, 0644: d}", json!({"true": "a", "1": "b", "null": "c", "420": "d"}))]
    #[case::block_scalars("a: |\n  x\n  y\nb: >-\n  folded\n  line\n", json!({"a": "x\ny\n", "b": "folded line"}))]
    #[case::anchors_and_aliases("{a: &x {k: 1}, b: *x, c: [&y 2, *y]}", json!({"a": {"k": 1}, "b": {"k": 1}, "c": [2, 2]}))]
    #[case::merge_keys_own_keys_win(
        "base: &b {a: 1, b: 1}\nover: &o {b: 2, c: 2}\nm:\n  b: 0\n  <<: [*o, *b]\n  d: 0\n",
        json!({"base": {"a": 1, "b": 1}, "over": {"b": 2, "c": 2}, "m": {"b": 0, "d": 0, "c": 2, "a": 1}})
    )]
    #[case::quoted_merge_key_is_a_key("{'<<': 1}", json!({"<<": 1}))]
    // go-yaml v2 does not look at indentation inside flow collections, and
    // helm charts rely on it: a closing bracket at the key's column, items
    // at or left of the block's indentation, quoted lines continued at any column.
    #[case::flow_sequence_closed_at_the_keys_column(
        "spec:\n  containers:\n    - name: c\n      command: [\n        \"/bin/sh\",\n        \"-c\"\n      ]\n",
        json!({"spec": {"containers": [{"name": "c", "command": ["/bin/sh", "-c"]}]}})
    )]
    #[case::flow_items_left_of_the_block("a:\n  b: [\nx,\n  {k:\n1}, 'q',\ny z\n]\n  c: 1\n", json!({"a": {"b": ["x", {"k": 1}, "q", "y z"], "c": 1}}))]
    #[case::flow_mapping_closed_at_column_0("a:\n  b: {\n  k: v\n}\n", json!({"a": {"b": {"k": "v"}}}))]
    #[case::quoted_continued_left_of_the_block("a:\n  b: \"x\ny\"\n  c: 'p\n q'\n", json!({"a": {"b": "x y", "c": "p q"}}))]
    fn reads_as_kubectl(#[case] text: &str, #[case] expected: Value) {
        assert_eq!(read(text), expected);
    }

    #[rstest::rstest]
    #[case::duplicate_key("a: 1\na: 2\n", "line 2 column 1: duplicate key \"a\"")]
    #[case::merge_of_a_scalar("a: {<<: 1}", "a merge key (<<) takes a mapping or a list of mappings")]
    #[case::complex_key("? [a]\n: 1\n", "a mapping key must be a scalar")]
    #[case::no_json_number("a: .inf", ".inf has no JSON number")]
    #[case::wrong_core_tag("a: !!int x", "cannot read \"x\" as !!int")]
    #[case::syntax("a: [\n", "line")]
    fn refuses(#[case] text: &str, #[case] message: &str) {
        let e = documents(text).expect_err(text);
        assert!(e.to_string().contains(message), "{e}");
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_refused() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(documents(&deep).unwrap_err().reason.contains("nested deeper"));
        assert!(documents(&("[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH))).is_ok());
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb += &format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n");
        }
        assert!(documents(&bomb).unwrap_err().reason.contains("too many values"));
    }

    #[test]
    fn json_is_read_as_yaml_and_may_be_followed_by_yaml() {
        let docs = documents("{\"a\": [1, 2.5, \"x\", null, true], \"b\":{}}\n---\nc: on\n").unwrap();
        assert_eq!(
            docs,
            [json!({"a": [1, 2.5, "x", null, true], "b": {}}), json!({"c": true})]
        );
    }

    #[test]
    fn documents_come_one_at_a_time_with_the_line_they_start_on() {
        let text = "# a comment\na: 1\n---\n---\n\n# only a comment\n---\n- 2\n...\n---\nb: [\n";
        let mut docs = stream(text);
        let mut next = || docs.next().map(|d| d.map(|d| (d.line, d.value)));
        assert_eq!(next(), Some(Ok((2, json!({"a": 1})))));
        assert_eq!(next(), Some(Ok((3, Value::Null))));
        assert_eq!(next(), Some(Ok((4, Value::Null))));
        assert_eq!(next(), Some(Ok((7, json!([2])))));
        // The malformed document is read only when asked for, after the others.
        assert!(matches!(next(), Some(Err(ReadError { line: 12, .. }))));
        assert_eq!(next(), None);
    }

    #[test]
    fn a_stream_of_documents() {
        let docs = documents("a: 1\n---\n---\n# only a comment\n---\n- 2\n...\n").unwrap();
        assert_eq!(docs, [json!({"a": 1}), Value::Null, Value::Null, json!([2])]);
        assert_eq!(documents("").unwrap(), Vec::<Value>::new());
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
    fn long_keys_take_the_explicit_form() {
        let long = "k".repeat(1500);
        let doc = json!({"a": {&long: 1, "b": {&long: [1, {&long: "v"}]}}, "s": [{&long: {"x": 1}}]});
        let text = to_string(&doc);
        assert!(text.contains(&format!("? {long}\n")), "{text}");
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
