//! Git test kit: the git CLI with a fixed identity, `git daemon` on an ephemeral port, and git
//! smart HTTP behind nginx with basic auth.

pub use crate::free_port;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs git in `dir` as author `Ada <ada@example.com>` and committer `Bob <bob@example.com>`
/// (distinct, so tests can tell them apart); panics with git's stderr on failure and returns
/// its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    run_git(dir, args, None)
}

/// [`git`] with both author and committer dates set to `date` (deterministic history).
pub fn git_dated(dir: &Path, args: &[&str], date: &str) -> String {
    run_git(dir, args, Some(date))
}

fn run_git(dir: &Path, args: &[&str], date: Option<&str>) -> String {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Bob")
        .env("GIT_COMMITTER_EMAIL", "bob@example.com");
    if let Some(date) = date {
        cmd.env("GIT_AUTHOR_DATE", date).env("GIT_COMMITTER_DATE", date);
    }
    let out = cmd.output().expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git daemon` exporting every repository below a directory; killed on drop.
pub struct GitDaemon {
    pub port: u16,
    child: Child,
}

impl GitDaemon {
    /// Starts the daemon with `base` as its base path and waits (bounded) until it listens.
    pub fn start(base: &Path) -> GitDaemon {
        let port = free_port();
        // `git daemon` runs git-daemon as a child of its own and waits for it: killing `git`
        // would leave the daemon running, orphaned (with the test's inherited descriptors).
        // Started directly, the process dropped is the one that listens.
        let child = Command::new(exec_path().join("git-daemon"))
            .args([
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
            ])
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon (Debian package git)");
        let daemon = GitDaemon { port, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }
}

/// Where git keeps its programs (`git --exec-path`).
fn exec_path() -> PathBuf {
    static EXEC_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXEC_PATH
        .get_or_init(|| {
            let out = Command::new("git")
                .arg("--exec-path")
                .output()
                .expect("git (Debian package git)");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct SmartHttp {
    nginx: Child,
    fcgi: Child,
}

impl Drop for SmartHttp {
    fn drop(&mut self) {
        let _ = self.nginx.kill();
        let _ = self.fcgi.kill();
        let _ = self.nginx.wait();
        let _ = self.fcgi.wait();
    }
}

/// git smart HTTP (git-http-backend via fcgiwrap) behind nginx with basic auth, the setup
/// git-http-backend(1) describes for serving repositories over HTTP.
pub fn smart_http(root: &Path, user: &str, pass: &str) -> (SmartHttp, u16) {
    serve_smart_http(root, user, pass, false)
}

/// [`smart_http`] over HTTPS with a self-signed certificate (`root/cert.pem`), which git
/// refuses unless told not to verify it.
pub fn smart_https(root: &Path, user: &str, pass: &str) -> (SmartHttp, u16) {
    serve_smart_http(root, user, pass, true)
}

fn serve_smart_http(root: &Path, user: &str, pass: &str, tls: bool) -> (SmartHttp, u16) {
    let port = free_port();
    let listen = if tls {
        let (cert, key) = crate::self_signed_cert(root);
        format!(
            "{port} ssl; ssl_certificate {}; ssl_certificate_key {}",
            cert.display(),
            key.display()
        )
    } else {
        port.to_string()
    };
    let sock = root.join("fcgi.sock");
    let htpasswd = root.join("htpasswd");
    assert!(
        Command::new("htpasswd")
            .args(["-bc", htpasswd.to_str().unwrap(), user, pass])
            .output()
            .unwrap()
            .status
            .success()
    );
    let fcgi = Command::new("fcgiwrap")
        .args(["-s", &format!("unix:{}", sock.display())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fcgiwrap (Debian package fcgiwrap)");
    let conf = root.join("nginx.conf");
    let r = root.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off; user root; pid {r}/nginx.pid; error_log {r}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {r}/tmp; fastcgi_temp_path {r}/tmp; proxy_temp_path {r}/tmp; uwsgi_temp_path {r}/tmp; scgi_temp_path {r}/tmp;\n  server {{\n    listen 127.0.0.1:{listen};\n    location / {{\n      auth_basic \"git\"; auth_basic_user_file {htpasswd};\n      client_max_body_size 0;\n      include /etc/nginx/fastcgi_params;\n      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;\n      fastcgi_param GIT_PROJECT_ROOT {r};\n      fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n      fastcgi_param PATH_INFO $uri;\n      fastcgi_param REMOTE_USER $remote_user;\n      fastcgi_pass unix:{sock};\n    }}\n  }}\n}}\n",
            htpasswd = htpasswd.display(),
            sock = sock.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let nginx = Command::new("nginx")
        .args(["-c", conf.to_str().unwrap(), "-p", &r.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (Debian package nginx-light)");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "nginx/fcgiwrap did not start: {}",
            std::fs::read_to_string(root.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (SmartHttp { nginx, fcgi }, port)
}

/// A bare repository `root/<name>` whose `main` holds `files` (path, text) in one commit
/// made in `root/seed-<name>`.
pub fn bare_repo(root: &Path, name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let work = root.join(format!("seed-{}", name.replace('/', "-")));
    for (path, text) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().expect("a file path")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "seed"]);
    let bare = root.join(name);
    std::fs::create_dir_all(bare.parent().expect("a parent")).expect("mkdir");
    git(
        root,
        &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()],
    );
    bare
}

/// The commits of `branch` in the repository at `dir` that change nothing (their tree is
/// their parent's), newest first.
pub fn empty_commits(dir: &Path, branch: &str) -> Vec<String> {
    git(dir, &["log", "--format=%H %T %P", branch])
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (commit, tree, parent) = (f.next()?, f.next()?, f.next()?);
            (git(dir, &["rev-parse", &format!("{parent}^{{tree}}")]) == tree).then(|| commit.to_string())
        })
        .collect()
}

/// Every file below `dir` that contains `needle` (bytes, any file).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if entry.file_type().unwrap().is_dir() {
                todo.push(p);
            } else if std::fs::read(&p)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                found.push(p);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_daemon_stops_listening() {
        let base = tempfile::tempdir().unwrap();
        let daemon = GitDaemon::start(base.path());
        let port = daemon.port;
        drop(daemon);
        // Nothing may be left accepting on the port (an orphaned git-daemon would be).
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "a git-daemon still listens on port {port} after the drop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
