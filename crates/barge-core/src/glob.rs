//! Glob patterns as Kargo uses them in `glob:` stage selectors, git include/exclude paths and
//! delete's `pathsAreGlobs`: `*` (within a path segment), `**` (across segments), `?` and
//! `[abc]` / `[!abc]` classes; and [`IgnoreRules`], the `.gitignore` lines of the tar and untar
//! steps' `ignore`.

use regex::Regex;

#[derive(Clone, Debug)]
pub struct Glob {
    re: Regex,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {0:?}: unclosed character class")]
pub struct GlobError(pub String);

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let mut re = String::from("^");
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                // `**/` is any number of directories, none too (doublestar, which Kargo uses).
                '*' if chars.get(i + 1) == Some(&'*') && chars.get(i + 2) == Some(&'/') => {
                    re.push_str("(?:.*/)?");
                    i += 2;
                }
                '*' if chars.get(i + 1) == Some(&'*') => {
                    re.push_str(".*");
                    i += 1;
                }
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                '[' => {
                    let close = chars[i + 1..]
                        .iter()
                        .position(|c| *c == ']')
                        .ok_or_else(|| GlobError(pattern.to_string()))?;
                    let body: String = chars[i + 1..i + 1 + close].iter().collect();
                    let body = body.strip_prefix('!').map_or(body.clone(), |b| format!("^{b}"));
                    re.push('[');
                    re.push_str(&body.replace('\\', "\\\\"));
                    re.push(']');
                    i += close + 1;
                }
                c => re.push_str(&regex::escape(&c.to_string())),
            }
            i += 1;
        }
        re.push('$');
        Regex::new(&re)
            .map(|re| Glob { re })
            .map_err(|_| GlobError(pattern.to_string()))
    }

    pub fn matches(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// The regular expression the glob compiled to.
    pub fn into_regex(self) -> Regex {
        self.re
    }
}

/// One `.gitignore` line.
#[derive(Clone, Debug)]
struct IgnoreRule {
    glob: Glob,
    /// `!pattern`: a match re-includes.
    negate: bool,
    /// `pattern/`: only directories match.
    dir_only: bool,
    /// The pattern has a `/` before its end: it matches from the root, not any name.
    anchored: bool,
}

/// `.gitignore` rules (git's gitignore(5)): `#` comments, `!` negation, a trailing `/` for
/// directories, patterns with a `/` anchored at the root, others matching a name at any depth;
/// a matched directory's contents match too, and the last matching rule wins.
#[derive(Clone, Debug, Default)]
pub struct IgnoreRules {
    rules: Vec<IgnoreRule>,
}

impl IgnoreRules {
    /// The rules of a (multiline) `ignore` text; `default` applies when it has none.
    pub fn parse(text: &str, default: &str) -> Result<IgnoreRules, GlobError> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let lines = if lines.is_empty() { vec![default] } else { lines };
        let rules = lines
            .into_iter()
            .map(|line| {
                let (negate, line) = line.strip_prefix('!').map_or((false, line), |l| (true, l));
                let (dir_only, line) = line.strip_suffix('/').map_or((false, line), |l| (true, l));
                let anchored = line.contains('/');
                Ok(IgnoreRule {
                    glob: Glob::new(line.trim_start_matches('/'))?,
                    negate,
                    dir_only,
                    anchored,
                })
            })
            .collect::<Result<_, GlobError>>()?;
        Ok(IgnoreRules { rules })
    }

    /// Whether `path` (`/`-separated, relative to the root the rules apply to) is ignored.
    pub fn ignores(&self, path: &str, is_dir: bool) -> bool {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut ignored = false;
        for rule in &self.rules {
            // The path itself, or one of its parent directories, matches the rule.
            let matched = (1..=segments.len()).any(|n| {
                let dir = n < segments.len() || is_dir;
                if rule.dir_only && !dir {
                    return false;
                }
                if rule.anchored {
                    rule.glob.matches(&segments[..n].join("/"))
                } else {
                    rule.glob.matches(segments[n - 1])
                }
            });
            if matched {
                ignored = !rule.negate;
            }
        }
        ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_rules() {
        let rules = IgnoreRules::parse("# comment\n*.tmp\n!keep.tmp\nbuild/\n/docs/*.md\n", ".git").unwrap();
        assert!(rules.ignores("a.tmp", false));
        assert!(rules.ignores("deep/dir/b.tmp", false));
        assert!(!rules.ignores("keep.tmp", false), "a later ! re-includes");
        assert!(rules.ignores("build", true));
        assert!(rules.ignores("build/out/x.bin", false), "a directory's contents");
        assert!(!rules.ignores("build", false), "build/ matches directories only");
        assert!(rules.ignores("docs/readme.md", false));
        assert!(!rules.ignores("src/docs/readme.md", false), "anchored at the root");
        assert!(!rules.ignores("src/main.rs", false));
        let default = IgnoreRules::parse("  \n", ".git").unwrap();
        assert!(default.ignores(".git/config", false));
        assert!(default.ignores("sub/.git", true));
        assert!(!default.ignores("charts/app.tgz", false));
    }

    #[test]
    fn globs() {
        assert!(Glob::new("prod-*").unwrap().matches("prod-eu"));
        assert!(!Glob::new("prod-*").unwrap().matches("dev-eu"));
        assert!(!Glob::new("apps/*").unwrap().matches("apps/a/b"));
        assert!(Glob::new("apps/**").unwrap().matches("apps/a/b"));
        assert!(Glob::new("apps/**/*.yaml").unwrap().matches("apps/a.yaml"));
        assert!(Glob::new("apps/**/*.yaml").unwrap().matches("apps/a/b/c.yaml"));
        assert!(Glob::new("**/*.yaml").unwrap().matches("c.yaml"));
        assert!(!Glob::new("apps/**/*.yaml").unwrap().matches("apps.yaml"));
        assert!(Glob::new("v[0-9].?").unwrap().matches("v1.x"));
        assert!(Glob::new("[!a]*").unwrap().matches("bcd"));
        assert!(Glob::new("[abc").is_err());
    }
}
