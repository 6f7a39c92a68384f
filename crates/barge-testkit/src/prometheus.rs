//! A real Prometheus (Debian `prometheus`) serving data backfilled with `promtool`, so analysis
//! tests are exact: every counter grows at a fixed rate from an hour ago to an hour from now,
//! so any `rate(...[2m])` queried "now" — as the provider does — has a known value. Or one
//! that scrapes a target (barge's own `/metrics`) every second, for tests that query what it
//! scraped ([`Prometheus::scraping`], [`Prometheus::query`]).

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One counter series: `family{labels}` growing by `per_second` each second.
pub struct Counter {
    pub family: &'static str,
    pub labels: &'static str,
    pub per_second: f64,
}

/// Counters of `family` for app `app` with the given 2xx and 5xx request rates.
pub fn requests(app: &'static str, ok: f64, errors: f64) -> Vec<Counter> {
    let labels: &'static str = Box::leak(format!("app=\"{app}\",code=\"200\"").into_boxed_str());
    let failing: &'static str = Box::leak(format!("app=\"{app}\",code=\"500\"").into_boxed_str());
    vec![
        Counter {
            family: "http_requests_total",
            labels,
            per_second: ok,
        },
        Counter {
            family: "http_requests_total",
            labels: failing,
            per_second: errors,
        },
    ]
}

/// One counter series with explicit samples: (unix seconds, value), in time order.
pub struct Series {
    pub family: &'static str,
    pub labels: &'static str,
    pub samples: Vec<(i64, f64)>,
}

/// The time now, in unix seconds.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub struct Prometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(counters: &[Counter]) -> Prometheus {
        Self::start_with(counters, None)
    }

    /// With `basic_auth = Some((user, password))`, Prometheus demands those credentials
    /// (its `--web.config.file`, bcrypt via `htpasswd`).
    pub fn start_with(counters: &[Counter], basic_auth: Option<(&str, &str)>) -> Prometheus {
        let now = now_secs();
        let series: Vec<Series> = counters
            .iter()
            .map(|c| Series {
                family: c.family,
                labels: c.labels,
                samples: (now - 3600..now + 3600)
                    .step_by(10)
                    .enumerate()
                    .map(|(i, t)| (t, c.per_second * 10.0 * i as f64))
                    .collect(),
            })
            .collect();
        Self::backfilled(&series, basic_auth)
    }

    /// A Prometheus holding exactly these counter samples (for values that change at a known
    /// time, e.g. a burst of errors that leaves a `rate(...[2m])` window at a chosen instant).
    pub fn start_series(series: &[Series]) -> Prometheus {
        Self::backfilled(series, None)
    }

    fn backfilled(series: &[Series], basic_auth: Option<(&str, &str)>) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        let mut families: Vec<&str> = series.iter().map(|c| c.family).collect();
        families.dedup();
        for family in families {
            text.push_str(&format!("# TYPE {family} counter\n"));
            for c in series.iter().filter(|c| c.family == family) {
                for (t, v) in &c.samples {
                    text.push_str(&format!("{family}{{{}}} {v} {t}\n", c.labels));
                }
            }
        }
        text.push_str("# EOF\n");
        let data = dir.path().join("data.om");
        std::fs::write(&data, text).unwrap();
        let tsdb = dir.path().join("tsdb");
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&data)
            .arg(&tsdb)
            .output()
            .expect("promtool (Debian package prometheus)");
        assert!(
            out.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(dir.path().join("p.yml"), "global: {scrape_interval: 15s}\n").unwrap();
        Self::launch(dir, &tsdb, basic_auth)
    }

    /// A Prometheus scraping `target` (`host:port`, path `/metrics`) every second, with
    /// `bearer_token` (when given) read from a `credentials_file` as its `authorization`.
    pub fn scraping(target: &str, bearer_token: Option<&str>) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let authorization = match bearer_token {
            Some(token) => {
                let file = dir.path().join("barge.token");
                std::fs::write(&file, token).unwrap();
                format!("    authorization: {{credentials_file: {}}}\n", file.display())
            }
            None => String::new(),
        };
        let config = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
             scrape_configs:\n\
             \x20 - job_name: barge\n\
             {authorization}\
             \x20   static_configs: [{{targets: ['{target}']}}]\n"
        );
        std::fs::write(dir.path().join("p.yml"), config).unwrap();
        let tsdb = dir.path().join("tsdb");
        Self::launch(dir, &tsdb, None)
    }

    /// Starts Prometheus on `dir/p.yml` and `tsdb` and waits until it is ready.
    fn launch(dir: tempfile::TempDir, tsdb: &std::path::Path, basic_auth: Option<(&str, &str)>) -> Prometheus {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", dir.path().join("p.yml").display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap());
        if let Some((user, password)) = basic_auth {
            let out = Command::new("htpasswd")
                .args(["-nbB", user, password])
                .output()
                .expect("htpasswd (Debian package apache2-utils)");
            let line = String::from_utf8(out.stdout).unwrap();
            let hash = line.trim().split_once(':').unwrap().1.to_string();
            let web = dir.path().join("web.yml");
            std::fs::write(&web, format!("basic_auth_users:\n  {user}: '{hash}'\n")).unwrap();
            cmd.arg(format!("--web.config.file={}", web.display()));
        }
        let child = cmd.spawn().expect("prometheus (Debian package prometheus)");
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if p.ready(basic_auth) {
                break;
            }
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// An instant PromQL query through the HTTP API (`/api/v1/query`): each series' labels and
    /// value. A query Prometheus refuses fails the test with its error.
    pub async fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), [("query", promql)]).unwrap();
        let answer: serde_json::Value = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .expect("prometheus answers")
            .json()
            .await
            .expect("prometheus answers JSON");
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (r["metric"].clone(), value)
            })
            .collect()
    }

    /// What Prometheus says of its scrape targets (`/api/v1/targets`): each active one's
    /// health and last error, to explain a query that never finds the series.
    pub async fn targets(&self) -> String {
        let answer: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/targets", self.url))
            .send()
            .await
            .expect("prometheus answers")
            .json()
            .await
            .expect("prometheus answers JSON");
        answer["data"]["activeTargets"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| format!("{} {}: {}", t["scrapeUrl"], t["health"], t["lastError"]))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// `/-/ready` answers 200 (a raw HTTP/1.0 request: no client needed).
    fn ready(&self, basic_auth: Option<(&str, &str)>) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect(self.url.trim_start_matches("http://")) else {
            return false;
        };
        let auth = basic_auth
            .map(|(u, p)| {
                use base64::Engine;
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                format!("Authorization: Basic {token}\r\n")
            })
            .unwrap_or_default();
        if s.write_all(format!("GET /-/ready HTTP/1.0\r\n{auth}\r\n").as_bytes())
            .is_err()
        {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
