//! A tokio runtime on threads of its own for the kit's in-process servers (the registry
//! [`Proxy`](crate::registry::Proxy), the [`TestForge`](crate::forge::TestForge), the
//! [`GitHubApi`](crate::github::GitHubApi), the Kubernetes [`ApiServer`](crate::kube::ApiServer)
//! and its controllers).
//!
//! A server spawned on the test's own runtime answers only when that runtime gets to it: on
//! `#[tokio::test]`'s current-thread runtime, not while the test runs a blocking call (a
//! `barge` process that talks to the server, `std::thread::sleep` in a poll loop, a git
//! command); on a multi-thread runtime, a task woken on a worker that something then blocks
//! (a handler running git synchronously, a test's spawned task) waits in that worker's LIFO
//! slot, which other workers do not steal. On a runtime of its own a server answers whatever
//! the test does.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// A multi-thread tokio runtime (two workers) on a thread of its own, shut down when dropped.
pub struct ServerRuntime {
    handle: tokio::runtime::Handle,
    /// Set when it is dropped: servers started with [`ServerRuntime::serve_gracefully`] stop
    /// taking connections and finish the requests they have.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Those servers, which the runtime's thread waits for before it ends the runtime.
    graceful: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerRuntime {
    /// Starts the runtime; `name` names its threads (`name`, `name-worker`).
    pub fn start(name: &str) -> ServerRuntime {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("{name}-worker"))
            .enable_all()
            .build()
            .expect("a runtime for a test server");
        let handle = rt.handle().clone();
        let (stopping, mut stopped) = tokio::sync::watch::channel(false);
        let graceful: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let draining = graceful.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                rt.block_on(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                    let servers = std::mem::take(&mut *draining.lock().unwrap());
                    for server in servers {
                        let _ = server.await;
                    }
                });
                // Dropping the runtime here (not in the test's async context) ends its tasks.
                drop(rt);
            })
            .expect("a thread for a test server");
        ServerRuntime {
            handle,
            stopping,
            graceful,
            thread: Some(thread),
        }
    }

    /// Spawns `task` on this runtime.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }

    /// The runtime's handle (to spawn on it later).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// Serves `app` on `listener` (bound, not yet registered with any runtime) until the
    /// runtime stops, which ends the connections it has.
    pub fn serve(&self, listener: std::net::TcpListener, app: axum::Router) {
        listener.set_nonblocking(true).expect("a non-blocking listener");
        self.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener on the server runtime");
            let _ = axum::serve(listener, app).await;
        });
    }

    /// Like [`ServerRuntime::serve`], but when the runtime is dropped the server first answers
    /// the requests it has (a receiver's in-flight delivery is recorded, not reset); the drop
    /// waits for that, so it is for servers without long-lived requests.
    pub fn serve_gracefully(&self, listener: std::net::TcpListener, app: axum::Router) {
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let mut stopping = self.stopping.subscribe();
        let server = self.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener on the server runtime");
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                })
                .await;
        });
        self.graceful.lock().unwrap().push(server);
    }

    /// Keeps this runtime until the runtime of the caller shuts down (the end of the
    /// `#[tokio::test]` that started it), which is when a server spawned there would have
    /// stopped. Call it in a runtime.
    pub fn stop_with_caller(self) {
        tokio::spawn(async move {
            let _kept = self;
            std::future::pending::<()>().await;
        });
    }
}

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        self.stopping.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `app` on `listener` from a [`ServerRuntime`] of its own until the caller's runtime
/// shuts down (the end of the `#[tokio::test]`), whatever the test blocks on meanwhile: a
/// test's own in-process server (a smoke endpoint, a webhook target) that a `barge` process
/// the test waits for calls. `name` names its threads. Call it in a runtime.
pub fn serve(name: &str, listener: std::net::TcpListener, app: axum::Router) {
    let runtime = ServerRuntime::start(name);
    runtime.serve(listener, app);
    runtime.stop_with_caller();
}

/// A loopback listener on a port the kernel picks, for [`ServerRuntime::serve`], and its
/// address (`127.0.0.1:PORT`).
pub fn loopback_listener() -> (std::net::TcpListener, std::net::SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("an address");
    (listener, addr)
}
