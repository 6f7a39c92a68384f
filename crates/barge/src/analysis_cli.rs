//! `barge analysis run`: one AnalysisTemplate, run now, its measurements shown as they land
//! and summarised at the end (the same report a Stage verification stores).

use crate::Format;
use anyhow::Result;
use barge_analysis::{Measurement, MetricReport, Report};
use barge_core::analysis::Phase;
use std::collections::BTreeMap;
use std::process::ExitCode;

pub fn run(
    paths: &[String],
    template: Option<&str>,
    given: &[(String, String)],
    prometheus: Option<&str>,
    namespace: &str,
    config: Option<&std::path::Path>,
    output: Format,
) -> Result<ExitCode> {
    let catalog = match crate::load(paths) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if catalog.errors() > 0 {
        eprint!("{}", barge_engine::diagnostics::diagnostics_text(&catalog, false));
        return Ok(ExitCode::from(2));
    }
    let usage = |e: barge_engine::EngineError| {
        eprintln!("barge: error: {e}");
        ExitCode::from(2)
    };
    let (name, spec) = match barge_engine::verify::find_template(&catalog, template, paths) {
        Ok(found) => found,
        Err(e) => return Ok(usage(e)),
    };
    let secrets = match config {
        Some(path) => barge_engine::config::Config::load(path)?.read_secrets()?,
        None => BTreeMap::new(),
    };
    let given: BTreeMap<String, String> = given.iter().cloned().collect();
    let analysis = match barge_engine::verify::prepare_adhoc(name, spec, prometheus, &given, &secrets) {
        Ok(a) => a,
        Err(e) => return Ok(usage(e)),
    };
    eprintln!("barge: running analysis {name} (Ctrl-C stops it)");
    let report = crate::block_on(async {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop.send(true);
            }
        });
        let providers = barge_analysis::Providers {
            // The definitions' URLs lost their userinfo when loaded; requests to them send it.
            http: barge_analysis::http::Http::default().with_url_credentials(catalog.url_credentials.clone()),
            jobs: Some(barge_analysis::job::JobTarget {
                clusters: std::sync::Arc::new(barge_kube::Clusters::new(None)),
                context: None,
                namespace: namespace.to_string(),
                run: format!("{name}-{:x}", barge_engine::promote::now_millis()),
            }),
        };
        Ok(barge_analysis::run(&analysis, &providers, stopped, |metric, m| {
            eprintln!("  {}", progress_line(metric, m))
        })
        .await)
    })?;
    crate::client::print(output, &report, || report_text(&report))?;
    Ok(if report.phase == Phase::Successful && !report.stopped {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `success-rate #3 Failed [0.9]  (message)`.
pub fn progress_line(metric: &MetricReport, m: &Measurement) -> String {
    let mut line = format!(
        "{} #{} {} {}",
        metric.name,
        metric.counters.count + metric.counters.error,
        m.phase.as_str(),
        m.value.as_deref().unwrap_or("-")
    );
    if let Some(msg) = &m.message {
        line.push_str(&format!("  ({msg})"));
    }
    line
}

/// The report for people: each metric's query and conditions, its measurements and phase,
/// then the run's phase and why.
pub fn report_text(report: &Report) -> String {
    let mut out = String::new();
    for m in &report.metrics {
        out.push_str(&format!(
            "{}{}: {}  ({} measured: {} successful, {} failed, {} inconclusive, {} error)\n",
            m.name,
            if m.dry_run { " [dry-run]" } else { "" },
            m.phase.as_str(),
            m.counters.count + m.counters.error,
            m.counters.successful,
            m.counters.failed,
            m.counters.inconclusive,
            m.counters.error
        ));
        out.push_str(&format!("  {}: {}\n", m.provider, m.resolved.replace('\n', "\n    ")));
        for (label, c) in [("success", &m.success_condition), ("failure", &m.failure_condition)] {
            if let Some(c) = c {
                out.push_str(&format!("  {label} when: {c}\n"));
            }
        }
        for x in &m.measurements {
            let at = chrono::DateTime::from_timestamp_millis(x.finished_at)
                .map_or_else(String::new, |t| t.format("%H:%M:%S").to_string());
            out.push_str(&format!(
                "  {at}  {:<12} {}{}\n",
                x.phase.as_str(),
                x.value.as_deref().unwrap_or("-"),
                x.message.as_deref().map(|s| format!("  ({s})")).unwrap_or_default()
            ));
        }
    }
    out.push_str(&format!("Phase: {}", report.phase.as_str()));
    if !report.message.is_empty() {
        out.push_str(&format!(" — {}", report.message));
    }
    out.push('\n');
    out
}
