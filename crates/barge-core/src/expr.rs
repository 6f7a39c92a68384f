//! `${{ … }}` and `${% … %}` expressions in step configs and vars, as Kargo evaluates them with
//! expr-lang. Here they are found and parsed; [`crate::eval`] evaluates them.

/// One expression found in a string: its body and its character offset in the string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found<'a> {
    pub body: &'a str,
    pub offset: usize,
}

/// An opening `${{` / `${%` without its closing delimiter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unclosed {
    pub offset: usize,
    pub close: &'static str,
}

/// Finds every expression in `s`.
pub fn find(s: &str) -> Result<Vec<Found<'_>>, Unclosed> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(rel) = s[pos..].find("${") {
        let start = pos + rel;
        let close = match s[start + 2..].chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                pos = start + 2;
                continue;
            }
        };
        let body_start = start + 3;
        let Some(end) = s[body_start..].find(close) else {
            return Err(Unclosed {
                offset: s[..start].chars().count(),
                close,
            });
        };
        out.push(Found {
            body: &s[body_start..body_start + end],
            offset: s[..start].chars().count(),
        });
        pos = body_start + end + close.len();
    }
    Ok(out)
}

/// Parses an expression body with expr-lang; the error is its first line.
pub fn parse(body: &str) -> Result<(), String> {
    if body.trim().is_empty() {
        return Err("the expression is empty".to_string());
    }
    expr::compile(body).map(|_| ()).map_err(|e| one_line(&e))
}

/// An expr-lang error (often several lines with a caret drawing) as one line for a diagnostic.
pub fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Step aliases an expression reads outputs from: `outputs.alias`, `outputs['alias']`, and
/// (with `task = true`) `task.outputs…`. Returns `(alias, is_task_scope)`.
pub fn output_references(body: &str) -> Vec<(String, bool)> {
    use regex::Regex;
    use std::sync::LazyLock;
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(task\s*\.\s*)?\boutputs\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(?:'([^']+)'|"([^"]+)")\s*\])"#)
            .expect("valid regex")
    });
    let mut out = Vec::new();
    for c in RE.captures_iter(body) {
        // `ctx.outputs`, `x.outputs` are not step outputs.
        let m = c.get(0).expect("match");
        if c.get(1).is_none() {
            let before = body[..m.start()].trim_end();
            if before.ends_with('.') {
                continue;
            }
        }
        let alias = c.get(2).or(c.get(3)).or(c.get(4)).map(|x| x.as_str().to_string());
        if let Some(alias) = alias {
            out.push((alias, c.get(1).is_some()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_delimiters() {
        let f = find("a ${{ vars.x }} b ${% y %} ${ not } $x").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].body, " vars.x ");
        assert_eq!(f[0].offset, 2);
        assert_eq!(f[1].body, " y ");
        assert!(find("${{ oops").is_err());
    }

    #[test]
    fn parses_kargo_expressions() {
        for ok in [
            "imageFrom('ghcr.io/x/y').Tag",
            "outputs['update-image'].commitMessage",
            "quote(vars.x ?? 'default')",
            "let t = now(); t.Unix()",
            "ctx.stage == 'prod' ? 'a' : 'b'",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
        assert!(parse("vars.x ==").is_err());
        // Map literals with expression values (vendor/expr-lang fixes the upstream panic).
        assert!(parse("quote({\"ref\": vars.branch, \"n\": [1, vars.x]})").is_ok());
        assert!(parse("   ").is_err());
    }

    #[test]
    fn finds_output_references() {
        let refs =
            output_references("outputs.commit.commit + outputs['update-image'].x + task.outputs.a.b + ctx.outputs.z");
        assert_eq!(
            refs,
            vec![
                ("commit".to_string(), false),
                ("update-image".to_string(), false),
                ("a".to_string(), true)
            ]
        );
    }
}
