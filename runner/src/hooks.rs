//! Boot hooks: `entrypoint.*.sh` files of a directory, run with bash in lexical order; their
//! output is logged prefixed with the file name; the first failure stops boot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

use crate::privdrop::Account;
use crate::signals::Shutdown;
use crate::spawn;

/// Why a hook directory did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// A hook exited non-zero (or was killed).
    #[error("hook {name} failed with {status}")]
    Failed {
        /// File name of the hook.
        name: String,
        /// "exit code N" or "signal S".
        status: String,
    },
    /// A shutdown signal came; the running hook was stopped.
    #[error("hook {0} stopped by a shutdown signal")]
    Aborted(String),
    /// The hook could not be started at all.
    #[error(transparent)]
    Spawn(#[from] anyhow::Error),
}

/// Who runs a hook directory and with which environment.
pub enum RunAs<'a> {
    /// Ourselves (root in the image), with our full environment: root hooks are the image
    /// author's code and may need the credentials.
    Current,
    /// The runner's account, with the scrubbed environment.
    User(&'a Account, &'a str),
}

/// `entrypoint.*.sh` files of `dir`, sorted by name; a missing directory has none.
pub fn list(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list hooks in {}", dir.display())),
    };
    let mut hooks = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list hooks in {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map(|t| !t.is_dir()).unwrap_or(false);
        if is_file && name.starts_with("entrypoint.") && name.ends_with(".sh") {
            hooks.push(entry.path());
        }
    }
    hooks.sort();
    Ok(hooks)
}

/// Runs the hooks of `dir` one after another; stops at the first failure or at a signal.
pub async fn run_dir(dir: &Path, who: RunAs<'_>, shutdown: &Shutdown) -> Result<usize, HookError> {
    let hooks = list(dir)?;
    for hook in &hooks {
        let name = spawn::file_name(hook);
        let mut cmd = match &who {
            RunAs::Current => {
                let mut c = Command::new("bash");
                c.process_group(0)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                c
            }
            RunAs::User(acct, tz) => spawn::user_command("bash", acct, tz),
        };
        cmd.arg(hook).current_dir(dir);
        tracing::info!("running hook {name}");
        let mut child = spawn::spawn_logged(&mut cmd, &name)
            .with_context(|| format!("cannot run hook {} with bash", hook.display()))?;
        let mut sd = shutdown.clone();
        let status = tokio::select! {
            s = child.wait() => s.with_context(|| format!("cannot wait for hook {name}"))?,
            _ = sd.wait() => {
                spawn::terminate(&mut child, Duration::from_secs(5)).await;
                return Err(HookError::Aborted(name));
            }
        };
        if !status.success() {
            return Err(HookError::Failed {
                name,
                status: spawn::describe(&status),
            });
        }
    }
    Ok(hooks.len())
}
