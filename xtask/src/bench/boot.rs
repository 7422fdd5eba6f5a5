//! Boot: container start → `Listening for Jobs`, split into the entrypoint's logged steps, for
//! three cases (no storage host, an empty one, a warm slot), and our own overhead.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::containers::{self, RunSpec};
use super::report::{Figure, Goal, Unit};
use super::steplog::{self, ms_between, Step};
use super::Ctx;

/// What the (fake) actions runner prints once it takes jobs, as the real one does.
pub const LISTENING: &str = "Listening for Jobs";

/// The storage situation a runner boots into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `CI_STORAGE_HOST` unset.
    NoStorage,
    /// A storage host with nothing stored for the repository.
    EmptyStorage,
    /// A storage host with a slot of the generated tree.
    Warm,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::NoStorage => "no storage host",
            Case::EmptyStorage => "empty storage host",
            Case::Warm => "warm slot",
        }
    }
}

/// A runner container for `repository` against the bench's mock; `storage_dir` turns on
/// pre-warm from the bench's storage host.
pub fn runner_spec(
    ctx: &Ctx,
    repository: &str,
    prefix: &str,
    storage_dir: Option<&str>,
) -> anyhow::Result<RunSpec> {
    let mut spec = RunSpec {
        role: "runner".into(),
        image: ctx.images.get("ci-runner")?,
        env: vec![
            ("GH_REPOSITORY".into(), repository.into()),
            ("GH_LABELS".into(), "bench".into()),
            ("GH_URL".into(), ctx.mock_url.clone()),
            ("RUNNER_NAME_PREFIX".into(), prefix.into()),
            ("RUST_LOG".into(), "info".into()),
        ],
        secret_env: vec![("GH_TOKEN".into(), "test-token".into())],
        ports: vec![],
        // As docker-compose.yml runs it: the work directory on a tmpfs.
        extra: vec![
            "--tmpfs".into(),
            "/home/user/_work:exec,uid=1000,gid=1000".into(),
        ],
    };
    if let Some(dir) = storage_dir {
        let host = ctx
            .storage_host
            .as_ref()
            .map(|h| h.name.clone())
            .ok_or_else(|| anyhow::anyhow!("no storage host"))?;
        spec.env
            .push(("CI_STORAGE_HOST".into(), format!("user@{host}")));
        spec.env.push(("CI_STORAGE_DIR".into(), dir.into()));
        spec.secret_env.push((
            "CI_STORAGE_HOST_PRIVATE_KEY".into(),
            ctx.key.private.clone(),
        ));
    }
    Ok(spec)
}

/// Starts a runner and waits for `Listening for Jobs`; returns (container, start time, log).
pub fn boot(
    ctx: &Ctx,
    spec: &RunSpec,
    timeout: Duration,
) -> anyhow::Result<(String, DateTime<Utc>, String)> {
    let name = ctx.stack.run(spec)?;
    containers::wait_log(ctx.sh, &name, LISTENING, timeout)?;
    let started = containers::started_at(ctx.sh, &name)?;
    let log = containers::logs(ctx.sh, &name)?;
    Ok((name, started, log))
}

/// One boot, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Container start → `Listening for Jobs` (Docker's timestamps).
    pub total: f64,
    /// Container start → the entrypoint's own start (its first line minus its uptime).
    pub to_entrypoint: f64,
    /// `validate` step.
    pub validate: f64,
    /// `hooks.root` + `hooks.user`.
    pub hooks: f64,
    /// `setup` step.
    pub setup: f64,
    /// `prewarm` step (concurrent with registration).
    pub prewarm: f64,
    /// `register` step (API calls and config.sh).
    pub register: f64,
    /// `runner.start` → `Listening for Jobs` (run.sh's start-up).
    pub runner_start: f64,
    /// config.sh: registration-token request at the mock → `register` line.
    pub config_sh: f64,
    /// Time `runner.start` waited for pre-warm after registration and user hooks.
    pub prewarm_wait: f64,
    /// Ours: entrypoint start → `runner.start`, less config.sh and the pre-warm wait.
    pub overhead: f64,
}

/// Derives a [`Sample`] from a log and the time the registration token was requested.
pub fn analyse(
    log: &str,
    started: DateTime<Utc>,
    token_at: Option<DateTime<Utc>>,
) -> anyhow::Result<Sample> {
    let steps = steplog::parse(log);
    let get = |n: &str| {
        steplog::find(&steps, n).ok_or_else(|| {
            anyhow::anyhow!(
                "no step={n} line in the log:\n{}",
                containers::tail(log, 40)
            )
        })
    };
    let elapsed = |s: &Step| s.elapsed_ms.unwrap_or(0) as f64;
    let at = |s: &Step| {
        s.at.ok_or_else(|| anyhow::anyhow!("step {} has no timestamp", s.name))
    };
    let listening_at = log
        .lines()
        .find(|l| l.contains(LISTENING))
        .and_then(|l| steplog::split_timestamp(l).0)
        .ok_or_else(|| anyhow::anyhow!("no {LISTENING:?} line"))?;
    let validate = get("validate")?;
    let register = get("register")?;
    let runner_start = get("runner.start")?;
    let prewarm = steplog::find(&steps, "prewarm");
    let hooks_user = steplog::find(&steps, "hooks.user");
    let hooks = ["hooks.root", "hooks.user"]
        .iter()
        .filter_map(|n| steplog::find(&steps, n))
        .map(elapsed)
        .sum();
    let process_start =
        at(validate)? - chrono::Duration::milliseconds(validate.uptime_ms.unwrap_or(0) as i64);
    let register_at = at(register)?;
    let config_sh = match token_at {
        Some(t) => ms_between(t, register_at).max(0.0),
        None => elapsed(register),
    };
    let prewarm_wait = match (
        prewarm.and_then(|p| p.at),
        hooks_user.and_then(|h| h.at).or(Some(register_at)),
    ) {
        (Some(p), Some(h)) => ms_between(h, p).max(0.0),
        _ => 0.0,
    };
    let start_uptime = runner_start
        .uptime_ms
        .map(|u| u as f64)
        .unwrap_or_else(|| ms_between(process_start, runner_start.at.unwrap_or(process_start)));
    Ok(Sample {
        total: ms_between(started, listening_at),
        to_entrypoint: ms_between(started, process_start),
        validate: elapsed(validate),
        hooks,
        setup: steplog::find(&steps, "setup").map(elapsed).unwrap_or(0.0),
        prewarm: prewarm.map(elapsed).unwrap_or(0.0),
        register: elapsed(register),
        runner_start: ms_between(at(runner_start)?, listening_at),
        config_sh,
        prewarm_wait,
        overhead: start_uptime - config_sh - prewarm_wait,
    })
}

/// Boots `runs` runners for `case` and measures each.
pub fn measure(ctx: &Ctx, case: Case, runs: usize) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for i in 0..runs {
        let tag = match case {
            Case::NoStorage => "none",
            Case::EmptyStorage => "empty",
            Case::Warm => "warm",
        };
        let repository = format!("bench/boot-{tag}-{i}");
        let storage_dir = match case {
            Case::NoStorage => None,
            Case::EmptyStorage => Some(format!("~/ci-storage/bench/empty-{i}")),
            Case::Warm => Some(super::storage::WARM_STORAGE_DIR.to_owned()),
        };
        let spec = runner_spec(
            ctx,
            &repository,
            &format!("bench-{tag}{i}"),
            storage_dir.as_deref(),
        )?;
        let (name, started, log) = boot(ctx, &spec, Duration::from_secs(600))?;
        ctx.stack.remove(&name);
        let requests = ctx.mock.requests()?;
        let token_at = super::mock::first_at(&requests, |r| {
            r.method == "POST"
                && r.path.contains(&format!(
                    "/repos/{repository}/actions/runners/registration-token"
                ))
        });
        if case == Case::Warm && !log.contains("pre-warm done") {
            anyhow::bail!(
                "the warm boot did not load the slot:\n{}",
                containers::tail(&log, 40)
            );
        }
        let s = analyse(&log, started, token_at)?;
        eprintln!(
            "    boot ({}) #{}: {:.0} ms to listening, overhead {:.1} ms",
            case.label(),
            i + 1,
            s.total,
            s.overhead
        );
        samples.push(s);
    }
    Ok(samples)
}

/// The figures of one case.
pub fn figures(case: Case, samples: &[Sample]) -> Vec<Figure> {
    let col = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<_>>();
    let l = case.label();
    let mut out = vec![
        Figure::new(
            "boot",
            &format!("{l}: container start → Listening for Jobs"),
            Unit::Ms,
            &col(|s| s.total),
        )
        .note("Docker's StartedAt → timestamp of the `Listening for Jobs` line"),
        Figure::new(
            "boot",
            &format!("{l}: container start → entrypoint start"),
            Unit::Ms,
            &col(|s| s.to_entrypoint),
        )
        .note("tini + exec; first line's timestamp minus its uptime_ms"),
        Figure::new(
            "boot",
            &format!("{l}: validate"),
            Unit::Ms,
            &col(|s| s.validate),
        ),
        Figure::new(
            "boot",
            &format!("{l}: hooks (root + user, none installed)"),
            Unit::Ms,
            &col(|s| s.hooks),
        ),
        Figure::new("boot", &format!("{l}: setup"), Unit::Ms, &col(|s| s.setup)),
        Figure::new(
            "boot",
            &format!("{l}: pre-warm (∥ registration)"),
            Unit::Ms,
            &col(|s| s.prewarm),
        ),
        Figure::new(
            "boot",
            &format!("{l}: registration (API + config.sh)"),
            Unit::Ms,
            &col(|s| s.register),
        ),
        Figure::new(
            "boot",
            &format!("{l}: runner start (run.sh → listening)"),
            Unit::Ms,
            &col(|s| s.runner_start),
        ),
    ];
    out.push(
        Figure::new("boot", &format!("{l}: our overhead"), Unit::Ms, &col(|s| s.overhead))
            .goal(Goal::Below(50.0))
            .note("entrypoint start → run.sh spawned, minus config.sh (token request at the mock → `register` line) and the wait for pre-warm"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyses_a_boot_log() {
        let log = "\
2025-01-01T00:00:00.110000000Z x  INFO step=\"validate\" elapsed_ms=1 uptime_ms=10: ok
2025-01-01T00:00:00.112000000Z x  INFO step=\"hooks.root\" elapsed_ms=2 uptime_ms=12: ran 0
2025-01-01T00:00:00.113000000Z x  INFO step=\"setup\" elapsed_ms=1 uptime_ms=13: ready
2025-01-01T00:00:00.400000000Z x  INFO step=\"register\" elapsed_ms=290 runner_name=r: registered
2025-01-01T00:00:00.401000000Z x  INFO step=\"hooks.user\" elapsed_ms=1 uptime_ms=301: ran 0
2025-01-01T00:00:00.600000000Z x  INFO step=\"prewarm\" elapsed_ms=480: pre-warm done
2025-01-01T00:00:00.605000000Z x  INFO step=\"runner.start\" elapsed_ms=0 uptime_ms=505: started
2025-01-01T00:00:00.900000000Z x  INFO run.sh: 2025-01-01 00:00:00Z: Listening for Jobs
";
        let t = |s: &str| containers::parse_time(s).unwrap();
        let s = analyse(
            log,
            t("2025-01-01T00:00:00.050Z"),
            Some(t("2025-01-01T00:00:00.120Z")),
        )
        .unwrap();
        assert_eq!(s.total, 850.0);
        assert_eq!(s.to_entrypoint, 50.0);
        assert_eq!(
            (s.validate, s.hooks, s.setup, s.register, s.prewarm),
            (1.0, 3.0, 1.0, 290.0, 480.0)
        );
        assert_eq!(s.runner_start, 295.0);
        assert_eq!(s.config_sh, 280.0);
        assert_eq!(s.prewarm_wait, 199.0);
        assert_eq!(s.overhead, 505.0 - 280.0 - 199.0);
        assert!(analyse("nothing", t("2025-01-01T00:00:00Z"), None).is_err());
    }
}
