//! Running things as the runner's account: resolve it, then drop privileges the way gosu does
//! (initgroups, setgid, setuid), keeping supplementary groups and setting HOME and friends.

use std::ffi::{CString, OsString};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{bail, Context};
use nix::unistd::{Gid, Uid, User};

/// A resolved account and the groups it belongs to.
#[derive(Debug, Clone)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: Uid,
    /// Primary group id.
    pub gid: Gid,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell.
    pub shell: PathBuf,
    /// Supplementary groups, as initgroups would set them (primary group included).
    pub groups: Vec<Gid>,
}

impl Account {
    /// Looks the account up in the user database (with its groups, computed now, so nothing
    /// between fork and exec has to read /etc/group).
    pub fn resolve(name: &str) -> anyhow::Result<Account> {
        let user = User::from_name(name)
            .with_context(|| format!("cannot look up user {name:?}"))?
            .with_context(|| format!("user {name:?} does not exist"))?;
        let cname = CString::new(name).context("user name contains a NUL byte")?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .with_context(|| format!("cannot list the groups of user {name:?}"))?;
        Ok(Account {
            name: name.to_string(),
            uid: user.uid,
            gid: user.gid,
            home: user.dir,
            shell: user.shell,
            groups,
        })
    }

    /// Whether we already run as this account (no privilege drop needed, e.g. in tests).
    pub fn is_current(&self) -> bool {
        Uid::effective() == self.uid
    }

    /// The environment variables that identify the account to a child.
    pub fn identity_env(&self) -> [(&'static str, OsString); 4] {
        [
            ("HOME", self.home.clone().into_os_string()),
            ("USER", OsString::from(&self.name)),
            ("LOGNAME", OsString::from(&self.name)),
            ("SHELL", self.shell.clone().into_os_string()),
        ]
    }

    /// Makes `cmd` run as this account: identity variables, and the privilege drop between
    /// fork and exec when we are someone else (root in the image).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        for (k, v) in self.identity_env() {
            cmd.env(k, v);
        }
        if self.is_current() {
            return;
        }
        let (uid, gid, groups) = (self.uid, self.gid, self.groups.clone());
        // SAFETY: the closure only makes async-signal-safe syscalls (setgroups, setgid,
        // setuid) on data prepared before fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || drop_to(uid, gid, &groups));
        }
    }
}

/// setgroups + setgid + setuid, in that order (after setuid we could not change groups).
fn drop_to(uid: Uid, gid: Gid, groups: &[Gid]) -> std::io::Result<()> {
    nix::unistd::setgroups(groups).map_err(std::io::Error::from)?;
    nix::unistd::setgid(gid).map_err(std::io::Error::from)?;
    nix::unistd::setuid(uid).map_err(std::io::Error::from)?;
    Ok(())
}

/// `runner exec-as <user> -- <cmd…>`: become `user` in its home and exec `cmd` (the user's
/// login shell when empty). Returns only on failure.
pub fn exec_as(user: &str, cmd: &[OsString]) -> anyhow::Result<std::convert::Infallible> {
    let acct = Account::resolve(user)?;
    if !acct.is_current() {
        drop_to(acct.uid, acct.gid, &acct.groups)
            .with_context(|| format!("cannot switch to user {user:?} (are we root?)"))?;
    }
    for (k, v) in acct.identity_env() {
        std::env::set_var(k, v);
    }
    if let Err(e) = std::env::set_current_dir(&acct.home) {
        // Like login(1): a missing home is not fatal, start in / instead.
        eprintln!("runner exec-as: cannot enter {}: {e}", acct.home.display());
        std::env::set_current_dir("/").context("cannot enter /")?;
    }
    let (program, args): (OsString, Vec<OsString>) = match cmd.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (
            acct.shell.clone().into_os_string(),
            vec![OsString::from("-l")],
        ),
    };
    let err = std::process::Command::new(&program).args(&args).exec();
    bail!("cannot run {}: {err}", program.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drops_to_another_account_with_its_groups_and_identity() {
        if !Uid::effective().is_root() {
            return; // Needs root to switch users.
        }
        let acct = Account::resolve("nobody").expect("nobody exists");
        let mut cmd = crate::spawn::user_command("sh", &acct, "UTC");
        cmd.args(["-c", "id -u; id -g; id -G; echo $HOME $USER $LOGNAME"]);
        let out = cmd.output().await.expect("run sh");
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], acct.uid.to_string(), "{text}");
        assert_eq!(lines[1], acct.gid.to_string(), "{text}");
        let mut want: Vec<String> = acct.groups.iter().map(|g| g.to_string()).collect();
        let mut got: Vec<String> = lines[2].split_whitespace().map(str::to_string).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "supplementary groups kept");
        assert_eq!(
            lines[3],
            format!("{} nobody nobody", acct.home.display()),
            "{text}"
        );
    }

    #[test]
    fn current_account_needs_no_drop() {
        let me = nix::unistd::User::from_uid(Uid::effective())
            .ok()
            .flatten()
            .expect("current user");
        assert!(Account::resolve(&me.name).expect("resolve").is_current());
        assert!(Account::resolve("no-such-user-xyz").is_err());
    }
}
