//! Children: scrubbed environments, own process groups, output forwarded line by line to our
//! log, and termination of a whole process group.

use std::ffi::OsString;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::privdrop::Account;

/// Variables never passed to anything that runs as the runner's account: credentials and
/// key material (the ci-storage key is handed over as a file, never as a variable).
pub const SCRUBBED: &[&str] = &[
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "GH_APP_PRIVATE_KEY",
    "CI_STORAGE_HOST_PRIVATE_KEY",
    "CI_STORAGE_PRIVATE_KEY",
    "CI_STORAGE_SSH_KEY",
    "RUNNER_SECRETS_DIR",
];

/// Our environment without [`SCRUBBED`] variables.
pub fn scrubbed_env() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| !SCRUBBED.iter().any(|s| k == s))
        .collect()
}

/// A command run as `acct` with a scrubbed environment, in its own process group (so a
/// terminal's Ctrl-C or a signal meant for us does not reach it), output piped.
pub fn user_command(program: impl AsRef<std::ffi::OsStr>, acct: &Account, tz: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().envs(scrubbed_env());
    if std::env::var_os("TZ").is_none() {
        cmd.env("TZ", tz);
    }
    acct.apply(&mut cmd);
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Spawns `cmd` and forwards its stdout and stderr to our log as `<prefix>: <line>`.
pub fn spawn_logged(cmd: &mut Command, prefix: &str) -> std::io::Result<Child> {
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(out, prefix.to_string(), |_| {}));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(err, prefix.to_string(), |_| {}));
    }
    Ok(child)
}

/// Logs every line of `r` as `<prefix>: <line>` and hands it to `on_line`.
pub async fn forward(r: impl AsyncRead + Unpin, prefix: String, mut on_line: impl FnMut(&str)) {
    let mut lines = BufReader::new(r).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                tracing::info!("{prefix}: {line}");
                on_line(&line);
            }
            Ok(None) => break,
            Err(e) => {
                // Non-UTF-8 output: keep reading is not possible with `lines`; say so once.
                tracing::warn!("{prefix}: cannot read output: {e}");
                break;
            }
        }
    }
}

/// Sends `sig` to the process group led by `pid` (our children lead their own groups).
pub fn signal_group(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        // ESRCH (already gone) is fine.
        let _ = killpg(Pid::from_raw(pid), sig);
    }
}

/// Stops a child and its group: SIGTERM, then SIGKILL after `grace`. Returns its status.
pub async fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Some(pid) = child.id() {
        signal_group(pid, Signal::SIGTERM);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(r) => r.ok(),
        Err(_) => kill(child).await,
    }
}

/// SIGKILLs a child's whole group and reaps the child.
pub async fn kill(child: &mut Child) -> Option<ExitStatus> {
    if let Some(pid) = child.id() {
        signal_group(pid, Signal::SIGKILL);
    }
    child.wait().await.ok()
}

/// `name` of a file for log prefixes.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// "exit code N" or "signal S", for logs.
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown status".to_string(),
    }
}
