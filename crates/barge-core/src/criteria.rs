//! `freightCreationCriteria.expression`: an expr-lang condition over the artifacts a Warehouse
//! is about to put into new Freight, with Kargo's lookup functions (`imageFrom`, `commitFrom`,
//! `chartFrom`, each `nil` when absent, and `warehouse(name)` for the origin argument).

use crate::eval::{Data, Scope};
use crate::model::kargo::Freight;

/// Evaluates the criteria over the Freight a Warehouse is about to mint, with the same
/// functions promotion steps use ([`crate::eval`]).
pub fn evaluate(expression: &str, freight: &Freight) -> Result<bool, String> {
    let data = Data {
        freight: vec![freight.clone()],
        ..Data::default()
    };
    crate::eval::condition(expression, &data, &Scope::default()).map_err(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kargo::{Chart, FreightOrigin, GitCommit, Image};

    /// What Warehouse `w` is about to mint.
    fn candidate(images: &[Image], commits: &[GitCommit], charts: &[Chart]) -> Freight {
        Freight {
            origin: Some(FreightOrigin {
                kind: "Warehouse".into(),
                name: "w".into(),
            }),
            images: images.to_vec(),
            commits: commits.to_vec(),
            charts: charts.to_vec(),
            ..Freight::default()
        }
    }

    fn evaluate(expression: &str, images: &[Image], commits: &[GitCommit], charts: &[Chart]) -> Result<bool, String> {
        super::evaluate(expression, &candidate(images, commits, charts))
    }

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
