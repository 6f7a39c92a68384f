//! Whether a Warehouse's discovery pass creates Freight: [`decide`] (every subscription found
//! a candidate, `freightCreationPolicy`, `freightCreationCriteria`). The criteria's
//! `expression` is an expr-lang condition over the artifacts a Warehouse is about to put into
//! new Freight, with Kargo's lookup functions (`imageFrom`, `commitFrom`, `chartFrom`, each
//! `nil` when absent, and `warehouse(name)` for the origin argument).

use crate::eval::{Data, Scope};
use crate::model::kargo::{Chart, Freight, FreightOrigin, GitCommit, Image, WarehouseSpec};

/// What one discovery pass of a Warehouse found: the best candidate of each subscription that
/// has one, and a sentence for each that has none (no match, or discovery failed).
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub commits: Vec<GitCommit>,
    pub images: Vec<Image>,
    pub charts: Vec<Chart>,
    pub missing: Vec<String>,
}

/// What a discovery pass leads to.
#[derive(Clone, Debug, PartialEq)]
pub enum MintDecision {
    /// Create this Freight (minting is idempotent: the store may already have it).
    Create(Box<Freight>),
    /// No Freight, and why; not a failure.
    Skip(String),
    /// The criteria could not be evaluated: no Freight, and the pass failed.
    CriteriaFailed(String),
}

/// Kargo's rules (api/v1alpha1 WarehouseSpec): Freight only from a complete set of candidates
/// (one per subscription); `freightCreationPolicy: Manual` never creates it automatically;
/// `freightCreationCriteria.expression` must be true for the Freight about to be created.
pub fn decide(project: &str, warehouse: &str, spec: &WarehouseSpec, found: Found) -> MintDecision {
    if !found.missing.is_empty() {
        return MintDecision::Skip(found.missing.join("; "));
    }
    if found.images.is_empty() && found.commits.is_empty() && found.charts.is_empty() {
        return MintDecision::Skip("the warehouse has no subscriptions".into());
    }
    let origin = FreightOrigin {
        kind: "Warehouse".into(),
        name: warehouse.to_string(),
    };
    let mut freight = crate::freight::mint(origin, found.commits, found.images, found.charts, &|_| false);
    freight.metadata.namespace = Some(project.to_string()).filter(|p| !p.is_empty());
    if spec.freight_creation_policy.as_deref() == Some("Manual") {
        return MintDecision::Skip(format!(
            "freightCreationPolicy is Manual: Freight {} is not created automatically",
            freight.metadata.name
        ));
    }
    let Some(expression) = spec
        .freight_creation_criteria
        .as_ref()
        .and_then(|c| c.expression.as_deref())
    else {
        return MintDecision::Create(Box::new(freight));
    };
    match evaluate(expression, &freight) {
        Ok(true) => MintDecision::Create(Box::new(freight)),
        Ok(false) => MintDecision::Skip(format!(
            "freightCreationCriteria is false for these candidates ({expression}): Freight {} is not created",
            freight.metadata.name
        )),
        Err(e) => MintDecision::CriteriaFailed(format!("freightCreationCriteria failed: {e}")),
    }
}

/// Evaluates the criteria over the Freight a Warehouse is about to mint, with the same
/// functions promotion steps use ([`crate::eval`]).
pub fn evaluate(expression: &str, freight: &Freight) -> Result<bool, String> {
    crate::eval::condition(expression, &data(freight), &Scope::default()).map_err(|e| e.message)
}

/// What the criteria's expression sees: the Freight about to be minted as the only Freight
/// (so `imageFrom(url)` is the candidate image of that subscription, where Kargo's
/// `imageFrom` over discovered artifacts takes the first, newest, of the list), no variables.
pub fn data(freight: &Freight) -> Data {
    Data {
        freight: vec![freight.clone()],
        ..Data::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kargo::FreightCreationCriteria;

    fn spec(policy: Option<&str>, expression: Option<&str>) -> WarehouseSpec {
        WarehouseSpec {
            freight_creation_policy: policy.map(str::to_string),
            freight_creation_criteria: expression.map(|e| FreightCreationCriteria {
                expression: Some(e.to_string()),
            }),
            ..WarehouseSpec::default()
        }
    }

    fn found(images: &[Image]) -> Found {
        Found {
            images: images.to_vec(),
            ..Found::default()
        }
    }

    #[test]
    fn a_complete_pass_creates_freight_in_the_warehouses_project() {
        let MintDecision::Create(f) = decide("shop", "app", &spec(None, None), found(&[img("ghcr.io/x/fe", "1.0.0")]))
        else {
            panic!("expected Freight");
        };
        assert_eq!(f.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(f.origin.as_ref().map(|o| o.name.as_str()), Some("app"));
        assert_eq!(f.images[0].tag, "1.0.0");
        let MintDecision::Create(no_project) = decide("", "app", &spec(None, None), found(&[img("r/a", "1")])) else {
            panic!("expected Freight");
        };
        assert_eq!(no_project.metadata.namespace, None, "no project, no namespace");
    }

    #[test]
    fn no_freight_from_an_incomplete_pass_or_no_subscriptions() {
        let mut partial = found(&[img("ghcr.io/x/fe", "1.0.0")]);
        partial.missing = vec!["no tag of a matches".into(), "discovery of b failed".into()];
        assert_eq!(
            decide("p", "w", &spec(None, None), partial),
            MintDecision::Skip("no tag of a matches; discovery of b failed".into()),
            "one missing subscription holds the others back"
        );
        assert_eq!(
            decide("p", "w", &spec(None, None), Found::default()),
            MintDecision::Skip("the warehouse has no subscriptions".into())
        );
    }

    #[test]
    fn manual_policy_and_criteria_decide_after_the_candidates() {
        let images = [img("ghcr.io/x/fe", "1.2.0"), img("ghcr.io/x/be", "1.3.0")];
        let MintDecision::Skip(manual) = decide("p", "w", &spec(Some("Manual"), None), found(&images)) else {
            panic!("Manual never creates");
        };
        assert!(
            manual.starts_with("freightCreationPolicy is Manual: Freight "),
            "{manual}"
        );
        let same_tag = "imageFrom('ghcr.io/x/fe').Tag == imageFrom('ghcr.io/x/be').Tag";
        let MintDecision::Skip(skew) = decide("p", "w", &spec(None, Some(same_tag)), found(&images)) else {
            panic!("false criteria create nothing");
        };
        assert!(skew.starts_with("freightCreationCriteria is false"), "{skew}");
        let aligned = [img("ghcr.io/x/fe", "1.3.0"), img("ghcr.io/x/be", "1.3.0")];
        assert!(matches!(
            decide("p", "w", &spec(None, Some(same_tag)), found(&aligned)),
            MintDecision::Create(_)
        ));
        let MintDecision::CriteriaFailed(e) = decide("p", "w", &spec(None, Some("imageFrom(1)")), found(&aligned))
        else {
            panic!("an expression that cannot be evaluated is a failure, not false");
        };
        assert!(e.starts_with("freightCreationCriteria failed: "), "{e}");
        assert!(
            matches!(
                decide("p", "w", &spec(Some("Automatic"), None), found(&aligned)),
                MintDecision::Create(_)
            ),
            "Automatic is the default"
        );
    }

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
