//! `secure-defaults scan`: what secure-defaults will do to the workloads of a
//! live cluster, read with the usual kubeconfig rules.
//!
//! Lists are paginated (`--chunk-size`, `cluster::listers`) and each page is
//! reduced to its assessments before the next is fetched, so a cluster of
//! thousands of pods is never held in memory at once. Read-only: list and
//! get, nothing else. No registry is contacted unless `--resolve-images`,
//! which lists the workloads twice: once for their images, then to assess
//! them with the answers.

use crate::cluster::listers;
use crate::cluster::pull_secrets::PullSecrets;
use crate::config::image_lookup::Span;
use crate::config::Config;
use crate::images::batch::{self, Group};
use crate::images::credentials::Credentials;
use crate::policy::namespace::NamespaceInfo;
use crate::policy::scan::{self, ImageLookups, PodImages, Scanner};
use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::Client;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table per namespace and a summary.
    Table,
    /// The whole report as JSON, for tooling.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Exit with status 3 when the pods of any workload would still be
    /// rejected by Pod Security `restricted` (or a template cannot be read).
    Remaining,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Path to the kubeconfig file; default: $KUBECONFIG, ~/.kube/config, then in-cluster.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; default: the current context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace to scan; repeatable. Default: the context's namespace.
    #[arg(short, long = "namespace", value_name = "NAME", conflicts_with = "all_namespaces")]
    pub namespaces: Vec<String>,
    /// Scan every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only workloads (and bare pods) matching this label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
    /// The webhook's configuration (baseline, mode, deny list); the embedded default when omitted.
    #[arg(long, env = "SECURE_DEFAULTS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ignore namespace labels and annotations (`secure-defaults.io/*`), as a
    /// webhook started without `--namespace-policy` does. The shipped
    /// manifests turn the namespace policy on.
    #[arg(long)]
    pub no_namespace_policy: bool,
    /// Exit with status 3 when a workload would still be rejected (for CI gates).
    #[arg(long, value_enum, value_name = "WHAT")]
    pub fail_on: Option<FailOn>,
    /// Objects per list request.
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_size: u32,
    /// No progress on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// Under `identity: auto`, look up the workloads' images in their
    /// registries as the webhook does (its `imageLookup` settings, and the
    /// pull secrets of each pod and its service account), so IDENTITY shows
    /// what the webhook decides. Without it, scan makes no registry request.
    #[arg(long)]
    pub resolve_images: bool,
    /// The time all lookups of --resolve-images may take together; each
    /// image also has `imageLookup.timeout`. What is not answered by then
    /// gets `identityFallback` and is named in the output.
    #[arg(long, default_value = "60s", value_name = "DURATION", requires = "resolve_images")]
    pub resolve_timeout: Span,
}

/// Exit status when `--fail-on remaining` finds workloads that need changes.
pub const EXIT_REMAINING: u8 = 3;

/// Run the scan and print the report; `Ok(false)` when `--fail-on` fails.
pub fn run(args: &ScanArgs) -> Result<bool> {
    let config = Config::load_or_default(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(scan(args, &config))?;
    let mut stdout = std::io::stdout().lock();
    match args.output {
        Output::Table => stdout.write_all(scan::table(&report).as_bytes())?,
        Output::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            writeln!(stdout)?;
        }
    }
    stdout.flush()?;
    Ok(!(args.fail_on == Some(FailOn::Remaining) && report.needing_changes() > 0))
}

async fn scan(args: &ScanArgs, config: &Config) -> Result<scan::Report> {
    let (client, default_namespace) = listers::client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let mut progress = Progress::new(args.quiet);
    let mut scanner = Scanner::new(config, !args.no_namespace_policy);

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let scopes: Vec<Option<String>> = if args.all_namespaces {
        let params = ListParams::default().limit(args.chunk_size);
        listers::each_page(&namespaces, params, "namespaces", |page| {
            for ns in page {
                scanner.namespace(&NamespaceInfo::from_namespace(ns));
            }
            progress.count("namespaces", "the cluster", page.len());
            Ok(())
        })
        .await?;
        vec![None]
    } else {
        let names = if args.namespaces.is_empty() {
            vec![default_namespace]
        } else {
            args.namespaces.clone()
        };
        for name in &names {
            let ns = namespaces
                .get_opt(name)
                .await
                .with_context(|| format!("reading namespace {name}"))?;
            let Some(ns) = ns else {
                bail!("namespace {name} not found");
            };
            scanner.namespace(&NamespaceInfo::from_namespace(&ns));
        }
        names.into_iter().map(Some).collect()
    };

    let (extra, missing) = listers::extra_kinds(&client, &config.extra_kinds).await?;
    if !args.quiet {
        for kind in missing {
            eprintln!("note: extraKinds {kind} is not served by this cluster; not scanned");
        }
    }
    let resources: Vec<_> = listers::workload_kinds().into_iter().chain(extra).collect();
    let lists = Lists {
        client: &client,
        args,
        scopes: &scopes,
        resources: &resources,
    };
    if args.resolve_images {
        // A first pass for the images, so each is looked up once before any
        // workload is assessed; pages are still dropped as they are read.
        let mut wanted: Vec<PodImages> = Vec::new();
        lists
            .each(&mut progress, |object| {
                wanted.extend(scanner.images_to_look_up(object));
                Ok(())
            })
            .await?;
        if !args.quiet {
            let images: BTreeSet<&str> = wanted.iter().flat_map(|p| &p.images).map(String::as_str).collect();
            eprintln!(
                "scan: looking up {} image(s) of {} pod template(s) (at most {})",
                images.len(),
                wanted.len(),
                args.resolve_timeout
            );
        }
        let (facts, lookups) = resolve(&client, config, wanted, args.resolve_timeout).await?;
        scanner.images(facts, lookups);
    }
    lists
        .each(&mut progress, |object| {
            scanner.object(object);
            Ok(())
        })
        .await?;
    progress.finish();
    Ok(scanner.finish())
}

/// The workload lists of a scan.
struct Lists<'a> {
    client: &'a Client,
    args: &'a ScanArgs,
    scopes: &'a [Option<String>],
    resources: &'a [ApiResource],
}

impl Lists<'_> {
    /// Call `f` with every object listed, a page at a time.
    async fn each(&self, progress: &mut Progress, mut f: impl FnMut(&Value) -> Result<()>) -> Result<()> {
        for scope in self.scopes {
            let place = scope
                .as_deref()
                .map_or("all namespaces".to_string(), |n| format!("namespace {n}"));
            for resource in self.resources {
                let api: Api<DynamicObject> = match scope {
                    Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
                    None => Api::all_with(self.client.clone(), resource),
                };
                let mut params = ListParams::default().limit(self.args.chunk_size);
                if let Some(selector) = &self.args.selector {
                    params = params.labels(selector);
                }
                let what = format!("{} in {place}", resource.plural);
                listers::each_page(&api, params, &what, |page| {
                    for item in page {
                        f(&listers::object(item, resource)?)?;
                    }
                    progress.count(&resource.plural, &place, page.len());
                    Ok(())
                })
                .await?;
                progress.done(&resource.plural, &place);
            }
        }
        Ok(())
    }
}

/// Look up the images of `wanted` as the webhook would: grouped by the
/// credentials of their pods (read with the scan's client when
/// `imageLookup.pullSecrets`), each group's images once.
async fn resolve(
    client: &Client,
    config: &Config,
    wanted: Vec<PodImages>,
    overall: Span,
) -> Result<(crate::engine::ImageFacts, ImageLookups)> {
    let settings = &config.image_lookup;
    // By namespace, service account and secret names: what credentials depend on.
    let mut by_source: BTreeMap<(String, String, Vec<String>), BTreeSet<String>> = BTreeMap::new();
    for pod in wanted {
        let key = if settings.pull_secrets {
            (pod.namespace, pod.service_account, pod.pull_secrets)
        } else {
            Default::default()
        };
        by_source.entry(key).or_default().extend(pod.images);
    }
    let secrets = PullSecrets::new(client.clone());
    let mut groups = Vec::with_capacity(by_source.len());
    let until = tokio::time::Instant::now() + overall.0;
    for ((namespace, service_account, names), images) in by_source {
        let credentials = if settings.pull_secrets {
            // Bounded like the lookups: credentials not read in time are none.
            tokio::time::timeout_at(until, secrets.credentials(&namespace, &service_account, &names))
                .await
                .unwrap_or_default()
        } else {
            Credentials::default()
        };
        groups.push(Group { credentials, images });
    }
    let left = until.saturating_duration_since(tokio::time::Instant::now());
    let outcome = batch::lookup(settings, groups, left)
        .await
        .context("cannot start the image lookup")?;
    let lookups = ImageLookups {
        looked_up: outcome.looked_up,
        failed: outcome.failed,
    };
    Ok((outcome.facts, lookups))
}

/// Counts on standard error: one updating line on a terminal, a line per
/// list otherwise (CI logs), nothing with `--quiet`.
struct Progress {
    enabled: bool,
    terminal: bool,
    listed: usize,
    current: usize,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet,
            terminal: std::io::stderr().is_terminal(),
            listed: 0,
            current: 0,
        }
    }

    fn count(&mut self, what: &str, place: &str, n: usize) {
        self.listed += n;
        self.current += n;
        if self.enabled && self.terminal {
            eprint!(
                "\r\x1b[Kscan: {} objects listed ({what} in {place}: {})",
                self.listed, self.current
            );
        }
    }

    fn done(&mut self, what: &str, place: &str) {
        if self.enabled && !self.terminal {
            eprintln!("scan: {} {what} in {place}", self.current);
        }
        self.current = 0;
    }

    fn finish(&self) {
        if self.enabled && self.terminal {
            eprintln!("\r\x1b[Kscan: {} objects listed", self.listed);
        }
    }
}
