//! Footprint: the entrypoint's resident memory (VmRSS, VmHWM from `/proc/<pid>/status`, read
//! with `docker exec`), idle and while a job runs.

use super::containers;
use super::report::{Figure, Goal, Unit};

/// Prints `pid=<pid>` and the PPid/VmRSS/VmHWM lines of every process running the entrypoint.
const SCRIPT: &str = r#"for p in /proc/[0-9]*; do
  if [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/local/bin/runner ]; then
    echo "pid=${p#/proc/}"; grep -E '^(PPid|VmRSS|VmHWM):' "$p/status"
  fi
done"#;

/// Memory of the entrypoint, in kB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set now.
    pub rss_kb: u64,
    /// Peak resident set so far.
    pub hwm_kb: u64,
}

/// Picks the entrypoint (the child of tini, PID 1) from [`SCRIPT`]'s output.
pub fn parse(out: &str) -> Option<Memory> {
    let mut best = None;
    let (mut ppid, mut rss, mut hwm) = (None, None, None);
    let mut flush = |ppid: Option<u64>, rss: Option<u64>, hwm: Option<u64>| {
        if let (Some(1), Some(rss_kb), Some(hwm_kb)) = (ppid, rss, hwm) {
            best = Some(Memory { rss_kb, hwm_kb });
        }
    };
    for line in out.lines() {
        if line.starts_with("pid=") {
            flush(ppid.take(), rss.take(), hwm.take());
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let n = v.split_whitespace().next().and_then(|n| n.parse().ok());
        match k {
            "PPid" => ppid = n,
            "VmRSS" => rss = n,
            "VmHWM" => hwm = n,
            _ => {}
        }
    }
    flush(ppid, rss, hwm);
    best
}

/// Samples the entrypoint's memory in container `name`.
pub fn sample(sh: &xshell::Shell, name: &str) -> anyhow::Result<Memory> {
    let out = containers::exec(sh, name, &["sh", "-c", SCRIPT])?;
    parse(&out).ok_or_else(|| {
        anyhow::anyhow!("no /usr/local/bin/runner process with PPid 1 in {name}:\n{out}")
    })
}

/// Figures from idle and busy samples.
pub fn figures(idle: &[Memory], busy: &[Memory]) -> Vec<Figure> {
    let mb = |v: &[Memory], f: fn(&Memory) -> u64| {
        v.iter()
            .map(|m| f(m) as f64 * 1024.0 / 1e6)
            .collect::<Vec<_>>()
    };
    vec![
        Figure::new(
            "footprint",
            "entrypoint RSS, idle (listening)",
            Unit::Mb,
            &mb(idle, |m| m.rss_kb),
        )
        .goal(Goal::Below(10.0))
        .note("VmRSS of /usr/local/bin/runner, 1 s after Listening"),
        Figure::new(
            "footprint",
            "entrypoint RSS, job running",
            Unit::Mb,
            &mb(busy, |m| m.rss_kb),
        )
        .goal(Goal::Below(10.0))
        .note("VmRSS while a `sleep` job runs"),
        Figure::new(
            "footprint",
            "entrypoint peak RSS (VmHWM) up to the job",
            Unit::Mb,
            &mb(busy, |m| m.hwm_kb),
        )
        .note("peak since process start, incl. boot"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_child_of_pid_1() {
        let out = "pid=7\nPPid:\t0\nVmRSS:\t   100 kB\nVmHWM:\t 200 kB\npid=12\nPPid:\t1\nVmRSS:\t  5120 kB\nVmHWM:\t  6000 kB\npid=40\nPPid:\t12\nVmRSS:\t 900 kB\nVmHWM:\t 900 kB\n";
        assert_eq!(
            parse(out),
            Some(Memory {
                rss_kb: 5120,
                hwm_kb: 6000
            })
        );
        assert_eq!(parse("pid=3\nPPid:\t2\nVmRSS:\t1 kB\nVmHWM:\t1 kB\n"), None);
    }
}
