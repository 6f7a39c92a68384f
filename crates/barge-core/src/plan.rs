//! The pipeline graph of loaded definitions: per project, warehouses → stages in promotion
//! order, each stage's freight sources, steps (tasks expanded), verification and whether a
//! promotion policy lets it auto-promote. What `barge plan` prints.

use crate::load::{Catalog, Resource};
use crate::model::kargo::{PromotionPolicy, Stage, Step, Subscription};
use crate::model::{Body, Kind};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub projects: Vec<ProjectPlan>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPlan {
    pub name: String,
    pub warehouses: Vec<WarehousePlan>,
    /// Stages in promotion order (upstream before downstream).
    pub stages: Vec<StagePlan>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarehousePlan {
    pub name: String,
    pub interval: String,
    pub subscriptions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StagePlan {
    pub name: String,
    pub freight: Vec<FreightPlan>,
    pub auto_promotion: bool,
    pub steps: Vec<StepPlan>,
    pub verification: Vec<String>,
    pub downstream: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FreightPlan {
    pub warehouse: String,
    pub direct: bool,
    pub upstream: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_soak_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepPlan {
    pub alias: String,
    /// The step name, or `task:<name>` for a task step.
    pub uses: String,
    /// A task step's own steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepPlan>,
}

pub fn plan(catalog: &Catalog) -> Plan {
    let mut projects: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for r in &catalog.resources {
        if r.body.is_some() && !r.kind.cluster_scoped() && r.kind != Kind::Pipeline {
            projects.entry(r.project.as_str()).or_default().push(r);
        }
    }
    for r in &catalog.resources {
        if r.kind == Kind::Project && !r.name.is_empty() {
            projects.entry(r.name.as_str()).or_default();
        }
    }
    let cluster_tasks: Vec<&Resource> = catalog
        .resources
        .iter()
        .filter(|r| r.kind == Kind::ClusterPromotionTask)
        .collect();
    let mut out = Vec::new();
    for (name, resources) in projects {
        let policies = policies_for(catalog, name);
        let warehouses = resources
            .iter()
            .filter_map(|r| match &r.body {
                Some(Body::Warehouse(w)) => Some(WarehousePlan {
                    name: r.name.clone(),
                    interval: w
                        .spec
                        .as_ref()
                        .and_then(|s| s.interval.clone())
                        .unwrap_or_else(|| "5m0s".to_string()),
                    subscriptions: w
                        .spec
                        .iter()
                        .flat_map(|s| s.subscriptions.iter())
                        .map(describe_subscription)
                        .collect(),
                    pipeline: r.expanded_from.clone(),
                }),
                _ => None,
            })
            .collect();
        let stages: Vec<(&Resource, &Stage)> = resources
            .iter()
            .filter_map(|r| match &r.body {
                Some(Body::Stage(s)) => Some((*r, s)),
                _ => None,
            })
            .collect();
        let tasks: Vec<&Resource> = resources
            .iter()
            .copied()
            .filter(|r| r.kind == Kind::PromotionTask)
            .chain(cluster_tasks.iter().copied())
            .collect();
        let mut plans: Vec<StagePlan> = stages
            .iter()
            .map(|(r, s)| stage_plan(r, s, &tasks, &policies))
            .collect();
        for i in 0..plans.len() {
            let name = plans[i].name.clone();
            let mut down: Vec<String> = plans
                .iter()
                .filter(|p| p.freight.iter().any(|f| f.upstream.contains(&name)))
                .map(|p| p.name.clone())
                .collect();
            down.sort();
            down.dedup();
            plans[i].downstream = down;
        }
        out.push(ProjectPlan {
            name: name.to_string(),
            warehouses,
            stages: promotion_order(plans),
        });
    }
    Plan { projects: out }
}

fn describe_subscription(s: &Subscription) -> String {
    if let Some(i) = &s.image {
        let strategy = i.image_selection_strategy.clone().unwrap_or_else(|| "SemVer".into());
        let c = i
            .constraint
            .clone()
            .or_else(|| i.semver_constraint.clone())
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        return format!("image {} ({strategy}{c})", i.repo_url);
    }
    if let Some(g) = &s.git {
        let strategy = g
            .commit_selection_strategy
            .clone()
            .unwrap_or_else(|| "NewestFromBranch".into());
        let b = g.branch.clone().map(|b| format!(" {b}")).unwrap_or_default();
        return format!("git {} ({strategy}{b})", g.repo_url);
    }
    if let Some(c) = &s.chart {
        let name = c.name.clone().map(|n| format!(" {n}")).unwrap_or_default();
        let v = c.semver_constraint.clone().map(|v| format!(" {v}")).unwrap_or_default();
        return format!("chart {}{name}{v}", c.repo_url);
    }
    "unknown subscription".to_string()
}

fn stage_plan(r: &Resource, s: &Stage, tasks: &[&Resource], policies: &[PromotionPolicy]) -> StagePlan {
    let spec = s.spec.clone().unwrap_or_default();
    let freight = spec
        .requested_freight
        .iter()
        .map(|f| FreightPlan {
            warehouse: f.origin.name.clone(),
            direct: f.sources.direct == Some(true),
            upstream: f.sources.stages.clone(),
            required_soak_time: f.sources.required_soak_time.clone(),
            availability: f.sources.availability_strategy.clone().filter(|a| !a.is_empty()),
        })
        .collect();
    let steps = spec
        .promotion_template
        .as_ref()
        .map(|t| step_plans(&t.spec.steps, tasks))
        .unwrap_or_default();
    let verification = spec
        .verification
        .iter()
        .flat_map(|v| v.analysis_templates.iter())
        .map(|t| t.name.clone())
        .collect();
    StagePlan {
        name: r.name.clone(),
        freight,
        auto_promotion: policies
            .iter()
            .any(|p| policy_matches(p, &r.name, &s.metadata.labels) && p.auto_promotion_enabled == Some(true)),
        steps,
        verification,
        downstream: Vec::new(),
        pipeline: r.expanded_from.clone(),
    }
}

fn step_plans(steps: &[Step], tasks: &[&Resource]) -> Vec<StepPlan> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if let Some(t) = &s.task {
                let inner = tasks
                    .iter()
                    .find(|r| {
                        r.name == t.name
                            && (r.kind == Kind::ClusterPromotionTask)
                                == (t.kind.as_deref() == Some("ClusterPromotionTask"))
                    })
                    .and_then(|r| match &r.body {
                        Some(Body::PromotionTask(x)) => x.spec.as_ref(),
                        Some(Body::ClusterPromotionTask(x)) => x.spec.as_ref(),
                        _ => None,
                    })
                    .map(|spec| step_plans(&spec.steps, &[]))
                    .unwrap_or_default();
                StepPlan {
                    alias: s.alias.clone().unwrap_or_else(|| format!("task-{}", i + 1)),
                    uses: format!("task:{}", t.name),
                    steps: inner,
                }
            } else {
                StepPlan {
                    alias: s.alias.clone().unwrap_or_else(|| format!("step-{}", i + 1)),
                    uses: s.uses.clone().unwrap_or_default(),
                    steps: Vec::new(),
                }
            }
        })
        .collect()
}

/// Topological order (Kahn), ties broken by name; stages in a cycle come last in name order.
///
/// At each step the first Stage by name whose upstream Stages (those the project has, other
/// than itself) are all placed goes next; when none is, the first unplaced one by name does
/// (breaking a cycle). Kept ready in a set and counted down as upstreams are placed, that is
/// O(n log n): scanning every Stage for the next one at each step was quadratic, and the
/// daemon plans on every `GET …/stages` (a fifth of that request at 300 Stages, BENCHMARKS.md).
fn promotion_order(mut plans: Vec<StagePlan>) -> Vec<StagePlan> {
    plans.sort_by(|a, b| a.name.cmp(&b.name));
    let names: BTreeSet<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    // Each Stage's upstream Stages not yet placed, and which Stages wait on each name.
    let mut waiting_on: Vec<usize> = Vec::with_capacity(plans.len());
    let mut dependents: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in plans.iter().enumerate() {
        let upstream: BTreeSet<&str> = p
            .freight
            .iter()
            .flat_map(|f| f.upstream.iter())
            .map(String::as_str)
            .filter(|u| names.contains(u) && *u != p.name)
            .collect();
        waiting_on.push(upstream.len());
        for u in upstream {
            dependents.entry(u).or_default().push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..plans.len()).filter(|&i| waiting_on[i] == 0).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    // The first Stage by name that may be unplaced (placing only ever moves it on).
    let mut first_unplaced = 0;
    let mut order = Vec::with_capacity(plans.len());
    while order.len() < plans.len() {
        let next = std::iter::from_fn(|| ready.pop_first()).find(|&i| !placed.contains(plans[i].name.as_str()));
        let i = next.unwrap_or_else(|| {
            while first_unplaced < plans.len() && placed.contains(plans[first_unplaced].name.as_str()) {
                first_unplaced += 1;
            }
            // Only a name twice (validation refuses it) leaves none: its second is dropped.
            if first_unplaced < plans.len() {
                first_unplaced
            } else {
                0
            }
        });
        if placed.insert(plans[i].name.as_str()) {
            for &d in dependents.get(plans[i].name.as_str()).into_iter().flatten() {
                waiting_on[d] -= 1;
                if waiting_on[d] == 0 {
                    ready.insert(d);
                }
            }
        }
        order.push(i);
    }
    let mut slots: Vec<Option<StagePlan>> = plans.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The promotion policies of a project: its ProjectConfig's, or else the older
/// `Project.spec.promotionPolicies`.
pub fn policies_for(catalog: &Catalog, project: &str) -> Vec<PromotionPolicy> {
    let from_config: Vec<PromotionPolicy> = catalog
        .resources
        .iter()
        .filter_map(|r| match &r.body {
            Some(Body::ProjectConfig(pc)) if r.project == project || (r.project.is_empty() && r.name == project) => {
                pc.spec.as_ref()
            }
            _ => None,
        })
        .flat_map(|s| s.promotion_policies.iter().cloned())
        .collect();
    if !from_config.is_empty() {
        return from_config;
    }
    catalog
        .resources
        .iter()
        .filter_map(|r| match &r.body {
            Some(Body::Project(p)) if r.name == project => p.spec.as_ref(),
            _ => None,
        })
        .flat_map(|s| s.promotion_policies.iter().cloned())
        .collect()
}

/// A `regex:`/`regexp:`/`glob:` stage selector compiled once: the daemon matches every
/// Stage against every policy and window on each reconcile, and compiling a regex costs far
/// more than matching one. `None` for a pattern that does not compile (validation reports it).
fn selector_pattern(selector: &str) -> Option<regex::Regex> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> = LazyLock::new(Default::default);
    let compile = || {
        if let Some(re) = selector
            .strip_prefix("regex:")
            .or_else(|| selector.strip_prefix("regexp:"))
        {
            regex::Regex::new(re).ok()
        } else {
            let glob = selector.strip_prefix("glob:").unwrap_or(selector);
            crate::glob::Glob::new(glob).ok().map(crate::glob::Glob::into_regex)
        }
    };
    let Ok(mut cache) = COMPILED.lock() else {
        return compile();
    };
    if let Some(re) = cache.get(selector) {
        return re.clone();
    }
    // Definitions are finite; a bound keeps a pathological reload loop from growing it.
    if cache.len() >= 4096 {
        cache.clear();
    }
    let re = compile();
    cache.insert(selector.to_string(), re.clone());
    re
}

/// Whether a promotion policy selects a stage: exact name, `regex:`/`regexp:`, `glob:`, and
/// label selectors (both must match when both are given), as in Kargo.
pub fn policy_matches(p: &PromotionPolicy, stage: &str, labels: &BTreeMap<String, String>) -> bool {
    if let Some(name) = &p.stage {
        return name == stage;
    }
    let Some(sel) = &p.stage_selector else { return false };
    let name_ok = match sel.name.as_deref() {
        None | Some("") => true,
        Some(n) => {
            if n.starts_with("regex:") || n.starts_with("regexp:") || n.starts_with("glob:") {
                selector_pattern(n).is_some_and(|re| re.is_match(stage))
            } else {
                n == stage
            }
        }
    };
    name_ok && labels_match(&sel.match_labels, &sel.match_expressions, labels)
}

/// Whether labels satisfy a Kubernetes label selector: every `matchLabels` entry and every
/// requirement (In, NotIn, Exists, DoesNotExist; another operator matches nothing).
pub fn labels_match(
    match_labels: &BTreeMap<String, String>,
    match_expressions: &[crate::model::kargo::LabelSelectorRequirement],
    labels: &BTreeMap<String, String>,
) -> bool {
    match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        && match_expressions.iter().all(|e| {
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| e.values.contains(v)),
                "NotIn" => value.is_none_or(|v| !e.values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Renders the plan for people.
pub fn render_text(plan: &Plan) -> String {
    let mut s = String::new();
    for p in &plan.projects {
        s.push_str(&format!(
            "project {}\n",
            if p.name.is_empty() { "(no namespace)" } else { &p.name }
        ));
        for w in &p.warehouses {
            s.push_str(&format!("  warehouse {}  (every {})\n", w.name, w.interval));
            for sub in &w.subscriptions {
                s.push_str(&format!("    {sub}\n"));
            }
        }
        for st in &p.stages {
            let from: Vec<String> = st
                .freight
                .iter()
                .map(|f| {
                    let mut srcs = Vec::new();
                    if f.direct {
                        srcs.push(format!("warehouse {}", f.warehouse));
                    }
                    for u in &f.upstream {
                        srcs.push(format!("stage {u}"));
                    }
                    let mut txt = format!(
                        "{} from {}",
                        f.warehouse,
                        srcs.join(if f.availability.as_deref() == Some("All") {
                            " and "
                        } else {
                            " or "
                        })
                    );
                    if let Some(soak) = &f.required_soak_time {
                        txt.push_str(&format!(" after {soak} soak"));
                    }
                    txt
                })
                .collect();
            s.push_str(&format!(
                "  stage {}{}\n",
                st.name,
                if st.auto_promotion { "  [auto-promotion]" } else { "" }
            ));
            s.push_str(&format!(
                "    freight: {}\n",
                if from.is_empty() {
                    "none".to_string()
                } else {
                    from.join("; ")
                }
            ));
            if st.steps.is_empty() {
                s.push_str("    steps: none (control-flow stage)\n");
            } else {
                s.push_str(&format!("    steps: {}\n", render_steps(&st.steps)));
            }
            if !st.verification.is_empty() {
                s.push_str(&format!("    verification: {}\n", st.verification.join(", ")));
            }
            if !st.downstream.is_empty() {
                s.push_str(&format!("    → {}\n", st.downstream.join(", ")));
            }
        }
    }
    s
}

fn render_steps(steps: &[StepPlan]) -> String {
    steps
        .iter()
        .map(|s| {
            if s.steps.is_empty() {
                s.uses.clone()
            } else {
                format!("{} [{}]", s.uses, render_steps(&s.steps))
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order as it was first written: at each step, scan every Stage for the first ready
    /// one. Quadratic, and the reference the fast one must match exactly.
    fn scanned_order(mut plans: Vec<StagePlan>) -> Vec<StagePlan> {
        plans.sort_by(|a, b| a.name.cmp(&b.name));
        let names: BTreeSet<String> = plans.iter().map(|p| p.name.clone()).collect();
        let mut placed: BTreeSet<String> = BTreeSet::new();
        let mut order = Vec::new();
        while order.len() < plans.len() {
            let next = plans.iter().position(|p| {
                !placed.contains(&p.name)
                    && p.freight
                        .iter()
                        .flat_map(|f| f.upstream.iter())
                        .all(|u| placed.contains(u) || !names.contains(u) || u == &p.name)
            });
            let i = next.unwrap_or_else(|| plans.iter().position(|p| !placed.contains(&p.name)).unwrap_or(0));
            placed.insert(plans[i].name.clone());
            order.push(i);
        }
        let mut slots: Vec<Option<StagePlan>> = plans.into_iter().map(Some).collect();
        order.into_iter().filter_map(|i| slots[i].take()).collect()
    }

    fn stage(name: &str, upstream: &[Vec<String>]) -> StagePlan {
        StagePlan {
            name: name.to_string(),
            freight: upstream
                .iter()
                .map(|u| FreightPlan {
                    warehouse: "w".into(),
                    direct: u.is_empty(),
                    upstream: u.clone(),
                    required_soak_time: None,
                    availability: None,
                })
                .collect(),
            auto_promotion: false,
            steps: Vec::new(),
            verification: Vec::new(),
            downstream: Vec::new(),
            pipeline: None,
        }
    }

    fn names(plans: &[StagePlan]) -> Vec<&str> {
        plans.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn the_order_is_upstream_first_ties_by_name_and_cycles_last() {
        let plans = vec![
            stage("prod", &[vec!["staging".into()]]),
            stage("staging", &[vec!["dev".into()]]),
            stage("dev", &[vec![]]),
            stage("b", &[vec!["a".into()]]),
            stage("a", &[vec!["b".into()]]),
            stage("self", &[vec!["self".into(), "elsewhere".into()]]),
        ];
        assert_eq!(
            names(&promotion_order(plans)),
            ["dev", "self", "staging", "prod", "a", "b"]
        );
    }

    #[test]
    fn the_order_is_the_one_a_scan_for_each_next_stage_finds() {
        // Random graphs (a fixed xorshift): chains, fan-in, fan-out, cycles, self-loops,
        // upstreams the project lacks, and names twice.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let n = 1 + next(40);
            let plans: Vec<StagePlan> = (0..n)
                .map(|i| {
                    let name = format!("s{}", if next(20) == 0 { next(n) } else { i });
                    let requests = (0..1 + next(3))
                        .map(|_| (0..next(4)).map(|_| format!("s{}", next(n + 3))).collect())
                        .collect::<Vec<Vec<String>>>();
                    stage(&name, &requests)
                })
                .collect();
            let want = scanned_order(plans.clone());
            assert_eq!(names(&promotion_order(plans)), names(&want));
        }
    }
}
