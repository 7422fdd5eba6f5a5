//! `run.sh`: spawned as the account in its own process group with a scrubbed environment
//! (it never sees our signals), its output parsed into events, its end reported.

use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::privdrop::Account;
use crate::spawn;

/// What the actions runner says about itself, from its output and its exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `Listening for Jobs`: connected and idle.
    Listening,
    /// `Running job: <name>`.
    JobStarted(String),
    /// `Job <name> completed with result: <result>`.
    JobFinished {
        /// Job name.
        name: String,
        /// `Succeeded`, `Failed`, `Canceled`…
        result: String,
    },
    /// `run.sh` exited (status text for logs).
    Exited(String),
}

/// Parses one output line of the runner (with or without its timestamp prefix).
pub fn parse_line(line: &str) -> Option<Event> {
    const RESULT: &str = " completed with result: ";
    if line.contains("Listening for Jobs") {
        return Some(Event::Listening);
    }
    if let Some(i) = line.find("Running job: ") {
        return Some(Event::JobStarted(line[i + 13..].trim().to_string()));
    }
    if let Some(i) = line.find(RESULT) {
        let head = &line[..i];
        let start = head.find("Job ")?;
        return Some(Event::JobFinished {
            name: head[start + 4..].trim().to_string(),
            result: line[i + RESULT.len()..].trim().to_string(),
        });
    }
    None
}

/// The running `run.sh`: its pid (leader of its own process group) and its exit status.
pub struct RunnerProcess {
    pid: u32,
    exited: watch::Receiver<Option<ExitStatus>>,
}

/// Starts `run.sh`; events arrive on the returned channel, `Exited` last.
pub fn spawn(
    cfg: &Config,
    acct: &Account,
) -> anyhow::Result<(RunnerProcess, mpsc::UnboundedReceiver<Event>)> {
    let run_sh = cfg.runner_home.join("run.sh");
    let mut cmd = spawn::user_command(&run_sh, acct, &cfg.tz);
    cmd.current_dir(&cfg.runner_home);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", run_sh.display()))?;
    let pid = child.id().context("run.sh has no pid")?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(tokio::spawn(spawn::forward(
            out,
            "run.sh".into(),
            move |l| {
                if let Some(ev) = parse_line(l) {
                    let _ = tx.send(ev);
                }
            },
        )));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(tokio::spawn(spawn::forward(
            err,
            "run.sh".into(),
            move |l| {
                if let Some(ev) = parse_line(l) {
                    let _ = tx.send(ev);
                }
            },
        )));
    }
    let (exit_tx, exit_rx) = watch::channel(None);
    // The one place that waits for run.sh: its status goes to the watch and, after the last
    // output line, to the event channel.
    tokio::spawn(async move {
        let status = child.wait().await;
        for r in readers {
            // Output of grandchildren that keep the pipe open must not hold the exit back.
            let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
        }
        let text = match &status {
            Ok(s) => spawn::describe(s),
            Err(e) => format!("unknown status ({e})"),
        };
        if let Ok(s) = status {
            exit_tx.send_replace(Some(s));
        }
        let _ = tx.send(Event::Exited(text));
    });
    Ok((
        RunnerProcess {
            pid,
            exited: exit_rx,
        },
        rx,
    ))
}

impl RunnerProcess {
    /// Process id of `run.sh`, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether `run.sh` has exited.
    pub fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// Stops `run.sh` and its group: SIGTERM, then SIGKILL after `grace`. Only once the
    /// runner is de-registered (or the deadline hit): the real listener cancels a running job
    /// on SIGTERM.
    pub async fn stop(&mut self, grace: Duration) {
        if self.has_exited() {
            return;
        }
        spawn::signal_group(self.pid, Signal::SIGTERM);
        let exited = tokio::time::timeout(grace, self.exited.wait_for(Option::is_some))
            .await
            .is_ok();
        if !exited {
            tracing::warn!("run.sh did not stop within {grace:?}; killing it");
            self.kill().await;
        }
    }

    /// SIGKILLs `run.sh`'s group and waits (briefly) for it to be reaped.
    pub async fn kill(&mut self) {
        if self.has_exited() {
            return;
        }
        spawn::signal_group(self.pid, Signal::SIGKILL);
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.exited.wait_for(Option::is_some),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runner_lines() {
        assert_eq!(
            parse_line("2024-05-06 07:08:09Z: Listening for Jobs"),
            Some(Event::Listening)
        );
        assert_eq!(parse_line("Listening for Jobs"), Some(Event::Listening));
        assert_eq!(
            parse_line("2024-05-06 07:08:09Z: Running job: build (linux)"),
            Some(Event::JobStarted("build (linux)".into()))
        );
        assert_eq!(
            parse_line("2024-05-06 07:08:09Z: Job build (linux) completed with result: Succeeded"),
            Some(Event::JobFinished {
                name: "build (linux)".into(),
                result: "Succeeded".into()
            })
        );
        assert_eq!(
            parse_line("Job Job X completed with result: Canceled"),
            Some(Event::JobFinished {
                name: "Job X".into(),
                result: "Canceled".into()
            })
        );
        assert_eq!(parse_line("√ Connected to GitHub"), None);
        assert_eq!(parse_line(""), None);
    }
}
