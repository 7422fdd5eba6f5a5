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
    let line = proc.wait_log("step=register ", T).await?;
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
    // A hook that would leave a mark: nothing may run on bad input.
    base.hook(true, "entrypoint.01-mark.sh", "touch $MARKS/hook-ran")?;
    let mut env = base;
    let vars = env.vars.clone();
    for (var, value) in cases {
        env.vars = vars.clone();
        match value {
            Some(v) => env.set(var, *v),
            None => env.unset(var),
        };
        // With GH_APP_ID set, GH_TOKEN must go (either, not both) for the App case to be judged.
        if *var == "GH_APP_ID" {
            env.unset("GH_TOKEN");
        }
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
    proc.wait_log("step=job.finished ", T).await?;

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
            log.contains(&format!("step={step} ")),
            "no step {step}:\n{log}"
        );
    }
    assert!(!log.contains(&mock.token()), "token in the log:\n{log}");
    assert!(
        !log.contains("--token"),
        "a command line with a token was logged:\n{log}"
    );
    assert_eq!(env.status().context("status")?["state"], "stopped");
    Ok(())
}

/// Time of a request log entry.
fn at(r: &fixtures::mock_github::RequestRecord) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(&r.at).expect("rfc3339 time in the request log")
}

fn count(requests: &[fixtures::mock_github::RequestRecord], method: &str, suffix: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_busy_lets_the_job_finish_then_deregisters_at_once() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let mut env = RunnerEnv::new(&mock)?;
    // A long periodic retry: removal right after the job must come from the job-end event.
    env.set("SHUTDOWN_RETRY_INTERVAL_SEC", "30");
    let (mut proc, name) = boot(&env, &mock).await?;

    let job = mock
        .queue_job(REPO, env.labels.clone(), "long", "sleep 3; echo finished")
        .await?;
    mock.wait_for_job(job, JobState::InProgress, T).await?;
    proc.wait_log("Running job: long", T).await?;
    proc.signal(Signal::SIGTERM);
    proc.wait_log("step=drain.labels ", T).await?;
    proc.wait_log("step=drain.attempt ", T).await?;
    assert_eq!(env.status().context("status")?["state"], "draining");
    // Labels gone: a second job for them is not routed to this runner.
    let runner = mock.wait_for_runner(&name, T, |_| true).await?;
    assert!(custom_labels(&runner).is_empty(), "{runner:#?}");
    let second = mock
        .queue_job(REPO, env.labels.clone(), "second", "echo second")
        .await?;
    // A second signal does not skip de-registration.
    proc.signal(Signal::SIGINT);
    proc.wait_log("again: de-registration continues", T).await?;

    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    let done = mock.job(job).await?;
    assert_eq!(done.result, Some(JobResult::Succeeded), "{}", done.output);
    assert!(done.output.contains("finished"));
    let second = mock.job(second).await?;
    assert_eq!(second.state, JobState::Queued, "{second:#?}");
    assert_eq!(second.runner_name, None);
    assert_no_runner(&mock).await?;

    // Removal followed the job's end within a second; a fresh token for every attempt.
    let requests = mock.requests().await?;
    let completed = requests
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/complete"))
        .context("no job completion request")?;
    let removed = requests
        .iter()
        .rfind(|r| r.method == "DELETE" && r.path.contains("/_runner/agents/") && r.status == 204)
        .context("no successful removal")?;
    let delay = at(removed) - at(completed);
    assert!(
        delay < chrono::Duration::milliseconds(1000),
        "removal {delay:?} after the job's end"
    );
    let log = proc.log();
    let attempts = log.matches("step=drain.attempt ").count();
    assert!(attempts >= 2, "expected a busy attempt first:\n{log}");
    assert_eq!(
        count(&requests, "POST", "/remove-token"),
        attempts,
        "{requests:#?}"
    );
    eprintln!(
        "drain: removal {} ms after the job's end",
        delay.num_milliseconds()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_fetching_the_registration_token_leaves_nothing() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let env = RunnerEnv::new(&mock)?;
    mock.inject_fault(Fault {
        path: "registration-token$".into(),
        latency_ms: Some(1500),
        times: Some(1),
        ..Fault::default()
    })
    .await?;
    let mut proc = env.spawn()?;
    proc.wait_log("step=setup ", T).await?;
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    // The token request was cut short with the process: no token, so nothing registered.
    let log = proc.log();
    assert!(
        log.contains("before registration; nothing to remove"),
        "{log}"
    );
    assert_no_runner(&mock).await?;
    assert!(!proc.log().contains("config.sh:"), "{}", proc.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_config_sh_runs_removes_the_registration() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let env = RunnerEnv::new(&mock)?;
    // The fake config.sh's exchange with the runner service is slow this time.
    mock.inject_fault(Fault {
        path: "/agents$".into(),
        method: Some("POST".into()),
        latency_ms: Some(1500),
        times: Some(1),
        ..Fault::default()
    })
    .await?;
    let mut proc = env.spawn()?;
    proc.wait_log("config.sh:", T).await?;
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    assert_no_runner(&mock).await?;
    let log = proc.log();
    assert!(log.contains("step=deregistered "), "{log}");
    assert!(!log.contains("run.sh"), "run.sh must not start:\n{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_prewarm_kills_it_and_leaves_nothing() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let mut env = RunnerEnv::new(&mock)?;
    env.fake_ci_storage("echo loading\nsleep 60\ntouch \"$MARKS/prewarm.done\"")?;
    let mut proc = env.spawn()?;
    proc.wait_log("ci-storage: loading", T).await?;
    proc.wait_log("step=hooks.user ", T).await?;
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    assert_no_runner(&mock).await?;
    let pid: i32 = std::fs::read_to_string(env.marks.join("ci-storage.pid"))?
        .trim()
        .parse()?;
    assert!(!alive(pid), "ci-storage {pid} still running");
    assert!(!env.marks.join("prewarm.done").exists());
    assert!(!proc.log().contains("run.sh:"), "{}", proc.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarm_timeout_and_failure_are_warnings() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let mut env = RunnerEnv::new(&mock)?;
    env.set("CI_STORAGE_PREWARM_TIMEOUT_SEC", "0.5");
    env.fake_ci_storage("sleep 30")?;
    let (mut proc, _) = boot(&env, &mock).await?;
    assert!(proc.log().contains("pre-warm timed out"), "{}", proc.log());
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());

    let mut env = RunnerEnv::new(&mock)?;
    env.fake_ci_storage("echo 'no such host' >&2; exit 255")?;
    let (mut proc, _) = boot(&env, &mock).await?;
    assert!(proc.log().contains("pre-warm failed"), "{}", proc.log());
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    assert_no_runner(&mock).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_5xx_then_success_is_retried() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let env = RunnerEnv::new(&mock)?;
    mock.inject_fault(Fault {
        path: "registration-token$".into(),
        status: Some(500),
        times: Some(3),
        ..Fault::default()
    })
    .await?;
    let (mut proc, _) = boot(&env, &mock).await?;
    let requests = mock.requests().await?;
    assert_eq!(
        count(&requests, "POST", "/registration-token"),
        4,
        "{requests:#?}"
    );
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    assert_no_runner(&mock).await
}

/// Injects `fault` on the registration token, boots, and returns the gap between the first
/// (faulty) and the second request.
async fn gap_after(fault: Fault) -> anyhow::Result<chrono::Duration> {
    let mock = MockGithub::start().await?;
    let env = RunnerEnv::new(&mock)?;
    mock.inject_fault(fault).await?;
    let (mut proc, _) = boot(&env, &mock).await?;
    let requests = mock.requests().await?;
    let tokens: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/registration-token"))
        .collect();
    anyhow::ensure!(tokens.len() == 2, "{requests:#?}");
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    assert_no_runner(&mock).await?;
    Ok(at(tokens[1]) - at(tokens[0]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_429_retry_after_is_honoured() -> anyhow::Result<()> {
    let gap = gap_after(Fault {
        path: "registration-token$".into(),
        status: Some(429),
        retry_after: Some(2),
        times: Some(1),
        ..Fault::default()
    })
    .await?;
    assert!(gap >= chrono::Duration::milliseconds(1900), "{gap:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_rate_limit_reset_is_honoured() -> anyhow::Result<()> {
    let gap = gap_after(Fault {
        path: "registration-token$".into(),
        status: Some(403),
        rate_limit_reset_in: Some(2),
        times: Some(1),
        ..Fault::default()
    })
    .await?;
    // The reset is in whole seconds: at least a second away, at most two and a margin.
    assert!(gap >= chrono::Duration::milliseconds(1000), "{gap:?}");
    assert!(gap <= chrono::Duration::milliseconds(3500), "{gap:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_is_fatal_with_a_clear_message() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let mut env = RunnerEnv::new(&mock)?;
    env.set("GH_TOKEN", "ghp_wrong_token_value");
    let mut proc = env.spawn()?;
    assert_eq!(proc.wait_exit(T).await?, 1, "{}", proc.log());
    let log = proc.log();
    assert!(log.contains("401") && log.contains("admin rights"), "{log}");
    assert!(!log.contains("ghp_wrong_token_value"), "{log}");
    let requests = mock.requests().await?;
    assert_eq!(
        count(&requests, "POST", "/registration-token"),
        1,
        "no retry on 401"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_crash_deregisters_and_exits_non_zero() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let env = RunnerEnv::new(&mock)?;
    let (mut proc, _) = boot(&env, &mock).await?;
    let listener = env.runner_home.join("bin/Runner.Listener");
    let pids = pids_of(&listener);
    anyhow::ensure!(!pids.is_empty(), "no listener process");
    for pid in pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert_eq!(proc.wait_exit(T).await?, 1, "{}", proc.log());
    assert!(proc.log().contains("step=deregistered "), "{}", proc.log());
    assert_no_runner(&mock).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_in_order_as_their_users() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let env = RunnerEnv::new(&mock)?;
    let record =
        |tag: &str| format!("echo \"{tag} $(id -un) $PWD\" >> $MARKS/order\necho hello from {tag}");
    env.hook(true, "entrypoint.20-b.sh", &record("root-b"))?;
    env.hook(true, "entrypoint.10-a.sh", &record("root-a"))?;
    env.hook(true, "not-a-hook.sh", &record("never"))?;
    env.hook(
        false,
        "entrypoint.05-u.sh",
        &format!(
            "{}\ntest -z \"$GH_TOKEN\" && echo user-hook-has-no-token",
            record("user")
        ),
    )?;
    let (mut proc, _) = boot(&env, &mock).await?;
    let order = std::fs::read_to_string(env.marks.join("order"))?;
    let user = e2e::entrypoint::current_user();
    let lines: Vec<&str> = order.lines().collect();
    assert_eq!(lines.len(), 3, "{order}");
    assert!(
        lines[0].starts_with(&format!("root-a {user} {}", env.root_hooks.display())),
        "{order}"
    );
    assert!(lines[1].starts_with(&format!("root-b {user}")), "{order}");
    assert!(
        lines[2].starts_with(&format!("user {user} {}", env.user_hooks.display())),
        "{order}"
    );
    let log = proc.log();
    assert!(
        log.contains("entrypoint.10-a.sh: hello from root-a"),
        "{log}"
    );
    assert!(
        log.contains("entrypoint.05-u.sh: user-hook-has-no-token"),
        "{log}"
    );
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_root_hook_stops_boot_with_exit_3() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let env = RunnerEnv::new(&mock)?;
    env.hook(true, "entrypoint.10-bad.sh", "echo about to fail; exit 7")?;
    env.hook(true, "entrypoint.20-after.sh", "touch $MARKS/after")?;
    let mut proc = env.spawn()?;
    assert_eq!(proc.wait_exit(T).await?, 3, "{}", proc.log());
    let log = proc.log();
    assert!(
        log.contains("hook entrypoint.10-bad.sh failed with exit code 7"),
        "{log}"
    );
    assert!(!env.marks.join("after").exists());
    assert!(
        mock.requests().await?.is_empty(),
        "no API call before root hooks pass"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_user_hook_exits_3_stops_prewarm_and_deregisters() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let mut env = RunnerEnv::new(&mock)?;
    env.fake_ci_storage("echo loading\nsleep 60")?;
    env.hook(false, "entrypoint.10-bad.sh", "exit 5")?;
    let mut proc = env.spawn()?;
    assert_eq!(proc.wait_exit(T).await?, 3, "{}", proc.log());
    let log = proc.log();
    assert!(
        log.contains("entrypoint.10-bad.sh failed with exit code 5"),
        "{log}"
    );
    assert!(log.contains("pre-warm aborted"), "{log}");
    let pid: i32 = std::fs::read_to_string(env.marks.join("ci-storage.pid"))?
        .trim()
        .parse()?;
    assert!(!alive(pid), "ci-storage {pid} still running");
    assert_no_runner(&mock).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_kills_the_job_and_exits_4() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let mut env = RunnerEnv::new(&mock)?;
    env.set("SHUTDOWN_DEADLINE_SEC", "1.5");
    let (mut proc, _) = boot(&env, &mock).await?;
    let job = mock
        .queue_job(REPO, env.labels.clone(), "endless", "sleep 60")
        .await?;
    mock.wait_for_job(job, JobState::InProgress, T).await?;
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 4, "{}", proc.log());
    let listener = env.runner_home.join("bin/Runner.Listener");
    assert!(
        pids_of(&listener).iter().all(|p| !alive(*p)),
        "listener survived"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_endpoint_answers_health_checks() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let mut env = RunnerEnv::new(&mock)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    env.set("RUNNER_STATUS_PORT", port.to_string());
    let (mut proc, name) = boot(&env, &mock).await?;
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/status")).await?;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["state"], "ready");
    assert_eq!(body["runner_name"], name.as_str());
    let missing = reqwest::get(format!("http://127.0.0.1:{port}/nope")).await?;
    assert_eq!(missing.status(), 404);
    // Idle footprint (the budget is 10 MB for the release build; debug builds are larger).
    let rss = e2e::entrypoint::rss_kib(proc.pid).context("no VmRSS")?;
    eprintln!("idle RSS of runner: {rss} KiB");
    assert!(rss < 30 * 1024, "idle RSS {rss} KiB");
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    Ok(())
}

/// An RSA key pair from the openssl CLI: (private PEM, public SPKI PEM).
fn rsa_pair(dir: &std::path::Path) -> anyhow::Result<(String, String)> {
    let key = dir.join("app.pem");
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .status()?
            .success();
        anyhow::ensure!(ok, "openssl {args:?} failed");
        Ok(())
    };
    let key_s = key.to_str().context("path")?;
    run(&["genrsa", "-out", key_s, "2048"])?;
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-in", key_s, "-pubout"])
        .output()?;
    anyhow::ensure!(out.status.success(), "openssl rsa -pubout failed");
    Ok((
        std::fs::read_to_string(&key)?,
        String::from_utf8(out.stdout)?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_auth_from_a_secret_file() -> anyhow::Result<()> {
    let mock = MockGithub::start().await?;
    let mut env = RunnerEnv::new(&mock)?;
    let secrets = env.dir.path().join("secrets");
    std::fs::create_dir_all(&secrets)?;
    let (private, public) = rsa_pair(env.dir.path())?;
    std::fs::write(secrets.join("GH_APP_PRIVATE_KEY"), &private)?;
    mock.add_app(&fixtures::mock_github::AppRegistration {
        app_id: 4242,
        public_key_pem: public,
        installation_id: 77,
        repositories: vec![REPO.to_string()],
    })
    .await?;
    env.unset("GH_TOKEN").set("GH_APP_ID", "4242");
    let (mut proc, _) = boot(&env, &mock).await?;
    let requests = mock.requests().await?;
    assert_eq!(count(&requests, "GET", "/installation"), 1, "{requests:#?}");
    assert!(
        count(&requests, "POST", "/access_tokens") >= 1,
        "{requests:#?}"
    );
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.wait_exit(T).await?, 0, "{}", proc.log());
    assert_no_runner(&mock).await?;
    let key_body = private.lines().nth(1).unwrap_or("none");
    assert!(!proc.log().contains(key_body), "key in the log");
    Ok(())
}
