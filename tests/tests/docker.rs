//! Docker end-to-end scenarios (issue 6): the runner images on private networks with a real
//! sshd storage host and the mock GitHub in containers.
//!
//! Run by `cargo xtask e2e` (which builds the images and writes `target/images.json`); each test
//! has its own network, mock and container names, and prints its timings (`TIMING …` lines).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use e2e::docker::images::names;
use e2e::docker::runner::LISTENING;
use e2e::docker::{eventually, AppKey, Runner, Stack};
use fixtures::mock_github::{AppRegistration, Fault, JobResult, JobState};

/// Upper bound for a runner to boot to `Listening for Jobs`.
const BOOT: Duration = Duration::from_secs(90);
/// Upper bound for a job of a few commands.
const JOB: Duration = Duration::from_secs(60);
/// Exit code of a drained runner (ARCHITECTURE.md, `runner/src/exit.rs`).
const EXIT_DRAINED: i64 = 0;
/// Exit code for bad configuration.
const EXIT_CONFIG: i64 = 2;
/// Exit code for a failed hook.
const EXIT_HOOK: i64 = 3;

/// Files of the seeded slot.
const SEED_FILES: &[(&str, &[u8])] = &[
    ("warm.txt", b"pre-warmed from ci-storage\n"),
    (
        "node_modules/left-pad/index.js",
        b"module.exports = (s) => s;\n",
    ),
    ("target/debug/.fingerprint/x", b"fingerprint\n"),
];

/// Fails unless exactly one runner of the stack's repository is registered; returns it.
async fn only_runner(stack: &Stack) -> Result<fixtures::mock_github::RunnerView> {
    let runners = stack.mock.runners_of(&stack.repository()).await?;
    ensure!(
        runners.len() == 1,
        "expected one runner, the mock has {runners:#?}"
    );
    Ok(runners.into_iter().next().expect("one runner"))
}

/// Waits until no runner of the stack's repository is registered.
async fn no_runner_left(stack: &Stack) -> Result<()> {
    let repository = stack.repository();
    eventually(
        "no runner left on the mock",
        Duration::from_secs(5),
        || async {
            Ok(stack
                .mock
                .runners_of(&repository)
                .await?
                .is_empty()
                .then_some(()))
        },
    )
    .await
    .with_context(|| "a runner is still registered (ghost runner)")
}

/// Max ctime (`stat -c %z`, nanoseconds) of `paths` inside the runner.
async fn max_ctime(runner: &Runner, dir: &str, paths: &[&str]) -> Result<DateTime<Utc>> {
    let out = runner
        .sh(&format!("cd {dir} && stat -c %z {}", paths.join(" ")))
        .await?;
    let mut max = None;
    for line in out.lines() {
        // `2024-05-01 12:00:00.123456789 +0000`
        let t = DateTime::parse_from_str(line.trim(), "%Y-%m-%d %H:%M:%S%.f %z")
            .or_else(|_| {
                NaiveDateTime::parse_from_str(line.trim(), "%Y-%m-%d %H:%M:%S%.f")
                    .map(|n| n.and_utc().fixed_offset())
            })
            .with_context(|| format!("parsing ctime {line:?}"))?
            .with_timezone(&Utc);
        max = max.max(Some(t));
    }
    max.context("no ctimes")
}

/// When the mock first saw the runner come online (its session request).
async fn first_session_at(stack: &Stack) -> Result<DateTime<Utc>> {
    let sessions = stack.mock.requests_matching("/sessions").await?;
    let first = sessions
        .first()
        .context("the mock saw no runner session (listening)")?;
    Ok(DateTime::parse_from_rfc3339(&first.at)?.with_timezone(&Utc))
}

/// Scenario 1: the slot's files are in the work dir, owned by `user`, before the runner listens;
/// the runner is registered with the configured labels and name prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_warm_boot() -> Result<()> {
    let stack = Stack::new("warm-boot").await?;
    let host = stack.storage_host().await?;
    stack.seed_slot(&host, "seed-1", SEED_FILES).await?;

    let spec = stack
        .runner_spec()
        .storage(&host.spec(), &stack.ssh_key.private);
    let runner = stack.boot_runner(spec).await?;

    let registered = only_runner(&stack).await?;
    let prefix = format!("{}-", stack.name_prefix());
    ensure!(
        registered.name.starts_with(&prefix),
        "runner name {:?} lacks the prefix {prefix:?}",
        registered.name
    );
    let labels: BTreeSet<String> = registered
        .labels
        .iter()
        .map(|l| l.name.to_lowercase())
        .collect();
    for want in ["self-hosted", "e2e", "docker"] {
        ensure!(labels.contains(want), "label {want} missing: {labels:?}");
    }

    let dir = runner.spec.checkout_dir();
    let paths: Vec<&str> = SEED_FILES.iter().map(|(p, _)| *p).collect();
    let owners = runner
        .sh(&format!("cd {dir} && stat -c %U {}", paths.join(" ")))
        .await?;
    ensure!(
        owners.lines().all(|o| o.trim() == "user"),
        "slot files not owned by user:\n{owners}"
    );
    let warm = runner.sh(&format!("cat {dir}/warm.txt")).await?;
    ensure!(warm.contains("pre-warmed"), "warm.txt: {warm:?}");

    // The files were in place before the mock saw the runner listening.
    let files_at = max_ctime(&runner, &dir, &paths).await?;
    let session_at = first_session_at(&stack).await?;
    ensure!(
        files_at <= session_at,
        "slot files changed at {files_at} after the runner listened at {session_at}"
    );
    stack.timings.record(
        "prewarm_to_session",
        (session_at - files_at).to_std().unwrap_or_default(),
    );
    Ok(())
}

/// Scenario 2: a job runs as `user` in the pre-warmed directory, sees the files, has no secrets
/// in its environment, and stores a new slot that the host then has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_job_runs_and_stores() -> Result<()> {
    let stack = Stack::new("job-runs").await?;
    let host = stack.storage_host().await?;
    stack.seed_slot(&host, "seed-1", SEED_FILES).await?;
    let spec = stack
        .runner_spec()
        .storage(&host.spec(), &stack.ssh_key.private);
    let runner = stack.boot_runner(spec).await?;
    let repository = stack.repository();
    let script = format!(
        r#"set -eu
echo "whoami=$(id -un)"
echo "pwd=$(pwd)"
cat warm.txt
if env | grep -E '^(GH_TOKEN|GH_APP_PRIVATE_KEY|CI_STORAGE_HOST_PRIVATE_KEY)='; then echo LEAK-VAR; exit 1; fi
if env | grep -e 'BEGIN OPENSSH' -e '{token}'; then echo LEAK-VALUE; exit 1; fi
echo "built by the job" > artifact.txt
ci-storage store --slot-id job-slot --local-dir . --storage-host {host} --storage-dir '~/ci-storage/{repository}'
echo stored
"#,
        token = e2e::docker::TEST_TOKEN,
        host = host.spec(),
    );
    let job = stack
        .mock
        .client
        .queue_job(&repository, ["e2e", "docker"], "warm-job", &script)
        .await?;
    let done = stack
        .mock
        .client
        .wait_for_job(job, JobState::Completed, JOB)
        .await?;
    ensure!(
        done.result == Some(JobResult::Succeeded),
        "job failed:\n{}",
        done.output
    );
    ensure!(
        done.output.contains("whoami=user"),
        "job did not run as user:\n{}",
        done.output
    );
    let pwd = format!("pwd={}", runner.spec.checkout_dir());
    ensure!(
        done.output.contains(&pwd),
        "job did not run in the checkout ({pwd}):\n{}",
        done.output
    );
    ensure!(
        done.output.contains("pre-warmed from ci-storage"),
        "job did not see the slot:\n{}",
        done.output
    );
    ensure!(done.output.contains("stored"), "{}", done.output);

    let slots = host.slots(&stack.engine, &repository).await?;
    ensure!(
        slots.iter().any(|s| s == "job-slot"),
        "host slots: {slots:?}"
    );
    let artifact = host
        .read_slot_file(&stack.engine, &repository, "job-slot", "artifact.txt")
        .await?;
    ensure!(artifact.contains("built by the job"), "{artifact:?}");
    Ok(())
}

/// Scenario 3: `docker stop` of an idle runner de-registers it and exits 0, well within the
/// grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_stop_idle() -> Result<()> {
    let stack = Stack::new("stop-idle").await?;
    let runner = stack.boot_runner(stack.runner_spec()).await?;
    only_runner(&stack).await?;

    let exited = runner.stop(10).await?; // docker's default grace period and SIGTERM
    stack.timings.record("stop_to_exit", exited.after);
    ensure!(
        exited.code == EXIT_DRAINED,
        "exit code {} (log:\n{})",
        exited.code,
        runner.log_text().await
    );
    ensure!(
        exited.after < Duration::from_secs(8),
        "took {:?} to stop",
        exited.after
    );
    no_runner_left(&stack).await?;
    let removals = stack.mock.requests_matching("remove-token").await?;
    ensure!(
        !removals.is_empty(),
        "no remove-token request: the runner did not de-register itself"
    );
    Ok(())
}

/// Scenario 4 (SIGTERM through `docker stop -t 60`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_stop_busy_sigterm() -> Result<()> {
    stop_busy("busy-term", Signal::DockerStop).await
}

/// Scenario 4 (SIGINT through `docker kill -s INT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_stop_busy_sigint() -> Result<()> {
    stop_busy("busy-int", Signal::Int).await
}

enum Signal {
    DockerStop,
    Int,
}

/// A 10-second job is running; the signal arrives → the job completes `Succeeded`, a second job
/// queued meanwhile is not taken, the runner is removed and the container exits.
async fn stop_busy(scenario: &str, signal: Signal) -> Result<()> {
    let stack = Stack::new(scenario).await?;
    let runner = stack.boot_runner(stack.runner_spec()).await?;
    let registered = only_runner(&stack).await?;
    let repository = stack.repository();
    let client = &stack.mock.client;

    let long = client
        .queue_job(
            &repository,
            ["e2e"],
            "ten-seconds",
            "echo started; sleep 10; echo finished",
        )
        .await?;
    client.wait_for_job(long, JobState::InProgress, JOB).await?;

    let started = std::time::Instant::now();
    let stopping = match signal {
        Signal::DockerStop => {
            let engine = stack.engine.clone();
            let id = runner.id().to_owned();
            tokio::spawn(async move { engine.stop(&id, 60).await })
        }
        Signal::Int => {
            stack.engine.kill(runner.id(), "SIGINT").await?;
            let engine = stack.engine.clone();
            let id = runner.id().to_owned();
            tokio::spawn(async move { engine.wait_exit(&id, Duration::from_secs(60)).await })
        }
    };
    let second = client
        .queue_job(
            &repository,
            ["e2e"],
            "queued-during-drain",
            "echo should-not-run",
        )
        .await?;

    let exited = stopping.await??;
    let stop_to_exit = started.elapsed();
    stack.timings.record("stop_to_exit", stop_to_exit);
    ensure!(
        exited.code == EXIT_DRAINED,
        "exit code {} (log:\n{})",
        exited.code,
        runner.log_text().await
    );

    let long = client.job(long).await?;
    ensure!(
        long.result == Some(JobResult::Succeeded),
        "the running job was not left to finish: {long:#?}"
    );
    ensure!(long.output.contains("finished"), "{}", long.output);
    let second = client.job(second).await?;
    ensure!(
        second.runner_name.as_deref() != Some(registered.name.as_str())
            && second.state == JobState::Queued,
        "the draining runner took the second job: {second:#?}"
    );
    no_runner_left(&stack).await?;

    // From the job's end (as the runner printed it) to the container's exit.
    let logs = runner.logs().await?;
    if let Some(end) = logs
        .iter()
        .find(|l| l.text.contains("completed with result"))
    {
        let info = stack
            .engine
            .docker()
            .inspect_container(runner.id(), None)
            .await?;
        let finished = info
            .state
            .and_then(|s| s.finished_at)
            .context("no FinishedAt")?;
        let finished = DateTime::parse_from_rfc3339(&finished)?.with_timezone(&Utc);
        stack.timings.record(
            "job_end_to_exit",
            (finished - end.at).to_std().unwrap_or_default(),
        );
    }
    ensure!(
        stop_to_exit >= Duration::from_secs(5),
        "exited after {stop_to_exit:?}: the job cannot have finished"
    );
    Ok(())
}

/// Scenario 5a: SIGTERM while pre-warming a slow slot (the host's rsync is held back) leaves no
/// runner registered and the runner never listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_stop_during_prewarm() -> Result<()> {
    let stack = Stack::new("stop-prewarm").await?;
    let host = stack.storage_host().await?;
    stack.seed_slot(&host, "seed-1", SEED_FILES).await?;
    // Every later rsync from this host stalls for 60 s: pre-warm is "slow".
    stack
        .engine
        .exec_ok(
            host.id(),
            None,
            &[
                "sh",
                "-c",
                "printf '#!/bin/sh\\nsleep 60\\nexec /usr/bin/rsync \"$@\"\\n' > /usr/local/bin/rsync && chmod 755 /usr/local/bin/rsync",
            ],
        )
        .await?;
    let spec = stack
        .runner_spec()
        .storage(&host.spec(), &stack.ssh_key.private)
        .env("CI_STORAGE_PREWARM_TIMEOUT_SEC", "120");
    let runner = stack.start_runner(spec).await?;
    // Registration runs alongside pre-warm: wait until the runner exists on the mock.
    let repository = stack.repository();
    eventually("the runner to register", BOOT, || async {
        Ok((!stack.mock.runners_of(&repository).await?.is_empty()).then_some(()))
    })
    .await?;
    ensure!(
        !runner.log_text().await.contains(LISTENING),
        "listening before pre-warm finished"
    );

    let exited = runner
        .signal_and_wait("SIGTERM", Duration::from_secs(30))
        .await?;
    stack.timings.record("stop_to_exit", exited.after);
    ensure!(
        exited.code == EXIT_DRAINED || exited.code == 143,
        "exit code {} (log:\n{})",
        exited.code,
        runner.log_text().await
    );
    ensure!(
        !runner.log_text().await.contains(LISTENING),
        "the runner listened after the signal"
    );
    no_runner_left(&stack).await
}

/// Scenario 5b: SIGTERM while `config.sh` is registering (the mock holds the agent creation for
/// 5 s, then creates it) → the registration that completes after the signal is removed, and
/// the runner never listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_stop_during_registration() -> Result<()> {
    let stack = Stack::new("stop-register").await?;
    let client = &stack.mock.client;
    client
        .inject_fault(Fault {
            method: Some("POST".into()),
            path: "^/_runner/agents$".into(),
            latency_ms: Some(5_000),
            times: Some(1),
            ..Default::default()
        })
        .await?;
    let runner = stack.start_runner(stack.runner_spec()).await?;
    // config.sh has exchanged its token and is now creating the agent (held for 5 s).
    client
        .wait_for("config.sh to exchange its registration token", BOOT, |s| {
            s.requests
                .iter()
                .any(|r| r.path.contains("runner-registration"))
                .then_some(())
        })
        .await?;
    ensure!(
        stack.mock.runners_of(&stack.repository()).await?.is_empty(),
        "registered before the held request was answered"
    );

    let exited = runner
        .signal_and_wait("SIGTERM", Duration::from_secs(40))
        .await?;
    stack.timings.record("stop_to_exit", exited.after);
    ensure!(
        exited.code == EXIT_DRAINED,
        "exit code {} (log:\n{})",
        exited.code,
        runner.log_text().await
    );
    let log = runner.log_text().await;
    ensure!(
        !log.contains(LISTENING),
        "the runner listened after the signal:\n{log}"
    );
    // The held creation went through after the signal; the runner removed it again.
    let created = stack.mock.requests_matching("/_runner/agents").await?;
    ensure!(
        created
            .iter()
            .any(|r| r.method == "POST" && r.path == "/_runner/agents" && r.status == 201),
        "the agent creation did not complete, so nothing was left to remove: {created:#?}"
    );
    no_runner_left(&stack).await
}

/// Scenario 6: invalid environments exit 2 fast, naming the variable, and never reach the mock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06_bad_configuration() -> Result<()> {
    let stack = Stack::new("bad-config").await?;
    let base = stack.runner_spec();
    let key = stack.ssh_key.private.clone();
    let cases = vec![
        ("GH_REPOSITORY", base.clone().without("GH_REPOSITORY")),
        (
            "GH_REPOSITORY",
            base.clone().env("GH_REPOSITORY", "no-slash"),
        ),
        ("GH_LABELS", base.clone().without("GH_LABELS")),
        ("GH_TOKEN", base.clone().without("GH_TOKEN")),
        ("GH_URL", base.clone().env("GH_URL", "not a url")),
        (
            "GH_APP_ID",
            base.clone()
                .without("GH_TOKEN")
                .env("GH_APP_ID", "not-a-number"),
        ),
        (
            "CI_STORAGE_HOST",
            base.clone()
                .env("CI_STORAGE_HOST", "user@")
                .env("CI_STORAGE_HOST_PRIVATE_KEY", key),
        ),
        (
            "CI_STORAGE_HOST_PRIVATE_KEY",
            base.clone()
                .env("CI_STORAGE_HOST", "user@storage")
                .env("CI_STORAGE_HOST_PRIVATE_KEY", "not-a-key"),
        ),
        (
            "CI_STORAGE_PREWARM_TIMEOUT_SEC",
            base.clone().env("CI_STORAGE_PREWARM_TIMEOUT_SEC", "soon"),
        ),
        (
            "RUNNER_STATUS_PORT",
            base.clone().env("RUNNER_STATUS_PORT", "http"),
        ),
        (
            "SHUTDOWN_RETRY_INTERVAL_SEC",
            base.clone().env("SHUTDOWN_RETRY_INTERVAL_SEC", "-1"),
        ),
    ];
    // All at once; each is timed from its own `docker start` to its exit.
    let runs = cases.into_iter().map(|(var, spec)| {
        let stack = &stack;
        async move {
            let runner = stack.start_runner(spec).await?;
            let exited = runner.wait_exit(Duration::from_secs(20)).await?;
            let after = runner.started.elapsed();
            anyhow::Ok((var, runner, exited, after))
        }
    });
    let mut slowest = Duration::ZERO;
    let mut longest_run = Duration::ZERO;
    let mut failures = Vec::new();
    for run in futures_util::future::join_all(runs).await {
        let (var, runner, exited, after) = run?;
        let log = runner.log_text().await;
        slowest = slowest.max(after);
        longest_run = longest_run.max(stack.engine.run_time(runner.id()).await?);
        if exited.code != EXIT_CONFIG {
            failures.push(format!(
                "{var}: exit {} instead of 2; log:\n{log}",
                exited.code
            ));
        } else if !log.contains(var) {
            failures.push(format!("{var}: the message does not name it; log:\n{log}"));
        }
    }
    stack.timings.record("slowest_start_to_exit", slowest);
    stack.timings.record("longest_container_run", longest_run);
    ensure!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The process itself (docker's StartedAt → FinishedAt) and, loosely, start to exit as seen
    // from here with eleven containers starting at once on a small machine.
    ensure!(
        longest_run < Duration::from_secs(3),
        "a bad configuration ran {longest_run:?} before exiting"
    );
    ensure!(
        slowest < Duration::from_secs(15),
        "a bad configuration took {slowest:?} from start to exit"
    );
    let requests = stack.mock.client.requests().await?;
    ensure!(
        requests.is_empty(),
        "the mock was called despite bad configuration: {requests:#?}"
    );
    Ok(())
}

/// Scenario 7: root and user hooks from a test add-on run in order as the right users; a failing
/// hook stops boot with its name in the log and no registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s07_hooks() -> Result<()> {
    let stack = Stack::new("hooks").await?;
    let spec = stack.runner_spec().image(names::RUNNER_HOOKS);
    let runner = stack.boot_runner(spec.clone()).await?;
    let log = runner.sh("cat /tmp/e2e-hooks.log").await?;
    let got: Vec<&str> = log.lines().collect();
    let want = [
        "root-10-first root",
        "root-20-second root",
        "user-10-first user /home/user",
        "user-20-second user /home/user",
    ];
    ensure!(got == want, "hooks ran as {got:#?}, expected {want:#?}");
    let exited = runner.stop(30).await?;
    ensure!(exited.code == EXIT_DRAINED, "exit code {}", exited.code);
    no_runner_left(&stack).await?;
    let before = stack.mock.registration_requests().await?.len();

    // A failing root hook: exit 3, its name in the log, not even a registration token asked for.
    let failing = stack
        .start_runner(spec.clone().env("E2E_HOOK_FAIL", "root"))
        .await?;
    let exited = failing.wait_exit(Duration::from_secs(30)).await?;
    let log = failing.log_text().await;
    ensure!(
        exited.code == EXIT_HOOK,
        "exit code {} for a failing root hook; log:\n{log}",
        exited.code
    );
    ensure!(
        log.contains("entrypoint.20-second.sh failed"),
        "the failing hook is not named:\n{log}"
    );
    ensure!(
        stack.mock.registration_requests().await?.len() == before,
        "registration despite a failing root hook"
    );

    // A failing user hook (after registration): exit 3, named, and no runner left registered.
    let failing = stack
        .start_runner(spec.env("E2E_HOOK_FAIL", "user"))
        .await?;
    let exited = failing.wait_exit(Duration::from_secs(60)).await?;
    let log = failing.log_text().await;
    ensure!(
        exited.code == EXIT_HOOK,
        "exit code {} for a failing user hook; log:\n{log}",
        exited.code
    );
    ensure!(
        log.contains("entrypoint.20-user-second.sh failed"),
        "the failing hook is not named:\n{log}"
    );
    ensure!(
        !log.contains(LISTENING),
        "listened despite a failing user hook"
    );
    no_runner_left(&stack).await
}

/// Scenario 8: `bash -l` lands as `user` in `/home/user`; plain `bash` is root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08_shell() -> Result<()> {
    let stack = Stack::new("shell").await?;
    let runner = stack.boot_runner(stack.runner_spec()).await?;
    let login = runner
        .exec_ok(None, &["bash", "-l", "-c", "whoami; pwd"])
        .await?;
    ensure!(login.trim() == "user\n/home/user", "bash -l: {login:?}");
    let plain = runner.exec_ok(None, &["bash", "-c", "whoami"]).await?;
    ensure!(plain.trim() == "root", "bash: {plain:?}");
    Ok(())
}

/// Scenario 9a: the storage host is down (paused: connections hang; or gone: no such host) → the
/// runner still registers and listens within the pre-warm timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s09_storage_host_down() -> Result<()> {
    let stack = Stack::new("storage-down").await?;
    let host = stack.storage_host().await?;
    stack.engine.pause(host.id()).await?;
    let timeout_sec = 5;
    let hanging = stack
        .runner_spec()
        .storage(&host.spec(), &stack.ssh_key.private)
        .env("CI_STORAGE_PREWARM_TIMEOUT_SEC", timeout_sec.to_string());
    let missing = stack
        .runner_spec()
        .storage("user@no-such-host.invalid", &stack.ssh_key.private)
        .env("CI_STORAGE_PREWARM_TIMEOUT_SEC", timeout_sec.to_string());
    let (hanging, missing) = tokio::join!(stack.start_runner(hanging), stack.start_runner(missing));
    let (hanging, missing) = (hanging?, missing?);
    let (_, hanging_boot) = hanging.wait_listening(BOOT).await?;
    let (_, missing_boot) = missing.wait_listening(BOOT).await?;
    stack
        .timings
        .record("boot_to_listening_host_paused", hanging_boot);
    stack
        .timings
        .record("boot_to_listening_host_missing", missing_boot);
    // Pre-warm is bounded; registration (~1 s) runs alongside.
    let bound = Duration::from_secs(timeout_sec + 20);
    ensure!(
        hanging_boot < bound,
        "boot took {hanging_boot:?} with a hanging storage host"
    );
    ensure!(
        missing_boot < bound,
        "boot took {missing_boot:?} with a missing storage host"
    );
    ensure!(stack.mock.runners_of(&stack.repository()).await?.len() == 2);
    Ok(())
}

/// Scenario 9b: 500s and a 429 with `Retry-After` at registration → retried, registered, and the
/// `Retry-After` was honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s09_api_faults() -> Result<()> {
    let stack = Stack::new("api-faults").await?;
    let client = &stack.mock.client;
    let path = "registration-token$".to_owned();
    for (status, retry_after) in [(500, None), (500, None), (429, Some(2))] {
        let fault = Fault {
            method: Some("POST".into()),
            path: path.clone(),
            status: Some(status),
            times: Some(1),
            retry_after,
            ..Default::default()
        };
        client.inject_fault(fault).await?;
    }
    stack.boot_runner(stack.runner_spec()).await?;
    only_runner(&stack).await?;
    let calls = stack.mock.requests_matching("registration-token").await?;
    let statuses: Vec<u16> = calls.iter().map(|r| r.status).collect();
    ensure!(
        statuses.starts_with(&[500, 500, 429]) && statuses.contains(&201),
        "statuses: {statuses:?}"
    );
    let at = |i: usize| -> Result<DateTime<Utc>> {
        Ok(DateTime::parse_from_rfc3339(&calls[i].at)?.with_timezone(&Utc))
    };
    let waited = (at(3)? - at(2)?).to_std()?;
    stack.timings.record("retry_after_2s_waited", waited);
    ensure!(
        waited >= Duration::from_millis(1900),
        "Retry-After: 2 not honoured (retried after {waited:?})"
    );
    Ok(())
}

/// Scenario 9c: the actions runner crashes → de-registered, the container exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s09_runner_crash() -> Result<()> {
    let stack = Stack::new("runner-crash").await?;
    let runner = stack.boot_runner(stack.runner_spec()).await?;
    only_runner(&stack).await?;
    let started = std::time::Instant::now();
    runner
        .sh("for p in /proc/[0-9]*; do if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^[^ ]*Runner.Listener run'; then kill -9 ${p#/proc/}; echo killed ${p#/proc/}; fi; done")
        .await
        .and_then(|out| if out.contains("killed") { Ok(out) } else { bail!("no Runner.Listener process found") })?;
    let exited = runner.wait_exit(Duration::from_secs(30)).await?;
    stack.timings.record("crash_to_exit", started.elapsed());
    ensure!(
        exited.code != 0,
        "exit code 0 after the runner crashed; log:\n{}",
        runner.log_text().await
    );
    no_runner_left(&stack).await
}

/// Scenario 10: the add-on images boot as runners and their tools work inside a job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_addon_images() -> Result<()> {
    let stack = Stack::new("addons").await?;
    let node = stack
        .runner_spec()
        .image(names::RUNNER_NODE)
        .env("GH_LABELS", "e2e,node");
    let python = stack
        .runner_spec()
        .image(names::RUNNER_PYTHON)
        .env("GH_LABELS", "e2e,python");
    let (node, python) = tokio::join!(stack.boot_runner(node), stack.boot_runner(python));
    let (_node, _python) = (node?, python?);
    let repository = stack.repository();
    let client = &stack.mock.client;
    let node_job = client
        .queue_job(
            &repository,
            ["node"],
            "node",
            "node -e 'console.log(`node ok ${1 + 1}`)'; node --version",
        )
        .await?;
    let python_job = client
        .queue_job(
            &repository,
            ["python"],
            "python",
            "python3 -c 'print(\"python ok\", 1 + 1)'; python3 --version",
        )
        .await?;
    for (job, want) in [(node_job, "node ok 2"), (python_job, "python ok 2")] {
        let done = client.wait_for_job(job, JobState::Completed, JOB).await?;
        ensure!(
            done.result == Some(JobResult::Succeeded),
            "{want}: job failed:\n{}",
            done.output
        );
        ensure!(
            done.output.contains(want),
            "{want} not in:\n{}",
            done.output
        );
    }
    Ok(())
}

/// Scenario 11: GitHub App auth instead of a PAT, against a GitHub Enterprise Server-style URL
/// (`<GH_URL>/api/v3`), and App auth with a github.com-style API URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_github_app_and_ghes() -> Result<()> {
    let stack = Stack::new("github-app").await?;
    let key = AppKey::generate()?;
    let ghes_repo = stack.repository();
    let dotcom_repo = format!("{ghes_repo}-dotcom");
    stack
        .mock
        .client
        .add_app(&AppRegistration {
            app_id: 4242,
            public_key_pem: key.public_pem.clone(),
            installation_id: 777,
            repositories: vec![ghes_repo.clone(), dotcom_repo.clone()],
        })
        .await?;
    // GHES-style: API under <GH_URL>/api/v3, key from /run/secrets, installation id looked up.
    let ghes = stack
        .runner_spec()
        .without("GH_TOKEN")
        .env("GH_APP_ID", "4242")
        .secret("GH_APP_PRIVATE_KEY", key.private_pem.clone());
    let ghes = stack.boot_runner(ghes).await?;
    only_runner(&stack).await?;
    let requests = stack.mock.client.requests().await?;
    ensure!(
        requests
            .iter()
            .any(|r| r.path == "/api/v3/app/installations/777/access_tokens" && r.status == 201),
        "no installation token through /api/v3: {requests:#?}"
    );
    ensure!(
        requests
            .iter()
            .filter(|r| r.path.contains("/actions/runners/registration-token"))
            .all(|r| r.path.starts_with("/api/v3/")),
        "GHES-style runner used non-/api/v3 paths: {requests:#?}"
    );
    ensure!(
        !requests.iter().any(|r| r.status == 401),
        "a request was refused: {requests:#?}"
    );

    // github.com-style API URL with the key in the environment and an explicit installation id.
    let before = requests.len();
    let mut dotcom = stack
        .runner_spec()
        .without("GH_TOKEN")
        .env("GH_APP_ID", "4242")
        .env("GH_APP_INSTALLATION_ID", "777")
        .env("GH_APP_PRIVATE_KEY", key.private_pem.clone())
        .env("GH_API_URL", stack.mock.url.clone())
        .env("GH_REPOSITORY", dotcom_repo.clone());
    dotcom.repository = dotcom_repo.clone();
    let dotcom = stack.boot_runner(dotcom).await?;
    ensure!(
        stack.mock.runners_of(&dotcom_repo).await?.len() == 1,
        "github.com-style runner not registered"
    );
    let requests = stack.mock.client.requests().await?;
    ensure!(
        requests[before..].iter().any(|r| r.path
            == format!("/repos/{dotcom_repo}/actions/runners/registration-token")
            && r.status == 201),
        "no github.com-style registration: {:#?}",
        &requests[before..]
    );

    // Both de-register with App tokens.
    for runner in [&ghes, &dotcom] {
        let exited = runner.stop(30).await?;
        stack.timings.record("stop_to_exit", exited.after);
        ensure!(
            exited.code == EXIT_DRAINED,
            "exit {}; log:\n{}",
            exited.code,
            runner.log_text().await
        );
    }
    ensure!(
        stack.mock.client.runners().await?.is_empty(),
        "runners left after stopping"
    );
    Ok(())
}

/// Scenario 12: three runners of one repository boot at once against one storage host: unique
/// names, each warm; stopping all three leaves none registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_fleet() -> Result<()> {
    let stack = Stack::new("fleet").await?;
    let host = stack.storage_host().await?;
    stack.seed_slot(&host, "seed-1", SEED_FILES).await?;
    let spec = stack
        .runner_spec()
        .storage(&host.spec(), &stack.ssh_key.private);
    let (a, b, c) = tokio::join!(
        stack.boot_runner(spec.clone()),
        stack.boot_runner(spec.clone()),
        stack.boot_runner(spec.clone())
    );
    let fleet = [a?, b?, c?];
    let runners = stack.mock.runners_of(&stack.repository()).await?;
    let names: BTreeSet<&str> = runners.iter().map(|r| r.name.as_str()).collect();
    ensure!(
        runners.len() == 3 && names.len() == 3,
        "expected 3 uniquely named runners: {names:?}"
    );
    for runner in &fleet {
        let warm = runner
            .sh(&format!("cat {}/warm.txt", spec.checkout_dir()))
            .await?;
        ensure!(
            warm.contains("pre-warmed"),
            "{} is not warm: {warm:?}",
            runner.name
        );
    }
    let (a, b, c) = tokio::join!(fleet[0].stop(30), fleet[1].stop(30), fleet[2].stop(30));
    for exited in [a?, b?, c?] {
        stack.timings.record("stop_to_exit", exited.after);
        ensure!(exited.code == EXIT_DRAINED, "exit code {}", exited.code);
    }
    no_runner_left(&stack).await
}

/// The production example parses: `docker-compose -f docker-compose.yml config -q`.
#[test]
fn compose_example_is_valid() -> Result<()> {
    let file = e2e::docker::images::workspace_root().join("docker-compose.yml");
    let out = std::process::Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .args(["config", "-q"])
        .output()
        .context("running docker-compose (apt-get install -y docker-compose)")?;
    ensure!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let services = std::process::Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .args(["config", "--services"])
        .output()?;
    let services = String::from_utf8_lossy(&services.stdout);
    for want in ["runner", "ci-storage-host"] {
        ensure!(
            services.lines().any(|s| s == want),
            "service {want} missing from docker-compose.yml: {services}"
        );
    }
    Ok(())
}
