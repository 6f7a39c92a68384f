//! Freight identity: Kargo's content-derived ID and human-friendly aliases.
//!
//! The ID is Kargo's `GenerateFreightID` (its `pkg/api/freight.go`), so Freight minted by barge and by Kargo
//! for the same artifacts has the same name: SHA-1 over the origin and the sorted artifact
//! parts, where an image part carries both tag and digest (a re-pushed tag and a re-tagged
//! digest are both new Freight) and a commit part carries its tag (rc → GA is new Freight).
//! The URL normalizers are ports of Kargo's `pkg/urls`, tested with Kargo's own tables.

use crate::model::kargo::{Chart, FreightOrigin, GitCommit, Image};
use regex::Regex;
use sha1::{Digest, Sha1};
use std::sync::LazyLock;

/// The artifacts of one piece of Freight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contents<'a> {
    pub commits: &'a [GitCommit],
    pub images: &'a [Image],
    pub charts: &'a [Chart],
}

/// Kargo's Freight ID: 40 hex characters.
pub fn freight_id(origin: &FreightOrigin, contents: &Contents<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in contents.commits {
        let mut part = match c.tag.as_deref().filter(|t| !t.is_empty()) {
            Some(tag) => format!("{}:{}:{}", normalize_git(&c.repo_url), tag, c.id),
            None => format!("{}:{}", normalize_git(&c.repo_url), c.id),
        };
        append_subscription(&mut part, c.subscription_name.as_deref());
        parts.push(part);
    }
    for i in contents.images {
        let mut part = format!("{}:{}@{}", i.repo_url, i.tag, i.digest);
        append_subscription(&mut part, i.subscription_name.as_deref());
        parts.push(part);
    }
    for h in contents.charts {
        let mut part = format!(
            "{}:{}",
            path_join(&normalize_chart(&h.repo_url), h.name.as_deref().unwrap_or("")),
            h.version
        );
        append_subscription(&mut part, h.subscription_name.as_deref());
        parts.push(part);
    }
    parts.sort();
    let input = format!("{}/{}:{}", origin.kind, origin.name, parts.join("|"));
    let digest = Sha1::digest(input.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A named subscription's name is part of the fingerprint (adding a name re-mints Freight once).
fn append_subscription(part: &mut String, name: Option<&str>) {
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        part.push(':');
        part.push_str(n);
    }
}

/// Go's `path.Join` for two elements, as used for chart parts (the name may be empty).
fn path_join(a: &str, b: &str) -> String {
    let joined = match (a.is_empty(), b.is_empty()) {
        (true, true) => return String::new(),
        (true, false) => b.to_string(),
        (false, true) => a.to_string(),
        (false, false) => format!("{a}/{b}"),
    };
    clean_path(&joined)
}

/// Go's `path.Clean` (lexical: collapses `//`, `.`, `..`; no trailing slash).
fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}

fn is_space(c: char) -> bool {
    // Go: unicode.IsSpace(r) || !unicode.IsPrint(r). Format characters such as the BOM and
    // zero-width space are not printable.
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{feff}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{00ad}'
        )
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn has_internal_spaces(repo: &str) -> bool {
    let decoded = percent_decode(repo).unwrap_or_else(|| repo.to_string());
    let trimmed = decoded.trim_matches(is_space);
    trimmed.chars().any(is_space)
}

/// Kargo's `urls.NormalizeGit`: lowercase, no credentials (except ssh user), no `.git`, no
/// trailing slash, scp-style `git@host:path` as `ssh://git@host/path`.
pub fn normalize_git(repo: &str) -> String {
    if has_internal_spaces(repo) {
        return repo.to_string();
    }
    let orig = repo;
    let repo: String = repo.chars().filter(|c| !is_space(*c)).collect();
    if repo.is_empty() {
        return orig.to_string();
    }
    if ["http://", "https://", "ssh://"].iter().any(|p| repo.starts_with(p)) {
        let scheme_end = repo.find("://").map_or(0, |i| i + 3);
        let rest = &repo[scheme_end..];
        // Query parameters are not permitted: leave such URLs alone.
        if rest.split_once('?').is_some_and(|(_, q)| !q.is_empty()) {
            return orig.to_string();
        }
        let rest = rest.split('?').next().unwrap_or(rest);
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let authority = if repo.starts_with("ssh://") {
            authority
        } else {
            authority.rsplit_once('@').map_or(authority, |(_, host)| host)
        };
        let path = path.strip_suffix('/').unwrap_or(path);
        let path = path.strip_suffix(".git").unwrap_or(path);
        return format!("{}{}{}", &repo[..scheme_end], authority, path).to_lowercase();
    }
    static SCP: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^((?:[0-9A-Za-z_-]+@)?[0-9A-Za-z_-]+(?:\.[0-9A-Za-z_-]+)*)(?::(.*))?$").expect("valid regex")
    });
    let Some(caps) = SCP.captures(&repo) else {
        return orig.to_string();
    };
    let user_host = caps.get(1).map_or("", |m| m.as_str());
    let raw_path = caps.get(2).map_or("", |m| m.as_str());
    // url.Parse(path).String(): an empty authority (`///x`) is dropped, a query kept.
    let (path_part, suffix) = match raw_path.find(['?', '#']) {
        Some(i) => (&raw_path[..i], &raw_path[i..]),
        None => (raw_path, ""),
    };
    let (host_prefix, path_part) = match path_part.strip_prefix("//") {
        Some(after) => {
            let i = after.find('/').unwrap_or(after.len());
            let host = &after[..i];
            (
                if host.is_empty() {
                    String::new()
                } else {
                    format!("//{host}")
                },
                &after[i..],
            )
        }
        None => (String::new(), path_part),
    };
    let path_part = path_part.strip_suffix('/').unwrap_or(path_part);
    let path_part = path_part.strip_suffix(".git").unwrap_or(path_part);
    let path = format!("{host_prefix}{path_part}{suffix}");
    if path.is_empty() {
        format!("ssh://{user_host}").to_lowercase()
    } else {
        format!("ssh://{user_host}/{path}").to_lowercase()
    }
}

/// Kargo's `urls.NormalizeImage`: Docker Hub's many spellings become `repo` / `org/repo`;
/// other registries are returned as `registry/repo`.
pub fn normalize_image(repo: &str) -> String {
    let decoded = percent_decode(repo).unwrap_or_else(|| repo.to_string());
    let clean: String = decoded.chars().filter(|c| !is_space(*c)).collect();
    if clean.contains("://") || clean.is_empty() {
        return clean;
    }
    // Drop a tag or digest, as go-containerregistry's ParseReference would.
    let without_digest = clean.split('@').next().unwrap_or(&clean);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let name = match without_digest[last_slash..].find(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    };
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => (first, rest),
        _ => ("index.docker.io", name),
    };
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            path.strip_prefix("library/").unwrap_or(path).to_string()
        }
        _ => format!("{registry}/{path}"),
    }
}

/// Kargo's `urls.NormalizeChart`: lowercase, no `oci://`, Docker Hub spellings unified.
pub fn normalize_chart(repo: &str) -> String {
    let lower = repo.trim().to_lowercase();
    normalize_image(lower.strip_prefix("oci://").unwrap_or(&lower))
}

/// Mints Freight from one discovery: the best (first) candidate of every subscription, as
/// Kargo does. `taken` says which aliases the project already uses.
pub fn mint(
    origin: FreightOrigin,
    commits: Vec<GitCommit>,
    images: Vec<Image>,
    charts: Vec<Chart>,
    taken: &dyn Fn(&str) -> bool,
) -> crate::model::kargo::Freight {
    let id = freight_id(
        &origin,
        &Contents {
            commits: &commits,
            images: &images,
            charts: &charts,
        },
    );
    let alias = alias(&id, taken);
    crate::model::kargo::Freight {
        api_version: crate::model::KARGO_API.to_string(),
        kind: "Freight".to_string(),
        metadata: crate::model::ObjectMeta {
            name: id,
            ..Default::default()
        },
        alias: Some(alias),
        origin: Some(origin),
        commits,
        images,
        charts,
        ..Default::default()
    }
}

const ADJECTIVES: &[&str] = &[
    "able", "amber", "ample", "azure", "bold", "brave", "breezy", "bright", "brisk", "calm", "candid", "cheery",
    "chill", "civic", "clever", "cosmic", "crisp", "curious", "daring", "dapper", "dreamy", "eager", "early",
    "earnest", "epic", "fancy", "fearless", "festive", "fluffy", "fond", "frank", "fresh", "friendly", "frosty",
    "gentle", "giddy", "glad", "gleaming", "golden", "grand", "happy", "hardy", "hearty", "honest", "humble", "jolly",
    "jovial", "keen", "kind", "lively", "loyal", "lucid", "lucky", "lunar", "mellow", "merry", "mighty", "modest",
    "neat", "nimble", "noble", "orderly", "patient", "peppy", "plucky", "polite", "proud", "quick", "quiet", "radiant",
    "rapid", "ready", "regal", "robust", "rosy", "rustic", "serene", "sharp", "shiny", "silent", "silver", "sleek",
    "smooth", "snappy", "solar", "sparkly", "spry", "steady", "stellar", "sturdy", "sunny", "swift", "tidy", "trusty",
    "upbeat", "valiant", "vivid", "warm", "wise", "witty", "zesty",
];

const ANIMALS: &[&str] = &[
    "albatross",
    "alpaca",
    "badger",
    "beaver",
    "bison",
    "bobcat",
    "buffalo",
    "camel",
    "caribou",
    "cheetah",
    "chipmunk",
    "cobra",
    "condor",
    "corgi",
    "cougar",
    "coyote",
    "crane",
    "dingo",
    "dolphin",
    "donkey",
    "eagle",
    "egret",
    "elk",
    "falcon",
    "ferret",
    "finch",
    "flamingo",
    "fox",
    "gazelle",
    "gecko",
    "gibbon",
    "giraffe",
    "gopher",
    "heron",
    "hippo",
    "husky",
    "ibex",
    "iguana",
    "impala",
    "jackal",
    "jaguar",
    "kestrel",
    "kiwi",
    "koala",
    "lemur",
    "leopard",
    "llama",
    "lynx",
    "macaw",
    "magpie",
    "manatee",
    "marmot",
    "meerkat",
    "mink",
    "moose",
    "narwhal",
    "newt",
    "ocelot",
    "okapi",
    "orca",
    "osprey",
    "otter",
    "owl",
    "panda",
    "panther",
    "parrot",
    "pelican",
    "penguin",
    "puffin",
    "puma",
    "quokka",
    "rabbit",
    "raccoon",
    "raven",
    "reindeer",
    "robin",
    "salmon",
    "seal",
    "shrew",
    "sparrow",
    "squirrel",
    "stork",
    "swan",
    "tapir",
    "tiger",
    "toucan",
    "turtle",
    "vulture",
    "walrus",
    "weasel",
    "whale",
    "wolf",
    "wombat",
    "yak",
    "zebra",
];

/// A `<adjective>-<animal>` alias for Freight, unique among `taken`. Derived from the ID, so the
/// same Freight gets the same alias in every store; a collision moves on to the next pair, and
/// after every pair is used a numeric suffix keeps aliases unique.
/// Whether a user-chosen alias is usable: Kargo keeps aliases in a label, so at most 63
/// lowercase letters, digits and '-', starting with a letter and not ending with '-'.
pub fn valid_alias(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 63
        && a.starts_with(|c: char| c.is_ascii_lowercase())
        && !a.ends_with('-')
        && a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub fn alias(id: &str, taken: &dyn Fn(&str) -> bool) -> String {
    let seed = Sha1::digest(id.as_bytes());
    let start = u64::from_be_bytes(seed[..8].try_into().expect("8 bytes"));
    let pairs = (ADJECTIVES.len() * ANIMALS.len()) as u64;
    for round in 0u64.. {
        for step in 0..pairs {
            let n = (start.wrapping_add(step)) % pairs;
            let adjective = ADJECTIVES[(n / ANIMALS.len() as u64) as usize];
            let animal = ANIMALS[(n % ANIMALS.len() as u64) as usize];
            let candidate = if round == 0 {
                format!("{adjective}-{animal}")
            } else {
                format!("{adjective}-{animal}-{}", round + 1)
            };
            if !taken(&candidate) {
                return candidate;
            }
        }
    }
    unreachable!("the alias space is unbounded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(name: &str) -> FreightOrigin {
        FreightOrigin {
            kind: "Warehouse".into(),
            name: name.into(),
        }
    }

    fn image(repo: &str, tag: &str, digest: &str) -> Image {
        Image {
            repo_url: repo.into(),
            tag: tag.into(),
            digest: digest.into(),
            ..Default::default()
        }
    }

    /// Worked examples: the expected IDs are SHA-1s of the canonical strings computed
    /// independently (`printf '%s' 'Warehouse/guestbook:...' | sha1sum`).
    #[test]
    fn freight_ids_follow_kargos_recipe() {
        let images = [image("ghcr.io/acme/guestbook", "1.2.3", "sha256:abc")];
        let id = freight_id(
            &origin("guestbook"),
            &Contents {
                images: &images,
                ..Default::default()
            },
        );
        // Warehouse/guestbook:ghcr.io/acme/guestbook:1.2.3@sha256:abc
        assert_eq!(id, "324b2bfae716612af2cc5aa9f98a053054efcf7c");

        let commits = [GitCommit {
            repo_url: "https://GitHub.com/acme/config.git/".into(),
            id: "0123abcd".into(),
            tag: Some("v1.0.0".into()),
            ..Default::default()
        }];
        let charts = [Chart {
            repo_url: "oci://ghcr.io/acme/charts".into(),
            name: None,
            version: "0.4.1".into(),
            ..Default::default()
        }];
        let images = [
            image("ghcr.io/acme/b", "2.0.0", "sha256:b"),
            image("ghcr.io/acme/a", "1.0.0", "sha256:a"),
        ];
        let id = freight_id(
            &origin("multi"),
            &Contents {
                commits: &commits,
                images: &images,
                charts: &charts,
            },
        );
        // Warehouse/multi:ghcr.io/acme/a:1.0.0@sha256:a|ghcr.io/acme/b:2.0.0@sha256:b|ghcr.io/acme/charts:0.4.1|https://github.com/acme/config:v1.0.0:0123abcd
        assert_eq!(id, "5dfd2408bfb40c990a1bd94e4fb76036af0a7b66");
    }

    #[test]
    fn every_part_of_the_content_changes_the_id() {
        let base = [image("ghcr.io/acme/app", "1.0.0", "sha256:1")];
        let id = |o: &str, imgs: &[Image]| {
            freight_id(
                &origin(o),
                &Contents {
                    images: imgs,
                    ..Default::default()
                },
            )
        };
        let a = id("w", &base);
        assert_eq!(a, id("w", &base), "deterministic");
        assert_ne!(a, id("w2", &base), "the origin is part of the ID");
        assert_ne!(
            a,
            id("w", &[image("ghcr.io/acme/app", "1.0.0", "sha256:2")]),
            "re-pushed tag"
        );
        assert_ne!(
            a,
            id("w", &[image("ghcr.io/acme/app", "1.0.1", "sha256:1")]),
            "re-tagged digest"
        );
        let mut named = base.clone();
        named[0].subscription_name = Some("app".into());
        assert_ne!(a, id("w", &named), "a subscription name re-mints once");
        let two = [image("x/a", "1", "d1"), image("x/b", "2", "d2")];
        let two_rev = [image("x/b", "2", "d2"), image("x/a", "1", "d1")];
        assert_eq!(id("w", &two), id("w", &two_rev), "order of artifacts does not matter");
    }

    /// Kargo's TestNormalizeGit table (pkg/urls/git_test.go).
    #[test]
    fn normalize_git_matches_kargo() {
        let cases = [
            ("https://not a url", "https://not a url"),
            (
                "http://github.com/example/repo?foo=bar",
                "http://github.com/example/repo?foo=bar",
            ),
            ("ssh://not a url", "ssh://not a url"),
            (
                "ssh://github.com/example/repo?foo=bar",
                "ssh://github.com/example/repo?foo=bar",
            ),
            ("not even remotely a url", "not even remotely a url"),
            ("https://github.com /example/repo", "https://github.com /example/repo"),
            ("https://github.com/example%20repo", "https://github.com/example%20repo"),
            ("https://github.com", "https://github.com"),
            ("https://github.com/", "https://github.com"),
            ("https://foo:bar@github.com", "https://github.com"),
            ("https://foo:bar@github.com/", "https://github.com"),
            ("https://github.com/example/repo", "https://github.com/example/repo"),
            ("https://github.com/example/repo/", "https://github.com/example/repo"),
            ("https://github.com/example/repo.git", "https://github.com/example/repo"),
            (
                "https://github.com/example/repo.git/",
                "https://github.com/example/repo",
            ),
            (
                "https://localhost:8443/example/repo",
                "https://localhost:8443/example/repo",
            ),
            (
                "https://localhost:8443/example/repo.git/",
                "https://localhost:8443/example/repo",
            ),
            (
                "https://foo:bar@github.com/example/repo.git",
                "https://github.com/example/repo",
            ),
            (
                "https://foo:bar@localhost:8443/example/repo.git/",
                "https://localhost:8443/example/repo",
            ),
            ("ssh://git.example.com", "ssh://git.example.com"),
            ("ssh://git.example.com/", "ssh://git.example.com"),
            ("ssh://git@git.example.com", "ssh://git@git.example.com"),
            ("ssh://git@git.example.com/", "ssh://git@git.example.com"),
            ("ssh://github.com/example/repo.git/", "ssh://github.com/example/repo"),
            (
                "ssh://localhost:2222/example/repo.git",
                "ssh://localhost:2222/example/repo",
            ),
            (
                "ssh://git@github.com/example/repo.git/",
                "ssh://git@github.com/example/repo",
            ),
            (
                "ssh://git@localhost:2222/example/repo/",
                "ssh://git@localhost:2222/example/repo",
            ),
            ("git.example.com", "ssh://git.example.com"),
            ("git@git.example.com", "ssh://git@git.example.com"),
            ("github.com:example/repo", "ssh://github.com/example/repo"),
            ("github.com:example/repo.git/", "ssh://github.com/example/repo"),
            ("git@github.com:example/repo", "ssh://git@github.com/example/repo"),
            ("git@github.com:example/repo.git/", "ssh://git@github.com/example/repo"),
            (
                " \u{feff}https://github.com/example/repo",
                "https://github.com/example/repo",
            ),
            (
                "https://github.com/example/repo\u{feff}",
                "https://github.com/example/repo",
            ),
            (" https://github.com/example/repo ", "https://github.com/example/repo"),
            ("\tssh://github.com/example/repo\t", "ssh://github.com/example/repo"),
            ("\nssh://github.com/example/repo\n", "ssh://github.com/example/repo"),
            ("\rssh://github.com/example/repo\r", "ssh://github.com/example/repo"),
            (
                " \t\nhttps://github.com/example/repo\t\n ",
                "https://github.com/example/repo",
            ),
            (
                "\u{00A0}https://github.com/example/repo\u{00A0}",
                "https://github.com/example/repo",
            ),
            (
                "\u{200B}https://github.com/example/repo\u{200B}",
                "https://github.com/example/repo",
            ),
            (
                "\u{feff}\u{feff}https://github.com/example/repo",
                "https://github.com/example/repo",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_git(input), want, "{input:?}");
        }
    }

    /// Kargo's TestNormalizeImage table (pkg/urls/image_test.go).
    #[test]
    fn normalize_image_matches_kargo() {
        let cases = [
            ("index.docker.io/library/busybox", "busybox"),
            ("index.docker.io/busybox", "busybox"),
            ("registry-1.docker.io/library/busybox", "busybox"),
            ("registry-1.docker.io/busybox", "busybox"),
            ("docker.io/library/busybox", "busybox"),
            ("docker.io/busybox", "busybox"),
            ("library/busybox", "busybox"),
            ("busybox", "busybox"),
            ("index.docker.io/example/repo", "example/repo"),
            ("docker.io/example/repo", "example/repo"),
            ("example/repo", "example/repo"),
            ("ghcr.io/example/repo", "ghcr.io/example/repo"),
            ("quay.io/example/repo", "quay.io/example/repo"),
            ("invalid url", "invalidurl"),
            (" \u{feff}docker.io/example/repo", "example/repo"),
            ("docker.io/example/repo\u{feff}", "example/repo"),
            ("  docker.io/example/repo  ", "example/repo"),
            ("\tdocker.io/example/repo\t", "example/repo"),
            (" \t\ndocker.io/example/repo\t\n ", "example/repo"),
            ("\u{00A0}docker.io/example/repo\u{00A0}", "example/repo"),
            ("\u{200B}docker.io/example/repo\u{200B}", "example/repo"),
            ("docker.io/example /repo", "example/repo"),
            ("docker.io/example%20repo", "examplerepo"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_image(input), want, "{input:?}");
        }
    }

    /// Kargo's TestNormalizeChart table (pkg/urls/helm_test.go).
    #[test]
    fn normalize_chart_matches_kargo() {
        let cases = [
            ("", ""),
            ("repo", "repo"),
            ("  repo  ", "repo"),
            ("REpo", "repo"),
            ("oci://repo", "repo"),
            ("  oci://repo  ", "repo"),
            ("OCI://Repo", "repo"),
            ("oci://docker.io/example/repo", "example/repo"),
            ("docker.io/example/repo", "example/repo"),
            ("oci://index.docker.io/example/repo", "example/repo"),
            ("index.docker.io/example/repo", "example/repo"),
            ("oci://registry-1.docker.io/example/repo", "example/repo"),
            ("registry-1.docker.io/example/repo", "example/repo"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_chart(input), want, "{input:?}");
        }
        assert_eq!(
            normalize_chart("https://charts.example.com"),
            "https://charts.example.com"
        );
    }

    #[test]
    fn user_aliases_must_fit_a_label() {
        assert!(valid_alias("prod-approved-2"));
        for bad in ["", "Prod", "-x", "x-", "a_b", "1abc", &"a".repeat(64)] {
            assert!(!valid_alias(bad), "{bad:?}");
        }
    }

    #[test]
    fn aliases_are_stable_unique_and_well_formed() {
        let none = |_: &str| false;
        let a = alias("abc", &none);
        assert_eq!(a, alias("abc", &none), "same ID, same alias");
        assert!(Regex::new(r"^[a-z]+-[a-z]+$").unwrap().is_match(&a), "{a}");
        let taken = |s: &str| s == a;
        let b = alias("abc", &taken);
        assert_ne!(a, b, "a taken alias is skipped");
        let mut seen = std::collections::HashSet::new();
        for i in 0..500 {
            let id = format!("{i:040x}");
            let name = alias(&id, &|s: &str| seen.contains(s));
            assert!(seen.insert(name));
        }
    }
}
