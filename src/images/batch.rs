//! Many pods' images looked up at once, outside admission (`mutate
//! --resolve-images`, `scan --resolve-images`): each distinct image once per
//! set of credentials, through the same [`Resolver`] (guard, cache,
//! `imageLookup` settings) the webhook uses.

use super::credentials::Credentials;
use super::{Failure, FailureKind, Looked, Resolver};
use crate::config::image_lookup::{ImageLookup as Settings, Span};
use crate::engine::{ImageFacts, ImageLookup};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Credential sets looked up at the same time: bounds the connections of a
/// scan of a large cluster.
const PARALLEL: usize = 8;

/// Images to look up with one set of credentials.
#[derive(Debug, Default, Clone)]
pub struct Group {
    pub credentials: Credentials,
    pub images: BTreeSet<String>,
}

/// What a batch found: the engine's facts, and the images that failed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub facts: ImageFacts,
    /// Distinct images asked for.
    pub looked_up: usize,
    /// Image and `result: why` (`timeout: timed out after 2s`), by image.
    pub failed: BTreeMap<String, String>,
}

/// Look up every group's images: each image within `imageLookup.timeout`
/// of its group's start, and everything within `overall`; what is not
/// answered by then fails as a timeout. An image looked up with several
/// credential sets counts as found when any of them found it.
pub async fn lookup(settings: &Settings, groups: Vec<Group>, overall: Duration) -> std::io::Result<Outcome> {
    if groups.iter().all(|g| g.images.is_empty()) {
        return Ok(Outcome::default());
    }
    let resolver = Resolver::new(settings.clone())?;
    Ok(lookup_with(&resolver, groups, overall).await)
}

/// [`lookup`] with a resolver of the caller's (tests trust their own CA).
pub async fn lookup_with(resolver: &Resolver, groups: Vec<Group>, overall: Duration) -> Outcome {
    let per_image = resolver.settings().timeout.0;
    let end = tokio::time::Instant::now() + overall;
    let looked: Vec<Vec<Looked>> = futures_util::stream::iter(groups)
        .map(|group| async move {
            let now = tokio::time::Instant::now();
            if now >= end {
                return group.images.iter().map(|i| out_of_time(i, overall)).collect();
            }
            let (deadline, budget) = if now + per_image <= end {
                (now + per_image, per_image)
            } else {
                (end, overall)
            };
            resolver
                .lookup_until(
                    group.images.iter().map(String::as_str),
                    &group.credentials,
                    deadline,
                    budget,
                )
                .await
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    merge(looked.into_iter().flatten())
}

fn out_of_time(image: &str, overall: Duration) -> Looked {
    Looked {
        image: image.to_string(),
        answer: Err(Failure {
            kind: FailureKind::Timeout,
            message: format!("not started within the overall budget of {}", Span(overall)),
        }),
        cached: false,
        elapsed: Duration::ZERO,
    }
}

fn merge(looked: impl Iterator<Item = Looked>) -> Outcome {
    let mut outcome = Outcome::default();
    let mut all: BTreeMap<String, Looked> = BTreeMap::new();
    for l in looked {
        // A success with some credentials beats a failure with others.
        match all.get(&l.image) {
            Some(seen) if seen.answer.is_ok() || l.answer.is_err() => {}
            _ => {
                all.insert(l.image.clone(), l);
            }
        }
    }
    outcome.looked_up = all.len();
    for l in all.values() {
        if let Err(f) = &l.answer {
            outcome
                .failed
                .insert(l.image.clone(), format!("{}: {}", l.result(), f.message));
        }
    }
    outcome.facts = super::facts(all.into_values().collect());
    outcome
}

impl Outcome {
    /// Whether `image` was found (not failed, and asked for).
    pub fn found(&self, image: &str) -> bool {
        matches!(self.facts.get(image), Some(ImageLookup::Found(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn looked(image: &str, answer: Result<&str, FailureKind>) -> Looked {
        Looked {
            image: image.to_string(),
            answer: answer.map(crate::engine::ImageConfig::user).map_err(|kind| Failure {
                kind,
                message: "why".to_string(),
            }),
            cached: false,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn a_success_with_any_credentials_wins() {
        let outcome = merge(
            [
                looked("a", Err(FailureKind::Failed)),
                looked("a", Ok("1000")),
                looked("a", Err(FailureKind::Timeout)),
                looked("b", Err(FailureKind::Timeout)),
                looked("b", Err(FailureKind::Refused)),
            ]
            .into_iter(),
        );
        assert_eq!(outcome.looked_up, 2);
        assert!(outcome.found("a"));
        assert!(!outcome.found("b"));
        assert_eq!(
            outcome.failed,
            BTreeMap::from([("b".to_string(), "timeout: why".to_string())])
        );
    }
}
