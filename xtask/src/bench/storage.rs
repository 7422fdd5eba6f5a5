//! ci-storage against bare rsync on a generated tree: load into an up-to-date dir, load after
//! 1 % of the files changed, store with 1 % changed; locally and over ssh to the storage host
//! container. The baseline replays the exact rsync command line ci-storage printed (`$ rsync
//! …`), with its own plain ssh connection instead of ci-storage's master connection.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use super::report::{Figure, Goal, Unit};
use super::stats::{differences, ratios};
use super::tree::{Entry, TreeSpec};
use super::Ctx;

/// Storage dir of the large tree on the storage host; the warm boot loads from it.
pub const WARM_STORAGE_DIR: &str = "~/ci-storage/bench/repo";

/// Share of files changed between runs.
const CHANGED: f64 = 0.01;

/// Directory name the baseline stores into (removed after each run).
const BASELINE_DEST: &str = "bench-rsync.tmp";

/// A generated tree on disk.
#[derive(Debug)]
pub struct Tree {
    /// How it was generated.
    pub spec: TreeSpec,
    /// Its files.
    pub plan: Vec<Entry>,
    /// Where it is.
    pub dir: PathBuf,
}

/// Where slots go.
#[derive(Debug, Clone)]
pub struct Target {
    /// `local` or `ssh`.
    pub label: &'static str,
    /// `--storage-dir`.
    pub storage_dir: String,
    /// `--storage-host` and `--ssh-key`, over ssh.
    pub host: Option<(String, PathBuf)>,
    /// The storage dir as a path: on this machine (local) or in the host container (ssh).
    pub real_dir: String,
    /// The storage host container (ssh).
    pub container: Option<String>,
}

/// Timings of one operation, seconds.
#[derive(Debug, Default, Clone)]
pub struct Op {
    /// ci-storage.
    pub ours: Vec<f64>,
    /// Bare rsync.
    pub rsync: Vec<f64>,
}

/// All timings for one target and tree.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// First store of the whole tree (ours only, once).
    pub initial_store: Option<f64>,
    /// Load into an up-to-date dir.
    pub load_same: Op,
    /// Load with 1 % changed locally.
    pub load_changed: Op,
    /// Store with 1 % changed.
    pub store_changed: Op,
}

/// Runs `ci-storage <action>`; returns (seconds, output).
fn ci_storage(
    ctx: &Ctx,
    t: &Target,
    action: &str,
    slot: &str,
    dir: &Path,
) -> anyhow::Result<(f64, String)> {
    let mut cmd = Command::new(&ctx.ci_storage);
    cmd.arg(action)
        .arg("--slot-id")
        .arg(slot)
        .arg("--local-dir")
        .arg(dir)
        .arg("--storage-dir")
        .arg(&t.storage_dir);
    if let Some((host, key)) = &t.host {
        cmd.arg("--storage-host")
            .arg(host)
            .arg("--ssh-key")
            .arg(key);
    }
    let start = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("running {}", ctx.ci_storage.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "ci-storage {action} --slot-id {slot} ({}) failed with {}:\n{text}",
            t.label,
            out.status
        );
    }
    Ok((secs, text))
}

/// Splits a POSIX-shell-quoted line into words (single and double quotes, backslashes).
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        _ => cur.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The argv of the (last) `$ rsync …` line ci-storage printed.
pub fn rsync_argv(output: &str) -> anyhow::Result<Vec<String>> {
    let line = output
        .lines()
        .rev()
        .find_map(|l| l.trim_start().strip_prefix("$ rsync "))
        .with_context(|| format!("no `$ rsync` line in ci-storage's output:\n{output}"))?;
    let mut argv = vec!["rsync".to_owned()];
    argv.extend(split_words(line));
    Ok(argv)
}

/// The same command as a bare rsync: ssh without ci-storage's master connection options.
pub fn bare(mut argv: Vec<String>) -> Vec<String> {
    if let Some(i) = argv.iter().position(|a| a == "-e") {
        if let Some(shell) = argv.get(i + 1) {
            let kept: Vec<String> = split_words(shell)
                .into_iter()
                .filter(|w| !w.starts_with("-oControl"))
                .collect();
            argv[i + 1] = kept.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        }
    }
    argv
}

/// Quotes one word for rsync's `-e` splitting.
fn quote(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c))
    {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Replaces the last path component of the destination (the last word) with `name`.
pub fn retarget(mut argv: Vec<String>, name: &str) -> Vec<String> {
    if let Some(dest) = argv.last_mut() {
        let trimmed = dest.trim_end_matches('/');
        let cut = trimmed.rfind(['/', ':']).map_or(0, |i| i + 1);
        *dest = format!("{}{name}/", &trimmed[..cut]);
    }
    argv
}

fn run_timed(argv: &[String]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("running {argv:?}"))?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{argv:?} failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(secs)
}

/// Removes the baseline's store destination.
fn clean_baseline(ctx: &Ctx, t: &Target) -> anyhow::Result<()> {
    let path = format!("{}/{BASELINE_DEST}", t.real_dir);
    match &t.container {
        Some(c) => {
            let sh = ctx.sh;
            xshell::cmd!(sh, "docker exec -u user {c} rm -rf {path}")
                .quiet()
                .run()?;
        }
        None => {
            if Path::new(&path).exists() {
                std::fs::remove_dir_all(&path).with_context(|| format!("removing {path}"))?;
            }
        }
    }
    Ok(())
}

/// Stores the whole tree as slot `base` (untimed setup; the time is reported once).
pub fn seed(ctx: &Ctx, t: &Target, tree: &Tree) -> anyhow::Result<f64> {
    let (secs, _) = ci_storage(ctx, t, "store", "base", &tree.dir)?;
    eprintln!(
        "    initial store ({}, {} files): {secs:.1} s",
        t.label, tree.spec.files
    );
    Ok(secs)
}

/// Runs the three operations `runs` times (after one untimed warm-up round), ours then rsync.
pub fn measure(ctx: &Ctx, t: &Target, tree: &Tree, runs: usize) -> anyhow::Result<Samples> {
    let mut s = Samples::default();
    let (spec, plan, dir) = (&tree.spec, &tree.plan, &tree.dir);
    for round in 0..=runs as u64 {
        let timed = round > 0;
        // Load into an up-to-date directory.
        let (ours, out) = ci_storage(ctx, t, "load", "base", dir)?;
        let base = run_timed(&bare(rsync_argv(&out)?))?;
        if timed {
            s.load_same.ours.push(ours);
            s.load_same.rsync.push(base);
        }
        // Load with 1 % changed locally (the load puts the originals back).
        spec.change(dir, plan, round, CHANGED)?;
        let (ours, out) = ci_storage(ctx, t, "load", "base", dir)?;
        spec.change(dir, plan, round, CHANGED)?;
        let base = run_timed(&bare(rsync_argv(&out)?))?;
        if timed {
            s.load_changed.ours.push(ours);
            s.load_changed.rsync.push(base);
        }
        // Store with 1 % changed (the baseline writes the same transfer into its own dir).
        spec.change(dir, plan, round, CHANGED)?;
        let (ours, out) = ci_storage(ctx, t, "store", "bench-store", dir)?;
        clean_baseline(ctx, t)?;
        let base = run_timed(&retarget(bare(rsync_argv(&out)?), BASELINE_DEST))?;
        clean_baseline(ctx, t)?;
        spec.restore(dir, plan, round, CHANGED)?;
        if timed {
            s.store_changed.ours.push(ours);
            s.store_changed.rsync.push(base);
            eprintln!(
                "    ci-storage {} #{round}: load {:.2}/{:.2} s, load 1% {:.2}/{:.2} s, store 1% {:.2}/{:.2} s (ours/rsync)",
                t.label,
                s.load_same.ours[round as usize - 1],
                s.load_same.rsync[round as usize - 1],
                s.load_changed.ours[round as usize - 1],
                s.load_changed.rsync[round as usize - 1],
                ours,
                base
            );
        }
    }
    Ok(s)
}

fn ops(s: &Samples) -> [(&'static str, &Op); 3] {
    [
        ("load, up to date", &s.load_same),
        ("load, 1 % changed", &s.load_changed),
        ("store, 1 % changed", &s.store_changed),
    ]
}

/// Figures for the large tree: ours, rsync and the per-run ratio.
pub fn figures(label: &str, tree: &str, s: &Samples) -> Vec<Figure> {
    let mut v = Vec::new();
    if let Some(t) = s.initial_store {
        v.push(
            Figure::new(
                "ci-storage",
                &format!("{label}: initial store of {tree}"),
                Unit::S,
                &[t],
            )
            .note("setup: the whole tree into an empty storage, once"),
        );
    }
    for (op, o) in ops(s) {
        v.push(Figure::new(
            "ci-storage",
            &format!("{label}: {op}, ci-storage"),
            Unit::S,
            &o.ours,
        ));
        v.push(
            Figure::new(
                "ci-storage",
                &format!("{label}: {op}, bare rsync"),
                Unit::S,
                &o.rsync,
            )
            .note("the rsync command line ci-storage printed, replayed (own ssh connection)"),
        );
        v.push(
            Figure::new(
                "ci-storage",
                &format!("{label}: {op}, ours / rsync"),
                Unit::Ratio,
                &ratios(&o.ours, &o.rsync),
            )
            .goal(Goal::AtMost(1.1))
            .note("per-run ratio"),
        );
    }
    v
}

/// Figures for the small tree: our absolute overhead per operation.
pub fn overhead_figures(label: &str, tree: &str, s: &Samples) -> Vec<Figure> {
    ops(s)
        .into_iter()
        .map(|(op, o)| {
            Figure::new(
                "ci-storage",
                &format!("{label}: {op}, overhead on {tree}"),
                Unit::S,
                &differences(&o.ours, &o.rsync),
            )
            .goal(Goal::Below(0.5))
            .note("ci-storage − bare rsync, per run")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_the_printed_rsync_line() {
        let out = "$ perl -we <LIST_SLOTS> st\n$ rsync -e 'ssh -oBatchMode=yes -oControlPath=/tmp/ci-storage.x/cm -oControlPersist=60 -i /k/id -p2222 -oControlMaster=no' \
                   --inplace -a --delete --exclude=.ci-storage.meta '--rsync-path=rsync --fake-super' --link-dest=../base/ d/ user@127.0.0.1:~/ci-storage/b/bench-store.tmp.17/\n  elapsed: 1 sec\n";
        let argv = rsync_argv(out).unwrap();
        assert_eq!(argv[0], "rsync");
        assert_eq!(argv[6], "--exclude=.ci-storage.meta");
        assert_eq!(argv[7], "--rsync-path=rsync --fake-super");
        let bare = retarget(bare(argv), BASELINE_DEST);
        assert_eq!(bare[2], "ssh -oBatchMode=yes -i /k/id -p2222");
        assert_eq!(
            bare.last().unwrap(),
            "user@127.0.0.1:~/ci-storage/b/bench-rsync.tmp/"
        );
        assert_eq!(retarget(vec!["h:s1.tmp.3/".into()], "x"), ["h:x/"]);
        assert!(rsync_argv("nothing").is_err());
    }

    #[test]
    fn splits_shell_words() {
        assert_eq!(
            split_words(r#"a 'b c' d\ e "f\"g" --x='y z' '' 'it'\''s'"#),
            ["a", "b c", "d e", "f\"g", "--x=y z", "", "it's"]
        );
    }
}
