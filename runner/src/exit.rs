//! Exit codes of `runner`, in one place (documented in ARCHITECTURE.md and `runner --help`).

/// How `runner` ends; the discriminant is the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Drained and de-registered after SIGTERM/SIGINT (also `--check` with a valid config).
    Drained = 0,
    /// Runtime failure: the actions runner died, the API refused for good, boot failed.
    Runtime = 1,
    /// Bad configuration; nothing was done.
    Config = 2,
    /// A hook failed; its name and exit code are logged.
    Hook = 3,
    /// `SHUTDOWN_DEADLINE_SEC` passed before de-registration completed.
    Deadline = 4,
}

impl Exit {
    /// The numeric process exit code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Text for `--help`: one line per exit code.
pub const HELP: &str = "\
Exit codes:
  0  drained and de-registered after SIGTERM/SIGINT (and --check with a valid configuration)
  1  runtime failure: run.sh died on its own (the runner is de-registered first), fatal API error
  2  bad configuration: every problem is printed, one line each; nothing was done
  3  a hook failed (its name and exit code are logged)
  4  SHUTDOWN_DEADLINE_SEC passed before de-registration completed; run.sh was killed";
