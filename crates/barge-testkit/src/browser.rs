//! A real browser for the web UI's tests: Debian's `chromium`, headless with a throwaway
//! profile, driven over WebDriver by `chromedriver` on a free loopback port (both installed
//! by scripts/test-env; nothing is downloaded). WebDriver is plain HTTP on loopback, so the
//! client has no TLS (fantoccini without its TLS features: no second crypto provider).

use crate::free_port;
pub use fantoccini::{Client, Locator, actions, key::Key};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A browser session; dropping it ends chromedriver (close the session first to end
/// chromium cleanly).
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    /// chromedriver's port, for the Chrome DevTools commands WebDriver has no verb for.
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless chromium with a window of `width` x `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver; scripts/test-env installs it)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = driver.kill();
                panic!("chromedriver did not listen on port {port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new",
                    // Tests run as root in CI, where chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match client {
            Ok(client) => Browser {
                client,
                driver,
                port,
                _profile: profile,
            },
            Err(e) => {
                let _ = driver.kill();
                panic!("no chromium session: {e}");
            }
        }
    }

    /// Emulates the reader's `prefers-color-scheme` (`"light"` or `"dark"`) for the pages
    /// shown from now on, through chromedriver's Chrome DevTools endpoint
    /// (`Emulation.setEmulatedMedia`).
    pub async fn prefer_color_scheme(&self, scheme: &str) {
        let session = self
            .client
            .session_id()
            .await
            .expect("a WebDriver session")
            .expect("a session id");
        let body = serde_json::json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        });
        // reqwest builds its TLS settings even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let r = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/session/{session}/goog/cdp/execute",
                self.port
            ))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("chromedriver answers");
        assert!(r.status().is_success(), "Emulation.setEmulatedMedia: {}", r.status());
    }

    /// Ends the browser session (chromium exits) and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
