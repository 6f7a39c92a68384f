//! URL rewrites, like git's `insteadOf`: requests for repositories under `from` go to `to`
//! instead (a mirror, an air-gapped copy, a local substitute), while everything barge records
//! (Freight, commit messages, audit) keeps the original URL.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub from: String,
    pub to: String,
}

impl Rewrite {
    /// Parses `FROM=TO`.
    pub fn parse(s: &str) -> Option<Rewrite> {
        let (from, to) = s.split_once('=')?;
        (!from.is_empty() && !to.is_empty()).then(|| Rewrite {
            from: from.to_string(),
            to: to.to_string(),
        })
    }
}

/// Applies the longest matching rewrite (as git does with several `insteadOf`s).
pub fn apply(rewrites: &[Rewrite], url: &str) -> String {
    match rewrites
        .iter()
        .filter(|r| url.starts_with(&r.from))
        .max_by_key(|r| r.from.len())
    {
        Some(rw) => format!("{}{}", rw.to, &url[rw.from.len()..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let rw = vec![
            Rewrite::parse("https://github.com/=file:///srv/git/").unwrap(),
            Rewrite::parse("https://github.com/acme/=file:///mirror/acme/").unwrap(),
        ];
        assert_eq!(
            apply(&rw, "https://github.com/acme/app.git"),
            "file:///mirror/acme/app.git"
        );
        assert_eq!(
            apply(&rw, "https://github.com/other/x.git"),
            "file:///srv/git/other/x.git"
        );
        assert_eq!(apply(&rw, "https://gitlab.com/x.git"), "https://gitlab.com/x.git");
        assert!(Rewrite::parse("=x").is_none() && Rewrite::parse("x").is_none());
    }
}
