//! Versions and constraints with Masterminds/semver v3 semantics, the library Kargo uses.
//!
//! Rust's `semver::VersionReq` differs in ways that silently change which image is promoted
//! (a bare `1.2.3` is `^1.2.3` there and `=1.2.3` here; spaces are not AND there), so this is a
//! port of Masterminds' `constraints.go`: the same regular expressions (RE2 and Rust's `regex`
//! agree on leftmost-first alternation), hyphen ranges rewritten to `>= a, <= b`, wildcards and
//! partial versions as "dirty" constraints, and prereleases excluded unless the AND group asks
//! for one.

use regex::Regex;
use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

/// A parsed version; `original` keeps the tag as written (`v1.2`).
#[derive(Clone, Debug)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub metadata: String,
    pub original: String,
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Version {
    /// Semver precedence; build metadata is ignored.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_prerelease(&self.pre, &other.pre))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SemverError {
    #[error("{0:?} is not a semantic version")]
    InvalidVersion(String),
    #[error("{0:?} is not a full major.minor.patch version (strictSemvers is on)")]
    NotStrict(String),
    #[error("improper constraint: {0:?}")]
    InvalidConstraint(String),
}

/// The parts of a loose version as written: major, minor, patch, prerelease, metadata.
type LooseParts<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a str, &'a str);

/// Masterminds' loose version grammar, `^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-IDENTS)?(\+IDENTS)?$`
/// where IDENTS is `[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*`, read by hand: discovery parses every
/// tag a repository lists (tens of thousands), and the regular expression's captures cost
/// ten times as much. A test checks both agree.
fn split_loose(s: &str) -> Option<LooseParts<'_>> {
    fn digits(s: &str) -> (&str, &str) {
        let end = s.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
        s.split_at(end)
    }
    /// Dot-separated non-empty identifiers of `[0-9A-Za-z-]`, up to the `stop` byte or the end.
    fn identifiers(s: &str, stop: Option<u8>) -> Option<(&str, &str)> {
        let end = s.bytes().position(|b| Some(b) == stop).unwrap_or(s.len());
        let (ids, rest) = s.split_at(end);
        let valid = ids
            .split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        valid.then_some((ids, rest))
    }
    // Byte tests rather than `strip_prefix(char)`: this runs once per listed tag.
    fn after(s: &str, b: u8) -> Option<&str> {
        (s.as_bytes().first() == Some(&b)).then(|| &s[1..])
    }
    let s = after(s, b'v').unwrap_or(s);
    let (major, mut rest) = digits(s);
    if major.is_empty() {
        return None;
    }
    let mut parts = [None, None];
    for part in &mut parts {
        if let Some(next) = after(rest, b'.') {
            let (n, next) = digits(next);
            if n.is_empty() {
                return None;
            }
            *part = Some(n);
            rest = next;
        }
    }
    let mut pre = "";
    if let Some(next) = after(rest, b'-') {
        (pre, rest) = identifiers(next, Some(b'+'))?;
    }
    let mut metadata = "";
    if let Some(next) = after(rest, b'+') {
        (metadata, rest) = identifiers(next, None)?;
    }
    rest.is_empty().then_some((major, parts[0], parts[1], pre, metadata))
}

impl Version {
    /// Parses like Masterminds' `NewVersion` (a `v` prefix and missing minor/patch allowed);
    /// `strict` additionally requires all three numbers, as Kargo's `strictSemvers` does.
    pub fn parse(s: &str, strict: bool) -> Result<Version, SemverError> {
        let invalid = || SemverError::InvalidVersion(s.to_string());
        let (major, minor, patch, pre, metadata) = split_loose(s).ok_or_else(invalid)?;
        if strict && (minor.is_none() || patch.is_none()) {
            return Err(SemverError::NotStrict(s.to_string()));
        }
        let num = |n: Option<&str>| n.map_or(Ok(0), |n| n.parse::<u64>().map_err(|_| invalid()));
        // Numeric prerelease identifiers may not have leading zeros (semver 2.0.0 §9).
        if pre
            .split('.')
            .any(|p| p.len() > 1 && p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid());
        }
        Ok(Version {
            major: num(Some(major))?,
            minor: num(minor)?,
            patch: num(patch)?,
            pre: pre.to_string(),
            metadata: metadata.to_string(),
            original: s.to_string(),
        })
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut ai = a.split('.');
    let mut bi = b.split('.');
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

static CONSTRAINT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"^\s*({OPS})\s*({CV})\s*$")).expect("valid regex"));
static RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\s*({CV})\s+-\s+({CV})\s*")).expect("valid regex"));
static FIND: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!(r"({OPS})\s*({CV})")).expect("valid regex"));
static VALID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(\s*({OPS})\s*({CV})\s*)((?:\s+|,\s*)({OPS})\s*({CV})\s*)*$"
    ))
    .expect("valid regex")
});

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

#[derive(Clone, Debug)]
struct Comparator {
    op: Op,
    con: Version,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

/// A parsed constraint: OR of AND groups.
#[derive(Clone, Debug)]
pub struct Constraint {
    groups: Vec<Vec<Comparator>>,
    original: String,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

impl Constraint {
    pub fn parse(c: &str) -> Result<Constraint, SemverError> {
        let rewritten = rewrite_range(c);
        let mut groups = Vec::new();
        for part in rewritten.split("||") {
            if !VALID.is_match(part) {
                return Err(SemverError::InvalidConstraint(part.trim().to_string()));
            }
            let found: Vec<&str> = FIND.find_iter(part).map(|m| m.as_str()).collect();
            let pieces = if found.is_empty() { vec![part] } else { found };
            let mut group = Vec::with_capacity(pieces.len());
            for piece in pieces {
                group.push(parse_comparator(piece)?);
            }
            groups.push(group);
        }
        Ok(Constraint {
            groups,
            original: c.to_string(),
        })
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|group| {
            // A group that names a prerelease opts the whole group into prereleases.
            let group_wants_pre = group.iter().any(|c| !c.con.pre.is_empty());
            group.iter().all(|c| c.check(v, group_wants_pre))
        })
    }
}

fn rewrite_range(input: &str) -> String {
    let mut out = input.to_string();
    for caps in RANGE.captures_iter(input) {
        let whole = caps.get(0).map_or("", |m| m.as_str());
        let a = caps.get(1).map_or("", |m| m.as_str());
        let b = caps.get(11).map_or("", |m| m.as_str());
        // The trailing space keeps a following comparator separate ("1 - 2 <=2" stays two).
        out = out.replacen(whole, &format!(">= {a}, <= {b} "), 1);
    }
    out
}

fn parse_comparator(s: &str) -> Result<Comparator, SemverError> {
    if s.is_empty() {
        return Ok(Comparator {
            op: Op::TildeOrEqual,
            con: Version::parse("0.0.0", true).expect("valid"),
            minor_dirty: false,
            patch_dirty: false,
            dirty: true,
        });
    }
    let m = CONSTRAINT
        .captures(s)
        .ok_or_else(|| SemverError::InvalidConstraint(s.trim().to_string()))?;
    let g = |i: usize| m.get(i).map_or("", |x| x.as_str());
    let op = match g(1) {
        "" | "=" => Op::TildeOrEqual,
        "!=" => Op::NotEqual,
        ">" => Op::Gt,
        "<" => Op::Lt,
        ">=" | "=>" => Op::Ge,
        "<=" | "=<" => Op::Le,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        _ => return Err(SemverError::InvalidConstraint(s.to_string())),
    };
    let (mut minor_dirty, mut patch_dirty, mut dirty) = (false, false, false);
    let (major, minor, patch, pre) = (g(3), g(4), g(5), g(6));
    let ver = if is_x(major) || major.is_empty() {
        dirty = true;
        format!("0.0.0{pre}")
    } else if is_x(minor.trim_start_matches('.')) || minor.is_empty() {
        minor_dirty = true;
        dirty = true;
        format!("{major}.0.0{pre}")
    } else if is_x(patch.trim_start_matches('.')) || patch.is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{major}{minor}.0{pre}")
    } else {
        g(2).to_string()
    };
    let con = Version::parse(&ver, false).map_err(|_| SemverError::InvalidConstraint(s.trim().to_string()))?;
    Ok(Comparator {
        op,
        con,
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

impl Comparator {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !include_pre && !v.pre.is_empty() && self.con.pre.is_empty() {
            return false;
        }
        let c = &self.con;
        match self.op {
            Op::TildeOrEqual => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    v == c
                }
            }
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                        }
                        return false;
                    }
                }
                v != c
            }
            Op::Gt => {
                if !self.dirty {
                    return v > c;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                v > c
            }
            Op::Lt => v < c,
            Op::Ge => v >= c,
            Op::Le => {
                if !self.dirty {
                    return v <= c;
                }
                if v.major > c.major {
                    return false;
                }
                !(v.major == c.major && v.minor > c.minor && !self.minor_dirty)
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => {
                if v < c {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                v.patch == c.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v < c {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(c: &str, v: &str) -> bool {
        Constraint::parse(c)
            .unwrap_or_else(|e| panic!("{c}: {e}"))
            .matches(&Version::parse(v, false).unwrap_or_else(|e| panic!("{v}: {e}")))
    }

    /// barge's own cases: the spellings Masterminds accepts that Rust semver crates get wrong (space as
    /// AND, bare versions as `=`, hyphen ranges, `v` prefixes, dirty partials) and the
    /// group-level prerelease opt-in. Masterminds' own tables are in `semver_masterminds_tests.rs`.
    #[test]
    fn masterminds_check_table() {
        let table: &[(&str, &str, bool)] = &[
            ("1.x", "1.4.0", true),
            ("1.1 - 3", "4.3.2", false),
            ("^0.0.1", "0.0.2", false),
            ("^0.1.1", "0.1.5", true),
            ("^0.1.1", "0.2.0", false),
            ("^0.x", "0.5.0", true),
            ("^0.x", "1.0.0", false),
            // Space as AND, v prefixes, partial versions.
            (">=1.0.0 <2.0.0", "1.5.0", true),
            (">=1.0.0 <2.0.0", "2.0.0", false),
            (">= 1.2, < 3.0.0 || >= 4.2.3", "4.3.0", true),
            (">= 1.2, < 3.0.0 || >= 4.2.3", "3.5.0", false),
            ("1.2.3", "1.2.4", false),
            ("v1.2.x", "1.2.9", true),
            ("1.2 - 1.4.5", "1.4.5", true),
            ("1.2 - 1.4.5", "1.4.6", false),
            (">11", "12.0.0", true),
            // Group-level prerelease opt-in.
            (">=1.2.3-0", "1.3.0-rc.1", true),
            (">=1.2.3-0 <2.0.0", "1.3.0-rc.1", true),
            (">=1.2.3 <2.0.0", "1.3.0-rc.1", false),
        ];
        for (c, v, want) in table {
            assert_eq!(check(c, v), *want, "{c} against {v}");
        }
    }

    #[test]
    fn masterminds_parse_errors() {
        // The empty constraint fails Masterminds' validity regex too; Kargo never parses an
        // empty constraint (it means "any"), and barge's validation skips it the same way.
        for bad in [
            "",
            " ",
            "foo",
            "> 1.2.3 foo",
            "1.2.3-",
            "=>",
            "1.2.3 - ",
            ">=1.2.3 <",
            "^1.2.3 ||| 2",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad:?} should not parse");
        }
        for good in [
            "^1.26.0",
            "~1.2",
            ">=1.0.0, <2.0.0",
            "1.x || >=2.5.0",
            "!=1.2.3",
            "=1.2.3",
            "v1",
            "*",
        ] {
            assert!(Constraint::parse(good).is_ok(), "{good:?} should parse");
        }
    }

    #[test]
    fn version_parsing() {
        assert_eq!(Version::parse("v1.2", false).unwrap().to_string(), "1.2.0");
        assert!(Version::parse("v1.2", true).is_err());
        assert!(Version::parse("1.2.3", true).is_ok());
        assert!(Version::parse("abc1234", false).is_err());
        assert!(Version::parse("1.2.3-01", false).is_err());
        assert!(Version::parse("1.2.3-rc.1+build.5", true).unwrap().pre == "rc.1");
        let mut vs: Vec<Version> = [
            "1.0.0",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
        ]
        .iter()
        .map(|s| Version::parse(s, true).unwrap())
        .collect();
        vs.sort();
        let order: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
        assert_eq!(
            order,
            [
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0"
            ]
        );
    }

    /// The hand-written reader accepts exactly what Masterminds' regular expression accepts,
    /// and splits it into the same parts.
    #[test]
    fn the_reader_agrees_with_masterminds_expression() {
        use proptest::prelude::*;
        let loose = Regex::new(
            r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$",
        )
        .unwrap();
        let agree = |s: &str| {
            let by_regex = loose.captures(s).map(|c| {
                let g = |i: usize| c.get(i).map(|m| m.as_str());
                (
                    g(1).unwrap_or(""),
                    g(2).map(|m| &m[1..]),
                    g(3).map(|m| &m[1..]),
                    g(5).unwrap_or(""),
                    g(8).unwrap_or(""),
                )
            });
            assert_eq!(split_loose(s), by_regex, "{s:?}");
        };
        for s in [
            "",
            "v",
            "vv1",
            "1",
            "v1",
            "1.",
            "1..2",
            "1.2",
            "1.2.3",
            "1.2.3.4",
            "01.002.3",
            "1.2.3-",
            "1.2.3-rc.",
            "1.2.3-.rc",
            "1.2.3-rc..1",
            "1.2.3--",
            "1.2.3-a-b.c",
            "1.2.3+",
            "1.2.3+b+c",
            "1.2.3-rc+b.1",
            "1.2-rc",
            "1-rc",
            "1.2.3 ",
            " 1.2.3",
            "1.2.3\n",
            "V1.2.3",
            "1.2.3-é",
        ] {
            agree(s);
        }
        proptest!(|(s in "v?[0-9.+a-z-]{0,12}")| agree(&s));
    }
}

#[cfg(test)]
#[path = "semver_masterminds_tests.rs"]
mod masterminds;
