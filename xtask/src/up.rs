//! `cargo xtask up [--runners N] [--image NAME]`: a local stack for trying the images by hand.
//!
//! Builds what it needs, then starts on a private network: a ci-storage host (with a demo slot),
//! the mock GitHub (control API on a host port) and N runners; prints where to look; on Ctrl-C
//! stops the runners gracefully (they de-register) and removes everything. With `GH_TOKEN` and
//! `GH_REPOSITORY` set, the runners serve that repository on real GitHub instead of the mock.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use xshell::{cmd, Shell};

use crate::e2e;
use crate::tags;

/// Label on everything `up` creates, so a stale stack can be found and removed.
const LABEL: &str = "warm-runners.up=true";
/// Network and container name prefix.
const PREFIX: &str = "wr-up";
/// Repository the runners serve on the mock.
const MOCK_REPOSITORY: &str = "demo/app";
/// Grace period of `docker stop` for the runners (a running job may finish).
const STOP_GRACE_SEC: u32 = 120;

/// Start a local stack: mock GitHub (or real GitHub), ci-storage host and runners.
#[derive(Debug, Clone, clap::Args)]
pub struct Up {
    /// Number of runner containers.
    #[arg(long, default_value_t = 2)]
    pub runners: usize,
    /// Runner image (`ci-runner`, `ci-runner-node`, `ci-runner-python`).
    #[arg(long, default_value = "ci-runner")]
    pub image: String,
    /// Labels of the runners (comma-separated).
    #[arg(long, env = "GH_LABELS", default_value = "demo")]
    pub labels: String,
    /// The actions runner tarball for real GitHub, when github.com downloads are not possible
    /// (checked against the manifest's sha256; see `cargo xtask build-image --runner-tarball`).
    #[arg(long, value_name = "FILE")]
    pub runner_tarball: Option<std::path::PathBuf>,
}

/// Where the runners register.
enum Target {
    /// The bundled mock GitHub (no network needed).
    Mock,
    /// Real GitHub: `GH_REPOSITORY` with the PAT in `GH_TOKEN`.
    Github { repository: String, token: String },
}

impl Up {
    /// Runs the command.
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if self.runners == 0 {
            bail!("--runners must be at least 1");
        }
        let target = match (std::env::var("GH_TOKEN"), std::env::var("GH_REPOSITORY")) {
            (Ok(token), Ok(repository)) if !token.is_empty() && !repository.is_empty() => {
                Target::Github { repository, token }
            }
            _ => Target::Mock,
        };
        let workspace = crate::workspace_root();
        let started = Instant::now();

        // Images: the test set (fake actions runner, mock, storage host) for the mock; the
        // release runner image (the real actions runner) for real GitHub.
        eprintln!("==> building the images (cached layers are reused)");
        match target {
            Target::Mock => e2e::build(
                sh,
                e2e::TEST_MANIFEST,
                &[&self.image, "mock-github", "ci-storage-host"],
            )?,
            Target::Github { .. } => {
                e2e::build_with_tarball(
                    sh,
                    "images/images.toml",
                    &[&self.image],
                    self.runner_tarball.clone(),
                )?;
                e2e::build(sh, e2e::TEST_MANIFEST, &["ci-storage-host"])?;
            }
        }
        let images = tags::read_images_json(&tags::images_json_path(&workspace))?;
        let tag = |set: &str, name: &str| -> anyhow::Result<String> {
            images
                .get(set)
                .and_then(|s| s.get(name))
                .map(|i| i.tag.clone())
                .with_context(|| format!("image {name} of set {set} is not in target/images.json"))
        };
        let runner_image = match target {
            Target::Mock => tag("test", &self.image)?,
            Target::Github { .. } => tag("release", &self.image)?,
        };
        let storage_image = tag("test", "ci-storage-host")?;

        remove_stack(sh, true);
        let secrets = workspace.join("target").join("up");
        let stack = Stack {
            sh,
            secrets: secrets.clone(),
            runners: Vec::new(),
            mock_url: None,
        };
        let result = stack.start(&self, &target, &runner_image, &storage_image, &|s| {
            tag("test", s)
        });
        match result {
            Ok(mut stack) => {
                eprintln!("==> stack up in {:.1}s", started.elapsed().as_secs_f64());
                let waited = wait_for_ctrl_c();
                let stopped = stack.stop_runners();
                remove_stack(sh, false);
                waited?;
                stopped
            }
            Err(e) => {
                eprintln!("==> starting the stack failed; removing what was started");
                remove_stack(sh, false);
                Err(e)
            }
        }
    }
}

/// The containers of a running stack.
struct Stack<'a> {
    sh: &'a Shell,
    secrets: PathBuf,
    runners: Vec<String>,
    /// `http://127.0.0.1:<port>` of the mock's control API (mock mode).
    mock_url: Option<String>,
}

impl<'a> Stack<'a> {
    fn start(
        mut self,
        up: &Up,
        target: &Target,
        runner_image: &str,
        storage_image: &str,
        test_tag: &dyn Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<Stack<'a>> {
        let sh = self.sh;
        let network = PREFIX;
        cmd!(sh, "docker network create --label {LABEL} {network}")
            .quiet()
            .ignore_stdout()
            .run()?;

        // Secrets as files, mounted read-only at /run/secrets/<NAME>.
        std::fs::create_dir_all(&self.secrets)?;
        let key = self.secrets.join("ci-storage-key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        cmd!(sh, "ssh-keygen -q -t ed25519 -N '' -C wr-up -f {key}")
            .quiet()
            .run()
            .context("ssh-keygen failed (apt-get install -y openssh-client)")?;
        let public = std::fs::read_to_string(key.with_extension("pub"))?
            .trim()
            .to_string();

        let storage = format!("{PREFIX}-storage");
        eprintln!("==> starting the ci-storage host {storage}");
        cmd!(sh, "docker run -d --name {storage} --hostname {storage} --network {network} --label {LABEL} -e CI_STORAGE_PUBLIC_KEY={public} -v {PREFIX}-storage:/home/user/ci-storage --label {LABEL} {storage_image}")
            .quiet()
            .ignore_stdout()
            .run()?;
        wait_for_log(sh, &storage, "Server listening", Duration::from_secs(60))?;

        let (gh_env, repository, mock_port) = match target {
            Target::Mock => {
                let github = format!("{PREFIX}-github");
                let mock_image = test_tag("mock-github")?;
                eprintln!("==> starting the mock GitHub {github}");
                cmd!(sh, "docker run -d --name {github} --network {network} --label {LABEL} -p 127.0.0.1::8080 {mock_image}")
                    .quiet()
                    .ignore_stdout()
                    .run()?;
                let port = cmd!(sh, "docker port {github} 8080/tcp").quiet().read()?;
                let port = port
                    .lines()
                    .next()
                    .and_then(|l| l.rsplit(':').next())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                wait_for_http(
                    &format!("http://127.0.0.1:{port}/_mock/runners"),
                    Duration::from_secs(60),
                )?;
                let env = vec![
                    format!("GH_URL=http://{github}:8080"),
                    "GH_TOKEN=test-token".to_string(),
                ];
                (env, MOCK_REPOSITORY.to_string(), Some(port))
            }
            Target::Github { repository, token } => {
                let file = self.secrets.join("GH_TOKEN");
                write_secret(&file, token)?;
                (Vec::new(), repository.clone(), None)
            }
        };
        let storage_dir = format!("~/ci-storage/{repository}");

        // A demo slot, so the first runner boots warm.
        eprintln!("==> storing a demo slot for {repository} on {storage}");
        let seed = "mkdir -p /tmp/demo && echo 'this file came from ci-storage (pre-warm)' > /tmp/demo/WARM.txt && exec ci-storage store --ssh-key /run/secrets/CI_STORAGE_PRIVATE_KEY --storage-host \"$0\" --storage-dir \"$1\" --slot-id demo --local-dir /tmp/demo";
        let storage_host = format!("user@{storage}");
        let key_mount = format!("{}:/run/secrets/CI_STORAGE_PRIVATE_KEY:ro", key.display());
        let out = cmd!(sh, "docker run --rm --network {network} --label {LABEL} -v {key_mount} --entrypoint sh {runner_image} -c {seed} {storage_host} {storage_dir}")
            .quiet()
            .ignore_status()
            .output()?;
        if !out.status.success() {
            bail!(
                "seeding the demo slot failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let labels = &up.labels;
        for i in 1..=up.runners {
            let name = format!("{PREFIX}-runner-{i}");
            let mut args = vec![
                "run".to_string(),
                "-d".into(),
                "--name".into(),
                name.clone(),
                "--network".into(),
                network.into(),
                "--label".into(),
                LABEL.into(),
                "--stop-timeout".into(),
                STOP_GRACE_SEC.to_string(),
                "-e".into(),
                format!("GH_REPOSITORY={repository}"),
                "-e".into(),
                format!("GH_LABELS={labels}"),
                "-e".into(),
                format!("CI_STORAGE_HOST={storage_host}"),
                "-e".into(),
                format!("RUNNER_NAME_PREFIX={PREFIX}"),
                "-v".into(),
                key_mount.clone(),
                "--tmpfs".into(),
                "/home/user/_work:exec,uid=1000,gid=1000".into(),
            ];
            for e in &gh_env {
                args.extend(["-e".to_string(), e.clone()]);
            }
            if let Target::Mock = target {
                // Readable names on the mock; on GitHub the default time+random names keep
                // two developers' stacks on one repository apart.
                args.extend(["-e".to_string(), format!("RUNNER_TASK_ID=runner-{i}")]);
            }
            if let Target::Github { .. } = target {
                args.extend([
                    "-v".to_string(),
                    format!(
                        "{}:/run/secrets/GH_TOKEN:ro",
                        self.secrets.join("GH_TOKEN").display()
                    ),
                ]);
            }
            args.push(runner_image.to_string());
            cmd!(sh, "docker {args...}").quiet().ignore_stdout().run()?;
            self.runners.push(name);
        }
        eprintln!(
            "==> waiting for {} runner(s) to listen for jobs",
            self.runners.len()
        );
        for name in &self.runners {
            let took = wait_for_log(sh, name, "Listening for Jobs", Duration::from_secs(300))?;
            eprintln!("    {name}: listening after {:.1}s", took.as_secs_f64());
        }
        self.mock_url = mock_port.as_ref().map(|p| format!("http://127.0.0.1:{p}"));
        print_guide(
            target,
            &repository,
            labels,
            mock_port.as_deref(),
            &self.runners,
        );
        Ok(self)
    }

    /// `docker stop` every runner at once (SIGTERM: drain, de-register), then shows how each
    /// ended.
    fn stop_runners(&mut self) -> anyhow::Result<()> {
        eprintln!(
            "\n==> stopping {} runner(s) (SIGTERM; they finish a running job, then de-register)",
            self.runners.len()
        );
        let started = Instant::now();
        let children: Vec<_> = self
            .runners
            .iter()
            .map(|name| {
                std::process::Command::new("docker")
                    .args(["stop", "-t", &STOP_GRACE_SEC.to_string(), name])
                    .stdout(std::process::Stdio::null())
                    .spawn()
            })
            .collect();
        for child in children {
            let _ = child?.wait();
        }
        let sh = self.sh;
        let mut failed = Vec::new();
        for name in &self.runners {
            let format = "{{.State.ExitCode}}";
            let code = cmd!(sh, "docker inspect -f {format} {name}")
                .quiet()
                .read()
                .unwrap_or_default();
            let logs = cmd!(sh, "docker logs {name}")
                .quiet()
                .ignore_status()
                .output();
            let text = logs
                .map(|o| {
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .unwrap_or_default();
            eprintln!("    {name}: exit code {}", code.trim());
            for line in text
                .lines()
                .filter(|l| l.contains("step=drain") || l.contains("step=deregistered"))
            {
                eprintln!("      {line}");
            }
            if code.trim() != "0" {
                failed.push(name.clone());
            }
        }
        if let Some(url) = &self.mock_url {
            match registered_runners(&format!("{url}/_mock/runners")) {
                Ok(0) => eprintln!("    mock GitHub: no runner registered any more"),
                Ok(n) => {
                    eprintln!("    mock GitHub: {n} runner(s) still registered");
                    failed.push(format!("{n} runner(s) left on the mock"));
                }
                Err(e) => eprintln!("    mock GitHub: cannot list runners: {e:#}"),
            }
        }
        eprintln!(
            "==> runners stopped in {:.1}s; removing the stack",
            started.elapsed().as_secs_f64()
        );
        if !failed.is_empty() {
            bail!(
                "runner(s) did not drain cleanly: {} (see the log lines above)",
                failed.join(", ")
            );
        }
        Ok(())
    }
}

fn print_guide(
    target: &Target,
    repository: &str,
    labels: &str,
    mock_port: Option<&str>,
    runners: &[String],
) {
    let first = runners
        .first()
        .map(String::as_str)
        .unwrap_or("wr-up-runner-1");
    let label = labels.split(',').next().unwrap_or("demo");
    eprintln!();
    match (target, mock_port) {
        (Target::Mock, Some(port)) => {
            let base = format!("http://127.0.0.1:{port}");
            eprintln!("The stack is up against the mock GitHub (repository {repository}).");
            eprintln!();
            eprintln!("  Runners:        curl -s {base}/_mock/runners");
            eprintln!("  Queue a job:    curl -s -X POST {base}/_mock/jobs -H 'content-type: application/json' \\");
            eprintln!("                    -d '{{\"repository\":\"{repository}\",\"labels\":[\"{label}\"],\"name\":\"hello\",\"script\":\"whoami; pwd; cat WARM.txt\"}}'");
            eprintln!("  Jobs + output:  curl -s {base}/_mock/jobs");
            eprintln!("  API requests:   curl -s {base}/_mock/requests");
        }
        _ => {
            eprintln!("The stack is up against GitHub: https://github.com/{repository}/settings/actions/runners");
            eprintln!("  Use it from a workflow with `runs-on: [self-hosted, {label}]`.");
        }
    }
    eprintln!("  Runner logs:    docker logs -f {first}");
    eprintln!("  A shell:        docker exec -it {first} bash -l");
    eprintln!(
        "  Storage host:   docker exec {PREFIX}-storage ls -la /home/user/ci-storage/{repository}"
    );
    eprintln!();
    eprintln!("Press Ctrl-C to stop: the runners de-register (after any running job), then everything is removed.");
}

/// Blocks until SIGINT (Ctrl-C) or SIGTERM.
fn wait_for_ctrl_c() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        Ok(())
    })
}

/// Removes every container, volume and network labelled [`LABEL`].
fn remove_stack(sh: &Shell, stale: bool) {
    let ids = cmd!(sh, "docker ps -aq --filter label={LABEL}")
        .quiet()
        .read()
        .unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        if stale {
            eprintln!(
                "==> removing a stale stack from an earlier `cargo xtask up` ({} container(s))",
                ids.len()
            );
        }
        let _ = cmd!(sh, "docker rm -f -v {ids...}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run();
    }
    let _ = cmd!(sh, "docker network rm {PREFIX}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .ignore_status()
        .run();
    let _ = cmd!(sh, "docker volume rm {PREFIX}-storage")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .ignore_status()
        .run();
}

/// Polls `docker logs` until a line contains `needle`; fails if the container stops first.
fn wait_for_log(
    sh: &Shell,
    container: &str,
    needle: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let out = cmd!(sh, "docker logs {container}")
            .quiet()
            .ignore_status()
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains(needle) {
            return Ok(started.elapsed());
        }
        let format = "{{.State.Running}}";
        let running = cmd!(sh, "docker inspect -f {format} {container}")
            .quiet()
            .read()
            .unwrap_or_default();
        if running.trim() != "true" || started.elapsed() > timeout {
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{container} {} before logging {needle:?}; its last lines:\n{}",
                if running.trim() == "true" {
                    "timed out"
                } else {
                    "stopped"
                },
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Polls `url` until it answers 2xx.
fn wait_for_http(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if started.elapsed() > timeout {
                bail!("{url} did not answer within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// How many runners the mock lists.
fn registered_runners(url: &str) -> anyhow::Result<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let runners: Vec<serde_json::Value> =
            reqwest::get(url).await?.error_for_status()?.json().await?;
        Ok(runners.len())
    })
}

/// Writes a secret file readable only by us (mounted read-only into the containers).
fn write_secret(path: &Path, value: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(value.as_bytes())?;
    Ok(())
}
