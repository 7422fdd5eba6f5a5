//! `cargo xtask`: builds, publishes, tests and benchmarks the runner images.
//!
//! One module per command, each a flags struct with `fn run(self, sh: &Shell)`.

mod artifact;
mod base;
mod bench;
mod build_image;
mod ci;
mod context;
mod docker;
mod dockerfile;
mod e2e;
mod manifest;
mod plan;
mod publish;
mod tags;
mod up;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use xshell::Shell;

/// Builds, publishes, tests and benchmarks the warm runner images.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build images from the manifest (images/images.toml).
    BuildImage(build_image::BuildImage),
    /// Tag and push images to a registry.
    Publish(publish::Publish),
    /// Run everything CI runs: fmt, clippy, tests, e2e.
    Ci(ci::Ci),
    /// Build the test images and run the Docker end-to-end tests.
    E2e(e2e::E2e),
    /// Start a local stack (mock GitHub, ci-storage host, runners).
    Up(up::Up),
    /// Measure build times, image sizes and boot times.
    Bench(bench::Bench),
    /// Rewrite the golden files of the Dockerfile tests.
    Bless(Bless),
}

/// Flags of `cargo xtask bless`.
#[derive(Debug, clap::Args)]
struct Bless {}

impl Bless {
    fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let _dir = sh.push_dir(workspace_root());
        xshell::cmd!(sh, "cargo test -p xtask golden")
            .env("UPDATE_GOLDEN", "1")
            .run()?;
        Ok(())
    }
}

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    let xtask = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().map(PathBuf::from).unwrap_or(xtask)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = Shell::new()?;
    sh.change_dir(workspace_root());
    match cli.command {
        Command::BuildImage(c) => c.run(&sh),
        Command::Publish(c) => c.run(&sh),
        Command::Ci(c) => c.run(&sh),
        Command::E2e(c) => c.run(&sh),
        Command::Up(c) => c.run(&sh),
        Command::Bench(c) => c.run(&sh),
        Command::Bless(c) => c.run(&sh),
    }
}
