//! Helpers for the analysis tests: load templates, point them at local servers, run them.

#![allow(dead_code)] // each test crate uses part of it

use barge_analysis::Providers;
use barge_analysis::{Analysis, Report};
use barge_core::analysis::args;
use barge_core::model::analysis::{AnalysisTemplate, AnalysisTemplateSpec};
use std::collections::BTreeMap;

/// A template's spec from YAML text (a whole AnalysisTemplate document).
pub fn spec(yaml: &str) -> AnalysisTemplateSpec {
    let t: AnalysisTemplate = yaml_serde::from_str(yaml).expect("an AnalysisTemplate");
    t.spec.expect("a spec")
}

/// A fixture template (tests/fixtures/NAME.yaml).
pub fn fixture(name: &str) -> AnalysisTemplateSpec {
    let path = format!("{}/tests/fixtures/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    spec(&std::fs::read_to_string(path).unwrap())
}

/// Points every Prometheus metric at `url` (the templates name in-cluster addresses).
pub fn at_prometheus(mut s: AnalysisTemplateSpec, url: &str) -> AnalysisTemplateSpec {
    for m in &mut s.metrics {
        if let Some(p) = &mut m.provider.prometheus {
            p.address = Some(url.to_string());
        }
    }
    s
}

/// Scales the template's clock for a test: each `interval` and `initialDelay` is replaced
/// (the semantics stay those of the template; only the waiting is shorter).
pub fn with_timing(mut s: AnalysisTemplateSpec, interval: &str, initial_delay: Option<&str>) -> AnalysisTemplateSpec {
    for m in &mut s.metrics {
        if m.interval.is_some() {
            m.interval = Some(interval.to_string());
        }
        if m.initial_delay.is_some() {
            m.initial_delay = initial_delay.map(str::to_string);
        }
    }
    s
}

pub fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Prepares and runs a template to its end.
pub async fn run(s: &AnalysisTemplateSpec, given: &[(&str, &str)]) -> Report {
    run_stopping_after(s, given, usize::MAX).await
}

/// Prepares and runs a template, stopping it (as an abort would) after `n` measurements: for
/// metrics that run until terminated (an interval and no count).
pub async fn run_stopping_after(s: &AnalysisTemplateSpec, given: &[(&str, &str)], n: usize) -> Report {
    let resolved = args::resolve(&s.args, &args(given), &mut |n, k| {
        Err(format!("no secret {n}.{k} in this test"))
    })
    .expect("arguments resolve");
    let analysis = Analysis::prepare(s, &resolved).expect("the analysis prepares");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut seen = 0;
    barge_analysis::run(&analysis, &Providers::default(), stopped, |_, _| {
        seen += 1;
        if seen >= n {
            let _ = stop.send(true);
        }
    })
    .await
}
