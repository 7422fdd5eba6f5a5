//! Over ssh, against a real sshd on 127.0.0.1 started by the test (throwaway keys, config
//! with PermitRootLogin yes for the test only).

use super::*;
use std::process::{Child, Stdio};

/// A private sshd on a free loopback port, killed on drop.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sshd {
    /// None (and a note on stderr) when this machine has no sshd.
    fn start() -> Option<Self> {
        if !Path::new("/usr/sbin/sshd").exists() {
            eprintln!("SKIP: /usr/sbin/sshd is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for key in ["host_key", "user_key", "other_host_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
                .arg(d.join(key))
                .output()
                .expect("ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {}", stderr(&out));
        }
        fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).expect("authorized_keys");
        // sshd wants its privilege separation dir.
        let _ = fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPidFile {d}/sshd.pid\n\
             UsePAM no\nPermitRootLogin yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nMaxStartups 100:30:200\nMaxSessions 100\n\
             LogLevel INFO\n",
            d = d.display()
        );
        fs::write(d.join("sshd_config"), config).expect("sshd_config");
        let log = fs::File::create(d.join("sshd.log")).expect("log");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let sshd = Self { dir, port, child };
        eventually("sshd to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", sshd.port)).is_ok()
        });
        Some(sshd)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn host(&self) -> String {
        format!("root@127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    fn accepted(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// `--storage-host`, `--ssh-key` (via env) and `args`.
    fn run(&self, sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
        let host = self.host();
        let key = self.path("user_key");
        let mut all = args.to_vec();
        all.extend(["--storage-host", &host]);
        let mut env = env.to_vec();
        env.push(("CI_STORAGE_SSH_KEY", &key));
        sb.run_env(&all, &env)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn store_and_load_over_one_connection_each() {
    let Some(sshd) = Sshd::start() else { return };
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "a b/ü.txt", "over ssh");
    write(&src, "keep", &"k".repeat(5000));
    let out = sshd.run(
        &sb,
        &[
            "store",
            "--slot-id",
            "s1",
            "--local-dir",
            &src,
            "--hint",
            "h",
        ],
        &[],
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("-oControlMaster=yes -N -f"), "{stdout}");
    assert_eq!(
        sshd.accepted(),
        1,
        "one ssh connection for store+commit+maintenance"
    );
    write(&src, "new", "n");
    let out = sshd.run(&sb, &["store", "--slot-id", "s2", "--local-dir", &src], &[]);
    assert!(out.status.success());
    assert_eq!(sshd.accepted(), 2);
    let storage = sb.storage();
    let (k1, k2) = (
        fs::metadata(format!("{storage}/s1/keep")).expect("s1"),
        fs::metadata(format!("{storage}/s2/keep")).expect("s2"),
    );
    assert_eq!(k1.ino(), k2.ino(), "dedup works over ssh too");

    let dst = sb.dir("dst");
    let out = sshd.run(&sb, &["load", "--slot-id", "*", "--local-dir", &dst], &[]);
    assert!(out.status.success());
    assert_eq!(sshd.accepted(), 3);
    assert_eq!(read(&dst, "a b/ü.txt"), "over ssh");
    assert_eq!(read(&dst, "new"), "n");
    // The master connection is closed when the command exits.
    eventually("master connections to close", || {
        sshd.log().matches("Disconnected from user").count() >= 3
    });
}

#[test]
fn pinned_host_key_is_checked_strictly() {
    let Some(sshd) = Sshd::start() else { return };
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "f", "pinned");
    let good = fs::read_to_string(sshd.path("host_key.pub")).expect("pub");
    let out = sshd.run(
        &sb,
        &["store", "--slot-id", "s", "--local-dir", &src],
        &[("CI_STORAGE_HOST_KEY", &good)],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("StrictHostKeyChecking=yes"));
    // A known_hosts line works as well.
    let line = format!("[127.0.0.1]:{} {}", sshd.port, good.trim());
    let dst = sb.dir("dst");
    let out = sshd.run(
        &sb,
        &[
            "load",
            "--slot-id",
            "s",
            "--local-dir",
            &dst,
            "--storage-host-key",
            &line,
        ],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(read(&dst, "f"), "pinned");

    let wrong = fs::read_to_string(sshd.path("other_host_key.pub")).expect("pub");
    let out = sshd.run(
        &sb,
        &["load", "--slot-id", "s", "--local-dir", &dst],
        &[("CI_STORAGE_HOST_KEY", &wrong)],
    );
    assert_eq!(code(&out), Some(1));
    let err = stderr(&out);
    assert!(err.contains("does not match the pinned key"), "{err}");
    assert!(
        err.contains("Host key verification failed"),
        "ssh's own stderr is included: {err}"
    );
    let all = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert!(
        !all.contains(wrong.split_whitespace().nth(1).expect("key")),
        "no key material printed"
    );
}

#[test]
fn rejected_key_fails_with_a_clear_message() {
    let Some(sshd) = Sshd::start() else { return };
    let sb = Sandbox::new();
    let dst = sb.dir("dst");
    let host = sshd.host();
    let out = sb.run_env(
        &[
            "load",
            "--slot-id",
            "*",
            "--local-dir",
            &dst,
            "--storage-host",
            &host,
            "--ssh-key",
            &sshd.path("other_host_key"),
        ],
        &[],
    );
    assert_eq!(code(&out), Some(1));
    assert!(
        stderr(&out).contains("rejected our key"),
        "{}",
        stderr(&out)
    );
}
