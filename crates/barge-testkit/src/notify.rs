//! Receivers for outbound notifications: an HTTP receiver on loopback (a Slack incoming
//! webhook or a generic webhook: it records every request, and answers a chosen status) and
//! a real SMTP server (PyPI `aiosmtpd`, installed by scripts/test-env) writing what it
//! receives to a maildir.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The status it was answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
}

/// A loopback port that refuses connections (a channel that is down) and that no other test
/// can take meanwhile: the socket is bound but not listening. `HookReceiver::start_on` brings
/// the channel up on it. (A port from `free_port` stays free only until somebody binds it:
/// a test that waited on one while its channel was down was once answered by another test's
/// server.)
pub struct DownPort {
    pub port: u16,
    socket: socket2::Socket,
}

impl DownPort {
    pub fn reserve() -> DownPort {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&any.into()).expect("bind a loopback port");
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        DownPort { port, socket }
    }
}

/// An HTTP server on 127.0.0.1 that records every request; it runs on a thread of its own
/// (so a test may block) until dropped.
pub struct HookReceiver {
    pub port: u16,
    inner: Arc<Inner>,
    /// Stops it when dropped, after it answers the requests it has.
    _runtime: crate::runtime::ServerRuntime,
}

impl HookReceiver {
    /// On a port the kernel picks, answering 200.
    pub fn start() -> HookReceiver {
        HookReceiver::serve(std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
    }

    /// On the port `down` held (a channel that was down coming up), answering 200.
    pub fn start_on(down: DownPort) -> HookReceiver {
        down.socket.listen(128).expect("listen on the reserved port");
        HookReceiver::serve(down.socket.into())
    }

    fn serve(std_listener: std::net::TcpListener) -> HookReceiver {
        let port = std_listener.local_addr().unwrap().port();
        let inner = Arc::new(Inner {
            status: AtomicU16::new(200),
            ..Default::default()
        });
        let runtime = crate::runtime::ServerRuntime::start("hook-receiver");
        runtime.serve_gracefully(
            std_listener,
            axum::Router::new().fallback(record).with_state(inner.clone()),
        );
        HookReceiver {
            port,
            inner,
            _runtime: runtime,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers every later request with `status` (a failing channel: 503, 500, ...).
    pub fn answer(&self, status: u16) {
        self.inner.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// The requests answered 2xx, once there are at least `n` (panics after `within`).
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let ok: Vec<Received> = self.received().into_iter().filter(|r| r.status < 300).collect();
            if ok.len() >= n {
                return ok;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} of {n} requests",
                ok.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn record(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = inner.status.load(Ordering::SeqCst);
    inner.received.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
        status,
        at: Instant::now(),
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// One mail the SMTP server received.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The raw message as stored (headers, blank line, body).
    pub raw: String,
}

impl Mail {
    /// A header's value (the first of that name).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\n\n").next().unwrap_or_default();
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The body (after the headers), line endings normalised to `\n`, decoded when it is
    /// quoted-printable (RFC 2045 6.7: `=` + hex is a byte, `=` at a line's end joins lines).
    pub fn body(&self) -> String {
        let raw = self.raw.replace("\r\n", "\n");
        let body = raw.split_once("\n\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        let quoted = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
        if !quoted {
            return body;
        }
        let joined = body.replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'=', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Serves SMTP on 127.0.0.1, a port the kernel picks (printed first), into the maildir
/// `argv[1]`.
const SMTP_SERVER: &str = r#"
import asyncio, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

async def main():
    handler = Mailbox(sys.argv[1])
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

/// aiosmtpd on 127.0.0.1 (plain SMTP, no authentication), storing mail in a maildir; stopped
/// when dropped.
pub struct SmtpServer {
    pub port: u16,
    child: Child,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        // aiosmtpd binds a port the kernel picks and prints it: a port chosen beforehand
        // could be taken by another test before Python starts, and the readiness probe would
        // then be answered by that test's server.
        let mut child = Command::new("python3")
            .args(["-c", SMTP_SERVER])
            .arg(&maildir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (PyPI aiosmtpd, scripts/test-env)");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("aiosmtpd did not start (is it installed? scripts/test-env): {line:?}"));
        SmtpServer {
            port,
            child,
            maildir,
            _dir: dir,
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        paths
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|raw| Mail { raw })
            .collect()
    }

    /// The mails, once there are at least `n` (panics after `within`).
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + within;
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "the SMTP server got {} of {n} mails",
                mails.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
