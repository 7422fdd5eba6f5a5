//! Where commands run: locally, or on the storage host over ONE ssh master connection
//! (ControlMaster in a private temp dir, closed when the session is dropped).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{say, shell, Error};

/// `[user@]host[:port]` of the storage host (IPv6 literals as `[addr]:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Remote user, if given.
    pub user: Option<String>,
    /// Host name or address (without brackets).
    pub host: String,
    /// ssh port, if given.
    pub port: Option<u16>,
}

impl HostSpec {
    /// Parses and validates a host spec; errors are usage errors.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "bad --storage-host \"{spec}\": {why}; expected [user@]host[:port]"
            ))
        };
        if spec.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace"));
        }
        let (user, rest) = match spec.rsplit_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, spec),
        };
        if let Some(user) = user {
            if user.is_empty() || user.starts_with('-') || user.contains(['/', ':']) {
                return Err(bad("bad user name"));
            }
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after {
                "" => (addr, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (addr, Some(port)),
                    None => return Err(bad("junk after ']'")),
                },
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.starts_with('-') || host.contains(['/', '[', ']', '@']) {
            return Err(bad("bad host name"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => return Err(bad("the port must be a number in 1..65535")),
            },
        };
        Ok(Self {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        })
    }

    /// `user@host` as ssh and rsync take it.
    pub fn destination(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match &self.user {
            Some(user) => format!("{user}@{host}"),
            None => host,
        }
    }

    fn display(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.destination()),
            None => self.destination(),
        }
    }
}

/// How to authenticate and verify the storage host.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// Private key file (`-i`); ssh's defaults when absent.
    pub key_file: Option<PathBuf>,
    /// Pinned host key: `known_hosts` line(s) or a bare `type base64` public key.
    pub host_key: Option<String>,
    /// ssh `ConnectTimeout`, seconds.
    pub connect_timeout_sec: u64,
}

/// Runs scripts and names rsync endpoints, locally or on the storage host.
pub enum Transport {
    /// The storage dir is on this machine.
    Local,
    /// The storage dir is on a host reached over ssh.
    Ssh(SshSession),
}

impl Transport {
    /// Local transport, or an ssh session with its master connection already up.
    pub fn open(host: Option<HostSpec>, options: &SshOptions) -> Result<Self, Error> {
        match host {
            None => Ok(Self::Local),
            Some(host) => Ok(Self::Ssh(SshSession::open(host, options)?)),
        }
    }

    /// Runs `perl -we <script> args…` where the storage is; returns stdout and prints stderr
    /// indented. `name` is what the echo line shows instead of the script text.
    pub fn run_script(&self, name: &str, script: &str, args: &[String]) -> Result<String, Error> {
        let mut words: Vec<String> = vec!["perl".into(), "-we".into(), script.into()];
        words.extend(args.iter().cloned());
        let (argv, echo) = match self {
            Self::Local => (words.clone(), words),
            Self::Ssh(session) => {
                let mut prefix = session.ssh_command();
                prefix.push(session.host.destination());
                let mut echo = prefix.clone();
                echo.extend(words.iter().cloned());
                prefix.push(shell::join(&words));
                (prefix, echo)
            }
        };
        say(&shell::echo_line(&echo, &[(name, script)]));
        let output = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", argv[0]))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(self.failure(&format!("{name} script"), output.status.code(), &stderr));
        }
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            say(&format!("  {line}"));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `path` as an rsync endpoint (`user@host:path` over ssh).
    pub fn rsync_location(&self, path: &str) -> String {
        match self {
            Self::Local => path.to_owned(),
            Self::Ssh(session) => format!("{}:{path}", session.host.destination()),
        }
    }

    /// rsync's `-e <ssh command>` (reusing the master connection), empty when local.
    pub fn rsync_shell_args(&self) -> Vec<String> {
        match self {
            Self::Local => vec![],
            Self::Ssh(session) => vec!["-e".into(), shell::join(&session.ssh_command())],
        }
    }

    /// Whether the storage is reached over ssh.
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Ssh(_))
    }

    /// An error for a failed command, with a transport diagnosis when ssh itself failed.
    pub fn failure(&self, what: &str, code: Option<i32>, stderr: &str) -> Error {
        let stderr = stderr.trim();
        let status = code.map_or("a signal".to_owned(), |c| format!("status {c}"));
        match self {
            Self::Ssh(session) if code == Some(255) && ssh_problem(stderr).is_some() => {
                session.connection_error(stderr)
            }
            _ => Error::Failed(anyhow::anyhow!(
                "{what} failed with {status}{}{stderr}",
                if stderr.is_empty() { "" } else { ":\n" }
            )),
        }
    }
}

/// An ssh master connection to the storage host and the private dir holding its socket.
pub struct SshSession {
    host: HostSpec,
    dir: PathBuf,
    options: Vec<String>,
    connect_timeout_sec: u64,
    pinned: bool,
}

impl SshSession {
    /// Prepares the private dir (socket, known_hosts) and starts the master connection.
    pub fn open(host: HostSpec, options: &SshOptions) -> Result<Self, Error> {
        let template = super::meta::temp_dir().join("ci-storage.XXXXXX");
        let dir = nix::unistd::mkdtemp(&template)
            .with_context(|| format!("creating a private temp dir {}", template.display()))?;
        let mut opts: Vec<String> = [
            "-oBatchMode=yes".to_owned(),
            format!("-oConnectTimeout={}", options.connect_timeout_sec),
            "-oServerAliveInterval=15".to_owned(),
            "-oServerAliveCountMax=4".to_owned(),
            "-oLogLevel=error".to_owned(),
            format!("-oControlPath={}", dir.join("cm").display()),
            "-oControlPersist=60".to_owned(),
        ]
        .into();
        let mut session = Self {
            host,
            dir,
            options: vec![],
            connect_timeout_sec: options.connect_timeout_sec,
            pinned: options.host_key.is_some(),
        };
        match &options.host_key {
            Some(key) => {
                let known_hosts = session.dir.join("known_hosts");
                std::fs::write(&known_hosts, known_hosts_text(key))
                    .with_context(|| format!("writing {}", known_hosts.display()))?;
                opts.extend([
                    "-oStrictHostKeyChecking=yes".to_owned(),
                    format!("-oUserKnownHostsFile={}", known_hosts.display()),
                    "-oGlobalKnownHostsFile=/dev/null".to_owned(),
                    "-oCheckHostIP=no".to_owned(),
                    "-oUpdateHostKeys=no".to_owned(),
                ]);
            }
            None => opts.extend([
                "-oStrictHostKeyChecking=no".to_owned(),
                "-oUserKnownHostsFile=/dev/null".to_owned(),
                "-oGlobalKnownHostsFile=/dev/null".to_owned(),
            ]),
        }
        if let Some(key) = &options.key_file {
            opts.extend([
                "-i".to_owned(),
                key.display().to_string(),
                "-oIdentitiesOnly=yes".to_owned(),
            ]);
        }
        if let Some(port) = session.host.port {
            opts.push(format!("-p{port}"));
        }
        session.options = opts;
        session.start_master()?;
        Ok(session)
    }

    /// `ssh <options>` for clients of the master (never becoming a master themselves).
    fn ssh_command(&self) -> Vec<String> {
        let mut cmd = vec!["ssh".to_owned()];
        cmd.extend(self.options.iter().cloned());
        cmd.push("-oControlMaster=no".to_owned());
        cmd
    }

    fn start_master(&self) -> Result<(), Error> {
        let mut cmd = vec!["ssh".to_owned()];
        cmd.extend(self.options.iter().cloned());
        cmd.extend(["-oControlMaster=yes", "-N", "-f"].map(str::to_owned));
        cmd.push(self.host.destination());
        say(&shell::echo_line(&cmd, &[]));
        let started = Instant::now();
        // The backgrounded master keeps its stderr open: send it to a file, not to a pipe
        // we would wait on.
        let log_path = self.dir.join("master.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new("ssh")
            .args(&cmd[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("running ssh (is openssh-client installed?)")?;
        // ConnectTimeout bounds TCP connect and the banner; this bounds the whole handshake.
        let deadline = Duration::from_secs(self.connect_timeout_sec.saturating_mul(2) + 10);
        let status = loop {
            if let Some(status) = child.try_wait().context("waiting for ssh")? {
                break Some(status);
            }
            if started.elapsed() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
        match status {
            Some(status) if status.success() => {
                say(&format!(
                    "  connected, elapsed: {:.2} sec",
                    started.elapsed().as_secs_f64()
                ));
                Ok(())
            }
            Some(_) => Err(self.connection_error(&stderr)),
            None => Err(self.connection_error(&format!(
                "no ssh session after {} sec\n{stderr}",
                deadline.as_secs()
            ))),
        }
    }

    fn connection_error(&self, stderr: &str) -> Error {
        let stderr = stderr.trim();
        let why = match ssh_problem(stderr) {
            Some(SshProblem::HostKey) if self.pinned => {
                "the host key does not match the pinned key (--storage-host-key / \
                 CI_STORAGE_HOST_KEY); check it, e.g. with ssh-keyscan"
                    .to_owned()
            }
            Some(SshProblem::HostKey) => "host key verification failed".to_owned(),
            Some(SshProblem::Auth) => {
                "the host rejected our key (--ssh-key / CI_STORAGE_SSH_KEY); check that its \
                 public key is in the host's authorized_keys and the key file is mode 0600"
                    .to_owned()
            }
            Some(SshProblem::Timeout) => format!(
                "the host did not answer within {} sec (CI_STORAGE_CONNECT_TIMEOUT_SEC); \
                 check the address, port and firewalls",
                self.connect_timeout_sec
            ),
            Some(SshProblem::Unreachable) => {
                "the host is unreachable or refused the connection; check the address, the \
                 port and that sshd is running"
                    .to_owned()
            }
            Some(SshProblem::Resolve) => "the host name does not resolve".to_owned(),
            None => "the ssh connection failed".to_owned(),
        };
        Error::Failed(anyhow::anyhow!(
            "cannot use storage host {}: {why}\n  ssh said: {}",
            self.host.display(),
            if stderr.is_empty() {
                "(nothing)"
            } else {
                stderr
            }
        ))
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        let _ = Command::new("ssh")
            .args(&self.options)
            .args(["-O", "exit"])
            .arg(self.host.destination())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum SshProblem {
    HostKey,
    Auth,
    Timeout,
    Unreachable,
    Resolve,
}

fn ssh_problem(stderr: &str) -> Option<SshProblem> {
    let has = |s: &str| stderr.contains(s);
    if has("Host key verification failed") || has("HOST IDENTIFICATION HAS CHANGED") {
        Some(SshProblem::HostKey)
    } else if has("Permission denied") || has("Too many authentication failures") {
        Some(SshProblem::Auth)
    } else if has("timed out") || has("no ssh session after") {
        Some(SshProblem::Timeout)
    } else if has("Connection refused")
        || has("No route to host")
        || has("Network is unreachable")
        || has("Connection closed by")
        || has("Connection reset")
    {
        Some(SshProblem::Unreachable)
    } else if has("Could not resolve hostname") {
        Some(SshProblem::Resolve)
    } else {
        None
    }
}

/// A private known_hosts: lines that start with a key type are bare keys and match any host
/// name (`*`), so the pin holds whatever name or address the host is reached by.
fn known_hosts_text(pinned: &str) -> String {
    let mut text = String::new();
    for line in pinned.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let first = line.split_whitespace().next().unwrap_or("");
        let is_key_type = first.starts_with("ssh-")
            || first.starts_with("ecdsa-")
            || first.starts_with("sk-")
            || first.starts_with("rsa-");
        if is_key_type {
            text.push_str("* ");
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Checks that a key file given with `--ssh-key` is readable (without printing it).
pub fn check_key_file(path: &Path) -> Result<(), Error> {
    std::fs::File::open(path).map(|_| ()).map_err(|e| {
        Error::Usage(format!(
            "--ssh-key / CI_STORAGE_SSH_KEY: cannot read {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_specs() {
        let h = HostSpec::parse("user@host.example:2222").unwrap();
        assert_eq!(h.user.as_deref(), Some("user"));
        assert_eq!(h.host, "host.example");
        assert_eq!(h.port, Some(2222));
        assert_eq!(h.destination(), "user@host.example");
        let h = HostSpec::parse("10.0.0.1").unwrap();
        assert_eq!((h.user, h.port), (None, None));
        let h = HostSpec::parse("u@[::1]:22").unwrap();
        assert_eq!(h.destination(), "u@[::1]");
        assert_eq!(h.port, Some(22));
    }

    #[test]
    fn rejects_bad_host_specs() {
        for bad in [
            "",
            "@host",
            "host:",
            "host:x",
            "host:0",
            "host:70000",
            "-oProxyCommand=x",
            "a b",
            "u@",
            "[::1",
            "h/x",
        ] {
            assert!(HostSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bare_keys_match_any_host() {
        let text = known_hosts_text("ssh-ed25519 AAAAC3 c\n[h]:22 ssh-ed25519 AAAAC3\n");
        assert_eq!(text, "* ssh-ed25519 AAAAC3 c\n[h]:22 ssh-ed25519 AAAAC3\n");
    }
}
