use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into())
}

fn base() -> HashMap<String, String> {
    [
        ("GH_REPOSITORY", "acme/widgets"),
        ("GH_LABELS", "linux,big"),
        ("GH_TOKEN", "ghp_secretvalue123"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("RUNNER_USER".to_string(), current_user())])
    .collect()
}

fn load_with(changes: &[(&str, Option<&str>)]) -> Result<Config, Problems> {
    let mut vars = base();
    for (k, v) in changes {
        match v {
            Some(v) => vars.insert(k.to_string(), v.to_string()),
            None => vars.remove(*k),
        };
    }
    Config::load(&Source::new(vars, "/nonexistent-secrets"))
}

/// Asserts the change yields a problem naming `var`, and no secret in the message.
fn bad(changes: &[(&str, Option<&str>)], var: &str) {
    let err = load_with(changes).expect_err("should be invalid");
    assert!(
        err.0.iter().any(|p| p.var == var),
        "expected a problem for {var}, got: {err}"
    );
    let text = err.to_string();
    assert!(text.lines().all(|l| l.contains(':')), "{text}");
    assert!(
        !text.contains("ghp_secretvalue123"),
        "secret leaked: {text}"
    );
}

#[test]
fn valid_defaults() {
    let c = load_with(&[]).expect("valid");
    assert_eq!(c.repo.to_string(), "acme/widgets");
    assert_eq!(c.labels, vec!["linux", "big"]);
    assert_eq!(c.gh_url, "https://github.com");
    assert_eq!(c.api_url, "https://api.github.com");
    assert_eq!(c.repo_url(), "https://github.com/acme/widgets");
    assert_eq!(c.name_prefix, "ci-runner");
    assert_eq!(c.status_port, Some(8088));
    assert_eq!(c.shutdown_retry_interval, Duration::from_secs(10));
    assert_eq!(c.shutdown_deadline, None);
    assert_eq!(c.tz, "UTC");
    assert!(c.storage.is_none());
    assert!(c.checkout_dir().ends_with("_work/widgets/widgets"));
}

#[test]
fn ghes_and_storage() {
    let c = load_with(&[
        ("GH_URL", Some("https://ghe.example.com/")),
        ("CI_STORAGE_HOST", Some("ci@store:2222")),
        (
            "CI_STORAGE_HOST_KEY",
            Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx"),
        ),
        ("SHUTDOWN_RETRY_INTERVAL_SEC", Some("0.5")),
        ("RUNNER_STATUS_PORT", Some("0")),
    ])
    .expect("valid");
    assert_eq!(c.gh_url, "https://ghe.example.com");
    assert_eq!(c.api_url, "https://ghe.example.com/api/v3");
    let s = c.storage.expect("storage");
    assert_eq!(s.dir, "~/ci-storage/acme/widgets");
    assert_eq!(s.prewarm_timeout, Duration::from_secs(300));
    assert_eq!(c.shutdown_retry_interval, Duration::from_millis(500));
    assert_eq!(c.status_port, None);
}

#[test]
fn secret_files_win_over_empty_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("GH_TOKEN"), "ghp_fromfile\n").expect("write");
    let mut vars = base();
    vars.insert("GH_TOKEN".into(), "".into());
    let c = Config::load(&Source::new(vars, dir.path())).expect("valid");
    match c.auth {
        Auth::Pat(t) => assert_eq!(t.expose(), "ghp_fromfile"),
        Auth::App { .. } => panic!("expected a PAT"),
    }
}

#[test]
fn debug_output_hides_secrets() {
    let c = load_with(&[]).expect("valid");
    let text = format!("{c:?}");
    assert!(!text.contains("ghp_secretvalue123"), "{text}");
    assert!(text.contains("***"));
}

#[test]
fn all_problems_are_reported_together() {
    let err = load_with(&[
        ("GH_REPOSITORY", None),
        ("GH_LABELS", None),
        ("TZ", Some("../x")),
    ])
    .expect_err("invalid");
    let vars: Vec<&str> = err.0.iter().map(|p| p.var.as_str()).collect();
    assert_eq!(vars, vec!["GH_REPOSITORY", "GH_LABELS", "TZ"], "{err}");
}

#[test]
fn bad_repository() {
    bad(&[("GH_REPOSITORY", None)], "GH_REPOSITORY");
    bad(&[("GH_REPOSITORY", Some("widgets"))], "GH_REPOSITORY");
    bad(&[("GH_REPOSITORY", Some("a/b/c"))], "GH_REPOSITORY");
    bad(&[("GH_REPOSITORY", Some("acme/wid gets"))], "GH_REPOSITORY");
}

#[test]
fn bad_labels() {
    bad(&[("GH_LABELS", None)], "GH_LABELS");
    bad(&[("GH_LABELS", Some("linux,,big"))], "GH_LABELS");
    bad(&[("GH_LABELS", Some("linux,big box"))], "GH_LABELS");
}

#[test]
fn bad_auth() {
    bad(&[("GH_TOKEN", None)], "GH_TOKEN");
    bad(&[("GH_TOKEN", Some("two words"))], "GH_TOKEN");
    bad(&[("GH_APP_ID", Some("12"))], "GH_TOKEN");
    bad(
        &[("GH_TOKEN", None), ("GH_APP_ID", Some("abc"))],
        "GH_APP_ID",
    );
    bad(
        &[("GH_TOKEN", None), ("GH_APP_ID", Some("12"))],
        "GH_APP_PRIVATE_KEY",
    );
    bad(
        &[
            ("GH_TOKEN", None),
            ("GH_APP_ID", Some("12")),
            ("GH_APP_PRIVATE_KEY", Some("not a pem")),
        ],
        "GH_APP_PRIVATE_KEY",
    );
    bad(
        &[
            ("GH_TOKEN", None),
            ("GH_APP_ID", Some("12")),
            ("GH_APP_INSTALLATION_ID", Some("-1")),
        ],
        "GH_APP_INSTALLATION_ID",
    );
}

#[test]
fn bad_urls() {
    bad(&[("GH_URL", Some("github.com"))], "GH_URL");
    bad(&[("GH_URL", Some("ftp://github.com"))], "GH_URL");
    bad(
        &[("GH_API_URL", Some("https://api.github.com/?x=1"))],
        "GH_API_URL",
    );
}

#[test]
fn bad_storage() {
    bad(
        &[("CI_STORAGE_HOST", Some("host:99999"))],
        "CI_STORAGE_HOST",
    );
    bad(
        &[("CI_STORAGE_HOST", Some("us er@host"))],
        "CI_STORAGE_HOST",
    );
    bad(
        &[("CI_STORAGE_HOST_PRIVATE_KEY", Some("just text"))],
        "CI_STORAGE_HOST_PRIVATE_KEY",
    );
    bad(
        &[("CI_STORAGE_HOST_KEY", Some("AAAA"))],
        "CI_STORAGE_HOST_KEY",
    );
    bad(
        &[("CI_STORAGE_PREWARM_TIMEOUT_SEC", Some("soon"))],
        "CI_STORAGE_PREWARM_TIMEOUT_SEC",
    );
}

#[test]
fn bad_runner_settings() {
    bad(
        &[("RUNNER_NAME_PREFIX", Some("my runner"))],
        "RUNNER_NAME_PREFIX",
    );
    bad(&[("RUNNER_TASK_ID", Some("a/b"))], "RUNNER_TASK_ID");
    bad(
        &[("RUNNER_WORK_DIR", Some("relative/work"))],
        "RUNNER_WORK_DIR",
    );
    bad(&[("RUNNER_HOME", Some("actions-runner"))], "RUNNER_HOME");
    bad(&[("RUNNER_USER", Some("no-such-user-xyz"))], "RUNNER_USER");
    bad(&[("RUNNER_USER", Some("bad user"))], "RUNNER_USER");
    bad(
        &[("RUNNER_ROOT_HOOKS_DIR", Some("hooks"))],
        "RUNNER_ROOT_HOOKS_DIR",
    );
    bad(
        &[("RUNNER_STATUS_PORT", Some("http"))],
        "RUNNER_STATUS_PORT",
    );
    bad(
        &[("RUNNER_STATUS_FILE", Some("status.json"))],
        "RUNNER_STATUS_FILE",
    );
}

#[test]
fn bad_numbers_and_tz() {
    bad(
        &[("SHUTDOWN_RETRY_INTERVAL_SEC", Some("0"))],
        "SHUTDOWN_RETRY_INTERVAL_SEC",
    );
    bad(
        &[("SHUTDOWN_RETRY_INTERVAL_SEC", Some("-1"))],
        "SHUTDOWN_RETRY_INTERVAL_SEC",
    );
    bad(
        &[("SHUTDOWN_DEADLINE_SEC", Some("1h"))],
        "SHUTDOWN_DEADLINE_SEC",
    );
    bad(
        &[("DEBUG_SHUTDOWN_DELAY_SEC", Some("NaN"))],
        "DEBUG_SHUTDOWN_DELAY_SEC",
    );
    bad(&[("TZ", Some("Mars/Olympus Mons"))], "TZ");
}
