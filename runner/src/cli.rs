//! Command line: `runner` (boot and run), `--check`, `exec-as`, and the `--help` text that
//! documents every environment variable (README.md is written from it).

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// Entrypoint of the warm self-hosted GitHub Actions runner image.
///
/// Validates the environment, runs the root hooks, prepares the account, pre-warms the work
/// directory from ci-storage while registering the runner, runs the user hooks, then starts
/// run.sh. On SIGTERM/SIGINT it drains: removes the runner's labels, waits for a running job
/// to finish, de-registers, stops run.sh and exits 0.
#[derive(Debug, Parser)]
#[command(name = "runner", version, after_long_help = after_help(), after_help = "Run `runner --help` for every environment variable and the exit codes.")]
pub struct Cli {
    /// Validate the configuration, print every problem, exit 0 (valid) or 2 (invalid).
    #[arg(long)]
    pub check: bool,

    /// A subcommand (default: boot and run the runner).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command as USER, like gosu: initgroups, setgid, setuid, HOME/USER/LOGNAME/SHELL
    /// set, in USER's home; with no command, USER's login shell. Used by root's bash profile
    /// so that `docker exec -it <c> bash -l` lands as `user` in /home/user.
    ExecAs {
        /// Account to become.
        user: String,
        /// Command and arguments (after `--`).
        #[arg(last = true)]
        cmd: Vec<OsString>,
    },
}

/// Every environment variable, one paragraph each.
pub const ENVIRONMENT: &str = "\
Environment (secrets may also be files /run/secrets/<NAME>; a file wins over an empty variable):
  GH_REPOSITORY                   required; owner/repo the runner serves
  GH_LABELS                       required; comma-separated custom labels, e.g. linux,big
  GH_TOKEN                        PAT with admin rights on the repository (classic: repo scope;
                                  fine-grained: Administration read/write); or /run/secrets/GH_TOKEN
  GH_APP_ID                       GitHub App id (App auth instead of GH_TOKEN)
  GH_APP_PRIVATE_KEY              App RSA private key, PEM; or /run/secrets/GH_APP_PRIVATE_KEY
  GH_APP_INSTALLATION_ID          App installation id; default: looked up from the repository
  GH_URL                          default https://github.com; a GitHub Enterprise Server URL;
                                  config.sh gets --url <GH_URL>/<owner>/<repo>
  GH_API_URL                      default https://api.github.com for github.com, else <GH_URL>/api/v3
  CI_STORAGE_HOST                 [user@]host[:port] of the ci-storage host; unset = no pre-warm
  CI_STORAGE_HOST_PRIVATE_KEY     ssh private key for it; or /run/secrets/CI_STORAGE_PRIVATE_KEY;
                                  written to ~user/.ssh/id_rsa (0600, owned by the user)
  CI_STORAGE_HOST_KEY             pinned host key (known_hosts line or \"ssh-ed25519 AAAA...\");
                                  strict host key checking when set; added to ~user/.ssh/known_hosts
  CI_STORAGE_DIR                  default ~/ci-storage/<owner>/<repo>; storage dir on the host
  CI_STORAGE_PREWARM_TIMEOUT_SEC  default 300; bound on pre-warm, past it boot continues cold
  RUNNER_NAME_PREFIX              default ci-runner; name = <prefix>-<task id> or
                                  <prefix>-<yyyymmdd-hhmmss>-<4 hex digits>
  RUNNER_TASK_ID                  orchestrator task id used in the name instead of time+random
  RUNNER_USER                     default user; account for user hooks, config.sh, run.sh
  RUNNER_WORK_DIR                 default <home of RUNNER_USER>/_work; config.sh --work; the
                                  checkout pre-warmed is <work>/<repo>/<repo>
  RUNNER_HOME                     default <home of RUNNER_USER>/actions-runner (config.sh, run.sh)
  RUNNER_ROOT_HOOKS_DIR           default /root; entrypoint.*.sh run as root, lexical order
  RUNNER_USER_HOOKS_DIR           default <home of RUNNER_USER>; entrypoint.*.sh run as the user,
                                  lexical order, after registration (pre-warm may still run)
  RUNNER_STATUS_PORT              default 8088, 0 = off; GET /status answers
                                  {\"state\":\"booting|ready|busy|draining|stopped\",\"runner_name\",\"job\"},
                                  200 when ready or busy, else 503 (a health check)
  RUNNER_STATUS_FILE              default /run/runner/status; the same JSON, rewritten on change
  RUNNER_SECRETS_DIR              default /run/secrets; where secret files are read from
  SHUTDOWN_RETRY_INTERVAL_SEC     default 10; while the runner is busy after a signal, removal is
                                  retried at once when its job ends, and every this often anyway
  SHUTDOWN_DEADLINE_SEC           default 0 = none; hard deadline after the first signal: then
                                  run.sh is killed and runner exits 4 (a second signal does not
                                  skip de-registration; this does)
  DEBUG_SHUTDOWN_DELAY_SEC        default 0; sleep after de-registration, before exit
  TZ                              default UTC; time zone of hooks, config.sh and jobs
  RUST_LOG                        default info; log filter (e.g. debug)
Seconds may be fractional (0.5). run.sh, config.sh, user hooks and ci-storage never see
GH_TOKEN, GH_APP_PRIVATE_KEY or CI_STORAGE_HOST_PRIVATE_KEY; root hooks get the full environment.";

fn after_help() -> String {
    format!(
        "{ENVIRONMENT}\n\n{}\n\nLogs: one line per step on stderr, e.g. `step=register elapsed_ms=812`;\n\
         steps: validate hooks.root setup prewarm register hooks.user runner.start listening\n\
         job.started job.finished drain.labels drain.attempt deregistered.",
        crate::exit::HELP
    )
}
