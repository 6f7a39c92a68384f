//! Glob patterns as Kargo uses them in `glob:` stage selectors, git include/exclude paths and
//! delete's `pathsAreGlobs`:
//! `*` (within a path segment), `**` (across segments), `?` and `[abc]` / `[!abc]` classes.

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

#[cfg(test)]
mod tests {
    use super::*;

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
