//! rsync invocations: the original tool's flags, streamed output, and a one-line summary
//! derived from `--stats`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;

use super::meta::META_FILE;
use super::transport::Transport;
use super::{say, shell, Error};

/// Direction of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local dir → storage.
    Store,
    /// Storage → local dir.
    Load,
}

/// What to transfer and how to filter it.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--layer` include patterns (empty = full slot).
    pub layer: Vec<String>,
    /// Pass rsync's full output through (`-v`, `-vv` for layers).
    pub verbose: bool,
}

/// rsync flags shared by store, load and clean (as the original builds them).
pub fn common_args(transport: &Transport, direction: Direction, filters: &Filters) -> Vec<String> {
    let layer = !filters.layer.is_empty();
    let mut args = transport.rsync_shell_args();
    args.extend(["-a", "--partial", "--stats", "--human-readable"].map(str::to_owned));
    // Nanosecond mtime comparison (rsync ≥ 3.1 on both ends).
    args.push("--modify-window=-1".to_owned());
    if !(layer && direction == Direction::Load) {
        args.push("--delete".to_owned());
    }
    if filters.verbose {
        args.push(if layer { "-vv" } else { "-v" }.to_owned());
    }
    args.push(format!("--exclude={META_FILE}"));
    args.extend(filters.exclude.iter().map(|p| format!("--exclude={p}")));
    if layer && filters.layer != ["*"] {
        args.push("--include=*/".to_owned());
        args.extend(filters.layer.iter().map(|p| format!("--include={p}")));
        args.push("--exclude=*".to_owned());
    }
    if layer && direction == Direction::Store {
        args.push("--prune-empty-dirs".to_owned());
    }
    // As root, keep ownership on a non-root host in xattrs (as the original does).
    if transport.is_remote() && nix::unistd::geteuid().is_root() && fake_super_enabled() {
        args.push("--rsync-path=rsync --fake-super".to_owned());
    }
    args
}

fn fake_super_enabled() -> bool {
    !matches!(
        std::env::var("CI_STORAGE_FAKE_SUPER").as_deref(),
        Ok("0") | Ok("no") | Ok("false")
    )
}

/// Runs `rsync <args>`, echoing the command, printing a `--stats` summary (or everything with
/// `verbose`) and the elapsed time.
pub fn run(transport: &Transport, args: Vec<String>, verbose: bool) -> Result<(), Error> {
    let mut argv = vec!["rsync".to_owned()];
    argv.extend(args);
    say(&shell::echo_line(&argv, &[]));
    let started = Instant::now();
    let mut child = Command::new("rsync")
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rsync (is it installed?)")?;
    let mut stderr_pipe = child.stderr.take().context("rsync stderr")?;
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let mut stats = Stats::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading rsync output")?;
            let known = stats.absorb(&line);
            if verbose || (!known && !line.trim().is_empty()) {
                say(&format!("  {line}"));
            }
        }
    }
    let status = child.wait().context("waiting for rsync")?;
    let stderr = stderr_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(transport.failure("rsync", status.code(), &stderr));
    }
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        say(&format!("  {line}"));
    }
    if let Some(summary) = stats.summary() {
        say(&format!("  {summary}"));
    }
    say(&format!(
        "  elapsed: {:.2} sec",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Figures picked from `rsync --stats` output.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stats {
    files: Option<String>,
    created: Option<String>,
    deleted: Option<String>,
    transferred: Option<String>,
    total_size: Option<String>,
    transferred_size: Option<String>,
    sent: Option<String>,
    received: Option<String>,
}

impl Stats {
    /// Takes a line of rsync output; true if it was part of the stats block.
    pub fn absorb(&mut self, line: &str) -> bool {
        let Some((key, value)) = line.split_once(": ") else {
            return line.starts_with("sent ") || line.starts_with("total size is ");
        };
        let value = Some(value.trim().trim_end_matches(" bytes").to_owned());
        match key {
            "Number of files" => self.files = value,
            "Number of created files" => self.created = value,
            "Number of deleted files" => self.deleted = value,
            "Number of regular files transferred" => self.transferred = value,
            "Total file size" => self.total_size = value,
            "Total transferred file size" => self.transferred_size = value,
            "Total bytes sent" => self.sent = value,
            "Total bytes received" => self.received = value,
            "Literal data"
            | "Matched data"
            | "File list size"
            | "File list generation time"
            | "File list transfer time" => {}
            _ => return false,
        }
        true
    }

    /// One line: `files: …, created: …, deleted: …, transferred: … (size), total: …, sent: …,
    /// received: …`.
    pub fn summary(&self) -> Option<String> {
        let files = self.files.as_deref()?;
        let get = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
        Some(format!(
            "files: {files}, created: {}, deleted: {}, transferred: {} ({}), total size: {}, sent: {}, received: {}",
            get(&self.created),
            get(&self.deleted),
            get(&self.transferred),
            get(&self.transferred_size),
            get(&self.total_size),
            get(&self.sent),
            get(&self.received),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_stats() {
        let out = "\nNumber of files: 4 (reg: 3, dir: 1)\nNumber of created files: 3 (reg: 3)\n\
                   Number of deleted files: 0\nNumber of regular files transferred: 3\n\
                   Total file size: 1.20K bytes\nTotal transferred file size: 1.20K bytes\n\
                   Literal data: 1.20K bytes\nMatched data: 0 bytes\nFile list size: 0\n\
                   File list generation time: 0.001 seconds\n\
                   File list transfer time: 0.000 seconds\nTotal bytes sent: 1.50K\n\
                   Total bytes received: 76\n\nsent 1.50K bytes  received 76 bytes  3.15K bytes/sec\n\
                   total size is 1.20K  speedup is 0.76\n";
        let mut stats = Stats::default();
        let unknown: Vec<&str> = out
            .lines()
            .filter(|l| !stats.absorb(l) && !l.is_empty())
            .collect();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(
            stats.summary().unwrap(),
            "files: 4 (reg: 3, dir: 1), created: 3 (reg: 3), deleted: 0, transferred: 3 (1.20K), \
             total size: 1.20K, sent: 1.50K, received: 76"
        );
    }

    #[test]
    fn layer_filters() {
        let filters = Filters {
            exclude: vec!["x".into()],
            layer: vec!["*.o".into()],
            verbose: false,
        };
        let load = common_args(&Transport::Local, Direction::Load, &filters);
        assert!(!load.contains(&"--delete".to_owned()));
        assert!(load.ends_with(&[
            "--include=*/".into(),
            "--include=*.o".into(),
            "--exclude=*".into()
        ]));
        let store = common_args(&Transport::Local, Direction::Store, &filters);
        assert!(store.contains(&"--delete".to_owned()));
        assert!(store.contains(&"--prune-empty-dirs".to_owned()));
    }
}
