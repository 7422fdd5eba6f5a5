//! Throwaway keys generated at test time: an ed25519 ssh key pair for the storage host and an
//! RSA key for a GitHub App.

use std::process::Command;

use anyhow::{ensure, Context, Result};

/// An ssh key pair (OpenSSH formats).
#[derive(Clone)]
pub struct SshKey {
    /// Private key, `-----BEGIN OPENSSH PRIVATE KEY-----` …
    pub private: String,
    /// Public key line, `ssh-ed25519 AAAA… comment`.
    pub public: String,
}

impl std::fmt::Debug for SshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SshKey {
    /// `ssh-keygen -t ed25519 -N '' -f …` in a temporary directory.
    pub fn generate(comment: &str) -> Result<SshKey> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("id_ed25519");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&path))
        .context("ssh-keygen (install it: apt-get install -y openssh-client)")?;
        Ok(SshKey {
            private: std::fs::read_to_string(&path)?,
            public: std::fs::read_to_string(path.with_extension("pub"))?
                .trim()
                .to_owned(),
        })
    }
}

/// An RSA key pair in PEM, for GitHub App JWTs (RS256).
#[derive(Clone)]
pub struct AppKey {
    /// Private key PEM (what `GH_APP_PRIVATE_KEY` holds).
    pub private_pem: String,
    /// Public key PEM (SPKI), given to the mock.
    pub public_pem: String,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKey").finish_non_exhaustive()
    }
}

impl AppKey {
    /// `openssl genrsa 2048` (fast, unlike RSA generation in an unoptimised test build).
    pub fn generate() -> Result<AppKey> {
        let dir = tempfile::tempdir()?;
        let private = dir.path().join("app.pem");
        let public = dir.path().join("app.pub.pem");
        run(Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&private)
            .arg("2048"))
        .context("openssl genrsa (install it: apt-get install -y openssl)")?;
        run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public))?;
        Ok(AppKey {
            private_pem: std::fs::read_to_string(private)?,
            public_pem: std::fs::read_to_string(public)?,
        })
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
