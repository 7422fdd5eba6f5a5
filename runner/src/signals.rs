//! SIGTERM/SIGINT handling: installed before anything is spawned, observed by every step.

use std::time::Instant;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// The first shutdown signal received and when, shared by every step that must stop on it.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Option<(&'static str, Instant)>>,
}

/// Installs SIGTERM and SIGINT handlers; later signals are logged and otherwise ignored,
/// because de-registration must not be skipped (`SHUTDOWN_DEADLINE_SEC` bounds it instead).
pub fn install() -> anyhow::Result<Shutdown> {
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                else => break,
            };
            if tx.borrow().is_none() {
                tracing::info!(signal = name, "received {name}: draining");
                tx.send_replace(Some((name, Instant::now())));
            } else {
                tracing::warn!(
                    signal = name,
                    "received {name} again: de-registration continues (SHUTDOWN_DEADLINE_SEC bounds it)"
                );
            }
        }
    });
    Ok(Shutdown { rx })
}

impl Shutdown {
    /// The first signal's name and arrival time, if one came.
    pub fn requested(&self) -> Option<(&'static str, Instant)> {
        *self.rx.borrow()
    }

    /// Waits for the first signal (returns at once if it already came).
    pub async fn wait(&mut self) -> (&'static str, Instant) {
        let first = match self.rx.wait_for(Option::is_some).await {
            Ok(v) => *v,
            Err(_) => None,
        };
        match first {
            Some(v) => v,
            None => std::future::pending().await,
        }
    }
}
