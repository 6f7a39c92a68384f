//! A forward HTTP proxy for tests: tinyproxy (Debian's `tinyproxy`), on a loopback port, with
//! its log kept so a test can see the requests it forwarded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tinyproxy, stopped when dropped.
pub struct ForwardProxy {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ForwardProxy {
    /// Starts tinyproxy in `dir` (its config and log live there); with `basic_auth`, it
    /// answers 407 to a request without those credentials.
    pub fn start(dir: &Path, basic_auth: Option<(&str, &str)>) -> ForwardProxy {
        let port = crate::free_port();
        let log = dir.join("tinyproxy.log");
        let auth = basic_auth.map_or(String::new(), |(u, p)| format!("BasicAuth {u} {p}\n"));
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 20\n\
                 LogFile \"{}\"\nLogLevel Info\nPidFile \"{}\"\n{auth}",
                log.display(),
                dir.join("tinyproxy.pid").display()
            ),
        )
        .unwrap();
        // -d: stay in the foreground (a child this value owns).
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy (scripts/test-env installs Debian's tinyproxy)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ForwardProxy { child, port, log }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines tinyproxy logged (`GET http://127.0.0.1:8080/x HTTP/1.1`), oldest first.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("Request (file descriptor ").map(|(_, r)| r))
            .filter_map(|r| r.split_once("): ").map(|(_, line)| line.to_string()))
            .collect()
    }
}
