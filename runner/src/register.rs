//! Registration: runner names, `config.sh` (configure and remove) as the account, and the
//! runner's own `.runner` file. Command lines carrying `--token` are never logged.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;

use crate::config::Config;
use crate::github::Github;
use crate::privdrop::Account;
use crate::secret::Secret;
use crate::signals::Shutdown;
use crate::spawn;

/// GitHub's limit on a runner name.
const MAX_NAME: usize = 64;

/// How long an in-flight `config.sh` may take before we give up on it.
const CONFIG_SH_TIMEOUT: Duration = Duration::from_secs(180);

/// `<prefix>-<task id>` or `<prefix>-<yyyymmdd-hhmmss>-<4 hex>`: unique, readable, sortable.
pub fn runner_name(
    prefix: &str,
    task_id: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
    rng: &mut impl Rng,
) -> String {
    let suffix = match task_id {
        Some(id) => id.to_string(),
        None => format!("{}-{:04x}", now.format("%Y%m%d-%H%M%S"), rng.gen::<u16>()),
    };
    let mut name = format!("{prefix}-{suffix}");
    // Keep the end (the unique part of a task id) when too long.
    if name.len() > MAX_NAME {
        let cut = name.len() - MAX_NAME;
        name = format!("{prefix}-{}", &suffix[cut.min(suffix.len())..]);
        name.truncate(MAX_NAME);
    }
    name
}

/// How registration ended.
#[derive(Debug)]
pub enum Outcome {
    /// `config.sh` succeeded.
    Registered,
    /// A signal came before `config.sh` started: nothing was registered.
    AbortedBeforeConfig,
    /// A signal came while `config.sh` ran; it was let finish, so something may be registered.
    AbortedDuringConfig,
}

/// Gets a registration token and runs `config.sh` (retrying once on its "retryable" exit 2).
pub async fn register(
    cfg: &Config,
    gh: &Github,
    acct: &Account,
    name: &str,
    shutdown: &Shutdown,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    forget_stale(cfg, gh).await;
    for attempt in 1..=3 {
        let mut sd = shutdown.clone();
        let token = tokio::select! {
            t = gh.registration_token() => t.context("cannot get a registration token")?,
            _ = sd.wait() => return Ok(Outcome::AbortedBeforeConfig),
        };
        let args = [
            "--unattended".into(),
            "--url".into(),
            cfg.repo_url(),
            "--token".into(),
            token.expose().to_string(),
            "--name".into(),
            name.to_string(),
            "--labels".into(),
            cfg.labels.join(","),
            "--work".into(),
            cfg.work_dir.display().to_string(),
            "--replace".into(),
            "--disableupdate".into(),
        ];
        // Let an in-flight config.sh finish even on a signal: killing it could leave a
        // registration without the local `.runner` file that names it.
        let status = config_sh(cfg, acct, &args).await?;
        if shutdown.requested().is_some() {
            return Ok(Outcome::AbortedDuringConfig);
        }
        if status.success() {
            tracing::info!(
                step = %"register",
                elapsed_ms = started.elapsed().as_millis() as u64,
                uptime_ms = crate::steps::uptime_ms(),
                runner_name = %name,
                labels = %cfg.labels.join(","),
                "registered runner {name}"
            );
            return Ok(Outcome::Registered);
        }
        // 2 is the runner's "retryable" code; anything else will not get better.
        if status.code() != Some(2) || attempt == 3 {
            anyhow::bail!("config.sh failed with {}", spawn::describe(&status));
        }
        tracing::warn!(
            "config.sh failed with {}; retrying with a fresh token",
            spawn::describe(&status)
        );
        tokio::time::sleep(Duration::from_secs(attempt)).await;
    }
    anyhow::bail!("config.sh failed")
}

/// `config.sh remove --token <fresh remove token>`; true when it succeeded.
pub async fn config_remove(cfg: &Config, acct: &Account, token: &Secret) -> anyhow::Result<bool> {
    let args = [
        "remove".to_string(),
        "--token".into(),
        token.expose().to_string(),
    ];
    Ok(config_sh(cfg, acct, &args).await?.success())
}

/// Runs `config.sh` with `args` as the account; logs its output, never its arguments.
async fn config_sh(cfg: &Config, acct: &Account, args: &[String]) -> anyhow::Result<ExitStatus> {
    let mut cmd = spawn::user_command(cfg.runner_home.join("config.sh"), acct, &cfg.tz);
    cmd.args(args).current_dir(&cfg.runner_home);
    let mut child = spawn::spawn_logged(&mut cmd, "config.sh")
        .with_context(|| format!("cannot run {}", cfg.runner_home.join("config.sh").display()))?;
    match tokio::time::timeout(CONFIG_SH_TIMEOUT, child.wait()).await {
        Ok(s) => s.context("cannot wait for config.sh"),
        Err(_) => {
            spawn::kill(&mut child).await;
            anyhow::bail!("config.sh did not finish within {CONFIG_SH_TIMEOUT:?}; killed it")
        }
    }
}

/// `agentId` from the runner's `.runner` file (JSON, possibly with a BOM, as the real one).
pub fn agent_id(runner_home: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(runner_home.join(".runner")).ok()?;
    let v: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).ok()?;
    v.get("agentId").and_then(|id| {
        id.as_u64()
            .or_else(|| id.as_str().and_then(|s| s.parse().ok()))
    })
}

/// Whether `config.sh` has configured this runner home.
pub fn is_configured(runner_home: &Path) -> bool {
    runner_home.join(".runner").is_file()
}

/// A `.runner` left by a previous run of this container (restart with the same home) names a
/// ghost registration: delete it best effort, and the local files, so `config.sh` can run.
async fn forget_stale(cfg: &Config, gh: &Github) {
    if !is_configured(&cfg.runner_home) {
        return;
    }
    if let Some(id) = agent_id(&cfg.runner_home) {
        match gh.delete_runner(id).await {
            Ok(_) => tracing::info!("removed the stale registration {id} left by a previous run"),
            Err(e) => tracing::warn!("cannot remove the stale registration {id}: {e}"),
        }
    }
    for f in [".runner", ".credentials", ".credentials_rsaparams"] {
        let _ = std::fs::remove_file(cfg.runner_home.join(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;

    #[test]
    fn names() {
        let now = chrono::Utc
            .with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
            .single()
            .expect("time");
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let n = runner_name("ci-runner", None, now, &mut rng);
        assert!(n.starts_with("ci-runner-20240506-070809-"), "{n}");
        assert_eq!(n.len(), "ci-runner-20240506-070809-".len() + 4);
        let m = runner_name("ci-runner", None, now, &mut rng);
        assert_ne!(n, m, "two names in the same second differ");
        assert_eq!(
            runner_name("ci", Some("task-123"), now, &mut rng),
            "ci-task-123"
        );
        let long = "a".repeat(30) + &"b".repeat(34);
        let n = runner_name("prefix", Some(&long), now, &mut rng);
        assert!(n.len() <= MAX_NAME, "{n}");
        assert!(n.starts_with("prefix-") && n.ends_with("bbbb"), "{n}");
    }

    #[test]
    fn agent_id_from_runner_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(agent_id(dir.path()), None);
        std::fs::write(
            dir.path().join(".runner"),
            "\u{feff}{\"agentId\": 42, \"agentName\": \"x\"}",
        )
        .expect("write");
        assert_eq!(agent_id(dir.path()), Some(42));
    }
}
