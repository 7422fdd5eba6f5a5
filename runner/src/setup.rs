//! Preparing the account: home, ssh key and pinned host key, work directory. Ownership is
//! fixed only on what we create or what is wrong at the top: never a recursive chown, which
//! on a large pre-warmed work directory is a known slow-start bug.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::{Config, Storage};
use crate::privdrop::Account;

/// What setup produced for later steps.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// The ci-storage ssh key file, when a key was configured.
    pub ssh_key: Option<PathBuf>,
}

/// Prepares home, ssh material and the work directory for `acct`.
pub fn prepare(cfg: &Config, acct: &Account) -> anyhow::Result<Prepared> {
    if !cfg.runner_home.join("config.sh").is_file() {
        bail!(
            "RUNNER_HOME={} has no config.sh: is the actions runner installed there?",
            cfg.runner_home.display()
        );
    }
    ensure_dir(&acct.home, acct, 0o755)?;
    let mut prepared = Prepared::default();
    if let Some(storage) = &cfg.storage {
        prepared.ssh_key = ssh_material(storage, acct)?;
    }
    // The work directory and the checkout inside it: create what is missing, and fix the owner
    // of each level (not of its contents).
    ensure_dir(&cfg.work_dir, acct, 0o755)?;
    ensure_dir(&cfg.work_dir.join(&cfg.repo.name), acct, 0o755)?;
    ensure_dir(&cfg.checkout_dir(), acct, 0o755)?;
    Ok(prepared)
}

/// Writes the key (0600) and the pinned host key into `~/.ssh`, owned by the account.
/// The key goes to `~/.ssh/id_rsa`, ssh's default identity (ssh reads any key type from it),
/// so `ci-storage` in workflows finds it as in the original image.
fn ssh_material(storage: &Storage, acct: &Account) -> anyhow::Result<Option<PathBuf>> {
    let ssh_dir = acct.home.join(".ssh");
    ensure_dir(&ssh_dir, acct, 0o700)?;
    let mut key_file = None;
    if let Some(key) = &storage.private_key {
        let path = ssh_dir.join("id_rsa");
        let tmp = ssh_dir.join(".id_rsa.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut body = key.expose().to_string();
        body.push('\n');
        f.write_all(body.as_bytes())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        drop(f);
        chown(&tmp, acct)?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot move the key into {}", path.display()))?;
        key_file = Some(path);
    }
    if let Some(host_key) = &storage.host_key {
        let line = known_hosts_line(&storage.host, host_key);
        let path = ssh_dir.join("known_hosts");
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        if !existing.lines().any(|l| l.trim() == line) {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o644)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            writeln!(f, "{line}").with_context(|| format!("cannot write {}", path.display()))?;
            chown(&path, acct)?;
        }
    }
    Ok(key_file)
}

/// A known_hosts line for `[user@]host[:port]`: kept as is when it names hosts already.
pub fn known_hosts_line(storage_host: &str, host_key: &str) -> String {
    let first = host_key.split_whitespace().next().unwrap_or("");
    let is_key_type =
        first.starts_with("ssh-") || first.starts_with("ecdsa-") || first.starts_with("sk-");
    if !is_key_type {
        return host_key.trim().to_string();
    }
    let host_port = storage_host
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(storage_host);
    let pattern = match host_port.rsplit_once(':') {
        Some((h, port)) if port != "22" => format!("[{h}]:{port}"),
        Some((h, _)) => h.to_string(),
        None => host_port.to_string(),
    };
    format!("{pattern} {}", host_key.trim())
}

/// Creates `dir` (and parents) if missing, with `mode`; makes the directory itself owned by
/// the account if it is not. Contents are left alone.
fn ensure_dir(dir: &Path, acct: &Account, mode: u32) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            if m.uid() != acct.uid.as_raw() {
                chown(dir, acct)?;
            }
            Ok(())
        }
        Ok(_) => bail!("{} exists and is not a directory", dir.display()),
        Err(_) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot chmod {}", dir.display()))?;
            chown(dir, acct)
        }
    }
}

/// chown to the account; a no-op when we are the account (unprivileged tests).
fn chown(path: &Path, acct: &Account) -> anyhow::Result<()> {
    if acct.is_current() {
        return Ok(());
    }
    nix::unistd::chown(path, Some(acct.uid), Some(acct.gid))
        .with_context(|| format!("cannot chown {} to {}", path.display(), acct.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn me(home: &Path) -> Account {
        Account {
            name: "me".into(),
            uid: nix::unistd::Uid::effective(),
            gid: nix::unistd::Gid::effective(),
            home: home.to_path_buf(),
            shell: "/bin/sh".into(),
            groups: vec![],
        }
    }

    #[test]
    fn ssh_key_is_private_and_host_key_pinned_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let acct = me(dir.path());
        let storage = Storage {
            host: "ci@store:2222".into(),
            private_key: Some(Secret::new(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----",
            )),
            host_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5".into()),
            dir: "~/ci-storage".into(),
            prewarm_timeout: std::time::Duration::from_secs(1),
        };
        for _ in 0..2 {
            let key = ssh_material(&storage, &acct)
                .expect("ssh material")
                .expect("key file");
            assert_eq!(key, dir.path().join(".ssh/id_rsa"));
            let meta = std::fs::metadata(&key).expect("key");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            let text = std::fs::read_to_string(&key).expect("key");
            assert!(text.starts_with("-----BEGIN OPENSSH") && text.ends_with("KEY-----\n"));
        }
        let ssh = std::fs::metadata(dir.path().join(".ssh")).expect(".ssh");
        assert_eq!(ssh.permissions().mode() & 0o777, 0o700);
        let known = std::fs::read_to_string(dir.path().join(".ssh/known_hosts")).expect("kh");
        assert_eq!(known, "[store]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n");
    }

    #[test]
    fn known_hosts_lines() {
        assert_eq!(
            known_hosts_line("ci@store:2222", "ssh-ed25519 AAAAC3Nza"),
            "[store]:2222 ssh-ed25519 AAAAC3Nza"
        );
        assert_eq!(
            known_hosts_line("store", "ssh-ed25519 AAAAC3Nza"),
            "store ssh-ed25519 AAAAC3Nza"
        );
        assert_eq!(
            known_hosts_line("store", "store,10.0.0.1 ssh-ed25519 AAAA"),
            "store,10.0.0.1 ssh-ed25519 AAAA"
        );
    }
}
