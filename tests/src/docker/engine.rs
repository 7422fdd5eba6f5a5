//! The Docker engine through bollard (re-exported by testcontainers): signals, stop, wait, logs,
//! exec. One client per test (its connection pool belongs to the test's runtime).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use testcontainers::bollard::container::LogOutput;
use testcontainers::bollard::exec::{StartExecOptions, StartExecResults};
use testcontainers::bollard::models::ExecConfig;
use testcontainers::bollard::query_parameters::{
    KillContainerOptions, LogsOptions, StopContainerOptions, WaitContainerOptions,
};
use testcontainers::bollard::Docker;

/// A negotiated connection to the local Docker engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// One line of a container's log, with Docker's timestamp.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When the engine received the line.
    pub at: DateTime<Utc>,
    /// The line, without the trailing newline.
    pub text: String,
}

/// How a container ended.
#[derive(Debug, Clone, Copy)]
pub struct Exited {
    /// Its exit code.
    pub code: i64,
    /// Time from the start of the wait (e.g. the stop signal) to the exit.
    pub after: Duration,
}

/// Output and exit code of a `docker exec`.
#[derive(Debug, Clone)]
pub struct Exec {
    /// Exit code of the command.
    pub code: i64,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Engine {
    /// Connects to the local engine and negotiates the API version (the engine here speaks 1.41).
    pub async fn connect() -> Result<Engine> {
        let docker = Docker::connect_with_local_defaults()
            .context("connecting to the Docker engine (is it running? `docker info`)")?
            .negotiate_version()
            .await
            .context("negotiating the Docker API version (is the engine running? `docker info`)")?;
        Ok(Engine { docker })
    }

    /// The bollard client, for anything not wrapped here.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// `docker kill -s <signal> <container>`.
    pub async fn kill(&self, container: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptions {
            signal: signal.to_owned(),
        };
        self.docker
            .kill_container(container, Some(options))
            .await
            .with_context(|| format!("docker kill -s {signal} {container}"))
    }

    /// `docker stop -t <grace> <container>` (the image's STOPSIGNAL, then SIGKILL after the
    /// grace period); returns once the container has exited.
    pub async fn stop(&self, container: &str, grace_sec: i32) -> Result<Exited> {
        let start = Instant::now();
        let options = StopContainerOptions {
            signal: None,
            t: Some(grace_sec),
        };
        self.docker
            .stop_container(container, Some(options))
            .await
            .with_context(|| format!("docker stop -t {grace_sec} {container}"))?;
        let code = self
            .wait_exit(container, Duration::from_secs(10))
            .await?
            .code;
        Ok(Exited {
            code,
            after: start.elapsed(),
        })
    }

    /// Waits until the container is not running; fails after `timeout` with its last log lines.
    pub async fn wait_exit(&self, container: &str, timeout: Duration) -> Result<Exited> {
        let start = Instant::now();
        let mut stream = self.docker.wait_container(
            container,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        let waited = tokio::time::timeout(timeout, stream.next()).await;
        let code = match waited {
            Err(_) => {
                bail!(
                    "{container} still running after {timeout:?}; last log lines:\n{}",
                    self.tail(container, 40).await
                )
            }
            Ok(None) => bail!("docker wait {container}: no answer"),
            Ok(Some(Ok(r))) => r.status_code,
            Ok(Some(Err(testcontainers::bollard::errors::Error::DockerContainerWaitError {
                code,
                ..
            }))) => code,
            Ok(Some(Err(e))) => return Err(anyhow!(e).context(format!("docker wait {container}"))),
        };
        Ok(Exited {
            code,
            after: start.elapsed(),
        })
    }

    /// Whether the container is running.
    pub async fn is_running(&self, container: &str) -> Result<bool> {
        let info = self.docker.inspect_container(container, None).await?;
        Ok(info.state.and_then(|s| s.running).unwrap_or(false))
    }

    /// How long the container ran (`State.StartedAt` → `State.FinishedAt`), once it exited.
    pub async fn run_time(&self, container: &str) -> Result<Duration> {
        let info = self.docker.inspect_container(container, None).await?;
        let state = info.state.context("container without state")?;
        let parse = |t: Option<String>| -> Result<DateTime<Utc>> {
            let t = t.context("container has not started or finished")?;
            Ok(DateTime::parse_from_rfc3339(&t)?.with_timezone(&Utc))
        };
        let (started, finished) = (parse(state.started_at)?, parse(state.finished_at)?);
        // Docker may stamp a very short run's finish a little before its start.
        Ok((finished - started).to_std().unwrap_or_default())
    }

    /// `docker pause` (the processes freeze; the kernel still accepts TCP connections).
    pub async fn pause(&self, container: &str) -> Result<()> {
        self.docker
            .pause_container(container)
            .await
            .with_context(|| format!("docker pause {container}"))
    }

    /// Every log line so far (stdout and stderr, in order), with timestamps.
    pub async fn logs(&self, container: &str) -> Result<Vec<LogLine>> {
        let options = LogsOptions {
            follow: false,
            stdout: true,
            stderr: true,
            timestamps: true,
            ..Default::default()
        };
        let mut stream = self.docker.logs(container, Some(options));
        let mut lines = Vec::new();
        while let Some(frame) = stream.next().await {
            let frame = frame.with_context(|| format!("docker logs {container}"))?;
            lines.extend(parse_frame(&frame));
        }
        Ok(lines)
    }

    /// The log as plain text (no timestamps), for assertions and error messages.
    pub async fn log_text(&self, container: &str) -> String {
        match self.logs(container).await {
            Ok(lines) => lines.iter().map(|l| format!("{}\n", l.text)).collect(),
            Err(e) => format!("<no logs: {e:#}>"),
        }
    }

    /// The last `n` lines, indented, for error messages.
    pub async fn tail(&self, container: &str, n: usize) -> String {
        let text = self.log_text(container).await;
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| format!("    {l}\n"))
            .collect()
    }

    /// Follows the log until a line satisfies `matches`; fails if the container exits first or
    /// `timeout` passes, quoting the log.
    pub async fn wait_for_log(
        &self,
        container: &str,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<LogLine> {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            timestamps: true,
            ..Default::default()
        };
        let mut stream = self.docker.logs(container, Some(options));
        let search = async {
            while let Some(frame) = stream.next().await {
                let Ok(frame) = frame else { break };
                if let Some(line) = parse_frame(&frame).into_iter().find(|l| matches(&l.text)) {
                    return Some(line);
                }
            }
            None
        };
        match tokio::time::timeout(timeout, search).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => bail!(
                "{container} exited before logging {what}; log:\n{}",
                self.tail(container, 60).await
            ),
            Err(_) => bail!(
                "{container} did not log {what} within {timeout:?}; log:\n{}",
                self.tail(container, 60).await
            ),
        }
    }

    /// `docker exec [-u user] <container> cmd…`, collecting output and the exit code.
    pub async fn exec(&self, container: &str, user: Option<&str>, cmd: &[&str]) -> Result<Exec> {
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            user: user.map(str::to_owned),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let id = self
            .docker
            .create_exec(container, config)
            .await
            .with_context(|| format!("docker exec {container} {cmd:?}"))?
            .id;
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&id, Some(start)).await?
        {
            while let Some(frame) = output.next().await {
                match frame? {
                    LogOutput::StdErr { message } => {
                        stderr.push_str(&String::from_utf8_lossy(&message))
                    }
                    other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                }
            }
        }
        let code = self
            .docker
            .inspect_exec(&id)
            .await?
            .exit_code
            .context("exec has no exit code")?;
        Ok(Exec {
            code,
            stdout,
            stderr,
        })
    }

    /// Like [`Engine::exec`], but fails unless the command exits 0; returns its stdout.
    pub async fn exec_ok(
        &self,
        container: &str,
        user: Option<&str>,
        cmd: &[&str],
    ) -> Result<String> {
        let out = self.exec(container, user, cmd).await?;
        if out.code != 0 {
            bail!(
                "docker exec {container} {cmd:?} exited {}:\n{}{}",
                out.code,
                out.stdout,
                out.stderr
            );
        }
        Ok(out.stdout)
    }
}

/// Splits a log frame into timestamped lines (`2024-01-01T00:00:00.123456789Z text`).
fn parse_frame(frame: &LogOutput) -> Vec<LogLine> {
    let text = frame.to_string();
    text.lines()
        .filter_map(|raw| {
            let (ts, rest) = raw.split_once(' ').unwrap_or((raw, ""));
            let at = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
            Some(LogLine {
                at,
                text: rest.trim_end_matches('\r').to_owned(),
            })
        })
        .collect()
}
