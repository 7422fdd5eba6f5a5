//! `cargo xtask ci`: everything CI runs, in order, with each step's duration.

use std::time::Instant;

use anyhow::Context;
use xshell::{cmd, Shell};

/// Run fmt, clippy, the tests and the Docker e2e tests (which end with the publish round trip).
#[derive(Debug, Clone, clap::Args)]
pub struct Ci {
    /// Skip the Docker end-to-end step.
    #[arg(long)]
    pub no_e2e: bool,
}

impl Ci {
    /// Runs the command.
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        step("cargo fmt --all --check", || {
            cmd!(sh, "cargo fmt --all --check")
                .run()
                .map_err(Into::into)
        })?;
        step(
            "cargo clippy --workspace --all-targets -- -D warnings",
            || {
                cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
                // `--all-targets` leaves out the Docker suite (`test = false`); lint it too.
                cmd!(sh, "cargo clippy -p e2e --test docker -- -D warnings").run()?;
                Ok(())
            },
        )?;
        step("cargo test --workspace", || {
            cmd!(sh, "cargo test --workspace").run().map_err(Into::into)
        })?;
        if !self.no_e2e {
            step("cargo xtask e2e", || crate::e2e::E2e::default().run(sh))?;
        }
        eprintln!("==> ci passed in {:.1}s", started.elapsed().as_secs_f64());
        Ok(())
    }
}

fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    eprintln!("==> ci: {name}");
    let started = Instant::now();
    let result = f().with_context(|| format!("ci step `{name}` failed"));
    let secs = started.elapsed().as_secs_f64();
    match &result {
        Ok(()) => eprintln!("==> ci: {name}: ok ({secs:.1}s)"),
        Err(_) => eprintln!("==> ci: {name}: FAILED ({secs:.1}s)"),
    }
    result
}
