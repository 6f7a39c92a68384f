//! barge's `/metrics` (OpenMetrics text) as tests and benches read it: a scrape, whole
//! sample lines, and the samples of one metric with their labels and values.

/// The text of one scrape.
pub struct Metrics {
    pub text: String,
}

/// One sample line: `name{labels} value`.
pub struct Sample<'a> {
    /// The whole line.
    pub line: &'a str,
    /// Inside the braces (empty without labels).
    labels: &'a str,
    pub value: f64,
}

/// Scrapes `base` + `/metrics` (`base` like `http://127.0.0.1:PORT`) with a bearer `token`.
pub async fn scrape(base: &str, token: &str) -> Metrics {
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the body of /metrics");
    Metrics { text }
}

impl Metrics {
    /// Exposition text read some other way.
    pub fn parse(text: impl Into<String>) -> Metrics {
        Metrics { text: text.into() }
    }

    /// Whether a line is exactly `line` (a sample: `name{labels} value`).
    pub fn has(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }

    /// The samples of the metric `name` (a counter's `name`, not its `_created`), in order.
    pub fn samples(&self, name: &str) -> Vec<Sample<'_>> {
        self.text
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(name)?;
                let (labels, value) = match rest.strip_prefix('{') {
                    Some(labelled) => labelled.rsplit_once("} ")?,
                    None => ("", rest.strip_prefix(' ')?),
                };
                // A value, then an optional timestamp.
                let value = value.split(' ').next()?.parse().ok()?;
                Some(Sample { line, labels, value })
            })
            .collect()
    }
}

impl Sample<'_> {
    /// The value of the label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        let mut rest = self.labels;
        while !rest.is_empty() {
            let (k, after) = rest.split_once("=\"")?;
            // The value ends at the first quote not escaped with a backslash.
            let end = after
                .char_indices()
                .scan(false, |escaped, (i, c)| {
                    let at = (c == '"' && !*escaped).then_some(i);
                    *escaped = c == '\\' && !*escaped;
                    Some(at)
                })
                .flatten()
                .next()?;
            if k == key {
                return Some(&after[..end]);
            }
            rest = after[end + 1..].trim_start_matches(',');
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_with_their_labels_and_values() {
        let m = Metrics::parse(
            "# TYPE barge_discoveries_total counter\n\
             barge_discoveries_total{project=\"demo\",warehouse=\"a \\\"b\\\"\",outcome=\"minted\"} 3\n\
             barge_discoveries_total_created{project=\"demo\"} 1.7e9\n\
             barge_work{kind=\"promotion\",state=\"queued\"} 0\n\
             barge_up 1\n# EOF\n",
        );
        let s = m.samples("barge_discoveries_total");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[0].label("warehouse"), Some("a \\\"b\\\""));
        assert_eq!(s[0].label("outcome"), Some("minted"));
        assert_eq!(s[0].label("stage"), None);
        assert_eq!(m.samples("barge_up")[0].value, 1.0);
        assert!(m.has("barge_work{kind=\"promotion\",state=\"queued\"} 0"));
        assert!(!m.has("barge_work{kind=\"promotion\",state=\"queued\"} 1"));
    }
}
