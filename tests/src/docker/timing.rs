//! Per-scenario timings: printed to stderr and appended to `target/e2e-timings.jsonl`, which
//! `cargo xtask e2e` summarises after the run.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    /// Scenario (test) name.
    pub scenario: String,
    /// What was measured: `boot_to_listening`, `stop_to_exit`, …
    pub metric: String,
    /// Milliseconds.
    pub ms: u128,
}

/// Collects the timings of one scenario.
#[derive(Debug)]
pub struct Timings {
    scenario: String,
}

static FILE_LOCK: Mutex<()> = Mutex::new(());

impl Timings {
    /// Timings for `scenario`.
    pub fn new(scenario: &str) -> Timings {
        Timings {
            scenario: scenario.to_owned(),
        }
    }

    /// Records `metric` = `d`.
    pub fn record(&self, metric: &str, d: Duration) {
        let t = Timing {
            scenario: self.scenario.clone(),
            metric: metric.to_owned(),
            ms: d.as_millis(),
        };
        eprintln!("TIMING {:<28} {:<28} {:>7} ms", t.scenario, t.metric, t.ms);
        let _guard = FILE_LOCK.lock();
        let line = serde_json::to_string(&t).expect("timing serialises");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(timings_file())
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// `$E2E_TIMINGS_FILE`, else `<target>/e2e-timings.jsonl`.
pub fn timings_file() -> PathBuf {
    match std::env::var_os("E2E_TIMINGS_FILE") {
        Some(p) => PathBuf::from(p),
        None => super::images::target_dir().join("e2e-timings.jsonl"),
    }
}
