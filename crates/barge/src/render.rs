//! How answers look for people: colours, aligned tables, times.

use std::io::IsTerminal;

pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

pub fn use_color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// Aligned columns; the last column is not padded.
pub fn table(rows: Vec<Vec<String>>) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == columns {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

/// A Unix-millisecond time for tables.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format(TABLE_TIME).to_string())
        .unwrap_or_default()
}

const TABLE_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// An RFC 3339 time (as the engine writes Kargo's `metav1.Time`) for tables.
pub fn rfc3339_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.format(TABLE_TIME).to_string())
        .unwrap_or_default()
}

/// `barge discover`'s text for people.
pub fn discovery_text(reports: &[barge_engine::discover::WarehouseReport]) -> String {
    let mut s = String::new();
    for w in reports {
        let project = if w.project.is_empty() {
            String::new()
        } else {
            format!("{}/", w.project)
        };
        s.push_str(&format!("warehouse {project}{}\n", w.warehouse));
        for sub in &w.subscriptions {
            match (&sub.image, &sub.error) {
                (Some(d), _) => {
                    s.push_str(&format!(
                        "  image {}  {}: {} tags listed, {} eligible, {} requests\n",
                        sub.repo_url, d.strategy, d.tags_listed, d.tags_eligible, d.requests
                    ));
                    for (i, c) in d.candidates.iter().enumerate() {
                        let short = c.digest.get(..19).unwrap_or(&c.digest);
                        let created = c.created.as_deref().map(|t| format!("  built {t}")).unwrap_or_default();
                        s.push_str(&format!(
                            "    {} {:<24} {short}…{created}\n",
                            if i == 0 { "→" } else { " " },
                            c.tag
                        ));
                    }
                    if d.candidates.is_empty() {
                        s.push_str("    (no candidates)\n");
                    }
                }
                (None, Some(e)) => s.push_str(&format!("  {} {}  error: {e}\n", sub.kind, sub.repo_url)),
                (None, None) => {
                    if let Some(g) = &sub.git {
                        s.push_str(&format!("  git {}  {}\n", sub.repo_url, g.strategy));
                        for (i, c) in g.candidates.iter().enumerate() {
                            let at = c.tag.clone().or_else(|| c.branch.clone()).unwrap_or_default();
                            s.push_str(&format!(
                                "    {} {} {:<16} {}\n",
                                if i == 0 { "→" } else { " " },
                                c.id.get(..12).unwrap_or(&c.id),
                                at,
                                c.message
                            ));
                        }
                    }
                    if let Some(c) = &sub.chart {
                        s.push_str(&format!(
                            "  chart {} {}: {} versions listed\n",
                            sub.repo_url, c.name, c.versions_listed
                        ));
                        for (i, v) in c.versions.iter().enumerate() {
                            s.push_str(&format!("    {} {v}\n", if i == 0 { "→" } else { " " }));
                        }
                    }
                }
            }
        }
        match (&w.freight, &w.no_freight_reason) {
            (Some(f), note) => {
                let stored = match w.stored {
                    Some("created") => "  [stored]",
                    Some(_) => "  [already stored]",
                    None => "",
                };
                s.push_str(&format!(
                    "  freight {} ({}){stored}\n",
                    f["metadata"]["name"].as_str().unwrap_or(""),
                    f["alias"].as_str().unwrap_or("")
                ));
                for img in f["images"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "    {}:{}\n",
                        img["repoURL"].as_str().unwrap_or(""),
                        img["tag"].as_str().unwrap_or("")
                    ));
                }
                if let Some(n) = note {
                    s.push_str(&format!("    note: {n}\n"));
                }
            }
            (None, Some(reason)) => s.push_str(&format!("  no freight: {reason}\n")),
            (None, None) => {}
        }
    }
    if reports.is_empty() {
        s.push_str("no warehouses found\n");
    }
    s
}

/// `barge promote`'s report for people: the outcome in a line.
pub fn promotion_text(report: &barge_engine::promote::PromotionReport) -> String {
    let mut text = String::new();
    text += &format!(
        "Promotion {} of {} into {}: {}{}\n",
        report.name,
        report.freight_alias.as_deref().unwrap_or(&report.freight),
        report.stage,
        report.phase.as_str(),
        if report.message.is_empty() {
            String::new()
        } else {
            format!(" ({})", report.message)
        }
    );
    if !report.effects.is_empty() {
        text += &format!("Applied {} metadata/alias change(s)\n", report.effects.len());
    }
    text
}

/// `barge promote --dry-run` for people: each push's changed files and diff, the steps
/// skipped or simulated, then the outcome in a line.
pub fn plan_text(plan: &barge_engine::answer::PromotionPlan) -> String {
    let mut text = String::new();
    for push in &plan.pushes {
        text += &format!(
            "# a push to {} of {} would change {} file(s): {}\n{}",
            push.branch,
            push.repo_url,
            push.files.len(),
            push.files.join(", "),
            push.diff
        );
    }
    for s in &plan.skipped_steps {
        text += &format!("# {} ({}): {}\n", s.step, s.uses, s.reason);
    }
    text += &format!(
        "Dry run of {} into {}: {}{}\n",
        plan.alias.as_deref().unwrap_or(&plan.freight),
        plan.stage,
        plan.phase.as_str(),
        if plan.message.is_empty() {
            String::new()
        } else {
            format!(" ({})", plan.message)
        }
    );
    text
}
