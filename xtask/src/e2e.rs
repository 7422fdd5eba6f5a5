//! `cargo xtask e2e`: builds the test images (images/test.toml), then runs the Docker
//! end-to-end tests (`cargo test -p e2e --test docker`), which read `target/images.json`.

use std::path::PathBuf;

use xshell::{cmd, Shell};

use crate::build_image::BuildImage;

/// Build the test images and run the Docker end-to-end tests.
#[derive(Debug, Clone, clap::Args)]
pub struct E2e {
    /// Arguments passed to the test binary (a test name filter, `--nocapture`, …).
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

impl E2e {
    /// Runs the command.
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        BuildImage {
            names: Vec::new(),
            manifest: PathBuf::from("images/test.toml"),
            print: false,
            no_cache: false,
            no_pull: false,
            runner_tarball: None,
            platform: "linux/amd64".into(),
            verbose: false,
        }
        .run(sh)?;
        let args = &self.test_args;
        cmd!(sh, "cargo test -p e2e --test docker -- {args...}").run()?;
        Ok(())
    }
}
