//! De-registration: stop new work from reaching the runner (remove its custom labels), then
//! `config.sh remove` with a fresh remove-token per attempt until GitHub lets go. While the
//! runner is busy, the end of its job (from its own output) triggers the next attempt at once;
//! a periodic retry is the fallback. The signal is never forwarded to `run.sh`.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::Config;
use crate::github::{ErrorKind, Github};
use crate::privdrop::Account;
use crate::register;
use crate::status::StatusBoard;
use crate::steps::{ms_since, uptime_ms};
use crate::supervisor::Event;

/// What de-registration needs to know.
pub struct Ctx<'a> {
    /// Configuration.
    pub cfg: &'a Config,
    /// API client.
    pub gh: &'a Github,
    /// The runner's account.
    pub acct: &'a Account,
    /// The runner's name.
    pub name: &'a str,
    /// Status to keep current while draining.
    pub board: &'a StatusBoard,
}

/// Result of one removal attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Nothing of ours is registered any more.
    Removed,
    /// GitHub says the runner is running a job.
    Busy,
    /// Something else went wrong (logged); retried later.
    Failed(String),
}

/// First delay of the quick retries after a job's end (GitHub may lag a moment behind the
/// runner's own output); doubles up to the periodic interval.
const QUICK_RETRY: Duration = Duration::from_millis(250);

/// Removes the runner's custom labels so that jobs targeting them are no longer routed to it.
pub async fn remove_labels(ctx: &Ctx<'_>) {
    let started = Instant::now();
    let id = match register::agent_id(&ctx.cfg.runner_home) {
        Some(id) => Some(id),
        None => match ctx.gh.runner_by_name(ctx.name).await {
            Ok(r) => r.map(|r| r.id),
            Err(e) => {
                tracing::warn!(
                    step = %"drain.labels",
                    "cannot find runner {}: {e}",
                    ctx.name
                );
                None
            }
        },
    };
    let Some(id) = id else {
        return;
    };
    match ctx.gh.remove_custom_labels(id).await {
        Ok(()) => tracing::info!(
            step = %"drain.labels",
            elapsed_ms = ms_since(started),
            uptime_ms = uptime_ms(),
            "removed the custom labels of runner {} (id {id})",
            ctx.name
        ),
        Err(e) => tracing::warn!(
            step = %"drain.labels",
            elapsed_ms = ms_since(started),
            "cannot remove the custom labels of runner {}: {e}",
            ctx.name
        ),
    }
}

/// One attempt: fresh remove-token → `config.sh remove`; when that fails or there is no
/// `.runner`, the API decides (gone: done; busy: wait; idle: DELETE by id).
pub async fn attempt(ctx: &Ctx<'_>) -> Attempt {
    if register::is_configured(&ctx.cfg.runner_home) {
        match ctx.gh.remove_token().await {
            Ok(token) => match register::config_remove(ctx.cfg, ctx.acct, &token).await {
                Ok(true) => return Attempt::Removed,
                Ok(false) => {}
                Err(e) => tracing::warn!("config.sh remove: {e:#}"),
            },
            Err(e) => tracing::warn!("cannot get a remove token: {e}"),
        }
    }
    match ctx.gh.runner_by_name(ctx.name).await {
        Ok(None) => Attempt::Removed,
        Ok(Some(r)) if r.busy => Attempt::Busy,
        Ok(Some(r)) => match ctx.gh.delete_runner(r.id).await {
            Ok(_) => Attempt::Removed,
            Err(e) if e.kind == ErrorKind::Busy => Attempt::Busy,
            Err(e) => Attempt::Failed(e.to_string()),
        },
        Err(e) => Attempt::Failed(e.to_string()),
    }
}

/// Retries [`attempt`] until removed (or `max_attempts`), waking early on the runner's events.
/// Returns whether the runner is gone.
pub async fn deregister(
    ctx: &Ctx<'_>,
    mut events: Option<&mut UnboundedReceiver<Event>>,
    max_attempts: Option<u32>,
) -> bool {
    let interval = ctx.cfg.shutdown_retry_interval;
    let mut quick: Option<Duration> = None;
    let mut n = 0u32;
    loop {
        n += 1;
        let started = Instant::now();
        let result = attempt(ctx).await;
        let outcome = match &result {
            Attempt::Removed => "removed",
            Attempt::Busy => "busy",
            Attempt::Failed(_) => "failed",
        };
        tracing::info!(
            step = %"drain.attempt",
            attempt = n,
            elapsed_ms = ms_since(started),
            uptime_ms = uptime_ms(),
            outcome = %outcome,
            "de-registration attempt {n}: {outcome}{}",
            match &result {
                Attempt::Failed(why) => format!(" ({why})"),
                _ => String::new(),
            }
        );
        if result == Attempt::Removed {
            return true;
        }
        if max_attempts.is_some_and(|m| n >= m) {
            return false;
        }
        let wait = quick.map_or(interval, |q| q.min(interval));
        quick = quick.map(|q| q * 2);
        let until = tokio::time::Instant::now() + wait;
        // Wait for the job's end (retry at once), the runner's exit, or the periodic retry.
        loop {
            let Some(rx) = events.as_deref_mut() else {
                tokio::time::sleep_until(until).await;
                break;
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(Event::JobFinished { name, result }) => {
                        crate::lifecycle::note_event(ctx.board, &Event::JobFinished { name, result });
                        quick = Some(QUICK_RETRY);
                        break;
                    }
                    Some(Event::Exited(status)) => {
                        tracing::info!("run.sh exited while draining ({status})");
                        events = None;
                        quick = Some(QUICK_RETRY);
                        break;
                    }
                    Some(ev) => {
                        if matches!(ev, Event::JobStarted(_)) {
                            quick = None;
                        }
                        crate::lifecycle::note_event(ctx.board, &ev);
                    }
                    None => events = None,
                },
                _ = tokio::time::sleep_until(until) => break,
            }
        }
    }
}
