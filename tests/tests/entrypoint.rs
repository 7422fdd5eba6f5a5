//! In-process system tests: the real `runner` binary against the in-process mock GitHub and
//! the fake actions runner. No Docker, no root: the runner runs as the current user.

use std::time::Duration;

use anyhow::Context;
use e2e::entrypoint::{alive, pids_of, RunnerEnv, RunnerProc, REPO};
use fixtures::mock_github::{Fault, JobResult, JobState, MockGithub, RunnerView};
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(20);

/// The runner name from the `register` log line.
fn runner_name(log_line: &str) -> String {
    log_line
        .split("registered runner ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_default()
}

/// Starts the runner and waits until it is registered and listening; returns its name.
async fn boot(env: &RunnerEnv, mock: &MockGithub) -> anyhow::Result<(RunnerProc, String)> {
    let proc = env.spawn()?;
    let line = proc.wait_log("step=\"register\"", T).await?;
    let name = runner_name(&line);
    anyhow::ensure!(!name.is_empty(), "no name in {line}");
    proc.wait_log("Listening for Jobs", T).await?;
    mock.wait_for_runner(&name, T, |r| r.status == "online")
        .await?;
    Ok((proc, name))
}

fn custom_labels(r: &RunnerView) -> Vec<String> {
    r.labels
        .iter()
        .filter(|l| l.kind == "custom")
        .map(|l| l.name.clone())
        .collect()
}

/// Asserts the mock has no runner at all for our repository.
async fn assert_no_runner(mock: &MockGithub) -> anyhow::Result<()> {
    let runners = mock.runners().await?;
    anyhow::ensure!(
        runners.iter().all(|r| r.repository != REPO),
        "runners left: {runners:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_exit_2_and_touch_nothing() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let base = RunnerEnv::new(&mock)?;
    let cases: &[(&str, Option<&str>)] = &[
        ("GH_REPOSITORY", None),
        ("GH_REPOSITORY", Some("no-slash")),
        ("GH_REPOSITORY", Some("a/b/c")),
        ("GH_LABELS", None),
        ("GH_LABELS", Some("a,,b")),
        ("GH_TOKEN", None),
        ("GH_APP_ID", Some("not-a-number")),
        ("GH_URL", Some("not a url")),
        ("GH_API_URL", Some("ftp://x")),
        ("CI_STORAGE_HOST", Some("host:notaport")),
        ("CI_STORAGE_HOST_PRIVATE_KEY", Some("not a key")),
        ("CI_STORAGE_HOST_KEY", Some("garbage")),
        ("CI_STORAGE_PREWARM_TIMEOUT_SEC", Some("-5")),
        ("RUNNER_NAME_PREFIX", Some("has space")),
        ("RUNNER_USER", Some("no-such-user-e2e")),
        ("RUNNER_WORK_DIR", Some("relative")),
        ("RUNNER_STATUS_PORT", Some("70000")),
        ("SHUTDOWN_RETRY_INTERVAL_SEC", Some("0")),
        ("SHUTDOWN_DEADLINE_SEC", Some("soon")),
        ("DEBUG_SHUTDOWN_DELAY_SEC", Some("x")),
        ("TZ", Some("../../etc/passwd")),
    ];
    // With GH_APP_ID set, GH_TOKEN must go (either, not both) for the App case to be judged.
    for (var, value) in cases {
        let mut env = RunnerEnv::new(&mock)?;
        env.vars = base.vars.clone();
        match value {
            Some(v) => env.set(var, *v),
            None => env.unset(var),
        };
        if *var == "GH_APP_ID" {
            env.unset("GH_TOKEN");
        }
        // Also a hook that would leave a mark: nothing may run on bad input.
        env.hook(true, "entrypoint.01-mark.sh", "touch $MARKS/hook-ran")?;
        let mut proc = env.spawn()?;
        let code = proc.wait_exit(T).await?;
        let log = proc.log();
        assert_eq!(code, 2, "{var}={value:?}: exit {code}; log:\n{log}");
        assert!(
            log.lines()
                .any(|l| l.contains("ERROR") && l.contains(&format!("{var}:"))),
            "{var}={value:?}: no message naming it; log:\n{log}"
        );
        assert!(
            !env.marks.join("hook-ran").exists(),
            "a hook ran on bad input"
        );
    }
    let requests = mock.requests().await?;
    assert!(requests.is_empty(), "requests on bad input: {requests:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_flag_validates_only() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let env = RunnerEnv::new(&mock)?;
    let mut proc = env.spawn_with_args(&["--check"])?;
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    assert!(mock.requests().await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_prewarm_register_job_then_sigterm_idle() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let mut env = RunnerEnv::new(&mock)?;
    env.set("RUNNER_NAME_PREFIX", "e2e");
    env.fake_ci_storage("sleep 1\necho warmed > \"$MARKS/prewarm.done\"")?;
    let (mut proc, name) = boot(&env, &mock).await?;
    let log = proc.log();

    // Registered with the right name and labels.
    assert!(name.starts_with("e2e-"), "{name}");
    let runner = mock.wait_for_runner(&name, T, |_| true).await?;
    assert_eq!(runner.repository, REPO);
    let mut labels = custom_labels(&runner);
    labels.sort();
    let mut want = env.labels.clone();
    want.sort();
    assert_eq!(labels, want);

    // Listening only after pre-warm finished.
    let prewarm_at = log.find("pre-warm done").context("no pre-warm line")?;
    let listening_at = log
        .find("Listening for Jobs")
        .context("no listening line")?;
    assert!(
        prewarm_at < listening_at,
        "listening before pre-warm:\n{log}"
    );
    let args = std::fs::read_to_string(env.marks.join("ci-storage.args"))?;
    assert!(
        args.contains("load") && args.contains("--slot-id *"),
        "{args}"
    );
    assert!(
        args.contains("--storage-host ci@storage.invalid:2222"),
        "{args}"
    );
    assert!(args.contains("/widgets/widgets"), "{args}");
    assert_eq!(env.status().context("status")?["state"], "ready");

    // A job runs, without the token in its environment.
    let script = format!(
        "test -f {m}/prewarm.done && echo WARM\nif [ -n \"${{GH_TOKEN:-}}\" ]; then echo HAS_TOKEN; else echo NO_TOKEN; fi\nenv | grep -c -E '^(GH_APP_PRIVATE_KEY|CI_STORAGE_HOST_PRIVATE_KEY)=' || true",
        m = env.marks.display()
    );
    let job = mock
        .queue_job(REPO, env.labels.clone(), "build", &script)
        .await?;
    let done = mock.wait_for_job(job, JobState::Completed, T).await?;
    assert_eq!(done.result, Some(JobResult::Succeeded), "{}", done.output);
    assert!(done.output.contains("WARM"), "{}", done.output);
    assert!(done.output.contains("NO_TOKEN"), "{}", done.output);
    assert_eq!(done.runner_name.as_deref(), Some(name.as_str()));
    proc.wait_log("step=\"job.finished\"", T).await?;

    // SIGTERM while idle: de-registered, exit 0, nothing left.
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    assert_no_runner(&mock).await?;
    let log = proc.log();
    for step in [
        "validate",
        "hooks.root",
        "setup",
        "prewarm",
        "register",
        "hooks.user",
        "runner.start",
        "listening",
        "job.started",
        "job.finished",
        "drain.labels",
        "drain.attempt",
        "deregistered",
    ] {
        assert!(
            log.contains(&format!("step=\"{step}\"")),
            "no step {step}:\n{log}"
        );
    }
    assert!(!log.contains(&mock.token()), "token in the log:\n{log}");
    assert_eq!(env.status().context("status")?["state"], "stopped");
    Ok(())
}
