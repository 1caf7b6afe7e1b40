//! `secure-defaults mutate`: the engine on manifests, offline.
//!
//! Documents are read, hardened and rendered one at a time, so a long stream
//! is never held whole; the output is written only once every document has
//! been read, so bad input fails with the file, document (number and line)
//! and reason and prints no partial output.

use crate::config::Config;
use crate::engine::baseline::IdentityMode;
use crate::engine::manifest::{self, ExtraKind, ObjectHardening};
use crate::engine::ImageFacts;
use crate::engine::{Policy, Report};
use crate::policy::messages;
use crate::yaml;
use anyhow::{bail, Context, Result};
use json_patch::Patch;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

mod resolve;

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
    /// `identity: auto`: look each image's user up in its registry, as the
    /// webhook does (same `imageLookup` settings and egress guard). Without
    /// it, `mutate` makes no network access and `auto` uses `identityFallback`.
    #[arg(long)]
    pub resolve_images: bool,
    /// Registry credentials for --resolve-images: a Docker config file
    /// (`{"auths": ...}`, the data of a dockerconfigjson Secret). Repeatable.
    /// Without it: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, if present.
    #[arg(long, value_name = "FILE", requires = "resolve_images")]
    pub pull_secret: Vec<PathBuf>,
}

/// One input document and what the engine made of it.
pub struct Document {
    /// `FILE` or `FILE#N` for the Nth document (empty ones counted) of a file
    /// with several objects.
    pub origin: String,
    pub before: Value,
    pub after: Value,
    /// Paths relative to the document.
    pub patch: Patch,
    /// `Kind/name` and report for each pod spec found (several in a List).
    pub reports: Vec<(String, Report)>,
    /// Objects passed through although they look like they carry a pod template.
    pub notes: Vec<String>,
}

pub fn run(args: &MutateArgs) -> Result<()> {
    // On a thread of its own: the binary's allocator (mimalloc for small
    // blocks) did not reuse the blocks freed on the main thread, and a
    // 20,000-document stream peaked at 240 MiB there, 36 MiB here (BENCHMARKS.md).
    std::thread::scope(|s| s.spawn(|| run_here(args)).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn run_here(args: &MutateArgs) -> Result<()> {
    let config = Config::load_or_default(args.config.as_deref())?;
    let mut renderer = Renderer::new(args.output);
    let mut notes = Vec::new();
    let mut stdin_used = false;
    let mut read = |file: &PathBuf| -> Result<(String, String)> {
        if file.as_os_str() == "-" {
            if std::mem::replace(&mut stdin_used, true) {
                bail!("-f - given more than once");
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            Ok(("(stdin)".to_string(), text))
        } else {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            Ok((file.display().to_string(), text))
        }
    };
    if args.resolve_images && config.baseline.identity == IdentityMode::Auto {
        // Every file first: the images of all of them are looked up at once.
        let texts = args.files.iter().map(&mut read).collect::<Result<Vec<_>>>()?;
        let facts = resolve::images(&config, &args.pull_secret, &texts)?;
        let policy = policy(&config, &facts);
        for (name, text) in &texts {
            harden_stream(name, text, policy, &config.extra_kinds, &mut renderer, &mut notes)?;
        }
    } else {
        if args.resolve_images {
            notes.push("--resolve-images: nothing looked up, the configuration's identity is not auto".to_string());
        }
        let facts = ImageFacts::default();
        let policy = policy(&config, &facts);
        for file in &args.files {
            let (name, text) = read(file)?;
            harden_stream(&name, &text, policy, &config.extra_kinds, &mut renderer, &mut notes)?;
        }
    }
    let (out, summary) = renderer.finish()?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    if !args.quiet && args.output != Output::Diff {
        eprint!("{summary}");
    }
    write_stdout(&out)
}

fn policy<'a>(config: &'a Config, images: &'a ImageFacts) -> Policy<'a> {
    Policy {
        baseline: &config.baseline,
        allow_opt_out: config.allow_pod_opt_out,
        images,
    }
}

/// Harden and render each object of one file as it is read. A document is
/// named by its position in the file, empty ones counted, and its line.
fn harden_stream(
    name: &str,
    text: &str,
    policy: Policy,
    extra: &[ExtraKind],
    renderer: &mut Renderer,
    notes: &mut Vec<String>,
) -> Result<()> {
    let mut objects = yaml::stream(text)
        .enumerate()
        .filter(|(_, d)| !matches!(d, Ok(yaml::Document { value: Value::Null, .. })));
    let mut next = objects.next();
    let mut several = None;
    while let Some((i, doc)) = next {
        let doc = doc.with_context(|| format!("{name}: invalid YAML or JSON"))?;
        // One object read ahead tells whether the file holds several.
        next = objects.next();
        let origin = if *several.get_or_insert(next.is_some()) {
            format!("{name}#{}", i + 1)
        } else {
            name.to_string()
        };
        let hardened = harden_document(doc.value, policy, extra)
            .with_context(|| format!("{name}: document {} (line {})", i + 1, doc.line))?;
        notes.extend(hardened.notes.iter().cloned());
        renderer.push(&Document { origin, ..hardened })?;
    }
    Ok(())
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

/// The documents of a stream, YAML or JSON, read as kubectl reads them
/// ([`yaml::documents`]). Empty documents are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>> {
    let values = yaml::documents(text)?;
    Ok(values.into_iter().filter(|v| !v.is_null()).collect())
}

/// Harden one document: an object, or a `List` of objects. Objects are
/// matched by API group and kind: the built-in workloads and the operator's
/// `extra` kinds; any other object passes through unchanged.
pub fn harden_document(value: Value, policy: Policy, extra: &[ExtraKind]) -> Result<Document> {
    if !value.is_object() {
        bail!("not a Kubernetes object (expected a mapping with apiVersion and kind)");
    }
    let mut after = value.clone();
    let mut patch = Patch(Vec::new());
    let mut reports = Vec::new();
    let mut notes = Vec::new();
    if value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
    {
        if let Some(items) = value.get("items").and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                match manifest::harden_object_with(item, policy, extra).with_context(|| format!("items[{i}]"))? {
                    Some(h) => {
                        let prefix = jsonptr::PointerBuf::from_tokens(["items".to_string(), i.to_string()]);
                        patch.0.extend(manifest::prefixed(&prefix, &h.patch.0).0);
                        reports.push((describe(item), h.hardening.report));
                    }
                    None => notes.extend(passed_through(item)),
                }
            }
        }
    } else {
        match manifest::harden_object_with(&value, policy, extra)? {
            Some(ObjectHardening { patch: p, hardening }) => {
                patch = p;
                reports.push((describe(&value), hardening.report));
            }
            None => notes.extend(passed_through(&value)),
        }
    }
    json_patch::patch(&mut after, &patch).context("internal error: the patch does not apply to its own document")?;
    Ok(Document {
        origin: String::new(),
        before: value,
        after,
        patch,
        reports,
        notes,
    })
}

/// What to tell the user about an object of a kind the engine does not
/// know, when it looks like it carries a pod template.
fn passed_through(object: &Value) -> Option<String> {
    let at = manifest::unrecognized_template(object)?;
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("?");
    Some(format!(
        "{} ({api_version}) passed through unhardened: it looks like it has a pod template at {at}; \
         name its group, kind and templatePath in the configuration's extraKinds to harden it",
        describe(object)
    ))
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

/// All documents rendered at once: what [`run`] writes for them.
pub fn render(docs: &[Document], output: Output) -> Result<String> {
    let mut renderer = Renderer::new(output);
    for d in docs {
        renderer.push(d)?;
    }
    Ok(renderer.finish()?.0)
}

/// The output and the summary, built one document at a time so that only
/// text is kept, not the documents.
pub struct Renderer {
    output: Output,
    out: String,
    documents: usize,
    /// `-o json`: the first object, kept until a second makes the output a List.
    first: Option<Value>,
    summary: Summary,
}

impl Renderer {
    pub fn new(output: Output) -> Renderer {
        Renderer {
            output,
            out: String::new(),
            documents: 0,
            first: None,
            summary: Summary::default(),
        }
    }

    pub fn push(&mut self, d: &Document) -> Result<()> {
        self.documents += 1;
        self.summary.add(d);
        let out = &mut self.out;
        match self.output {
            Output::Yaml => {
                if self.documents > 1 {
                    out.push_str("---\n");
                }
                out.push_str(&yaml::to_string(&d.after));
            }
            Output::Json => match self.documents {
                1 => self.first = Some(d.after.clone()),
                n => {
                    if n == 2 {
                        let first = self.first.take().unwrap_or_default();
                        list_item(out, &first, true)?;
                    }
                    list_item(out, &d.after, false)?;
                }
            },
            Output::Patch => {
                out.push_str(&serde_json::to_string_pretty(&d.patch)?);
                out.push('\n');
            }
            Output::Diff => {
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
        }
        Ok(())
    }

    /// The output, and the summary of warnings.
    pub fn finish(self) -> Result<(String, String)> {
        let summary = self.summary.finish(self.documents);
        let mut out = self.out;
        match self.output {
            Output::Json => match self.first {
                Some(one) => out = serde_json::to_string_pretty(&one)? + "\n",
                None if self.documents == 0 => {
                    out = serde_json::to_string_pretty(&serde_json::json!({
                        "apiVersion": "v1",
                        "kind": "List",
                        "items": [],
                    }))? + "\n"
                }
                None => out.push_str("\n  ]\n}\n"),
            },
            Output::Diff => out.push_str(&summary),
            Output::Yaml | Output::Patch => {}
        }
        Ok((out, summary))
    }
}

/// One item of the List `-o json` writes for several documents, laid out as
/// `serde_json::to_string_pretty` lays out the whole List (JSON strings hold
/// no line breaks, so indenting each line is safe).
fn list_item(out: &mut String, item: &Value, first: bool) -> Result<()> {
    out.push_str(if first {
        "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\",\n  \"items\": [\n"
    } else {
        ",\n"
    });
    for (i, line) in serde_json::to_string_pretty(item)?.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("    ");
        out.push_str(line);
    }
    Ok(())
}

/// Per object: counts of fields added, values kept and violations left, and
/// the warnings the webhook would give.
#[derive(Default)]
struct Summary {
    text: String,
    objects: usize,
    added: usize,
    remaining: usize,
}

impl Summary {
    fn add(&mut self, d: &Document) {
        for (name, report) in &d.reports {
            self.objects += 1;
            self.added += report.added.len();
            self.remaining += report.remaining.len();
            let _ = writeln!(
                self.text,
                "{name}: {} added, {} kept as written, {} still rejected by restricted",
                report.added.len(),
                report.kept.len(),
                report.remaining.len()
            );
            // The warnings below name every other identity decision; the plain
            // uid is named here, so the summary always says which identity.
            if let Some(identity) = report.identity.as_ref().filter(|i| i.is_plain_uid()) {
                let _ = writeln!(self.text, "  {}", identity.message());
            }
            for w in messages::warnings(report) {
                let _ = writeln!(self.text, "  {}", w.trim_start_matches("secure-defaults: "));
            }
        }
    }

    fn finish(mut self, documents: usize) -> String {
        let _ = writeln!(
            self.text,
            "{} pod spec(s) in {documents} document(s): {} field(s) added, {} restricted violation(s) left",
            self.objects, self.added, self.remaining
        );
        self.text
    }
}
