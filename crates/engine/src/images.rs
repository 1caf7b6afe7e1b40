//! What the images say about who they run as, as the resolver found it.
//!
//! The engine never looks an image up: `identity: auto` reads these facts,
//! filled in beforehand by whoever may do I/O (the webhook, or `mutate
//! --resolve-images`). Empty facts mean nothing was looked up.

use serde::Serialize;
use std::collections::BTreeMap;

/// What an image's configuration (`config.User`) says about who it runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageUser {
    /// A numeric uid other than 0, with the numeric group if USER names one
    /// ("1001" or "1001:1001").
    NonRoot { uid: i64, gid: Option<i64> },
    /// USER empty, "root", "0", "0:<anything>".
    Root,
    /// A user (or group) by name: only the image's /etc/passwd knows its uid.
    Named(String),
}

impl ImageUser {
    /// Read `config.User` as the container runtime does: `user[:group]`,
    /// each a number or a name, surrounding blanks ignored.
    pub fn parse(user: &str) -> ImageUser {
        let user = user.trim();
        let (name, group) = match user.split_once(':') {
            Some((u, g)) => (u.trim(), Some(g.trim())),
            None => (user, None),
        };
        if name.is_empty() || name == "root" || name == "0" {
            return ImageUser::Root;
        }
        let Some(uid) = id(name) else {
            return ImageUser::Named(user.to_string());
        };
        match group {
            None | Some("") => ImageUser::NonRoot { uid, gid: None },
            Some(g) => match id(g) {
                Some(gid) => ImageUser::NonRoot { uid, gid: Some(gid) },
                // A group by name: the uid is known, its group only in /etc/group.
                None => ImageUser::Named(user.to_string()),
            },
        }
    }

    /// How the report names it: `1001`, `1001:1001`, `root`, `"nginx"`.
    pub fn describe(&self) -> String {
        match self {
            ImageUser::NonRoot { uid, gid: None } => uid.to_string(),
            ImageUser::NonRoot { uid, gid: Some(gid) } => format!("{uid}:{gid}"),
            ImageUser::Root => "root".to_string(),
            ImageUser::Named(name) => format!("{name:?}"),
        }
    }
}

/// A Kubernetes user or group ID: 0 to 2147483647 (what the API server
/// accepts in `runAsUser`). Anything else is a name to the runtime.
fn id(s: &str) -> Option<i64> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|v| (0..=i64::from(i32::MAX)).contains(v))
}

/// One image's lookup as the resolver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ImageLookup {
    Found(ImageUser),
    /// Why, in our words, e.g. "registry.example.com: timed out after 2s".
    Failed(String),
}

/// Lookups by the image reference exactly as written in `container.image`.
/// Empty = nothing looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageFacts(BTreeMap<String, ImageLookup>);

impl ImageFacts {
    pub fn new() -> ImageFacts {
        ImageFacts::default()
    }

    pub fn insert(&mut self, image: impl Into<String>, lookup: ImageLookup) {
        self.0.insert(image.into(), lookup);
    }

    pub fn get(&self, image: &str) -> Option<&ImageLookup> {
        self.0.get(image)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &ImageLookup)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl FromIterator<(String, ImageLookup)> for ImageFacts {
    fn from_iter<I: IntoIterator<Item = (String, ImageLookup)>>(iter: I) -> Self {
        ImageFacts(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn named(s: &str) -> ImageUser {
        ImageUser::Named(s.to_string())
    }

    #[rstest]
    #[case::empty("", ImageUser::Root)]
    #[case::blank("  ", ImageUser::Root)]
    #[case::zero("0", ImageUser::Root)]
    #[case::root("root", ImageUser::Root)]
    #[case::zero_zero("0:0", ImageUser::Root)]
    #[case::zero_any_group("0:web", ImageUser::Root)]
    #[case::root_group("root:1001", ImageUser::Root)]
    #[case::uid("1001", ImageUser::NonRoot { uid: 1001, gid: None })]
    #[case::uid_gid("1001:1001", ImageUser::NonRoot { uid: 1001, gid: Some(1001) })]
    #[case::uid_root_group("1001:0", ImageUser::NonRoot { uid: 1001, gid: Some(0) })]
    #[case::uid_empty_group("1001:", ImageUser::NonRoot { uid: 1001, gid: None })]
    #[case::padded(" 12 ", ImageUser::NonRoot { uid: 12, gid: None })]
    #[case::uid_named_group("1001:web", named("1001:web"))]
    #[case::name("nginx", named("nginx"))]
    #[case::name_group("nginx:nginx", named("nginx:nginx"))]
    #[case::max_uid("2147483647", ImageUser::NonRoot { uid: 2147483647, gid: None })]
    #[case::uid_out_of_range("2147483648", named("2147483648"))]
    #[case::huge("99999999999999999999999", named("99999999999999999999999"))]
    #[case::negative("-1", named("-1"))]
    #[case::plus_sign("+5", named("+5"))]
    #[case::gid_out_of_range("1001:4294967296", named("1001:4294967296"))]
    #[case::negative_gid("1001:-1", named("1001:-1"))]
    fn parses_config_user(#[case] user: &str, #[case] expected: ImageUser) {
        assert_eq!(ImageUser::parse(user), expected);
    }

    #[test]
    fn facts_are_keyed_by_the_reference_as_written() {
        let mut facts = ImageFacts::default();
        assert!(facts.is_empty());
        facts.insert("nginx:1.27", ImageLookup::Found(ImageUser::Root));
        assert_eq!(facts.get("nginx:1.27"), Some(&ImageLookup::Found(ImageUser::Root)));
        assert_eq!(facts.get("docker.io/library/nginx:1.27"), None);
        assert_eq!(facts.len(), 1);
    }
}
