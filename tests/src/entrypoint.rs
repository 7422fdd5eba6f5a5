//! Harness for the in-process system tests of the `runner` entrypoint: builds the binaries
//! once, lays out a temporary runner home (the fake actions runner unpacked), hook dirs and a
//! fake `ci-storage`, runs `runner` against an in-process mock GitHub and watches its log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context};
use fixtures::mock_github::MockGithub;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;

/// Repository every test registers for.
pub const REPO: &str = "acme/widgets";

/// Paths of the binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The entrypoint.
    pub runner: PathBuf,
    /// The packed fake actions runner tarball.
    pub tarball: PathBuf,
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds `runner` and the fake runner once per test process and packs the tarball.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| build().unwrap_or_else(|e| panic!("building the binaries: {e:#}")))
}

fn build() -> anyhow::Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    // Variables cargo sets for this test binary would otherwise reach build scripts (ring's
    // `cc`) and make the two builds invalidate each other.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let keep = matches!(k.as_ref(), "CARGO_HOME" | "CARGO_TARGET_DIR");
        if !keep && (k.starts_with("CARGO_") || k == "OUT_DIR" || k.starts_with("RUST_TEST")) {
            cmd.env_remove(k.as_ref());
        }
    }
    let status = cmd
        .args(["build", "-p", "runner", "-p", "fixtures", "--bins"])
        .current_dir(workspace_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build -p runner -p fixtures --bins failed: {status}");
    }
    let debug = target_dir().join("debug");
    let out = target_dir().join("e2e-entrypoint");
    let packed = fixtures::fake_runner::pack(
        &debug.join("fake-runner"),
        &out,
        fixtures::fake_runner::FAKE_RUNNER_VERSION,
    )?;
    // E2E_RUNNER_BIN runs another build of the entrypoint (e.g. release, for measurements).
    let runner = std::env::var_os("E2E_RUNNER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| debug.join("runner"));
    Ok(Binaries {
        runner,
        tarball: packed.path,
    })
}

/// Name of the account running the tests (the runner runs as it: no privilege drop).
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into())
}

/// A temporary layout and the environment for one `runner` run.
pub struct RunnerEnv {
    /// Keeps everything alive; removed on drop.
    pub dir: tempfile::TempDir,
    /// The unpacked fake actions runner (`RUNNER_HOME`).
    pub runner_home: PathBuf,
    /// `RUNNER_WORK_DIR`.
    pub work: PathBuf,
    /// `RUNNER_ROOT_HOOKS_DIR`.
    pub root_hooks: PathBuf,
    /// `RUNNER_USER_HOOKS_DIR`.
    pub user_hooks: PathBuf,
    /// Put first on PATH (fake `ci-storage`).
    pub bin: PathBuf,
    /// Scratch space for markers written by hooks, jobs and test doubles.
    pub marks: PathBuf,
    /// The custom labels registered.
    pub labels: Vec<String>,
    /// Environment given to `runner` (nothing else is inherited but PATH).
    pub vars: BTreeMap<String, String>,
}

impl RunnerEnv {
    /// A layout pointing at `mock`, with a PAT, unique labels, small shutdown intervals.
    pub fn new(mock: &MockGithub) -> anyhow::Result<RunnerEnv> {
        let bins = binaries();
        let dir = tempfile::tempdir().context("tempdir")?;
        let p = |s: &str| dir.path().join(s);
        let (runner_home, work, root_hooks, user_hooks, bin, marks) = (
            p("actions-runner"),
            p("work"),
            p("root-hooks"),
            p("user-hooks"),
            p("bin"),
            p("marks"),
        );
        for d in [&runner_home, &root_hooks, &user_hooks, &bin, &marks] {
            std::fs::create_dir_all(d).with_context(|| format!("mkdir {}", d.display()))?;
        }
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&bins.tarball)
            .arg("-C")
            .arg(&runner_home)
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("unpacking {} failed", bins.tarball.display());
        }
        let label = format!("e2e-{:08x}", rand::random::<u32>());
        let labels = vec![label, "big".to_string()];
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        let mut vars = BTreeMap::new();
        for (k, v) in [
            ("PATH", path.as_str()),
            ("GH_REPOSITORY", REPO),
            ("GH_LABELS", &labels.join(",")),
            ("GH_TOKEN", &mock.token()),
            ("GH_URL", &mock.url()),
            ("RUNNER_USER", &current_user()),
            ("RUNNER_ALLOW_RUNASROOT", "1"),
            ("RUNNER_STATUS_PORT", "0"),
            ("RUNNER_HOME", &runner_home.display().to_string()),
            ("RUNNER_WORK_DIR", &work.display().to_string()),
            ("RUNNER_ROOT_HOOKS_DIR", &root_hooks.display().to_string()),
            ("RUNNER_USER_HOOKS_DIR", &user_hooks.display().to_string()),
            (
                "RUNNER_STATUS_FILE",
                &p("status.json").display().to_string(),
            ),
            ("RUNNER_SECRETS_DIR", &p("secrets").display().to_string()),
            ("SHUTDOWN_RETRY_INTERVAL_SEC", "1"),
            ("RUST_LOG", "info"),
        ] {
            vars.insert(k.to_string(), v.to_string());
        }
        Ok(RunnerEnv {
            dir,
            runner_home,
            work,
            root_hooks,
            user_hooks,
            bin,
            marks,
            labels,
            vars,
        })
    }

    /// Sets a variable.
    pub fn set(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.vars.insert(k.to_string(), v.into());
        self
    }

    /// Removes a variable.
    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.vars.remove(k);
        self
    }

    /// Path of the status file.
    pub fn status_file(&self) -> PathBuf {
        self.dir.path().join("status.json")
    }

    /// The status file's JSON, if written.
    pub fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.status_file()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes an executable `ci-storage` test double (a bash script body) first on PATH and
    /// points `CI_STORAGE_HOST` at a dummy host. `$MARKS` is the marks directory.
    pub fn fake_ci_storage(&mut self, body: &str) -> anyhow::Result<()> {
        let script = format!(
            "#!/bin/bash\nMARKS={}\necho \"$@\" > \"$MARKS/ci-storage.args\"\necho $$ > \"$MARKS/ci-storage.pid\"\n{body}\n",
            self.marks.display()
        );
        write_exec(&self.bin.join("ci-storage"), &script)?;
        self.set("CI_STORAGE_HOST", "ci@storage.invalid:2222");
        Ok(())
    }

    /// Writes a hook `name` (e.g. `entrypoint.10-x.sh`) into the root or user hooks dir.
    pub fn hook(&self, root: bool, name: &str, body: &str) -> anyhow::Result<()> {
        let dir = if root {
            &self.root_hooks
        } else {
            &self.user_hooks
        };
        let script = format!("#!/bin/bash\nMARKS={}\n{body}\n", self.marks.display());
        write_exec(&dir.join(name), &script)
    }

    /// Starts `runner` with this environment (and only this).
    pub fn spawn(&self) -> anyhow::Result<RunnerProc> {
        self.spawn_with_args(&[])
    }

    /// Starts `runner <args>` with this environment.
    pub fn spawn_with_args(&self, args: &[&str]) -> anyhow::Result<RunnerProc> {
        let mut cmd = tokio::process::Command::new(&binaries().runner);
        cmd.args(args)
            .env_clear()
            .envs(&self.vars)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting runner")?;
        let log = Arc::new(Mutex::new(String::new()));
        let changed = Arc::new(Notify::new());
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect(out, log.clone(), changed.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect(err, log.clone(), changed.clone()));
        }
        let pid = child.id().context("runner has no pid")?;
        Ok(RunnerProc {
            child,
            pid,
            log,
            changed,
        })
    }
}

fn write_exec(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

async fn collect(r: impl AsyncRead + Unpin, log: Arc<Mutex<String>>, changed: Arc<Notify>) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut l) = log.lock() {
            l.push_str(&line);
            l.push('\n');
        }
        changed.notify_waiters();
    }
    changed.notify_waiters();
}

/// A running `runner` and everything it logged so far.
pub struct RunnerProc {
    child: tokio::process::Child,
    /// Its pid.
    pub pid: u32,
    log: Arc<Mutex<String>>,
    changed: Arc<Notify>,
}

impl RunnerProc {
    /// The log so far (stdout and stderr interleaved by line).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until a log line contains `needle`; returns that line.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return Ok(line.to_string());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!(
                    "no log line with {needle:?} within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// Sends a signal to the runner.
    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid as i32), sig);
    }

    /// Waits for the exit code (fails on timeout, printing the log).
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<i32> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for runner")?;
                // Let the collectors drain the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if std::env::var_os("E2E_LOG").is_some() {
                    eprintln!("---- runner log ----\n{}", self.log());
                }
                status
                    .code()
                    .with_context(|| format!("runner ended by {status}; log:\n{}", self.log()))
            }
            Err(_) => bail!(
                "runner did not exit within {timeout:?}; log:\n{}",
                self.log()
            ),
        }
    }
}

/// Resident set size of process `pid` in KiB (`VmRSS` of /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Pids of processes whose executable is `exe` (e.g. the fake `bin/Runner.Listener`).
pub fn pids_of(exe: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe))
        .collect()
}

/// Whether process `pid` still exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
