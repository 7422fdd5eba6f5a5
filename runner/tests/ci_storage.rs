//! Black-box tests of the `ci-storage` binary: local mode, over a real sshd on loopback, and
//! bad input. No Docker.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_ci-storage");

/// A temp dir holding a storage dir and local dirs; removes the local meta files at the end.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn storage(&self) -> String {
        self.path("storage").display().to_string()
    }

    /// Runs ci-storage with `--storage-dir <sandbox>/storage` and `args`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let storage = self.storage();
        let mut cmd = Command::new(BIN);
        // Default first: an explicit --storage-dir in `args` wins (last one wins).
        cmd.arg("--storage-dir").arg(&storage).args(args);
        for var in [
            "CI_STORAGE_SSH_KEY",
            "CI_STORAGE_HOST_KEY",
            "CI_STORAGE_NOW",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        let out = cmd.output().expect("run ci-storage");
        eprintln!(
            "ci-storage {args:?} -> {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "ci-storage {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn dir(&self, rel: &str) -> String {
        let p = self.path(rel);
        fs::create_dir_all(&p).expect("mkdir");
        p.display().to_string()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let prefix = format!(
            ".ci-storage.meta.{}",
            normalize(&self.tmp.path().display().to_string())
        );
        if let Ok(entries) = fs::read_dir("/tmp") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn local_meta(dir: &str) -> String {
    fs::read_to_string(format!("/tmp/.ci-storage.meta.{}", normalize(dir))).unwrap_or_default()
}

fn write(dir: &str, rel: &str, content: &str) {
    let p = Path::new(dir).join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, content).expect("write");
}

fn read(dir: &str, rel: &str) -> String {
    fs::read_to_string(Path::new(dir).join(rel)).unwrap_or_else(|e| panic!("{dir}/{rel}: {e}"))
}

fn exists(dir: &str, rel: &str) -> bool {
    Path::new(dir).join(rel).symlink_metadata().is_ok()
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Polls `cond` for up to 10 s.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- local mode

#[test]
fn round_trip() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "a.txt", "alpha");
    write(&src, "deep/er/b.txt", "beta");
    let out = sb.ok(&["store", "--slot-id", "s1", "--local-dir", &src]);
    assert!(out.contains("$ rsync "), "{out}");
    assert!(out.contains("elapsed: "), "{out}");
    assert!(out.contains("files: "), "{out}");
    let dst = sb.dir("dst");
    write(&dst, "stale.txt", "to be deleted");
    sb.ok(&["load", "--local-dir", &dst, "--slot-id", "s1"]);
    assert_eq!(read(&dst, "a.txt"), "alpha");
    assert_eq!(read(&dst, "deep/er/b.txt"), "beta");
    assert!(
        !exists(&dst, "stale.txt"),
        "a full load deletes extra files"
    );
    assert!(!exists(&dst, ".ci-storage.meta"));
}

#[test]
fn dedup_by_hard_links() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "same.bin", &"x".repeat(10_000));
    write(&src, "changing.txt", "1");
    sb.ok(&["store", "--slot-id", "s1", "--local-dir", &src]);
    write(&src, "changing.txt", "2");
    sb.ok(&["store", "--slot-id", "s2", "--local-dir", &src]);
    let storage = sb.storage();
    let m1 = fs::metadata(format!("{storage}/s1/same.bin")).expect("s1");
    let m2 = fs::metadata(format!("{storage}/s2/same.bin")).expect("s2");
    assert_eq!(m1.ino(), m2.ino());
    assert!(m2.nlink() > 1);
    let c1 = fs::metadata(format!("{storage}/s1/changing.txt")).expect("s1");
    let c2 = fs::metadata(format!("{storage}/s2/changing.txt")).expect("s2");
    assert_ne!(c1.ino(), c2.ino());
}

#[test]
fn overwrite_is_atomic_for_concurrent_loads() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    let put = |v: usize| {
        for f in ["a", "b", "c/d"] {
            write(&src, f, &format!("version {v}\n{}", "z".repeat(v * 100)));
        }
    };
    put(0);
    sb.ok(&["store", "--slot-id", "x", "--local-dir", &src]);
    let storage = sb.storage();
    let dst = sb.dir("dst");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let (done, dst, storage) = (done.clone(), dst.clone(), storage.clone());
        std::thread::spawn(move || {
            let mut loads = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || loads < 3 {
                let out = Command::new(BIN)
                    .args([
                        "load",
                        "--slot-id",
                        "x",
                        "--local-dir",
                        &dst,
                        "--storage-dir",
                        &storage,
                    ])
                    .output()
                    .expect("load");
                assert!(out.status.success(), "load failed: {}", stderr(&out));
                let (a, b, d) = (read(&dst, "a"), read(&dst, "b"), read(&dst, "c/d"));
                assert!(a == b && b == d, "mixed slot content: {a:?} {b:?} {d:?}");
                loads += 1;
            }
            loads
        })
    };
    for v in 1..=8 {
        put(v);
        sb.ok(&["store", "--slot-id", "x", "--local-dir", &src]);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let loads = loader.join().expect("loader thread");
    assert!(loads >= 3);
    assert!(read(&format!("{storage}/x"), "a").starts_with("version 8"));
}

#[test]
fn star_picks_slot_by_hints_including_digests() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "lock/package-lock.json", "deps A");
    sb.ok(&[
        "store",
        "--slot-id",
        "s1",
        "--local-dir",
        &src,
        "--hint",
        "brA\n@lock/*.json",
    ]);
    write(&src, "lock/package-lock.json", "deps B");
    sb.ok(&[
        "store",
        "--slot-id",
        "s2",
        "--local-dir",
        &src,
        "--hint",
        "brB",
        "--hint",
        "@lock/*.json",
    ]);
    write(&src, "lock/package-lock.json", "deps C");
    sb.ok(&[
        "store",
        "--slot-id",
        "s3",
        "--local-dir",
        &src,
        "--hint",
        "brC",
    ]);

    // Digest of "deps A" matches s1 only; the newest (s3) would win without hints.
    let dst = sb.dir("dst");
    write(&dst, "lock/package-lock.json", "deps A");
    let out = sb.ok(&[
        "load",
        "--slot-id",
        "*",
        "--local-dir",
        &dst,
        "--hint",
        "@lock/package-lock.json",
    ]);
    assert!(out.contains("Winner: slot-id=\"s1\""), "{out}");
    assert!(local_meta(&dst).starts_with("full_snapshot_history=s1\n"));

    // Leftmost hint weighs most: brB (s2) beats the digest of deps A (s1).
    let dst2 = sb.dir("dst2");
    write(&dst2, "lock/package-lock.json", "deps A");
    let out = sb.ok(&[
        "load",
        "--slot-id",
        "*",
        "--local-dir",
        &dst2,
        "--hint",
        "brB @lock/package-lock.json",
    ]);
    assert!(out.contains("Winner: slot-id=\"s2\""), "{out}");

    // No match: the newest.
    let dst3 = sb.dir("dst3");
    let out = sb.ok(&[
        "load",
        "--slot-id",
        "*",
        "--local-dir",
        &dst3,
        "--hint",
        "nothing",
    ]);
    assert!(
        out.contains("most recent full (non-layer) slot-id=\"s3\""),
        "{out}"
    );
}

#[test]
fn multiple_slot_ids_first_existing_wins() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "f", "one");
    sb.ok(&["store", "--slot-id", "s1", "--local-dir", &src]);
    write(&src, "f", "two");
    sb.ok(&["store", "--slot-id", "s2", "--local-dir", &src]);
    let dst = sb.dir("dst");
    let out = sb.ok(&[
        "load",
        "--slot-id",
        "missing",
        "--slot-id",
        "s1 s2",
        "--local-dir",
        &dst,
    ]);
    assert!(
        out.contains("Checking slot-id=\"missing\"... not found"),
        "{out}"
    );
    assert_eq!(read(&dst, "f"), "one");
    sb.ok(&["load", "--slot-id", "nope *", "--local-dir", &dst]);
    assert_eq!(read(&dst, "f"), "two");
}

#[test]
fn absent_slot_fails_with_advice() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "f", "one");
    sb.ok(&["store", "--slot-id", "s1", "--local-dir", &src]);
    let out = sb.run(&["load", "--slot-id", "gone", "--local-dir", &sb.dir("dst")]);
    assert_eq!(code(&out), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("none of the provided slot id(s) were found"),
        "{err}"
    );
    assert!(err.contains("\"*\""), "the message says what to do: {err}");
}

#[test]
fn star_on_empty_storage_cleans_full_and_skips_layer() {
    let sb = Sandbox::new();
    let dst = sb.dir("dst");
    write(&dst, "old/file", "x");
    write(&dst, "keep.log", "excluded");
    let out = sb.ok(&[
        "load",
        "--slot-id",
        "*",
        "--local-dir",
        &dst,
        "--exclude",
        "*.log",
        "--hint",
        "h",
    ]);
    assert!(out.contains("has no slots, so cleaning"), "{out}");
    assert!(!exists(&dst, "old"));
    assert_eq!(read(&dst, "keep.log"), "excluded");
    assert!(local_meta(&dst).contains("hints=h"));

    let dst2 = sb.dir("dst2");
    write(&dst2, "old/file", "x");
    let out = sb.ok(&[
        "load",
        "--slot-id",
        "*",
        "--local-dir",
        &dst2,
        "--layer",
        "*.o",
    ]);
    assert!(out.contains("no-op"), "{out}");
    assert!(exists(&dst2, "old/file"));
}

#[test]
fn layers_include_only_matching_never_delete_and_follow_history() {
    let sb = Sandbox::new();
    let layer_storage = sb.path("layer-storage").display().to_string();
    let src = sb.dir("src");
    write(&src, "main.c", "int main;");
    write(&src, "obj/main.o", "obj v1");
    write(&src, "empty-ish/readme", "r");
    sb.ok(&["store", "--slot-id", "F1", "--local-dir", &src]);
    let layer = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--layer", "*.o", "--storage-dir", &layer_storage]);
        sb.ok(&all)
    };
    layer(&["store", "--slot-id", "F1", "--local-dir", &src]);
    assert!(exists(&layer_storage, "F1/obj/main.o"));
    assert!(!exists(&layer_storage, "F1/main.c"));
    assert!(
        !exists(&layer_storage, "F1/empty-ish"),
        "empty dirs are pruned"
    );
    assert!(
        !exists(&layer_storage, "F1/.ci-storage.meta"),
        "layer slots carry no meta"
    );

    write(&src, "obj/main.o", "obj v2");
    sb.ok(&["store", "--slot-id", "F2", "--local-dir", &src]);
    layer(&["store", "--slot-id", "F2", "--local-dir", &src]);

    // A dir loaded from F1 gets the F1 layer, not the newest (F2), and keeps its own files.
    let dst = sb.dir("dst");
    sb.ok(&["load", "--slot-id", "F1", "--local-dir", &dst]);
    write(&dst, "local-only.txt", "mine");
    fs::remove_file(Path::new(&dst).join("obj/main.o")).expect("rm");
    let out = layer(&["load", "--slot-id", "*", "--local-dir", &dst]);
    assert!(
        out.contains("Checking slot-id=\"F1\" from history... found"),
        "{out}"
    );
    assert_eq!(read(&dst, "obj/main.o"), "obj v1");
    assert_eq!(read(&dst, "local-only.txt"), "mine");
    assert_eq!(read(&dst, "main.c"), "int main;");
}

#[test]
fn exclude_on_store_and_load() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "keep.txt", "k");
    write(&src, "tmp/junk", "j");
    sb.ok(&[
        "store",
        "--slot-id",
        "s",
        "--local-dir",
        &src,
        "--exclude",
        "tmp/\n*.swp",
    ]);
    assert!(!exists(&sb.storage(), "s/tmp"));
    let dst = sb.dir("dst");
    write(&dst, "tmp/local", "survives");
    sb.ok(&[
        "load",
        "--slot-id",
        "s",
        "--local-dir",
        &dst,
        "--exclude",
        "tmp/",
    ]);
    assert_eq!(read(&dst, "tmp/local"), "survives");
    assert_eq!(read(&dst, "keep.txt"), "k");
}

#[test]
fn maintenance_by_age_keeps_newest_and_per_hint_slots() {
    for (keep, kept, removed) in [
        ("5", &["e", "c", "b"][..], &["a", "d"][..]),
        ("1", &["e", "c"][..], &["a", "b", "d"][..]),
    ] {
        let sb = Sandbox::new();
        // One local dir per slot: a store without --hint would reuse the dir's last hints.
        for (id, hint) in [("a", "h1"), ("b", "h2"), ("c", "h1 other"), ("d", "")] {
            let src = sb.dir(&format!("src-{id}"));
            write(&src, "f", "x");
            sb.ok(&[
                "store",
                "--slot-id",
                id,
                "--local-dir",
                &src,
                "--hint",
                hint,
            ]);
        }
        let src = sb.dir("src-e");
        write(&src, "f", "x");
        let future = (now() + 10_000).to_string();
        let out = sb.run_env(
            &[
                "store",
                "--slot-id",
                "e",
                "--local-dir",
                &src,
                "--hint",
                "h3",
                "--storage-max-age-sec",
                "3600",
                "--storage-keep-hint-slots",
                keep,
            ],
            &[("CI_STORAGE_NOW", &future)],
        );
        assert!(out.status.success());
        let storage = sb.storage();
        for id in kept {
            assert!(exists(&storage, id), "{id} kept (keep={keep})");
        }
        for id in removed {
            assert!(!exists(&storage, id), "{id} removed (keep={keep})");
        }
        eventually("background removal", || {
            fs::read_dir(&storage)
                .expect("ls")
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().contains(".bak.rm"))
        });
        assert!(exists(&storage, "maintenance.lock"));
    }
}

#[test]
fn bak_dirs_are_removed_after_a_minute() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "f", "1");
    sb.ok(&["store", "--slot-id", "x", "--local-dir", &src]);
    write(&src, "f", "2");
    sb.ok(&["store", "--slot-id", "x", "--local-dir", &src]);
    let storage = sb.storage();
    let baks = || -> Vec<String> {
        fs::read_dir(&storage)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("x.bak."))
            .collect()
    };
    assert_eq!(baks().len(), 1, "the overwritten slot became x.bak.<ts>");
    let later = (now() + 120).to_string();
    let out = sb.run_env(
        &["store", "--slot-id", "y", "--local-dir", &src],
        &[("CI_STORAGE_NOW", &later)],
    );
    assert!(out.status.success());
    eventually("bak removal", || baks().is_empty());
    assert!(exists(&storage, "x"));
}

#[test]
fn maintenance_skips_when_locked_and_concurrent_stores_do_not_block() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "f", "1");
    sb.ok(&["store", "--slot-id", "first", "--local-dir", &src]);
    let lock = sb.path("storage/maintenance.lock");
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .expect("flock");
    eventually("the lock to be held", || {
        !Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
            .expect("flock -n")
            .success()
    });
    let started = Instant::now();
    let out = sb.ok(&["store", "--slot-id", "second", "--local-dir", &src]);
    assert!(
        out.contains("another maintenance process is already running, so skipping"),
        "{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "maintenance never waits for the lock"
    );
    let _ = holder.kill();
    let _ = holder.wait();

    let storage = sb.storage();
    let stores: Vec<_> = (0..4)
        .map(|i| {
            let (src, storage) = (src.clone(), storage.clone());
            std::thread::spawn(move || {
                Command::new(BIN)
                    .args(["store", "--slot-id", &format!("p{i}"), "--local-dir", &src])
                    .args(["--storage-dir", &storage])
                    .output()
                    .expect("store")
            })
        })
        .collect();
    for (i, store) in stores.into_iter().enumerate() {
        let out = store.join().expect("thread");
        assert!(out.status.success(), "p{i}: {}", stderr(&out));
        assert!(exists(&storage, &format!("p{i}/f")));
    }
}

#[test]
fn meta_files_record_hints_and_history() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "f", "1");
    sb.ok(&[
        "store",
        "--slot-id",
        "s1",
        "--local-dir",
        &src,
        "--hint",
        "main\nabc",
    ]);
    assert_eq!(
        read(&sb.storage(), "s1/.ci-storage.meta"),
        "full_snapshot_history=s1\nhints=main abc\n"
    );
    assert_eq!(
        local_meta(&src),
        "full_snapshot_history=s1\nhints=main abc\n"
    );
    // Load records the slot's history and hints; a store without --hint reuses them.
    let dst = sb.dir("dst");
    sb.ok(&["load", "--slot-id", "s1", "--local-dir", &dst]);
    assert_eq!(
        local_meta(&dst),
        "full_snapshot_history=s1\nhints=main abc\n"
    );
    let out = sb.ok(&["store", "--slot-id", "s2", "--local-dir", &dst]);
    assert!(out.contains("--link-dest=../s1/"), "{out}");
    assert_eq!(
        read(&sb.storage(), "s2/.ci-storage.meta"),
        "full_snapshot_history=s2 s1\nhints=main abc\n"
    );
}

#[test]
fn slot_ids_are_normalised() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "f", "1");
    sb.ok(&["store", "--slot-id", "feature/x.y@z", "--local-dir", &src]);
    assert!(exists(&sb.storage(), "feature_x_y_z/f"));
    let dst = sb.dir("dst");
    sb.ok(&["load", "--slot-id", "feature/x.y@z", "--local-dir", &dst]);
    assert_eq!(read(&dst, "f"), "1");
}

#[test]
fn symlinks_empty_dirs_modes_and_mtimes_survive() {
    let sb = Sandbox::new();
    let src = sb.dir("src");
    write(&src, "bin/run.sh", "#!/bin/sh\n");
    write(&src, "secret", "s");
    fs::set_permissions(
        Path::new(&src).join("bin/run.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    fs::set_permissions(
        Path::new(&src).join("secret"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("bin/run.sh", Path::new(&src).join("link")).expect("symlink");
    fs::create_dir_all(Path::new(&src).join("empty/dir")).expect("mkdir");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(Path::new(&src).join("secret"))
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    sb.ok(&["store", "--slot-id", "s", "--local-dir", &src]);
    let dst = sb.dir("dst");
    sb.ok(&["load", "--slot-id", "s", "--local-dir", &dst]);
    let d = Path::new(&dst);
    assert_eq!(
        fs::read_link(d.join("link")).expect("link"),
        Path::new("bin/run.sh")
    );
    assert!(d.join("empty/dir").is_dir());
    assert_eq!(
        fs::metadata(d.join("bin/run.sh")).expect("m").mode() & 0o777,
        0o755
    );
    assert_eq!(
        fs::metadata(d.join("secret")).expect("m").mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(d.join("secret"))
            .expect("m")
            .modified()
            .expect("mtime"),
        old
    );
}

#[test]
fn names_with_spaces_and_unicode() {
    let sb = Sandbox::new();
    let src = sb.dir("src dir ü");
    write(&src, "a file with spaces.txt", "1");
    write(&src, "ünïcödé/日本語 ファイル", "2");
    sb.ok(&["store", "--slot-id", "s", "--local-dir", &src]);
    let dst = sb.dir("dst ✓");
    sb.ok(&["load", "--slot-id", "s", "--local-dir", &dst]);
    assert_eq!(read(&dst, "a file with spaces.txt"), "1");
    assert_eq!(read(&dst, "ünïcödé/日本語 ファイル"), "2");
}

// ---------------------------------------------------------------- bad input

#[test]
fn unknown_option_is_usage_error() {
    let sb = Sandbox::new();
    let out = sb.run(&["load", "--slot-id", "a", "--local-dir", "x", "--bogus"]);
    assert_eq!(code(&out), Some(2));
    let out = sb.run(&["fetch", "--slot-id", "a", "--local-dir", "x"]);
    assert_eq!(code(&out), Some(2));
}

#[test]
fn bad_host_spec_is_usage_error() {
    let sb = Sandbox::new();
    for host in ["host:notaport", "user@", "-oProxyCommand=sh"] {
        let host_arg = format!("--storage-host={host}");
        let out = sb.run(&[
            "load",
            "--slot-id",
            "a",
            "--local-dir",
            &sb.dir("d"),
            &host_arg,
        ]);
        assert_eq!(code(&out), Some(2), "{host}");
        assert!(stderr(&out).contains("--storage-host"), "{host}");
    }
}

#[test]
fn store_star_is_usage_error() {
    let sb = Sandbox::new();
    let out = sb.run(&["store", "--slot-id", "*", "--local-dir", &sb.dir("src")]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("not allowed"));
}

#[test]
fn missing_or_unreadable_local_dir() {
    let sb = Sandbox::new();
    let missing = sb.path("missing").display().to_string();
    let out = sb.run(&["store", "--slot-id", "s", "--local-dir", &missing]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("--local-dir"));
    let file = sb.path("a-file");
    fs::write(&file, "x").expect("write");
    let file = file.display().to_string();
    let out = sb.run(&["store", "--slot-id", "s", "--local-dir", &file]);
    assert_eq!(code(&out), Some(2));
    let out = sb.run(&["load", "--slot-id", "*", "--local-dir", &file]);
    assert_eq!(code(&out), Some(1));
}

#[test]
fn unreachable_host_fails_fast_with_a_clear_message() {
    let sb = Sandbox::new();
    let port = free_port();
    let started = Instant::now();
    let out = sb.run_env(
        &[
            "load",
            "--slot-id",
            "*",
            "--local-dir",
            &sb.dir("d"),
            "--storage-host",
            &format!("127.0.0.1:{port}"),
        ],
        &[("CI_STORAGE_CONNECT_TIMEOUT_SEC", "2")],
    );
    assert_eq!(code(&out), Some(1));
    assert!(
        stderr(&out).contains("cannot use storage host 127.0.0.1"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // A blackholed address: bounded by the connect timeout.
    let started = Instant::now();
    let out = sb.run_env(
        &[
            "load",
            "--slot-id",
            "*",
            "--local-dir",
            &sb.dir("d"),
            "--storage-host",
            "10.255.255.1",
        ],
        &[("CI_STORAGE_CONNECT_TIMEOUT_SEC", "2")],
    );
    assert_eq!(code(&out), Some(1));
    assert!(
        stderr(&out).contains("cannot use storage host 10.255.255.1"),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

// ---------------------------------------------------------------- over ssh

#[path = "ci_storage/ssh.rs"]
mod ssh;
