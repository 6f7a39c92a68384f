//! Which image tags a subscription considers and in what order: Kargo's selection strategies
//! (Kargo's `api/v1alpha1/warehouse_types.go`) as pure functions over tag lists, so the
//! registry code only fetches.

use crate::model::kargo::ImageSubscription;
use crate::semver::{Constraint, Version};
use regex::Regex;
use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageStrategy {
    SemVer,
    Lexical,
    Digest,
    NewestBuild,
}

/// A subscription's selection rules, compiled.
#[derive(Clone, Debug)]
pub struct ImagePolicy {
    pub strategy: ImageStrategy,
    pub constraint: Option<Constraint>,
    /// Digest strategy: the mutable tag followed.
    pub digest_tag: Option<String>,
    pub strict: bool,
    pub tags: TagFilter,
    pub limit: usize,
    pub platform: Option<String>,
    /// Trust cached metadata by tag (tags are immutable); never applies to Digest.
    pub cache_by_tag: bool,
}

pub const DEFAULT_DISCOVERY_LIMIT: usize = 20;

/// How many candidates a subscription keeps: `discoveryLimit`, default 20, within 1..=100 (as
/// Kargo clamps it).
pub fn discovery_limit(requested: Option<i64>) -> usize {
    requested.map_or(DEFAULT_DISCOVERY_LIMIT, |n| n.clamp(1, 100) as usize)
}

/// Which tags a subscription lets through: Kargo's `allowTagsRegexes` / `ignoreTagsRegexes`
/// and the deprecated `allowTags` (one more allow regex) / `ignoreTags` (exact names). The same
/// rules apply to image tags and git tags.
#[derive(Clone, Debug, Default)]
pub struct TagFilter {
    allow: Vec<Regex>,
    ignore: Vec<Regex>,
    ignore_exact: Vec<String>,
}

impl TagFilter {
    /// Compiles the four fields; the error names the regex that does not compile.
    pub fn new(
        allow_tags: Option<&str>,
        allow_tags_regexes: &[String],
        ignore_tags: &[String],
        ignore_tags_regexes: &[String],
    ) -> Result<TagFilter, String> {
        let compile = |list: &mut dyn Iterator<Item = &str>| -> Result<Vec<Regex>, String> {
            list.map(|r| Regex::new(r).map_err(|e| format!("invalid regex {r:?}: {e}")))
                .collect()
        };
        Ok(TagFilter {
            allow: compile(&mut allow_tags_regexes.iter().map(String::as_str).chain(allow_tags))?,
            ignore: compile(&mut ignore_tags_regexes.iter().map(String::as_str))?,
            ignore_exact: ignore_tags.to_vec(),
        })
    }

    /// Whether a tag passes: it matches an allow regex (when there are any) and no ignore rule.
    pub fn allows(&self, tag: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|r| r.is_match(tag)))
            && !self.ignore.iter().any(|r| r.is_match(tag))
            && !self.ignore_exact.iter().any(|t| t == tag)
    }
}

impl ImagePolicy {
    /// Compiles a subscription; the error says which field is wrong (validation reports the
    /// same problems with positions before discovery ever runs).
    pub fn new(sub: &ImageSubscription) -> Result<ImagePolicy, String> {
        let strategy = match sub.image_selection_strategy.as_deref().unwrap_or("") {
            "" | "SemVer" => ImageStrategy::SemVer,
            "Lexical" => ImageStrategy::Lexical,
            "Digest" => ImageStrategy::Digest,
            "NewestBuild" => ImageStrategy::NewestBuild,
            other => return Err(format!("unknown imageSelectionStrategy {other:?}")),
        };
        let raw_constraint = sub
            .constraint
            .as_deref()
            .or(sub.semver_constraint.as_deref())
            .filter(|c| !c.trim().is_empty());
        let (constraint, digest_tag) = match strategy {
            ImageStrategy::SemVer => (
                raw_constraint
                    .map(Constraint::parse)
                    .transpose()
                    .map_err(|e| e.to_string())?,
                None,
            ),
            ImageStrategy::Digest => (
                None,
                Some(
                    raw_constraint
                        .ok_or("the Digest strategy needs `constraint`: the tag to follow")?
                        .to_string(),
                ),
            ),
            _ => (None, None),
        };
        Ok(ImagePolicy {
            strategy,
            constraint,
            digest_tag,
            strict: sub.strict_semvers.unwrap_or(true),
            tags: TagFilter::new(
                sub.allow_tags.as_deref(),
                &sub.allow_tags_regexes,
                &sub.ignore_tags,
                &sub.ignore_tags_regexes,
            )?,
            limit: discovery_limit(sub.discovery_limit),
            platform: sub.platform.clone().filter(|p| !p.is_empty()),
            cache_by_tag: sub.cache_by_tag == Some(true) && strategy != ImageStrategy::Digest,
        })
    }

    /// Whether the allow/ignore filters let a tag through.
    pub fn allowed(&self, tag: &str) -> bool {
        self.tags.allows(tag)
    }

    /// The candidate tags, best first, at most `limit` of them. For NewestBuild this is every
    /// allowed tag (their build times decide, see [`rank_by_created`]); for Digest, the tag
    /// followed.
    pub fn candidates(&self, tags: &[String]) -> Vec<String> {
        self.candidates_upto(tags, self.limit)
    }

    /// Like [`ImagePolicy::candidates`], but at most `n` (discovery asks for more than
    /// `limit` when listed tags turn out to be missing, to move on to the next ones).
    pub fn candidates_upto(&self, tags: &[String], n: usize) -> Vec<String> {
        match self.strategy {
            ImageStrategy::SemVer => newest_versions(
                tags.iter().filter(|t| self.allowed(t)),
                |t| t.as_str(),
                self.strict,
                self.constraint.as_ref(),
                n,
            )
            .into_iter()
            .cloned()
            .collect(),
            ImageStrategy::Lexical => {
                let mut list: Vec<&String> = tags.iter().filter(|t| self.allowed(t)).collect();
                best_n(&mut list, n, |a, b| b.cmp(a));
                list.into_iter().cloned().collect()
            }
            ImageStrategy::Digest => self.digest_tag.iter().filter(|t| tags.contains(t)).cloned().collect(),
            ImageStrategy::NewestBuild => tags.iter().filter(|t| self.allowed(t)).cloned().collect(),
        }
    }
}

/// Kargo's SemVer selection, the one rule for image tags, git tags and chart versions
/// (Kargo's pkg/image/semver_selector.go, pkg/controller/git/commit/semver_selector.go and
/// pkg/helm/chart/base_selector.go): the items whose name reads as a version (`strict`: all of
/// major, minor and patch) that the constraint allows, newest first, at most `n`. Prereleases
/// are Masterminds' rule: a constraint allows one only when it names a prerelease itself;
/// without a constraint every version counts. Equal versions (`1.0` and `1.0.0`, `v1.2.3` and
/// `1.2.3`) are ordered by name, greatest first, so the order never depends on the listing's.
pub fn newest_versions<T>(
    items: impl IntoIterator<Item = T>,
    name: impl Fn(&T) -> &str,
    strict: bool,
    constraint: Option<&Constraint>,
    n: usize,
) -> Vec<T> {
    let mut versions: Vec<(Version, T)> = items
        .into_iter()
        .filter_map(|item| Version::parse(name(&item), strict).ok().map(|v| (v, item)))
        .filter(|(v, _)| constraint.is_none_or(|c| c.matches(v)))
        .collect();
    best_n(&mut versions, n, |(a, _), (b, _)| {
        b.cmp(a).then_with(|| b.original.cmp(&a.original))
    });
    versions.into_iter().map(|(_, item)| item).collect()
}

/// Keeps the first `n` items of `items` in `order`, sorted: a partial selection, then a sort of
/// those `n` only (a repository lists tens of thousands of tags; discovery keeps twenty).
fn best_n<T>(items: &mut Vec<T>, n: usize, order: impl Fn(&T, &T) -> Ordering) {
    if n == 0 {
        items.clear();
        return;
    }
    if items.len() > n {
        items.select_nth_unstable_by(n - 1, &order);
        items.truncate(n);
    }
    items.sort_unstable_by(order);
}

/// Whether a listed tag can be an OCI tag at all (the distribution spec's
/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`): a registry that lists anything else is broken or
/// hostile, and requesting it would only fail.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    (1..=128).contains(&b.len())
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// NewestBuild ordering: newest build time first (RFC 3339 strings compare in time order when
/// normalised to UTC `Z`), tags without a time last, ties by tag; at most `limit`.
pub fn rank_by_created(mut items: Vec<(String, Option<String>)>, limit: usize) -> Vec<(String, Option<String>)> {
    items.sort_by(|(ta, ca), (tb, cb)| match (ca, cb) {
        (Some(a), Some(b)) => b.cmp(a).then_with(|| tb.cmp(ta)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => tb.cmp(ta),
    });
    items.truncate(limit);
    items
}

/// One `includePaths` / `excludePaths` entry: a path (and everything under it), `glob:` or
/// `regex:` (`regexp:`), as Kargo reads them.
enum PathSelector {
    Exact(String),
    Glob(crate::glob::Glob),
    Regex(Regex),
}

impl PathSelector {
    fn parse(s: &str) -> Result<PathSelector, String> {
        if let Some(r) = s.strip_prefix("regex:").or_else(|| s.strip_prefix("regexp:")) {
            Regex::new(r)
                .map(PathSelector::Regex)
                .map_err(|e| format!("invalid path regex {r:?}: {e}"))
        } else if let Some(g) = s.strip_prefix("glob:") {
            crate::glob::Glob::new(g)
                .map(PathSelector::Glob)
                .map_err(|e| e.to_string())
        } else {
            Ok(PathSelector::Exact(s.trim_end_matches('/').to_string()))
        }
    }

    /// An exact selector matches the path or anything under it (a directory).
    fn matches(&self, path: &str) -> bool {
        match self {
            PathSelector::Exact(p) => path == p || path.starts_with(&format!("{p}/")),
            PathSelector::Glob(g) => g.matches(path),
            PathSelector::Regex(r) => r.is_match(path),
        }
    }
}

/// A git subscription's `includePaths` and `excludePaths`: which commits count (discovery)
/// and which pushes wake the Warehouse (webhooks).
pub struct PathFilter {
    include: Vec<PathSelector>,
    exclude: Vec<PathSelector>,
}

impl PathFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<PathFilter, String> {
        let parse = |list: &[String]| {
            list.iter()
                .map(|p| PathSelector::parse(p))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(PathFilter {
            include: parse(include)?,
            exclude: parse(exclude)?,
        })
    }

    /// Whether any paths are filtered at all.
    pub fn is_set(&self) -> bool {
        !self.include.is_empty() || !self.exclude.is_empty()
    }

    /// Kargo: a change counts when at least one changed path is included and not excluded.
    pub fn allows(&self, changed: &[String]) -> bool {
        changed.iter().any(|p| {
            (self.include.is_empty() || self.include.iter().any(|s| s.matches(p)))
                && !self.exclude.iter().any(|s| s.matches(p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(yaml: &[(&str, &str)]) -> ImageSubscription {
        let mut s = ImageSubscription {
            repo_url: "ghcr.io/acme/app".into(),
            ..Default::default()
        };
        for (k, v) in yaml {
            match *k {
                "strategy" => s.image_selection_strategy = Some(v.to_string()),
                "constraint" => s.constraint = Some(v.to_string()),
                "allow" => s.allow_tags_regexes.push(v.to_string()),
                "ignore" => s.ignore_tags_regexes.push(v.to_string()),
                "strict" => s.strict_semvers = Some(*v == "true"),
                "limit" => s.discovery_limit = Some(v.parse().unwrap()),
                _ => unreachable!(),
            }
        }
        s
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tag_filter_combines_the_current_and_deprecated_fields() {
        let f = TagFilter::new(Some("^v2"), &tags(&["^v1"]), &tags(&["v1.0.1"]), &tags(&["-rc"])).unwrap();
        assert!(
            f.allows("v1.0.0") && f.allows("v2.0.0"),
            "allowTags adds an allow regex"
        );
        assert!(!f.allows("v3.0.0"), "not allowed by any regex");
        assert!(!f.allows("v1.0.1"), "ignoreTags is an exact name");
        assert!(f.allows("v1.0.10"), "ignoreTags is not a prefix or regex");
        assert!(!f.allows("v2.0.0-rc.1"), "ignoreTagsRegexes");
        assert!(TagFilter::default().allows("anything"));
        let err = TagFilter::new(None, &[], &[], &tags(&["("])).unwrap_err();
        assert!(err.contains("invalid regex \"(\""), "{err}");
        assert_eq!(discovery_limit(None), 20);
        assert_eq!(discovery_limit(Some(0)), 1);
        assert_eq!(discovery_limit(Some(500)), 100);
    }

    #[test]
    fn semver_picks_the_highest_matching_version() {
        let all = tags(&[
            "1.0.0",
            "1.10.0",
            "1.9.0",
            "2.0.0",
            "v1.11.0",
            "latest",
            "1.12.0-rc.1",
            "abc1234",
            "1.2",
        ]);
        let p = ImagePolicy::new(&sub(&[("constraint", "^1.0.0")])).unwrap();
        assert_eq!(p.candidates(&all), tags(&["v1.11.0", "1.10.0", "1.9.0", "1.0.0"]));
        let loose = ImagePolicy::new(&sub(&[("constraint", "^1.0.0"), ("strict", "false")])).unwrap();
        assert!(
            loose.candidates(&all).contains(&"1.2".to_string()),
            "non-strict accepts 1.2"
        );
        let pre = ImagePolicy::new(&sub(&[("constraint", ">=1.12.0-0")])).unwrap();
        assert_eq!(pre.candidates(&all), tags(&["2.0.0", "1.12.0-rc.1"]));
        let none = ImagePolicy::new(&sub(&[])).unwrap();
        assert_eq!(none.candidates(&all)[0], "2.0.0", "no constraint: the highest version");
    }

    #[test]
    fn filters_limits_and_lexical_order() {
        let all = tags(&["main-003", "main-010", "main-002", "dev-999", "main-001"]);
        let p = ImagePolicy::new(&sub(&[
            ("strategy", "Lexical"),
            ("allow", "^main-"),
            ("ignore", "-003$"),
            ("limit", "2"),
        ]))
        .unwrap();
        assert_eq!(p.candidates(&all), tags(&["main-010", "main-002"]));
        let digest = ImagePolicy::new(&sub(&[("strategy", "Digest"), ("constraint", "latest")])).unwrap();
        assert_eq!(digest.candidates(&tags(&["1.0", "latest"])), tags(&["latest"]));
        assert!(
            digest.candidates(&tags(&["1.0"])).is_empty(),
            "the followed tag is missing"
        );
        assert!(ImagePolicy::new(&sub(&[("strategy", "Digest")])).is_err());
        assert!(ImagePolicy::new(&sub(&[("strategy", "Newest")])).is_err());
    }

    #[test]
    fn tag_names_follow_the_distribution_spec() {
        for good in ["latest", "1.2.3", "_x", "v1.2.3-rc.1_b", &"a".repeat(128)] {
            assert!(is_valid_tag(good), "{good:?}");
        }
        let long = format!("9.9.9-{}", "a".repeat(5000));
        for bad in ["", ".x", "-x", "1.2.3+build", "a/b", "é", &"a".repeat(129), &long] {
            assert!(!is_valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn one_semver_order_for_tags_and_versions() {
        let all = tags(&[
            "1.0",
            "1.0.0",
            "v1.0.0",
            "2.0.0-rc.1",
            "1.1.0",
            "latest",
            "0.9.0+build.1",
        ]);
        let newest = |strict, constraint: Option<&str>| {
            let c = constraint.map(|c| Constraint::parse(c).unwrap());
            newest_versions(all.iter(), |t| t.as_str(), strict, c.as_ref(), usize::MAX)
                .into_iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            newest(false, None),
            ["2.0.0-rc.1", "1.1.0", "v1.0.0", "1.0.0", "1.0", "0.9.0+build.1"],
            "no constraint: every version, prereleases too; equal versions by name"
        );
        assert_eq!(
            newest(true, None),
            ["2.0.0-rc.1", "1.1.0", "v1.0.0", "1.0.0", "0.9.0+build.1"],
            "strict: all three numbers"
        );
        assert_eq!(
            newest(true, Some(">=1.0.0")),
            ["1.1.0", "v1.0.0", "1.0.0"],
            "a constraint without a prerelease excludes them"
        );
        assert_eq!(newest(true, Some(">=1.1.0-0")), ["2.0.0-rc.1", "1.1.0"]);
        let first_two = newest_versions(all.iter(), |t| t.as_str(), true, None, 2);
        assert_eq!(first_two, [&all[3], &all[4]], "at most n, the newest");
        // Items other than tags: the name is read from each.
        let items = [("a", 1), ("3.0.0", 2), ("2.0.0", 3)];
        assert_eq!(
            newest_versions(items, |i| i.0, true, None, 10),
            [("3.0.0", 2), ("2.0.0", 3)]
        );
    }

    #[test]
    fn more_candidates_than_the_limit_on_request() {
        let all: Vec<String> = (0..50).map(|i| format!("1.0.{i}")).collect();
        let p = ImagePolicy::new(&sub(&[("limit", "3")])).unwrap();
        assert_eq!(p.candidates(&all), tags(&["1.0.49", "1.0.48", "1.0.47"]));
        assert_eq!(p.candidates_upto(&all, 5)[3..], tags(&["1.0.46", "1.0.45"]));
        assert_eq!(p.candidates_upto(&all, 500).len(), 50);
        assert!(p.candidates_upto(&all, 0).is_empty());
    }

    #[test]
    fn newest_build_orders_by_created() {
        let ranked = rank_by_created(
            vec![
                ("a".into(), Some("2026-01-01T00:00:00Z".into())),
                ("b".into(), None),
                ("c".into(), Some("2026-03-01T00:00:00Z".into())),
                ("d".into(), Some("2026-02-01T00:00:00Z".into())),
            ],
            3,
        );
        let order: Vec<&str> = ranked.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(order, ["c", "d", "a"]);
    }
}
