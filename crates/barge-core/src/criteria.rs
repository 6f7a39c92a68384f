//! `freightCreationCriteria.expression`: an expr-lang condition over the artifacts a Warehouse
//! is about to put into new Freight, with Kargo's lookup functions:
//! `imageFrom(repoURL)` → `{RepoURL, Tag, Digest, Annotations}`, `commitFrom(repoURL)` →
//! `{RepoURL, ID, Branch, Tag, Message, Author, Committer}`, `chartFrom(repoURL[, name])` →
//! `{RepoURL, Name, Version}` (each `nil` when absent), and `warehouse(name)`, accepted as
//! the optional origin argument Kargo allows.

use crate::model::kargo::{Chart, GitCommit, Image};
use expr::Value;
use indexmap::IndexMap;

fn map(entries: Vec<(&str, Value)>) -> Value {
    let m: IndexMap<String, Value> = entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Value::from(m)
}

fn s(v: &Option<String>) -> Value {
    v.clone().map_or(Value::Nil, Value::String)
}

fn first_string(args: &[Value], what: &str) -> expr::Result<String> {
    match args.first() {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(expr::Error::ExprError(format!(
            "{what} needs a repository URL string as its first argument"
        ))),
    }
}

/// Evaluates a creation criteria expression against candidate artifacts.
pub fn evaluate(expression: &str, images: &[Image], commits: &[GitCommit], charts: &[Chart]) -> Result<bool, String> {
    let mut env = expr::Environment::new();
    let imgs = images.to_vec();
    env.add_function("imageFrom", move |c| {
        let repo = first_string(&c.args, "imageFrom")?;
        Ok(imgs.iter().find(|i| i.repo_url == repo).map_or(Value::Nil, |i| {
            let annotations: IndexMap<String, Value> = i
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            map(vec![
                ("RepoURL", Value::String(i.repo_url.clone())),
                ("Tag", Value::String(i.tag.clone())),
                ("Digest", Value::String(i.digest.clone())),
                ("Annotations", Value::from(annotations)),
            ])
        }))
    });
    let cms = commits.to_vec();
    env.add_function("commitFrom", move |c| {
        let repo = first_string(&c.args, "commitFrom")?;
        Ok(cms.iter().find(|x| x.repo_url == repo).map_or(Value::Nil, |x| {
            map(vec![
                ("RepoURL", Value::String(x.repo_url.clone())),
                ("ID", Value::String(x.id.clone())),
                ("Branch", s(&x.branch)),
                ("Tag", s(&x.tag)),
                ("Message", s(&x.message)),
                ("Author", s(&x.author)),
                ("Committer", s(&x.committer)),
            ])
        }))
    });
    let chs = charts.to_vec();
    env.add_function("chartFrom", move |c| {
        let repo = first_string(&c.args, "chartFrom")?;
        let name = match c.args.get(1) {
            Some(Value::String(n)) => Some(n.clone()),
            _ => None,
        };
        Ok(chs
            .iter()
            .find(|x| x.repo_url == repo && name.as_ref().is_none_or(|n| x.name.as_deref() == Some(n.as_str())))
            .map_or(Value::Nil, |x| {
                map(vec![
                    ("RepoURL", Value::String(x.repo_url.clone())),
                    ("Name", s(&x.name)),
                    ("Version", Value::String(x.version.clone())),
                ])
            }))
    });
    env.add_function("warehouse", |c| {
        let name = first_string(&c.args, "warehouse")?;
        Ok(map(vec![
            ("Kind", Value::String("Warehouse".into())),
            ("Name", Value::String(name)),
        ]))
    });
    match env.eval(expression, &expr::Context::default()) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("the expression must return true or false, not {other:?}")),
        Err(e) => Err(crate::expr::one_line(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(repo: &str, tag: &str) -> Image {
        Image {
            repo_url: repo.into(),
            tag: tag.into(),
            digest: "sha256:x".into(),
            ..Default::default()
        }
    }

    #[test]
    fn kargo_criteria_examples() {
        let images = [img("ghcr.io/x/fe", "1.2.0"), img("ghcr.io/x/be", "1.2.0")];
        assert_eq!(
            evaluate(
                "imageFrom('ghcr.io/x/fe').Tag == imageFrom('ghcr.io/x/be').Tag",
                &images,
                &[],
                &[]
            ),
            Ok(true)
        );
        let skew = [img("ghcr.io/x/fe", "1.2.0"), img("ghcr.io/x/be", "1.3.0")];
        assert_eq!(
            evaluate(
                "imageFrom('ghcr.io/x/fe').Tag == imageFrom('ghcr.io/x/be').Tag",
                &skew,
                &[],
                &[]
            ),
            Ok(false)
        );
        let commits = [GitCommit {
            repo_url: "https://git.example.com/c.git".into(),
            id: "abc".into(),
            message: Some("release: 1.2".into()),
            ..Default::default()
        }];
        assert_eq!(
            evaluate(
                "commitFrom('https://git.example.com/c.git').Message startsWith 'release'",
                &[],
                &commits,
                &[]
            ),
            Ok(true)
        );
        let charts = [Chart {
            repo_url: "oci://r/c".into(),
            name: None,
            version: "2.0.0".into(),
            ..Default::default()
        }];
        assert_eq!(
            evaluate("chartFrom('oci://r/c').Version == '2.0.0'", &[], &[], &charts),
            Ok(true)
        );
        assert_eq!(
            evaluate("imageFrom('ghcr.io/x/fe', warehouse('w')) != nil", &images, &[], &[]),
            Ok(true)
        );
        assert_eq!(
            evaluate("imageFrom('ghcr.io/none') == nil", &images, &[], &[]),
            Ok(true)
        );
        assert!(
            evaluate("imageFrom('ghcr.io/x/fe').Tag", &images, &[], &[])
                .unwrap_err()
                .contains("true or false")
        );
        assert!(evaluate("imageFrom(1)", &images, &[], &[]).is_err());
    }
}
