//! The machine a bench ran on: cores, memory, CPU, kernel, Docker, tool versions.

use xshell::{cmd, Shell};

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_owned()
}

fn meminfo_total() -> Option<String> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: f64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(format!("{:.1} GiB", kb / 1024.0 / 1024.0))
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    Some(
        text.lines()
            .find(|l| l.starts_with("model name"))?
            .split_once(':')?
            .1
            .trim()
            .to_owned(),
    )
}

/// (what, value) rows; unknown values say so rather than failing.
pub fn describe(sh: &Shell) -> Vec<(String, String)> {
    let read = |r: xshell::Result<String>| {
        r.map(|s| first_line(&s))
            .unwrap_or_else(|_| "unknown".into())
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let docker_fmt = "{{.Server.Version}} (API {{.Server.APIVersion}})";
    let storage_fmt = "{{.Driver}}";
    let git = read(
        cmd!(sh, "git rev-parse --short HEAD")
            .quiet()
            .ignore_stderr()
            .read(),
    );
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    vec![
        ("cores".into(), cores),
        (
            "CPU".into(),
            cpu_model().unwrap_or_else(|| "unknown".into()),
        ),
        (
            "memory".into(),
            meminfo_total().unwrap_or_else(|| "unknown".into()),
        ),
        ("kernel".into(), read(cmd!(sh, "uname -sr").quiet().read())),
        (
            "Docker".into(),
            read(
                cmd!(sh, "docker version --format {docker_fmt}")
                    .quiet()
                    .ignore_stderr()
                    .read(),
            ),
        ),
        (
            "Docker storage driver".into(),
            read(
                cmd!(sh, "docker info --format {storage_fmt}")
                    .quiet()
                    .ignore_stderr()
                    .read(),
            ),
        ),
        (
            "rsync".into(),
            read(cmd!(sh, "rsync --version").quiet().ignore_stderr().read()),
        ),
        (
            "commit".into(),
            if dirty {
                format!("{git} (with uncommitted changes)")
            } else {
                git
            },
        ),
    ]
}
