//! `cargo xtask bench`: build times, image sizes, boot times (filled in by a later issue).

use xshell::Shell;

/// Measure build times, image sizes and boot times.
#[derive(Debug, Clone, clap::Args)]
pub struct Bench {}

impl Bench {
    /// Runs the command.
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask bench` is not implemented yet (tracked in its own issue)")
    }
}
