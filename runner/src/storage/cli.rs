//! Command line of `ci-storage` (compatible with the original tool) and its validation.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use super::rsync::Filters;
use super::slots::normalize_slot_id;
use super::transport::{check_key_file, HostSpec, SshOptions};
use super::Error;

/// Default `--storage-dir`.
pub const STORAGE_DIR_DEFAULT: &str = "~/ci-storage";
/// Default `--storage-max-age-sec`.
pub const STORAGE_MAX_AGE_SEC_DEFAULT: u64 = 3600;
/// Default `--storage-keep-hint-slots`.
pub const STORAGE_KEEP_HINT_SLOTS_DEFAULT: u64 = 5;
/// Default ssh connect timeout (`CI_STORAGE_CONNECT_TIMEOUT_SEC`).
pub const CONNECT_TIMEOUT_SEC_DEFAULT: u64 = 10;

const ABOUT: &str = "Stores a local directory into a slot of a storage (local or on a host \
over ssh), or loads a slot into it, with rsync.";

const LONG_ABOUT: &str = "\
Stores the content of a local directory into a slot of the storage, or loads a slot into \
the directory. Under the hood: rsync. A store writes <storage-dir>/<slot-id>.tmp.<ts> with \
--link-dest pointing to the slot this directory was last loaded from (else the newest slot), so \
unchanged files become hard links, then swaps it into place atomically (an existing slot \
becomes <slot-id>.bak.<ts>, removed after a minute). After each store, maintenance runs on the \
storage host, detached and under a lock: slots older than --storage-max-age-sec are removed, \
except the newest one and the newest slot of each of the --storage-keep-hint-slots most recent \
unique (first) hints.

A load assumes the local directory already holds most files, so rsync only moves the delta. \
What was loaded (slot id, hints) is remembered in /tmp/.ci-storage.meta.<local dir with \
[^A-Za-z0-9_-] replaced by _>, so a later store without --hint reuses the hints and dedups \
against the loaded slot.

Over ssh, one connection serves all steps of a command (ControlMaster in a private temp dir, \
closed at exit), in BatchMode with ConnectTimeout=$CI_STORAGE_CONNECT_TIMEOUT_SEC (default 10). \
With --storage-host-key / CI_STORAGE_HOST_KEY the host key is checked strictly against it; \
without it, host key checking is OFF (StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null), \
as in the original tool. The private key is --ssh-key / CI_STORAGE_SSH_KEY, else ssh's defaults.

The host needs only sshd, rsync and perl (scripts are sent inline).";

const AFTER_HELP: &str = "\
Exit codes: 0 success; 1 slot not found or an operation failed (rsync, ssh, the host); \
2 bad usage or input (nothing was done).

Examples:
  ci-storage store --slot-id \"$GITHUB_RUN_ID\" --local-dir ~/_work/app --hint \"$BRANCH\" \\
    --hint '@package-lock.json' --storage-host user@storage:22
  ci-storage load --slot-id \"$GITHUB_RUN_ID *\" --local-dir ~/_work/app \\
    --storage-host user@storage --storage-host-key \"ssh-ed25519 AAAA...\"";

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Store the local dir into a slot.
    Store,
    /// Load a slot into the local dir.
    Load,
}

/// Raw command line (options may be mixed with the positional action; empty values mean
/// "default", as the original's GitHub Action passes them).
#[derive(Debug, Parser)]
#[command(name = "ci-storage", version, args_override_self = true, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Args {
    /// Action to run.
    #[arg(value_enum)]
    pub action: Action,

    /// Storage host, [user@]host[:port], with key-based ssh access. Absent or empty: the local
    /// filesystem (no ssh).
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub storage_host: Option<String>,

    /// Storage directory (created if missing). Over ssh, "~" is the remote user's home;
    /// locally it is expanded. [default: ~/ci-storage]
    #[arg(long, value_name = "DIR")]
    pub storage_dir: Option<String>,

    /// Remove slots created more than this many seconds ago (except the newest one and the
    /// per-hint slots, see --storage-keep-hint-slots). [default: 3600]
    #[arg(long, value_name = "N")]
    pub storage_max_age_sec: Option<String>,

    /// Number of most recent unique hints (a slot's first hint) whose newest slot maintenance
    /// keeps even past --storage-max-age-sec. [default: 5]
    #[arg(long, value_name = "N")]
    pub storage_keep_hint_slots: Option<String>,

    /// Slot id to store to or load from (characters outside [A-Za-z0-9_-] become "_"). Load:
    /// repeat it (or give a whitespace-separated list) to try ids in order; "*" picks the best
    /// slot by hints, else the newest (a layer follows the local full snapshot history); "*"
    /// on an empty storage cleans the local dir (a no-op for a layer). Not "*" on store.
    #[arg(long, required = true, value_name = "ID")]
    pub slot_id: Vec<String>,

    /// Local directory to store from or load into (created on load).
    #[arg(long, required = true, value_name = "DIR")]
    pub local_dir: String,

    /// Hints describing the content (repeatable, multi-line; words split on whitespace), the
    /// leftmost weighing most when "*" picks a slot. A line "@pattern…" becomes one hint:
    /// "@" + 16 hex of sha256 over the contents of the files matching the space-separated
    /// patterns (relative to --local-dir; globs with * ? [ ] and **, files sorted by path;
    /// a non-glob item must exist). Load without --hint uses the hints recorded locally; store
    /// without --hint uses the hints of the last load.
    #[arg(long, value_name = "HINT")]
    pub hint: Vec<String>,

    /// rsync exclude pattern(s), repeatable, newline-separated. Excluded local files survive
    /// loads.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    /// rsync include pattern(s) making this a layer: only matching files are transferred,
    /// empty dirs are skipped, and load deletes nothing. Keep layers in their own
    /// --storage-dir. "*" = every file.
    #[arg(long, value_name = "PATTERN")]
    pub layer: Vec<String>,

    /// Print every transferred file (rsync -v) instead of a summary.
    #[arg(long)]
    pub verbose: bool,

    /// ssh private key file for the storage host.
    #[arg(long, env = "CI_STORAGE_SSH_KEY", value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,

    /// Pinned host key: a known_hosts line, or a bare public key ("ssh-ed25519 AAAA…").
    /// Enables strict host key checking.
    #[arg(
        long,
        env = "CI_STORAGE_HOST_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub storage_host_key: Option<String>,
}

/// Validated settings of one run.
#[derive(Debug)]
pub struct Config {
    /// Store or load.
    pub action: Action,
    /// Storage host; `None` = local filesystem.
    pub host: Option<HostSpec>,
    /// Storage dir as the scripts and rsync see it (remote: relative to home).
    pub storage_dir: String,
    /// `--storage-max-age-sec`.
    pub max_age_sec: u64,
    /// `--storage-keep-hint-slots`.
    pub keep_hint_slots: u64,
    /// Normalised slot ids, in order.
    pub slot_ids: Vec<String>,
    /// Local dir without trailing slashes.
    pub local_dir: String,
    /// Raw `--hint` values (expanded later, relative to the local dir).
    pub hint_args: Vec<String>,
    /// Excludes, layer includes, verbosity.
    pub filters: Filters,
    /// ssh settings.
    pub ssh: SshOptions,
}

impl Args {
    /// Validates the arguments; every problem is an [`Error::Usage`].
    pub fn into_config(self) -> Result<Config, Error> {
        let host = match self.storage_host.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(spec) => Some(HostSpec::parse(spec)?),
        };
        let max_age_sec = number(
            "--storage-max-age-sec",
            self.storage_max_age_sec,
            STORAGE_MAX_AGE_SEC_DEFAULT,
        )?;
        let keep_hint_slots = number(
            "--storage-keep-hint-slots",
            self.storage_keep_hint_slots,
            STORAGE_KEEP_HINT_SLOTS_DEFAULT,
        )?;
        let slot_ids: Vec<String> = self
            .slot_id
            .join(" ")
            .split_whitespace()
            .map(normalize_slot_id)
            .collect();
        match (self.action, slot_ids.as_slice()) {
            (_, []) => return Err(Error::Usage("--slot-id is empty".into())),
            (Action::Store, [id]) if id == "*" => {
                return Err(Error::Usage(
                    "slot-id=\"*\" is not allowed for \"store\": give the slot id to store to"
                        .into(),
                ))
            }
            (Action::Store, [_]) => {}
            (Action::Store, _) => {
                return Err(Error::Usage(
                    "for \"store\", exactly one --slot-id is required".into(),
                ))
            }
            (Action::Load, _) => {}
        }
        let trimmed = self.local_dir.trim_end_matches('/');
        let local_dir = match (trimmed, self.local_dir.as_str()) {
            (_, "") => return Err(Error::Usage("--local-dir is empty".into())),
            ("", _) => "/".to_owned(),
            (dir, _) => dir.to_owned(),
        };
        let storage_dir = storage_dir(self.storage_dir.as_deref(), host.is_some())?;
        let ssh = SshOptions {
            key_file: self.ssh_key.filter(|p| !p.as_os_str().is_empty()),
            host_key: self.storage_host_key.filter(|k| !k.trim().is_empty()),
            connect_timeout_sec: connect_timeout()?,
        };
        if let (Some(_), Some(key)) = (&host, &ssh.key_file) {
            check_key_file(key)?;
        }
        Ok(Config {
            action: self.action,
            host,
            storage_dir,
            max_age_sec,
            keep_hint_slots,
            slot_ids,
            local_dir,
            hint_args: self.hint,
            filters: Filters {
                exclude: lines(&self.exclude),
                layer: lines(&self.layer),
                verbose: self.verbose,
            },
            ssh,
        })
    }
}

fn number(option: &str, value: Option<String>, default: u64) -> Result<u64, Error> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            Error::Usage(format!(
                "{option} must be a non-negative integer, got \"{v}\""
            ))
        }),
    }
}

fn lines(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn storage_dir(value: Option<&str>, remote: bool) -> Result<String, Error> {
    let dir = match value.map(|v| v.trim_end_matches('/')) {
        None | Some("") => STORAGE_DIR_DEFAULT,
        Some(dir) => dir,
    };
    if remote {
        // rsync does not expand "~" remotely, but relative paths start at the home dir.
        let rel = dir
            .strip_prefix('~')
            .map_or(dir, |r| r.trim_start_matches('/'));
        return Ok(if rel.is_empty() {
            ".".into()
        } else {
            rel.into()
        });
    }
    match dir.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            let home = std::env::var("HOME").map_err(|_| {
                Error::Usage("--storage-dir starts with ~ but HOME is unset".into())
            })?;
            Ok(format!("{}{rest}", home.trim_end_matches('/')))
        }
        _ => Ok(dir.to_owned()),
    }
}

fn connect_timeout() -> Result<u64, Error> {
    match std::env::var("CI_STORAGE_CONNECT_TIMEOUT_SEC")
        .as_deref()
        .map(str::trim)
    {
        Err(_) | Ok("") => Ok(CONNECT_TIMEOUT_SEC_DEFAULT),
        Ok(v) => match v.parse::<u64>() {
            Ok(n) if (1..=600).contains(&n) => Ok(n),
            _ => Err(Error::Usage(format!(
                "CI_STORAGE_CONNECT_TIMEOUT_SEC must be 1..600 seconds, got \"{v}\""
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, Error> {
        let mut argv = vec!["ci-storage"];
        argv.extend(args);
        Args::try_parse_from(argv)
            .map_err(|e| Error::Usage(e.to_string()))?
            .into_config()
    }

    #[test]
    fn intermixed_and_split_slot_ids() {
        let c = parse(&[
            "--slot-id=a b",
            "load",
            "--slot-id",
            "c.d",
            "--local-dir",
            "x//",
        ])
        .unwrap();
        assert_eq!(c.action, Action::Load);
        assert_eq!(c.slot_ids, vec!["a", "b", "c_d"]);
        assert_eq!(c.local_dir, "x");
        // As with argparse, a repeated single-value option: the last one wins.
        let c = parse(&[
            "load",
            "--slot-id=a",
            "--local-dir=x",
            "--local-dir=y",
            "--slot-id=b",
        ])
        .unwrap();
        assert_eq!((c.local_dir.as_str(), c.slot_ids.len()), ("y", 2));
    }

    #[test]
    fn empty_values_mean_defaults() {
        let c = parse(&[
            "store",
            "--slot-id=1",
            "--local-dir=.",
            "--storage-host=",
            "--storage-max-age-sec=",
            "--storage-keep-hint-slots=",
            "--hint=",
            "--exclude=",
            "--layer=",
        ])
        .unwrap();
        assert!(c.host.is_none());
        assert_eq!(c.max_age_sec, STORAGE_MAX_AGE_SEC_DEFAULT);
        assert_eq!(c.keep_hint_slots, STORAGE_KEEP_HINT_SLOTS_DEFAULT);
        assert!(c.filters.layer.is_empty() && c.filters.exclude.is_empty());
    }

    #[test]
    fn storage_dir_tilde() {
        assert_eq!(storage_dir(None, true).unwrap(), "ci-storage");
        assert_eq!(storage_dir(Some("~"), true).unwrap(), ".");
        assert_eq!(storage_dir(Some("/abs/"), true).unwrap(), "/abs");
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            storage_dir(Some("~/x"), false).unwrap(),
            format!("{home}/x")
        );
    }

    #[test]
    fn store_rules() {
        assert!(parse(&["store", "--slot-id=*", "--local-dir=."]).is_err());
        assert!(parse(&["store", "--slot-id=a b", "--local-dir=."]).is_err());
        assert!(parse(&["load", "--slot-id= ", "--local-dir=."]).is_err());
        assert!(parse(&[
            "load",
            "--slot-id=a",
            "--local-dir=.",
            "--storage-max-age-sec=x"
        ])
        .is_err());
    }
}
