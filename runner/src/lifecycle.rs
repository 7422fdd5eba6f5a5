//! The entrypoint's life: boot (hooks, setup, pre-warm ∥ registration, user hooks), run
//! (`run.sh` supervised), and the way out (drain on a signal, de-register on a crash).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::config::Config;
use crate::drain::{self, Ctx};
use crate::exit::Exit;
use crate::github::Github;
use crate::hooks::{self, HookError, RunAs};
use crate::privdrop::Account;
use crate::register::{self, Outcome};
use crate::signals::Shutdown;
use crate::status::{State, StatusBoard};
use crate::steps::{ms_since, uptime_ms};
use crate::supervisor::{self, Event, RunnerProcess};
use crate::{prewarm, setup, spawn};

/// Grace between SIGTERM and SIGKILL when stopping `run.sh` after de-registration.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Attempts at removing the registration after a crash (no job can run any more; GitHub may
/// lag a little behind in noticing).
const CRASH_CLEANUP_ATTEMPTS: u32 = 10;

/// Boots, runs and drains; returns how to exit. Never panics on runtime errors.
pub async fn run(cfg: Config, shutdown: Shutdown) -> Exit {
    let board = StatusBoard::new(cfg.status_file.clone());
    if let Some(port) = cfg.status_port {
        match board.serve(port).await {
            Ok(addr) => tracing::info!("status endpoint on http://{addr}/status"),
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
    let run_sh_pid = Arc::new(AtomicU32::new(0));
    let main = boot_and_run(&cfg, &board, shutdown.clone(), run_sh_pid.clone());
    let deadline = hard_deadline(&cfg, shutdown);
    let exit = tokio::select! {
        exit = main => exit,
        () = deadline => {
            tracing::error!("SHUTDOWN_DEADLINE_SEC passed before de-registration completed; killing run.sh");
            let pid = run_sh_pid.load(Ordering::SeqCst);
            if pid != 0 {
                spawn::signal_group(pid, Signal::SIGKILL);
            }
            Exit::Deadline
        }
    };
    board.set_state(State::Stopped);
    if exit == Exit::Drained && !cfg.debug_shutdown_delay.is_zero() {
        tracing::info!(
            "DEBUG_SHUTDOWN_DELAY_SEC: sleeping {:?} before exit",
            cfg.debug_shutdown_delay
        );
        tokio::time::sleep(cfg.debug_shutdown_delay).await;
    }
    tracing::info!(exit_code = exit.code(), uptime_ms = uptime_ms(), "exiting");
    exit
}

/// Fires `SHUTDOWN_DEADLINE_SEC` after the first signal; never without a deadline.
async fn hard_deadline(cfg: &Config, mut shutdown: Shutdown) {
    let Some(limit) = cfg.shutdown_deadline else {
        return std::future::pending().await;
    };
    let (_, at) = shutdown.wait().await;
    tokio::time::sleep_until((at + limit).into()).await;
}

async fn boot_and_run(
    cfg: &Config,
    board: &StatusBoard,
    shutdown: Shutdown,
    run_sh_pid: Arc<AtomicU32>,
) -> Exit {
    let acct = match Account::resolve(&cfg.user) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("RUNNER_USER: {e:#}");
            return Exit::Runtime;
        }
    };
    let gh = match Github::new(cfg) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("{e:#}");
            return Exit::Runtime;
        }
    };

    // Root hooks, as ourselves.
    let t = Instant::now();
    match hooks::run_dir(&cfg.root_hooks_dir, RunAs::Current, &shutdown).await {
        Ok(n) => tracing::info!(
            step = %"hooks.root",
            elapsed_ms = ms_since(t),
            uptime_ms = uptime_ms(),
            "ran {n} root hook(s) from {}",
            cfg.root_hooks_dir.display()
        ),
        Err(e) => return hook_failed("hooks.root", t, e),
    }
    if shutdown.requested().is_some() {
        return Exit::Drained;
    }

    // Setup.
    let t = Instant::now();
    let prepared = match setup::prepare(cfg, &acct) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(step = %"setup", "setup failed: {e:#}");
            return Exit::Runtime;
        }
    };
    tracing::info!(
        step = %"setup",
        elapsed_ms = ms_since(t),
        uptime_ms = uptime_ms(),
        "home, ssh and work directory ready"
    );

    let name = register::runner_name(
        &cfg.name_prefix,
        cfg.task_id.as_deref(),
        chrono::Utc::now(),
        &mut rand::thread_rng(),
    );
    board.update(|s| s.runner_name = Some(name.clone()));
    let ctx = Ctx {
        cfg,
        gh: &gh,
        acct: &acct,
        name: &name,
        board,
    };

    // Pre-warm in the background, registration meanwhile.
    let (stop_prewarm, stop_rx) = watch::channel(false);
    let prewarm = {
        let (cfg, acct, sd) = (cfg.clone(), acct.clone(), shutdown.clone());
        let key = prepared.ssh_key.clone();
        tokio::spawn(async move { prewarm::run(&cfg, &acct, key.as_deref(), &sd, stop_rx).await })
    };
    match register::register(cfg, &gh, &acct, &name, &shutdown).await {
        Ok(Outcome::Registered) => {}
        Ok(Outcome::AbortedBeforeConfig) => {
            let _ = prewarm.await;
            tracing::info!("boot aborted by a signal before registration; nothing to remove");
            return Exit::Drained;
        }
        Ok(Outcome::AbortedDuringConfig) => {
            let _ = prewarm.await;
            return abort_boot(&ctx).await;
        }
        Err(e) => {
            tracing::error!(step = %"register", "registration failed: {e:#}");
            stop_prewarm.send_replace(true);
            let _ = prewarm.await;
            // config.sh may have got as far as the server: leave no ghost behind.
            drain::deregister(&ctx, None, Some(1)).await;
            return Exit::Runtime;
        }
    }

    // User hooks, as the account (pre-warm may still be running, as in the original image).
    let t = Instant::now();
    match hooks::run_dir(&cfg.user_hooks_dir, RunAs::User(&acct, &cfg.tz), &shutdown).await {
        Ok(n) => tracing::info!(
            step = %"hooks.user",
            elapsed_ms = ms_since(t),
            uptime_ms = uptime_ms(),
            "ran {n} user hook(s) from {}",
            cfg.user_hooks_dir.display()
        ),
        Err(e) => {
            let aborted = matches!(e, HookError::Aborted(_));
            let exit = hook_failed("hooks.user", t, e);
            stop_prewarm.send_replace(true);
            let _ = prewarm.await;
            if aborted {
                return abort_boot(&ctx).await;
            }
            drain::deregister(&ctx, None, Some(CRASH_CLEANUP_ATTEMPTS)).await;
            return exit;
        }
    }

    // run.sh only once pre-warm is over, so the first job finds a warm work directory.
    let _ = prewarm.await;
    if shutdown.requested().is_some() {
        return abort_boot(&ctx).await;
    }
    let (mut runner, mut events) = match supervisor::spawn(cfg, &acct) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(step = %"runner.start", "{e:#}");
            drain::deregister(&ctx, None, Some(CRASH_CLEANUP_ATTEMPTS)).await;
            return Exit::Runtime;
        }
    };
    run_sh_pid.store(runner.pid(), Ordering::SeqCst);
    crate::steps::runner_started();
    tracing::info!(
        step = %"runner.start",
        elapsed_ms = 0u64,
        uptime_ms = uptime_ms(),
        "started run.sh as {}",
        acct.name
    );
    supervise(&ctx, &mut runner, &mut events, shutdown).await
}

/// Logs a hook problem and maps it to an exit code.
fn hook_failed(step: &str, t: Instant, e: HookError) -> Exit {
    match e {
        HookError::Aborted(name) => {
            tracing::info!(
                step = %step,
                elapsed_ms = ms_since(t),
                "boot aborted by a signal during hook {name}"
            );
            Exit::Drained
        }
        HookError::Failed { name, status } => {
            tracing::error!(
                step = %step,
                elapsed_ms = ms_since(t),
                "hook {name} failed with {status}; boot stopped"
            );
            Exit::Hook
        }
        HookError::Spawn(e) => {
            tracing::error!(step = %step, elapsed_ms = ms_since(t), "{e:#}; boot stopped");
            Exit::Hook
        }
    }
}

/// A signal during boot after registration started: remove whatever got registered.
async fn abort_boot(ctx: &Ctx<'_>) -> Exit {
    let t = Instant::now();
    ctx.board.set_state(State::Draining);
    tracing::info!("boot aborted by a signal; removing the registration");
    if drain::deregister(ctx, None, None).await {
        log_deregistered(ctx, t);
    }
    Exit::Drained
}

/// Watches `run.sh` until a signal (drain) or its own exit (de-register, exit 1).
async fn supervise(
    ctx: &Ctx<'_>,
    runner: &mut RunnerProcess,
    events: &mut UnboundedReceiver<Event>,
    mut shutdown: Shutdown,
) -> Exit {
    let crashed = loop {
        tokio::select! {
            biased;
            _ = shutdown.wait() => break None,
            ev = events.recv() => match ev {
                Some(Event::Exited(status)) => break Some(status),
                None => break Some("unknown status".to_string()),
                Some(ev) => note_event(ctx.board, &ev),
            },
        }
    };
    let Some(status) = crashed else {
        return drain_and_stop(ctx, runner, events).await;
    };
    tracing::error!("run.sh exited on its own ({status}); de-registering");
    ctx.board.set_state(State::Stopped);
    let t = Instant::now();
    if drain::deregister(ctx, None, Some(CRASH_CLEANUP_ATTEMPTS)).await {
        log_deregistered(ctx, t);
    } else {
        tracing::error!(
            "could not remove runner {}; GitHub removes offline runners eventually",
            ctx.name
        );
    }
    Exit::Runtime
}

/// Drain: labels off, remove (retrying while busy), then stop `run.sh`. The signal itself is
/// never forwarded: the listener would cancel the running job.
async fn drain_and_stop(
    ctx: &Ctx<'_>,
    runner: &mut RunnerProcess,
    events: &mut UnboundedReceiver<Event>,
) -> Exit {
    let t = Instant::now();
    ctx.board.set_state(State::Draining);
    drain::remove_labels(ctx).await;
    drain::deregister(ctx, Some(events), None).await;
    log_deregistered(ctx, t);
    runner.stop(STOP_GRACE).await;
    Exit::Drained
}

/// Keeps the status and the log current for one runner event.
pub fn note_event(board: &StatusBoard, ev: &Event) {
    let draining = board.get().state == State::Draining;
    match ev {
        Event::Listening => {
            tracing::info!(
                step = %"listening",
                elapsed_ms = crate::steps::since_runner_start_ms(),
                uptime_ms = uptime_ms(),
                "runner is listening for jobs"
            );
            if !draining {
                board.set_state(State::Ready);
            }
        }
        Event::JobStarted(job) => {
            crate::steps::job_started();
            tracing::info!(step = %"job.started", elapsed_ms = 0u64, uptime_ms = uptime_ms(), job = %job, "job {job} started");
            board.update(|s| {
                s.job = Some(job.clone());
                if !draining {
                    s.state = State::Busy;
                }
            });
        }
        Event::JobFinished { name, result } => {
            tracing::info!(step = %"job.finished", elapsed_ms = crate::steps::job_finished_ms(), uptime_ms = uptime_ms(), job = %name, result = %result, "job {name} finished: {result}");
            board.update(|s| {
                s.job = None;
                if !draining {
                    s.state = State::Ready;
                }
            });
        }
        Event::Exited(status) => tracing::info!("run.sh exited ({status})"),
    }
}

/// The `deregistered` step line, timed from `t` (the start of the removal).
fn log_deregistered(ctx: &Ctx<'_>, t: Instant) {
    tracing::info!(
        step = %"deregistered",
        elapsed_ms = ms_since(t),
        uptime_ms = uptime_ms(),
        "runner {} removed",
        ctx.name
    );
}
