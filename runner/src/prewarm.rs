//! Warm boot: `ci-storage load --slot-id '*'` into the checkout directory, as the account,
//! bounded in time. Best effort: every failure is a warning and boot continues cold.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::Config;
use crate::privdrop::Account;
use crate::signals::Shutdown;
use crate::spawn;

/// How pre-warm ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `CI_STORAGE_HOST` is not set.
    Skipped,
    /// `ci-storage load` succeeded.
    Loaded,
    /// It failed or could not start (the reason is logged).
    Failed(String),
    /// It ran past `CI_STORAGE_PREWARM_TIMEOUT_SEC` and was killed.
    TimedOut,
    /// A shutdown signal came, or boot failed elsewhere; it was killed.
    Aborted,
}

/// Runs pre-warm and logs the `prewarm` step.
/// Sending `true` on `stop` kills it (boot failed elsewhere).
pub async fn run(
    cfg: &Config,
    acct: &Account,
    ssh_key: Option<&Path>,
    shutdown: &Shutdown,
    stop: watch::Receiver<bool>,
) -> Outcome {
    let started = Instant::now();
    let outcome = load(cfg, acct, ssh_key, shutdown, stop).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let uptime_ms = crate::steps::uptime_ms();
    match &outcome {
        Outcome::Skipped => {
            tracing::info!(
                step = %"prewarm",
                elapsed_ms,
                uptime_ms,
                "pre-warm skipped: CI_STORAGE_HOST is not set"
            )
        }
        Outcome::Loaded => {
            tracing::info!(step = %"prewarm", elapsed_ms, uptime_ms, "pre-warm done")
        }
        Outcome::Failed(why) => tracing::warn!(
            step = %"prewarm",
            elapsed_ms,
            uptime_ms,
            "pre-warm failed, continuing cold: {why}"
        ),
        Outcome::TimedOut => tracing::warn!(
            step = %"prewarm",
            elapsed_ms,
            uptime_ms,
            "pre-warm timed out (CI_STORAGE_PREWARM_TIMEOUT_SEC), continuing cold"
        ),
        Outcome::Aborted => {
            tracing::info!(step = %"prewarm", elapsed_ms, uptime_ms, "pre-warm aborted")
        }
    }
    outcome
}

async fn load(
    cfg: &Config,
    acct: &Account,
    ssh_key: Option<&Path>,
    shutdown: &Shutdown,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let Some(storage) = &cfg.storage else {
        return Outcome::Skipped;
    };
    let mut cmd = spawn::user_command("ci-storage", acct, &cfg.tz);
    cmd.arg("load")
        .arg("--storage-host")
        .arg(&storage.host)
        .arg("--storage-dir")
        .arg(&storage.dir)
        .arg("--slot-id")
        .arg("*")
        .arg("--local-dir")
        .arg(cfg.checkout_dir())
        .current_dir(&acct.home);
    if let Some(key) = ssh_key {
        cmd.arg("--ssh-key").arg(key);
    }
    if let Some(hk) = &storage.host_key {
        // A public key: fine on a command line.
        cmd.arg("--storage-host-key").arg(hk);
    }
    let mut child = match spawn::spawn_logged(&mut cmd, "ci-storage") {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot run ci-storage: {e}")),
    };
    let mut sd = shutdown.clone();
    tokio::select! {
        status = child.wait() => match status {
            Ok(s) if s.success() => Outcome::Loaded,
            Ok(s) => Outcome::Failed(format!("ci-storage load ended with {}", spawn::describe(&s))),
            Err(e) => Outcome::Failed(format!("cannot wait for ci-storage: {e}")),
        },
        _ = tokio::time::sleep(storage.prewarm_timeout) => {
            spawn::terminate(&mut child, Duration::from_secs(2)).await;
            Outcome::TimedOut
        }
        _ = sd.wait() => {
            spawn::terminate(&mut child, Duration::from_secs(2)).await;
            Outcome::Aborted
        }
        () = stopped(&mut stop) => {
            spawn::terminate(&mut child, Duration::from_secs(2)).await;
            Outcome::Aborted
        }
    }
}

/// Resolves once `true` is sent; never when the sender is gone without sending it.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let requested = stop.wait_for(|s| *s).await.is_ok();
    if !requested {
        std::future::pending::<()>().await;
    }
}
