//! How diagnostics look: rustc-style text for people (the CLI, the daemon's log of a rejected
//! reload), the documented JSON for scripts and the audit log.

use barge_core::{Catalog, Diagnostic, Severity};

/// `{"resources": N, "diagnostics": [...]}`, the contract of `barge validate -o json`.
pub fn validate_json(catalog: &Catalog) -> serde_json::Value {
    serde_json::json!({
        "resources": catalog.documents,
        "diagnostics": catalog.diagnostics,
    })
}

pub fn summary(catalog: &Catalog) -> String {
    let errors = catalog.errors();
    let warnings = catalog.diagnostics.len() - errors;
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}: {}, {}, {}",
        if errors > 0 { "failed" } else { "ok" },
        plural(catalog.documents, "resource"),
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

/// Every diagnostic, each like rustc's:
///
/// ```text
/// error[unresolved-warehouse]: Warehouse "x" is not defined in project "demo"
///   --> kargo/stages.yaml:12:13 (Stage demo/dev)
///    |
/// 12 |       name: x
///    |             ^
///    = help: did you mean "kargo-demo"?
/// ```
pub fn diagnostics_text(catalog: &Catalog, color: bool) -> String {
    let mut s = String::new();
    for d in &catalog.diagnostics {
        s.push_str(&diagnostic_text(
            d,
            catalog.texts.get(&d.file).map(String::as_str),
            color,
        ));
        s.push('\n');
    }
    s
}

fn diagnostic_text(d: &Diagnostic, text: Option<&str>, color: bool) -> String {
    let paint = |code: &str, t: &str| {
        if color {
            format!("\x1b[{code}m{t}\x1b[0m")
        } else {
            t.to_string()
        }
    };
    let (sev_color, sev) = match d.severity {
        Severity::Error => ("1;31", "error"),
        Severity::Warning => ("1;33", "warning"),
    };
    let mut s = format!(
        "{}{}\n",
        paint(sev_color, &format!("{sev}[{}]", d.code)),
        paint("1", &format!(": {}", d.message))
    );
    let resource = if d.kind.is_empty() {
        String::new()
    } else if d.namespace.is_empty() {
        format!(" ({} {})", d.kind, d.name)
    } else {
        format!(" ({} {}/{})", d.kind, d.namespace, d.name)
    };
    let line_no = d.line.to_string();
    let pad = " ".repeat(line_no.len());
    if d.line == 0 {
        s.push_str(&format!("{pad}{} {}{resource}\n", paint("1;34", "-->"), d.file));
    } else {
        s.push_str(&format!(
            "{pad}{} {}:{}:{}{resource}\n",
            paint("1;34", "-->"),
            d.file,
            d.line,
            d.column
        ));
    }
    if let Some(line) = text
        .and_then(|t| t.lines().nth(d.line.saturating_sub(1) as usize))
        .filter(|_| d.line > 0)
    {
        let bar = paint("1;34", "|");
        let line = line.trim_end_matches('\r');
        // Carets go under the characters; tabs are kept so the columns line up.
        let lead: String = line
            .chars()
            .take(d.column.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let available = line
            .chars()
            .count()
            .saturating_sub(d.column.saturating_sub(1) as usize)
            .max(1);
        let width = (d.width as usize).clamp(1, available);
        s.push_str(&format!("{pad} {bar}\n"));
        s.push_str(&format!("{} {bar} {line}\n", paint("1;34", &line_no)));
        s.push_str(&format!("{pad} {bar} {lead}{}\n", paint(sev_color, &"^".repeat(width))));
    }
    if !d.hint.is_empty() {
        s.push_str(&format!(
            "{pad} {} {}\n",
            paint("1;34", "="),
            paint("1", &format!("help: {}", d.hint))
        ));
    }
    s
}
