//! Step bookkeeping for the log: process uptime and per-job timing.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Records the process start; call first thing in `main`.
pub fn mark_start() {
    START.get_or_init(Instant::now);
}

/// Milliseconds since [`mark_start`] (since first use when it was not called).
pub fn uptime_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Milliseconds since `t`.
pub fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

static JOB_START: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// Notes that a job started now.
pub fn job_started() {
    if let Ok(mut g) = JOB_START.lock() {
        *g = Some(Instant::now());
    }
}

/// Milliseconds the job that just finished took (0 when its start was not seen).
pub fn job_finished_ms() -> u64 {
    JOB_START
        .lock()
        .ok()
        .and_then(|mut g| g.take())
        .map_or(0, ms_since)
}

static RUNNER_START: OnceLock<Instant> = OnceLock::new();

/// Notes that `run.sh` was started now.
pub fn runner_started() {
    RUNNER_START.get_or_init(Instant::now);
}

/// Milliseconds since `run.sh` was started (0 before).
pub fn since_runner_start_ms() -> u64 {
    RUNNER_START.get().map_or(0, |t| ms_since(*t))
}
