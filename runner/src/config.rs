//! Configuration: environment variables and `/run/secrets/<NAME>` files, validated before
//! anything else happens. Every problem is collected and reported together, one line each.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use crate::secret::Secret;

mod checks;

pub use checks::{is_valid_label, is_valid_name_part};

/// Where Docker and Compose mount secrets; `RUNNER_SECRETS_DIR` overrides it (tests).
pub const DEFAULT_SECRETS_DIR: &str = "/run/secrets";

/// `owner/repo` of the repository the runner serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// Account or organisation.
    pub owner: String,
    /// Repository name.
    pub name: String,
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// How the runner authenticates to the GitHub API.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A personal access token with admin rights on the repository.
    Pat(Secret),
    /// A GitHub App installed on the repository.
    App {
        /// App id, the JWT's issuer.
        app_id: u64,
        /// RSA private key (PEM) that signs the app's JWTs.
        private_key: Secret,
        /// Installation id; looked up from the repository when absent.
        installation_id: Option<u64>,
    },
}

/// The ci-storage host that pre-warms the work directory.
#[derive(Debug, Clone)]
pub struct Storage {
    /// `[user@]host[:port]`, as given.
    pub host: String,
    /// ssh private key for the host, if any (else ssh's defaults apply).
    pub private_key: Option<Secret>,
    /// Pinned host key (`known_hosts` line or `type base64`); strict checking when set.
    pub host_key: Option<String>,
    /// Storage directory on the host for this repository.
    pub dir: String,
    /// Bound on pre-warm; past it boot continues cold.
    pub prewarm_timeout: Duration,
}

/// Everything `runner` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Repository served.
    pub repo: Repo,
    /// Custom labels, in the order given.
    pub labels: Vec<String>,
    /// API credentials.
    pub auth: Auth,
    /// GitHub (or GHES) base URL without a trailing slash.
    pub gh_url: String,
    /// REST API base URL without a trailing slash.
    pub api_url: String,
    /// Pre-warm source; `None` = no pre-warm.
    pub storage: Option<Storage>,
    /// Runner name prefix.
    pub name_prefix: String,
    /// Orchestrator task id used in the name instead of time+random.
    pub task_id: Option<String>,
    /// `config.sh --work`.
    pub work_dir: PathBuf,
    /// Where `config.sh` and `run.sh` are.
    pub runner_home: PathBuf,
    /// Account that runs user hooks, `config.sh`, `run.sh`.
    pub user: String,
    /// Directory of `entrypoint.*.sh` run as the current user (root in the image).
    pub root_hooks_dir: PathBuf,
    /// Directory of `entrypoint.*.sh` run as `user`.
    pub user_hooks_dir: PathBuf,
    /// Status HTTP port; `None` = off.
    pub status_port: Option<u16>,
    /// Status JSON file.
    pub status_file: PathBuf,
    /// Fallback periodic retry of `config.sh remove` while the runner is busy.
    pub shutdown_retry_interval: Duration,
    /// Hard deadline after the first signal; `None` = wait for the job however long it takes.
    pub shutdown_deadline: Option<Duration>,
    /// Sleep after de-registration, before exit.
    pub debug_shutdown_delay: Duration,
    /// Time zone given to every child.
    pub tz: String,
}

/// One configuration problem: the variable and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Name of the variable (or secret file) at fault.
    pub var: String,
    /// What is wrong and the expected form.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

/// All configuration problems found, printed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// The variables and secret files `runner` reads; built from the process or by tests.
pub struct Source {
    vars: HashMap<String, String>,
    secrets_dir: PathBuf,
}

impl Source {
    /// Reads the process environment; secrets from `RUNNER_SECRETS_DIR` or `/run/secrets`.
    pub fn from_process() -> Source {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let secrets_dir = vars
            .get("RUNNER_SECRETS_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR));
        Source { vars, secrets_dir }
    }

    /// A source from explicit variables and a secrets directory.
    pub fn new(vars: HashMap<String, String>, secrets_dir: impl Into<PathBuf>) -> Source {
        Source {
            vars,
            secrets_dir: secrets_dir.into(),
        }
    }

    /// A non-empty, trimmed variable.
    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A secret: the variable when non-empty, else the first existing file of `files`.
    /// An unreadable file is a problem; a missing one is not.
    fn secret(&self, name: &str, files: &[&str], out: &mut Vec<Problem>) -> Option<Secret> {
        if let Some(v) = self.var(name) {
            return Some(Secret::new(v));
        }
        for file in files {
            let path = self.secrets_dir.join(file);
            match std::fs::read_to_string(&path) {
                Ok(s) if !s.trim().is_empty() => return Some(Secret::new(s.trim())),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => out.push(problem(
                    name,
                    format!("cannot read secret file {}: {e}", path.display()),
                )),
            }
        }
        None
    }
}

fn problem(var: &str, message: impl Into<String>) -> Problem {
    Problem {
        var: var.to_string(),
        message: message.into(),
    }
}

impl Config {
    /// Validates everything and returns the configuration, or every problem found.
    pub fn load(src: &Source) -> Result<Config, Problems> {
        let mut out = Vec::new();
        let p = &mut out;

        let repo = checks::repo(src.var("GH_REPOSITORY"), p);
        let labels = checks::labels(src.var("GH_LABELS"), p);
        let auth = checks::auth(src, p);
        let gh_url = checks::url("GH_URL", src.var("GH_URL"), p)
            .unwrap_or_else(|| "https://github.com".to_string());
        let api_url = match src.var("GH_API_URL") {
            Some(v) => checks::url("GH_API_URL", Some(v), p).unwrap_or_default(),
            None => derive_api_url(&gh_url),
        };

        let user = src.var("RUNNER_USER").unwrap_or("user").to_string();
        let user_home = checks::user_home(&user, p);
        let home = user_home
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/home/{user}")));

        let storage = checks::storage(src, repo.as_ref(), p);
        let name_prefix = match src.var("RUNNER_NAME_PREFIX") {
            Some(v) if is_valid_name_part(v) && v.len() <= 40 => v.to_string(),
            Some(_) => {
                p.push(problem(
                    "RUNNER_NAME_PREFIX",
                    "expected 1-40 characters from A-Z a-z 0-9 . _ -",
                ));
                String::new()
            }
            None => "ci-runner".to_string(),
        };
        let task_id = match src.var("RUNNER_TASK_ID") {
            Some(v) if is_valid_name_part(v) && v.len() <= 64 => Some(v.to_string()),
            Some(_) => {
                p.push(problem(
                    "RUNNER_TASK_ID",
                    "expected 1-64 characters from A-Z a-z 0-9 . _ -",
                ));
                None
            }
            None => None,
        };
        let work_dir = checks::abs_path("RUNNER_WORK_DIR", src.var("RUNNER_WORK_DIR"), p)
            .unwrap_or_else(|| home.join("_work"));
        let runner_home = checks::abs_path("RUNNER_HOME", src.var("RUNNER_HOME"), p)
            .unwrap_or_else(|| home.join("actions-runner"));
        let root_hooks_dir =
            checks::abs_path("RUNNER_ROOT_HOOKS_DIR", src.var("RUNNER_ROOT_HOOKS_DIR"), p)
                .unwrap_or_else(|| PathBuf::from("/root"));
        let user_hooks_dir =
            checks::abs_path("RUNNER_USER_HOOKS_DIR", src.var("RUNNER_USER_HOOKS_DIR"), p)
                .unwrap_or_else(|| home.clone());
        let status_port = match src.var("RUNNER_STATUS_PORT") {
            None => Some(8088),
            Some(v) => match v.parse::<u16>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    p.push(problem(
                        "RUNNER_STATUS_PORT",
                        format!("expected a TCP port 0-65535 (0 = off), got {v:?}"),
                    ));
                    None
                }
            },
        };
        let status_file = checks::abs_path("RUNNER_STATUS_FILE", src.var("RUNNER_STATUS_FILE"), p)
            .unwrap_or_else(|| PathBuf::from("/run/runner/status"));
        let shutdown_retry_interval =
            checks::secs("SHUTDOWN_RETRY_INTERVAL_SEC", src, 10.0, false, p);
        let deadline = checks::secs("SHUTDOWN_DEADLINE_SEC", src, 0.0, true, p);
        let debug_shutdown_delay = checks::secs("DEBUG_SHUTDOWN_DELAY_SEC", src, 0.0, true, p);
        let tz = checks::tz(src.var("TZ"), p);

        if !out.is_empty() {
            return Err(Problems(out));
        }
        let (Some(repo), Some(labels), Some(auth)) = (repo, labels, auth) else {
            // Unreachable in practice: a missing value always records a problem above.
            return Err(Problems(vec![problem(
                "GH_REPOSITORY",
                "incomplete configuration",
            )]));
        };
        Ok(Config {
            repo,
            labels,
            auth,
            gh_url,
            api_url,
            storage,
            name_prefix,
            task_id,
            work_dir,
            runner_home,
            user,
            root_hooks_dir,
            user_hooks_dir,
            status_port,
            status_file,
            shutdown_retry_interval,
            shutdown_deadline: (!deadline.is_zero()).then_some(deadline),
            debug_shutdown_delay,
            tz,
        })
    }

    /// `<GH_URL>/<owner>/<repo>`, the URL given to `config.sh --url`.
    pub fn repo_url(&self) -> String {
        format!("{}/{}", self.gh_url, self.repo)
    }

    /// The repository checkout inside the work directory (the runner's default layout).
    pub fn checkout_dir(&self) -> PathBuf {
        self.work_dir.join(&self.repo.name).join(&self.repo.name)
    }
}

/// `https://api.github.com` for github.com, else `<GH_URL>/api/v3` (GitHub Enterprise Server).
pub fn derive_api_url(gh_url: &str) -> String {
    let host = Url::parse(gh_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    match host.as_deref() {
        Some("github.com") | Some("www.github.com") => "https://api.github.com".to_string(),
        _ => format!("{gh_url}/api/v3"),
    }
}

/// Whether `path` looks absolute; hooks and directories must not depend on the cwd.
fn is_abs(path: &str) -> bool {
    Path::new(path).is_absolute()
}

#[cfg(test)]
mod tests;
