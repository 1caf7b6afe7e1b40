//! `secure-defaults mutate`: the engine on manifests, offline.
//!
//! Everything is read and hardened before anything is written, so bad input
//! fails with the file, document and reason and prints no partial output.

use crate::config::Config;
use crate::engine::manifest::{self, ObjectHardening};
use crate::engine::{Policy, Report};
use crate::policy::messages;
use crate::yaml;
use anyhow::{bail, Context, Result};
use json_patch::Patch;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The hardened objects as YAML documents.
    Yaml,
    /// The hardened object as JSON; a List for several documents.
    Json,
    /// The RFC 6902 patch for each document, one JSON array per document.
    Patch,
    /// A readable diff and a summary of what was added, kept and still rejected.
    Diff,
}

#[derive(Debug, clap::Args)]
pub struct MutateArgs {
    /// Manifest file (YAML or JSON, multi-document); `-` reads standard input. Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[arg(short, long, value_enum, default_value = "yaml")]
    pub output: Output,
    /// Baseline configuration; the embedded default when omitted.
    #[arg(long, env = "SECURE_DEFAULTS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not print the summary of warnings on standard error.
    #[arg(short, long)]
    pub quiet: bool,
}

/// One input document and what the engine made of it.
pub struct Document {
    /// `FILE` or `FILE#N` for the Nth document of a multi-document file.
    pub origin: String,
    pub before: Value,
    pub after: Value,
    /// Paths relative to the document.
    pub patch: Patch,
    /// `Kind/name` and report for each pod spec found (several in a List).
    pub reports: Vec<(String, Report)>,
}

pub fn run(args: &MutateArgs) -> Result<()> {
    let config = Config::load_or_default(args.config.as_deref())?;
    let policy = Policy {
        baseline: &config.baseline,
        allow_opt_out: config.allow_pod_opt_out,
    };
    let mut docs = Vec::new();
    let mut stdin_used = false;
    for file in &args.files {
        let (name, text) = if file.as_os_str() == "-" {
            if std::mem::replace(&mut stdin_used, true) {
                bail!("-f - given more than once");
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            ("(stdin)".to_string(), text)
        } else {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            (file.display().to_string(), text)
        };
        let values = parse_documents(&text).with_context(|| format!("{name}: invalid YAML or JSON"))?;
        let several = values.len() > 1;
        for (i, value) in values.into_iter().enumerate() {
            let origin = if several {
                format!("{name}#{}", i + 1)
            } else {
                name.clone()
            };
            let doc = harden_document(value, policy).with_context(|| format!("{name}: document {}", i + 1))?;
            docs.push(Document { origin, ..doc });
        }
    }
    let out = render(&docs, args.output)?;
    if !args.quiet && args.output != Output::Diff {
        eprint!("{}", summary(&docs));
    }
    write_stdout(&out)
}

/// Write everything at once; a closed pipe (`| head`) is not an error.
fn write_stdout(out: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to standard output"),
    }
}

/// Split a stream into documents. JSON input may hold several values; YAML
/// may hold several `---` documents, read as kubectl reads them
/// ([`yaml::documents`]). Empty documents are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>> {
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()?
    } else {
        yaml::documents(text)?
    };
    Ok(values.into_iter().filter(|v| !v.is_null()).collect())
}

/// Harden one document: an object, or a `List` of objects.
pub fn harden_document(value: Value, policy: Policy) -> Result<Document> {
    if !value.is_object() {
        bail!("not a Kubernetes object (expected a mapping with apiVersion and kind)");
    }
    let mut after = value.clone();
    let mut patch = Patch(Vec::new());
    let mut reports = Vec::new();
    if value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
    {
        if let Some(items) = value.get("items").and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                if let Some(h) = manifest::harden_object(item, policy).with_context(|| format!("items[{i}]"))? {
                    let prefix = jsonptr::PointerBuf::from_tokens(["items".to_string(), i.to_string()]);
                    patch.0.extend(manifest::prefixed(&prefix, &h.patch.0).0);
                    reports.push((describe(item), h.hardening.report));
                }
            }
        }
    } else if let Some(ObjectHardening { patch: p, hardening }) = manifest::harden_object(&value, policy)? {
        patch = p;
        reports.push((describe(&value), hardening.report));
    }
    json_patch::patch(&mut after, &patch).context("internal error: the patch does not apply to its own document")?;
    Ok(Document {
        origin: String::new(),
        before: value,
        after,
        patch,
        reports,
    })
}

fn describe(object: &Value) -> String {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("?");
    let meta = object.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    let name = name
        .or_else(|| meta.and_then(|m| m.get("generateName")).and_then(Value::as_str))
        .unwrap_or("(unnamed)");
    match meta.and_then(|m| m.get("namespace")).and_then(Value::as_str) {
        Some(ns) => format!("{kind}/{name} -n {ns}"),
        None => format!("{kind}/{name}"),
    }
}

pub fn render(docs: &[Document], output: Output) -> Result<String> {
    let mut out = String::new();
    match output {
        Output::Yaml => {
            for (i, d) in docs.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&yaml::to_string(&d.after));
            }
        }
        Output::Json => {
            let value = match docs {
                [one] => one.after.clone(),
                _ => serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": docs.iter().map(|d| d.after.clone()).collect::<Vec<_>>(),
                }),
            };
            out = serde_json::to_string_pretty(&value)? + "\n";
        }
        Output::Patch => {
            for d in docs {
                out.push_str(&serde_json::to_string_pretty(&d.patch)?);
                out.push('\n');
            }
        }
        Output::Diff => {
            for d in docs {
                let before = yaml::to_string(&d.before);
                let after = yaml::to_string(&d.after);
                if before != after {
                    let diff = similar::TextDiff::from_lines(&before, &after);
                    let header = (format!("a/{}", d.origin), format!("b/{}", d.origin));
                    write!(
                        out,
                        "{}",
                        diff.unified_diff().context_radius(3).header(&header.0, &header.1)
                    )?;
                }
            }
            out.push_str(&summary(docs));
        }
    }
    Ok(out)
}

/// Per object: counts of fields added, values kept and violations left, and
/// the warnings the webhook would give.
pub fn summary(docs: &[Document]) -> String {
    let mut out = String::new();
    let (mut added, mut remaining, mut objects) = (0, 0, 0);
    for (name, report) in docs.iter().flat_map(|d| &d.reports) {
        objects += 1;
        added += report.added.len();
        remaining += report.remaining.len();
        let _ = writeln!(
            out,
            "{name}: {} added, {} kept as written, {} still rejected by restricted",
            report.added.len(),
            report.kept.len(),
            report.remaining.len()
        );
        // The warnings name the identity decision unless it is the plain uid.
        if let Some(identity) = report.identity.filter(|i| i.is_plain_uid()) {
            let _ = writeln!(out, "  {}", identity.message());
        }
        for w in messages::warnings(report) {
            let _ = writeln!(out, "  {}", w.trim_start_matches("secure-defaults: "));
        }
    }
    let _ = writeln!(
        out,
        "{objects} pod spec(s) in {} document(s): {added} field(s) added, {remaining} restricted violation(s) left",
        docs.len()
    );
    out
}
