//! A plain HTTP server for tests: python3's http.server serving a directory.

use std::path::Path;
use std::process::Command;

/// python3's http.server, stopped when dropped.
pub struct HealthServer(std::process::Child);

impl Drop for HealthServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `dir` over HTTP on `port` (python3's http.server): 404 until a file exists.
pub fn health_server(dir: &Path, port: u16) -> HealthServer {
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
            dir.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    HealthServer(child)
}
