//! `cargo xtask publish`: tags and pushes images to a registry.

use xshell::Shell;

/// Tag and push images to a registry.
#[derive(Debug, Clone, clap::Args)]
pub struct Publish {}

impl Publish {
    /// Runs the command.
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("not yet")
    }
}
