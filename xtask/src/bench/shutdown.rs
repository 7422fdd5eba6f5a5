//! Scale-down: SIGTERM while idle → container exited; SIGTERM during a job → delay from the
//! job's end to de-registration. The same runs sample the entrypoint's memory.

use std::time::Duration;

use chrono::Utc;

use super::boot::{boot, runner_spec};
use super::containers;
use super::footprint::{self, Memory};
use super::mock::first_at;
use super::report::{Figure, Goal, Unit};
use super::steplog::{self, ms_between};
use super::Ctx;

/// Samples of all scale-down runs.
#[derive(Debug, Default)]
pub struct Samples {
    /// SIGTERM (engine delivered it) → container exited, idle runner, ms.
    pub idle_exit: Vec<f64>,
    /// Job completed at the mock → runner deleted at the mock, ms.
    pub busy_mock: Vec<f64>,
    /// `job.finished` line → `deregistered` line, ms.
    pub busy_log: Vec<f64>,
    /// SIGTERM → container exited, busy runner (includes the rest of the job), ms.
    pub busy_exit: Vec<f64>,
    /// Memory while idle.
    pub idle_mem: Vec<Memory>,
    /// Memory during a job.
    pub busy_mem: Vec<Memory>,
    /// Exit codes that were not 0.
    pub odd_exits: Vec<i64>,
}

/// One idle run: boot, sample memory, SIGTERM, wait.
fn idle_once(ctx: &Ctx, i: usize, out: &mut Samples) -> anyhow::Result<()> {
    let spec = runner_spec(
        ctx,
        &format!("bench/idle-{i}"),
        &format!("bench-idle{i}"),
        None,
    )?;
    let (name, _, _) = boot(ctx, &spec, Duration::from_secs(120))?;
    std::thread::sleep(Duration::from_secs(1));
    out.idle_mem.push(footprint::sample(ctx.sh, &name)?);
    containers::kill(ctx.sh, &name, "TERM")?;
    let signalled = Utc::now();
    let code = containers::wait_exit(ctx.sh, &name, Duration::from_secs(60))?;
    let exited = containers::finished_at(ctx.sh, &name)?;
    out.idle_exit.push(ms_between(signalled, exited));
    if code != 0 {
        out.odd_exits.push(code);
    }
    ctx.stack.remove(&name);
    Ok(())
}

/// One busy run: boot, queue a job, SIGTERM during it, measure job end → de-registration.
fn busy_once(ctx: &Ctx, i: usize, out: &mut Samples) -> anyhow::Result<()> {
    let repository = format!("bench/busy-{i}");
    let prefix = format!("bench-busy{i}");
    let spec = runner_spec(ctx, &repository, &prefix, None)?;
    let (name, _, _) = boot(ctx, &spec, Duration::from_secs(120))?;
    let runner = ctx
        .mock
        .runner_with_prefix(&prefix)?
        .ok_or_else(|| anyhow::anyhow!("runner {prefix}* is not registered at the mock"))?;
    let agent = runner["id"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("runner without id: {runner}"))?;
    let job = ctx.mock.create_job(
        &repository,
        &["bench"],
        &format!("bench-job-{i}"),
        "sleep 3",
    )?;
    ctx.mock
        .wait_job_state(job, "in_progress", Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_millis(500));
    out.busy_mem.push(footprint::sample(ctx.sh, &name)?);
    containers::kill(ctx.sh, &name, "TERM")?;
    let signalled = Utc::now();
    let code = containers::wait_exit(ctx.sh, &name, Duration::from_secs(120))?;
    out.busy_exit.push(ms_between(
        signalled,
        containers::finished_at(ctx.sh, &name)?,
    ));
    if code != 0 {
        out.odd_exits.push(code);
    }
    let view = ctx.mock.job(job)?;
    if view["result"]
        .as_str()
        .is_some_and(|r| !r.eq_ignore_ascii_case("succeeded"))
    {
        anyhow::bail!(
            "job {job} ended {} after SIGTERM (expected Succeeded)",
            view["result"]
        );
    }
    let requests = ctx.mock.requests()?;
    let completed = first_at(&requests, |r| {
        r.method == "POST" && r.path.ends_with(&format!("/_runner/jobs/{job}/complete"))
    });
    let deleted = first_at(&requests, |r| {
        r.method == "DELETE"
            && (200..300).contains(&r.status)
            && (r.path.ends_with(&format!("/_runner/agents/{agent}"))
                || r.path.ends_with(&format!("/actions/runners/{agent}")))
    });
    match (completed, deleted) {
        (Some(c), Some(d)) => out.busy_mock.push(ms_between(c, d)),
        _ => anyhow::bail!("no job completion ({completed:?}) or runner deletion ({deleted:?}) in the mock's request log"),
    }
    let log = containers::logs(ctx.sh, &name)?;
    let steps = steplog::parse(&log);
    if let (Some(f), Some(d)) = (
        steplog::find_last(&steps, "job.finished").and_then(|s| s.at),
        steplog::find_last(&steps, "deregistered").and_then(|s| s.at),
    ) {
        out.busy_log.push(ms_between(f, d));
    }
    ctx.stack.remove(&name);
    Ok(())
}

/// Runs `runs` idle and `runs` busy scale-downs.
pub fn measure(ctx: &Ctx, runs: usize) -> anyhow::Result<Samples> {
    let mut out = Samples::default();
    for i in 0..runs {
        idle_once(ctx, i, &mut out)?;
        busy_once(ctx, i, &mut out)?;
        eprintln!(
            "    scale-down #{}: idle exit {:.0} ms, job end → deleted {:.0} ms",
            i + 1,
            out.idle_exit.last().copied().unwrap_or(f64::NAN),
            out.busy_mock.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(out)
}

/// The scale-down figures.
pub fn figures(s: &Samples) -> Vec<Figure> {
    let mut v = vec![
        Figure::new("scale-down", "idle: SIGTERM → container exited", Unit::Ms, &s.idle_exit)
            .note("`docker kill -s TERM` returned → State.FinishedAt; includes labels removal, config.sh remove, stopping run.sh"),
        Figure::new("scale-down", "busy: job end → de-registered (mock)", Unit::Ms, &s.busy_mock)
            .goal(Goal::Below(1000.0))
            .note("mock's request log: POST …/jobs/{id}/complete → DELETE of the runner (2xx); SIGTERM 0.5 s into a 3 s job"),
        Figure::new("scale-down", "busy: job end → de-registered (entrypoint log)", Unit::Ms, &s.busy_log)
            .goal(Goal::Below(1000.0))
            .note("`job.finished` → `deregistered` line timestamps"),
        Figure::new("scale-down", "busy: SIGTERM → container exited", Unit::Ms, &s.busy_exit).note("includes the ~2.5 s left of the job"),
    ];
    if !s.odd_exits.is_empty() {
        v[0].note
            .push_str(&format!("; non-zero exit codes seen: {:?}", s.odd_exits));
    }
    v
}
