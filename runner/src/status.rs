//! Status for orchestrators: a JSON file rewritten on every change and `GET /status` on a tiny
//! HTTP endpoint (200 while ready or busy, 503 otherwise), usable as a health check.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Where the runner is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Validating, running hooks, pre-warming, registering.
    Booting,
    /// Listening for jobs.
    Ready,
    /// Running a job.
    Busy,
    /// A signal came; de-registering.
    Draining,
    /// Exiting.
    Stopped,
}

/// The document served and written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Current state.
    pub state: State,
    /// Runner name, once chosen.
    pub runner_name: Option<String>,
    /// Job being run, if any.
    pub job: Option<String>,
}

impl Status {
    /// Whether a health check should pass.
    pub fn healthy(&self) -> bool {
        matches!(self.state, State::Ready | State::Busy)
    }
}

/// Publishes status changes to the file and the HTTP endpoint.
#[derive(Clone)]
pub struct StatusBoard {
    tx: Arc<watch::Sender<Status>>,
    file: PathBuf,
}

impl StatusBoard {
    /// A board in state `booting`, writing `file`.
    pub fn new(file: PathBuf) -> StatusBoard {
        let (tx, _) = watch::channel(Status {
            state: State::Booting,
            runner_name: None,
            job: None,
        });
        let board = StatusBoard {
            tx: Arc::new(tx),
            file,
        };
        board.write_file();
        board
    }

    /// Changes the status with `f` and rewrites the file.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        self.tx.send_modify(f);
        self.write_file();
    }

    /// Sets the state (and clears the job unless busy).
    pub fn set_state(&self, state: State) {
        self.update(|s| {
            s.state = state;
            if state != State::Busy && state != State::Draining {
                s.job = None;
            }
        });
    }

    /// The current status.
    pub fn get(&self) -> Status {
        self.tx.borrow().clone()
    }

    /// Writes the file atomically (tmp + rename); failures are logged once per call.
    fn write_file(&self) {
        let status = self.get();
        let result = (|| -> anyhow::Result<()> {
            if let Some(dir) = self.file.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let tmp = self.file.with_extension("tmp");
            let body = serde_json::to_vec(&status).context("cannot encode status")?;
            std::fs::write(&tmp, body)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &self.file)
                .with_context(|| format!("cannot write {}", self.file.display()))
        })();
        if let Err(e) = result {
            tracing::warn!("status file: {e:#}");
        }
    }

    /// Serves `GET /status` on `0.0.0.0:port`; returns the bound address.
    pub async fn serve(&self, port: u16) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind(("0.0.0.0", port))
            .await
            .with_context(|| format!("cannot listen on port {port} (RUNNER_STATUS_PORT)"))?;
        let addr = listener.local_addr().context("no local address")?;
        let rx = self.tx.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // E.g. out of file descriptors: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let status = rx.borrow().clone();
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), answer(stream, status)).await;
                });
            }
        });
        Ok(addr)
    }
}

/// Reads one request head and answers it (HTTP/1.0 style: one response, then close).
async fn answer(mut stream: TcpStream, status: Status) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (code, body) = match (method, path) {
        ("GET" | "HEAD", "/status") => {
            let body = serde_json::to_string(&status).unwrap_or_else(|_| "{}".into());
            if status.healthy() {
                ("200 OK", body)
            } else {
                ("503 Service Unavailable", body)
            }
        }
        _ => ("404 Not Found", "{\"message\":\"not found\"}".to_string()),
    };
    let mut resp = format!(
        "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        resp.push_str(&body);
    }
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}
