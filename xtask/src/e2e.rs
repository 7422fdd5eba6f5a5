//! `cargo xtask e2e [--keep] [--threads N] [FILTER…]`: builds the test images (or finds them in
//! the content-addressed cache), then runs the Docker end-to-end tests
//! (`cargo test -p e2e --test docker`), which read the tags from `target/images.json`, and
//! prints the timings every scenario recorded. With no filter it also runs scenario 13, the
//! publish round trip to a local registry (`crate::publish::roundtrip`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::build_image::BuildImage;

/// The test images: the runner images with the fake actions runner and the test doubles.
pub const TEST_MANIFEST: &str = "images/test.toml";
/// The e2e add-on for scenario 7 (hooks), on top of the test runner image.
pub const HOOKS_MANIFEST: &str = "images/test-hooks/manifest.toml";
/// Images of [`HOOKS_MANIFEST`] the suite uses.
pub const HOOKS_IMAGES: &[&str] = &["ci-runner-hooks"];

/// Build the test images and run the Docker end-to-end tests.
#[derive(Debug, Clone, clap::Args)]
pub struct E2e {
    /// Leave the containers and networks of every test behind for debugging (also `E2E_KEEP=1`).
    #[arg(long)]
    pub keep: bool,
    /// Tests run at once (each starts its own mock, storage host and runners).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Use the images listed in target/images.json as they are; do not build.
    #[arg(long)]
    pub no_build: bool,
    /// Rebuild every image layer (a cold run, except for the bootstrapped base image).
    #[arg(long, conflicts_with = "no_build")]
    pub no_cache: bool,
    /// Test name filters and other arguments for the test binary (`s04`, `--exact …`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub test_args: Vec<String>,
}

impl Default for E2e {
    /// What `cargo xtask ci` runs: build, then every scenario, two at a time.
    fn default() -> E2e {
        E2e {
            keep: false,
            threads: 2,
            no_build: false,
            no_cache: false,
            test_args: Vec::new(),
        }
    }
}

impl E2e {
    /// Runs the command.
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        check_docker(sh)?;
        if !self.no_build {
            build_test_images(sh, self.no_cache)?;
        }
        let built_in = started.elapsed();
        let workspace = crate::workspace_root();
        let timings = workspace.join("target").join("e2e-timings.jsonl");
        let _ = std::fs::remove_file(&timings);

        let keep = self.keep || std::env::var("E2E_KEEP").is_ok_and(|v| v == "1" || v == "true");
        let threads = self.threads.max(1).to_string();
        let args = &self.test_args;
        // Compile first, so the test phase's time is the suite's.
        cmd!(sh, "cargo test -p e2e --test docker --no-run").run()?;
        let tests_started = Instant::now();
        let mut test = cmd!(
            sh,
            "cargo test -p e2e --test docker -- --test-threads={threads} {args...}"
        )
        .env("E2E_TIMINGS_FILE", &timings);
        if keep {
            test = test
                .env("E2E_KEEP", "1")
                .env("TESTCONTAINERS_COMMAND", "keep");
        }
        let result = test.run();
        let tests_took = tests_started.elapsed();
        // Scenario 13, the publish round trip to a local registry, with the whole suite (not
        // when a filter picks scenarios).
        let publish = if self.test_args.is_empty() && result.is_ok() {
            let started = Instant::now();
            let r = crate::publish::roundtrip::registry_roundtrip(sh)
                .context("scenario 13, the publish round trip to a local registry, failed");
            Some((r, started.elapsed()))
        } else {
            None
        };
        print_timings(&timings);
        let publish_took = publish.as_ref().map_or(0.0, |(_, d)| d.as_secs_f64());
        eprintln!(
            "==> e2e: images {:.1}s, tests {:.1}s, publish round trip {:.1}s, total {:.1}s{}",
            built_in.as_secs_f64(),
            tests_took.as_secs_f64(),
            publish_took,
            started.elapsed().as_secs_f64(),
            if keep {
                " (containers kept: `docker ps -a --filter name=e2e-`)"
            } else {
                ""
            }
        );
        result.context("Docker end-to-end tests failed (rerun one with `cargo xtask e2e --keep NAME` and inspect its containers)")?;
        if let Some((r, _)) = publish {
            r?;
        }
        Ok(())
    }
}

/// Fails (never skips) when the Docker engine does not answer.
fn check_docker(sh: &Shell) -> anyhow::Result<()> {
    let format = "{{.Server.Version}}";
    let out = cmd!(sh, "docker version --format {format}")
        .quiet()
        .ignore_status()
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => bail!(
            "the Docker engine does not answer, and the e2e tests need it (they are never skipped): {}\n\
             start it (`service docker start` or `dockerd &`) and make sure this user may use /var/run/docker.sock",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => bail!("cannot run `docker` ({e}): install the Docker CLI and engine (apt-get install -y docker.io)"),
    }
}

/// Builds (or finds cached) every test image and the hooks add-on; writes their tags into
/// `target/images.json` (sets `test` and `e2e`).
pub fn build_test_images(sh: &Shell, no_cache: bool) -> anyhow::Result<()> {
    build_with(sh, TEST_MANIFEST, &[], no_cache, None)?;
    // The hooks image sits on the test ci-runner just built: never rebuild that twice.
    build_with(sh, HOOKS_MANIFEST, HOOKS_IMAGES, false, None)?;
    Ok(())
}

/// Builds `names` (default: the manifest's default set) of `manifest`, in-process.
pub fn build(sh: &Shell, manifest: &str, names: &[&str]) -> anyhow::Result<()> {
    build_with(sh, manifest, names, false, None)
}

/// Like [`build`], with a local actions runner tarball (`build-image --runner-tarball`).
pub fn build_with_tarball(
    sh: &Shell,
    manifest: &str,
    names: &[&str],
    runner_tarball: Option<PathBuf>,
) -> anyhow::Result<()> {
    build_with(sh, manifest, names, false, runner_tarball)
}

fn build_with(
    sh: &Shell,
    manifest: &str,
    names: &[&str],
    no_cache: bool,
    runner_tarball: Option<PathBuf>,
) -> anyhow::Result<()> {
    BuildImage {
        names: names.iter().map(|s| s.to_string()).collect(),
        manifest: PathBuf::from(manifest),
        print: false,
        no_cache,
        no_pull: false,
        runner_tarball,
        platform: "linux/amd64".into(),
        verbose: false,
    }
    .build(sh)
    .with_context(|| format!("building the images of {manifest}"))?;
    Ok(())
}

/// Prints `scenario  metric  ms` lines from the timings file, grouped by scenario.
fn print_timings(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let mut by_scenario: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(s), Some(m), Some(ms)) = (
            v["scenario"].as_str(),
            v["metric"].as_str(),
            v["ms"].as_u64(),
        ) else {
            continue;
        };
        by_scenario
            .entry(s.to_string())
            .or_default()
            .push((m.to_string(), ms));
    }
    if by_scenario.is_empty() {
        return;
    }
    eprintln!("==> e2e timings (ms)");
    for (scenario, metrics) in by_scenario {
        let joined: Vec<String> = metrics.iter().map(|(m, ms)| format!("{m}={ms}")).collect();
        eprintln!("    {scenario:<16} {}", joined.join("  "));
    }
}
