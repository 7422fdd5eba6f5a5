//! Containers through the `docker` CLI: a private network whose containers are removed when
//! the [`Stack`] is dropped, logs with Docker's timestamps, signals, exits, `exec`.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use xshell::{cmd, Shell};

use super::steplog::split_timestamp;

/// Local image references by logical name, from `target/images.json`.
#[derive(Debug, Clone)]
pub struct Images {
    refs: std::collections::BTreeMap<String, String>,
    sets: Vec<String>,
}

impl Images {
    /// Reads `target/images.json`; earlier `sets` win.
    pub fn load(sets: &[String]) -> anyhow::Result<Images> {
        let path = crate::tags::images_json_path(&crate::workspace_root());
        let all = crate::tags::read_images_json(&path)?;
        let mut refs = std::collections::BTreeMap::new();
        for set in sets.iter().rev() {
            for (name, img) in all.get(set).into_iter().flatten() {
                refs.insert(name.clone(), img.tag.clone());
            }
        }
        Ok(Images {
            refs,
            sets: sets.to_vec(),
        })
    }

    /// The reference of image `name`, or what to run to build it.
    pub fn get(&self, name: &str) -> anyhow::Result<String> {
        self.refs.get(name).cloned().with_context(|| {
            format!(
                "image {name:?} is not in target/images.json (sets {:?}; known: {}); build the test images: \
                 `cargo xtask build-image --manifest images/test.toml`",
                self.sets,
                self.refs.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// How to start one container.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// Role, part of the container name.
    pub role: String,
    /// Image reference.
    pub image: String,
    /// `-e K=V`.
    pub env: Vec<(String, String)>,
    /// Variables passed by name (`-e K`) from our environment, so values stay off command lines.
    pub secret_env: Vec<(String, String)>,
    /// Container ports to publish on 127.0.0.1 (random host port).
    pub ports: Vec<u16>,
    /// More `docker run` options.
    pub extra: Vec<String>,
}

/// A private network and the containers started on it; all removed on drop.
pub struct Stack<'a> {
    sh: &'a Shell,
    /// The network's name.
    pub network: String,
    prefix: String,
    counter: Cell<usize>,
    started: RefCell<Vec<String>>,
    keep: bool,
}

impl<'a> Stack<'a> {
    /// Creates the network `bench-<pid>`.
    pub fn new(sh: &'a Shell, keep: bool) -> anyhow::Result<Stack<'a>> {
        let prefix = format!("bench-{}", std::process::id());
        let network = format!("{prefix}-net");
        cmd!(sh, "docker network create {network}")
            .quiet()
            .ignore_stdout()
            .run()
            .context("creating a Docker network (is Docker running?)")?;
        Ok(Stack {
            sh,
            network,
            prefix,
            counter: Cell::new(0),
            started: RefCell::new(Vec::new()),
            keep,
        })
    }

    /// A unique container name for `role`.
    pub fn name(&self, role: &str) -> String {
        let n = self.counter.get();
        self.counter.set(n + 1);
        format!("{}-{role}{n}", self.prefix)
    }

    /// `docker run -d` on the network; returns the container name.
    pub fn run(&self, spec: &RunSpec) -> anyhow::Result<String> {
        let sh = self.sh;
        let name = self.name(&spec.role);
        let network = &self.network;
        let mut args: Vec<String> = Vec::new();
        for (k, v) in &spec.env {
            args.extend(["-e".into(), format!("{k}={v}")]);
        }
        for (k, _) in &spec.secret_env {
            args.extend(["-e".into(), k.clone()]);
        }
        for p in &spec.ports {
            args.extend(["-p".into(), format!("127.0.0.1::{p}")]);
        }
        args.extend(spec.extra.iter().cloned());
        let image = &spec.image;
        let mut c = cmd!(
            sh,
            "docker run -d --name {name} --network {network} {args...} {image}"
        )
        .quiet()
        .ignore_stdout();
        for (k, v) in &spec.secret_env {
            c = c.env(k, v).secret();
        }
        self.started.borrow_mut().push(name.clone());
        c.run()
            .with_context(|| format!("starting container {name} from {image}"))?;
        Ok(name)
    }

    /// Removes a container now (`docker rm -f`).
    pub fn remove(&self, name: &str) {
        if !self.keep {
            let _ = cmd!(self.sh, "docker rm -f {name}")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
        self.started.borrow_mut().retain(|n| n != name);
    }
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "==> --keep: leaving containers {:?} and network {}",
                self.started.borrow(),
                self.network
            );
            return;
        }
        let sh = self.sh;
        let names = self.started.borrow().clone();
        if !names.is_empty() {
            let _ = cmd!(sh, "docker rm -f {names...}")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
        let network = &self.network;
        let _ = cmd!(sh, "docker network rm {network}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run();
    }
}

/// `docker inspect -f <format> <name>`.
pub fn inspect(sh: &Shell, name: &str, format: &str) -> anyhow::Result<String> {
    Ok(cmd!(sh, "docker inspect -f {format} {name}")
        .quiet()
        .read()
        .with_context(|| format!("docker inspect {name}"))?
        .trim()
        .to_owned())
}

/// Parses Docker's RFC 3339 timestamps.
pub fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s.trim())
        .with_context(|| format!("not a timestamp: {s:?}"))?
        .with_timezone(&Utc))
}

/// When the container's process started.
pub fn started_at(sh: &Shell, name: &str) -> anyhow::Result<DateTime<Utc>> {
    parse_time(&inspect(sh, name, "{{.State.StartedAt}}")?)
}

/// When the container exited.
pub fn finished_at(sh: &Shell, name: &str) -> anyhow::Result<DateTime<Utc>> {
    parse_time(&inspect(sh, name, "{{.State.FinishedAt}}")?)
}

/// The published host port of container port `port`.
pub fn host_port(sh: &Shell, name: &str, port: u16) -> anyhow::Result<u16> {
    let spec = format!("{port}/tcp");
    let out = cmd!(sh, "docker port {name} {spec}").quiet().read()?;
    out.lines()
        .find_map(|l| l.trim().rsplit(':').next().and_then(|p| p.parse().ok()))
        .with_context(|| format!("no published port for {name} {spec}: {out:?}"))
}

/// The whole log (stdout and stderr) with Docker's timestamps, lines in time order.
pub fn logs(sh: &Shell, name: &str) -> anyhow::Result<String> {
    let out = cmd!(sh, "docker logs -t {name}")
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| format!("docker logs {name}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_by_key(|l| split_timestamp(l).0);
    Ok(lines.join("\n") + "\n")
}

/// Whether the container is running.
pub fn running(sh: &Shell, name: &str) -> anyhow::Result<bool> {
    Ok(inspect(sh, name, "{{.State.Running}}")? == "true")
}

/// Polls the log until a line contains `needle`; returns that line (with its timestamp).
pub fn wait_log(sh: &Shell, name: &str, needle: &str, timeout: Duration) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        let log = logs(sh, name)?;
        if let Some(line) = log.lines().find(|l| l.contains(needle)) {
            return Ok(line.to_owned());
        }
        if !running(sh, name)? {
            bail!(
                "{name} exited before logging {needle:?}:\n{}",
                tail(&log, 30)
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "{name} did not log {needle:?} within {timeout:?}:\n{}",
                tail(&log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `docker kill -s <signal>`; returns when the engine has delivered it.
pub fn kill(sh: &Shell, name: &str, signal: &str) -> anyhow::Result<()> {
    cmd!(sh, "docker kill -s {signal} {name}")
        .quiet()
        .ignore_stdout()
        .run()
        .with_context(|| format!("docker kill -s {signal} {name}"))?;
    Ok(())
}

/// Waits (polling) until the container exited; returns its exit code.
pub fn wait_exit(sh: &Shell, name: &str, timeout: Duration) -> anyhow::Result<i64> {
    let start = Instant::now();
    while running(sh, name)? {
        if start.elapsed() > timeout {
            bail!(
                "{name} still running after {timeout:?}:\n{}",
                tail(&logs(sh, name)?, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    inspect(sh, name, "{{.State.ExitCode}}")?
        .parse()
        .context("exit code")
}

/// `docker exec <name> <argv>`; stdout.
pub fn exec(sh: &Shell, name: &str, argv: &[&str]) -> anyhow::Result<String> {
    cmd!(sh, "docker exec {name} {argv...}")
        .quiet()
        .read()
        .with_context(|| format!("docker exec {name} {argv:?}"))
}
