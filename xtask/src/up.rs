//! `cargo xtask up`: a local stack for trying the images by hand (filled in by a later issue).

use xshell::Shell;

/// Start a local stack: mock GitHub, ci-storage host and runners.
#[derive(Debug, Clone, clap::Args)]
pub struct Up {}

impl Up {
    /// Runs the command.
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask up` is not implemented yet (tracked in its own issue)")
    }
}
