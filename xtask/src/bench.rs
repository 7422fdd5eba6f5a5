//! `cargo xtask bench`: measures boot, scale-down, ci-storage, images and footprint against the
//! goals of the issues, with baselines measured in the same run; prints a markdown table (or
//! JSON). Reports; fails on a missed goal only with `--check`.

mod boot;
mod containers;
mod footprint;
mod images;
mod machine;
mod mock;
mod report;
mod shutdown;
mod stats;
mod steplog;
mod storage;
mod tree;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use xshell::{cmd, Shell};

use containers::{Images, RunSpec, Stack};
use report::{Figure, Report};
use storage::{Target, Tree};
use tree::TreeSpec;

/// Sections of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// Container start → listening, by phase.
    Boot,
    /// SIGTERM idle and busy; the entrypoint's memory in the same runs.
    Shutdown,
    /// ci-storage against bare rsync.
    Storage,
    /// Build times and sizes.
    Images,
}

/// Measure boot, scale-down, ci-storage, images and footprint against the goals.
#[derive(Debug, Clone, clap::Args)]
pub struct Bench {
    /// Runs per figure (medians, min, max over them).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Files in the generated tree.
    #[arg(long, default_value_t = 100_000)]
    pub files: usize,
    /// Total size of the generated tree: bytes, or with a K/M/G suffix (powers of 1000... of 1024).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub size: u64,
    /// Files in the small tree (ci-storage's absolute overhead).
    #[arg(long, default_value_t = 1000)]
    pub small_files: usize,
    /// Size of the small tree.
    #[arg(long, default_value = "10M", value_parser = parse_size)]
    pub small_size: u64,
    /// Seed of the tree generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Cold image builds (slow; the median of fewer runs).
    #[arg(long, default_value_t = 1)]
    pub cold_runs: usize,
    /// Skip the image builds and sizes (the slow part).
    #[arg(long)]
    pub skip_images: bool,
    /// Only these sections (comma-separated); default all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Section>,
    /// Manifest of the images the bench runs and rebuilds (test images: fake actions runner).
    #[arg(long, default_value = "images/test.toml")]
    pub manifest: PathBuf,
    /// Image sets of target/images.json to take containers from, first wins.
    #[arg(long, value_delimiter = ',', default_value = "test,e2e")]
    pub image_sets: Vec<String>,
    /// Print JSON instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// Also write the markdown report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit non-zero when a figure misses its goal.
    #[arg(long)]
    pub check: bool,
    /// Leave containers and the network behind (debugging).
    #[arg(long)]
    pub keep: bool,
}

/// `--size` values: `1G`, `500M`, `64K`, `12345`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M or G)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    Ok((n * mult as f64) as u64)
}

/// The storage host container.
#[derive(Debug, Clone)]
pub struct StorageHost {
    /// Container name (DNS name on the network).
    pub name: String,
    /// sshd's port on 127.0.0.1.
    pub port: u16,
}

/// A throwaway ssh key.
#[derive(Debug, Clone)]
pub struct Key {
    /// Private key file.
    pub path: PathBuf,
    /// Private key text (given to runners through the environment, never on a command line).
    pub private: String,
}

/// What the sections share.
pub struct Ctx<'a> {
    /// The shell.
    pub sh: &'a Shell,
    /// Network and containers.
    pub stack: Stack<'a>,
    /// Image references.
    pub images: Images,
    /// The mock's control API.
    pub mock: mock::Mock,
    /// `http://<mock>:8080`, as runners reach it.
    pub mock_url: String,
    /// The storage host's client key.
    pub key: Key,
    /// The storage host.
    pub storage_host: Option<StorageHost>,
    /// `target/release/ci-storage`.
    pub ci_storage: PathBuf,
}

impl Bench {
    /// Runs the command.
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut report = Report {
            command: command_line(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: machine::describe(sh),
            ..Default::default()
        };
        let want = |s: Section| {
            (self.only.is_empty() || self.only.contains(&s))
                && !(s == Section::Images && self.skip_images)
        };
        let work = crate::workspace_root().join("target").join("bench");
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        if want(Section::Boot) || want(Section::Shutdown) || want(Section::Storage) {
            if let Err(e) = self.containers(sh, &work, &want, &mut report) {
                report
                    .notes
                    .push(format!("container sections stopped early: {e:#}"));
                eprintln!("==> error: {e:#}");
            }
        }
        if want(Section::Images) {
            eprintln!("==> images");
            match images::measure(
                sh,
                &self.manifest,
                &self.image_sets,
                self.runs,
                self.cold_runs,
                &work,
            ) {
                Ok(o) => {
                    report.figures.extend(o.figures);
                    report.layers = o.layers;
                    report.notes.extend(o.notes);
                }
                Err(e) => report.notes.push(format!("images: {e:#}")),
            }
        }
        report.notes.push(format!(
            "the whole run took {:.0} s",
            started.elapsed().as_secs_f64()
        ));
        let md = report.markdown();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{md}");
        }
        if let Some(out) = &self.out {
            std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;
        }
        let misses = report.misses();
        if self.check && !misses.is_empty() {
            anyhow::bail!(
                "{} figure(s) missed their goal: {}",
                misses.len(),
                misses
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        Ok(())
    }

    /// Boot, scale-down, footprint and ci-storage: one network, a mock, a storage host.
    fn containers(
        &self,
        sh: &Shell,
        work: &std::path::Path,
        want: &dyn Fn(Section) -> bool,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let ci_storage = build_ci_storage(sh)?;
        let images = Images::load(&self.image_sets)?;
        let key = keygen(sh, work)?;
        let public = std::fs::read_to_string(key.path.with_extension("pub"))
            .context("reading the public key")?;
        let stack = Stack::new(sh, self.keep)?;
        eprintln!(
            "==> starting the mock GitHub and the storage host on {}",
            stack.network
        );
        let mock_name = stack.run(&RunSpec {
            role: "mock".into(),
            image: images.get("mock-github")?,
            ports: vec![8080],
            ..Default::default()
        })?;
        let mock_port = containers::host_port(sh, &mock_name, 8080)?;
        let mock = mock::Mock::new(format!("http://127.0.0.1:{mock_port}"))?;
        mock.wait_ready(Duration::from_secs(30))?;
        let needs_host = want(Section::Boot) || want(Section::Storage);
        let storage_host = if needs_host {
            let name = stack.run(&RunSpec {
                role: "storage".into(),
                image: images.get("ci-storage-host")?,
                env: vec![("CI_STORAGE_PUBLIC_KEY".into(), public.trim().to_owned())],
                ports: vec![22],
                ..Default::default()
            })?;
            containers::wait_log(sh, &name, "Server listening on", Duration::from_secs(30))?;
            let port = containers::host_port(sh, &name, 22)?;
            Some(StorageHost { name, port })
        } else {
            None
        };
        let ctx = Ctx {
            sh,
            stack,
            images,
            mock,
            mock_url: format!("http://{mock_name}:8080"),
            key,
            storage_host,
            ci_storage,
        };

        let large = TreeSpec {
            files: self.files,
            bytes: self.size,
            seed: self.seed,
        };
        let large_label = format!("{} files / {:.0} MB", large.files, large.bytes as f64 / 1e6);
        let mut ssh_target = None;
        let mut large_tree = None;
        if needs_host {
            eprintln!("==> generating the tree ({large_label})");
            let t = Instant::now();
            let dir = work.join("tree");
            let plan = large.generate(&dir)?;
            report.notes.push(format!(
                "tree generated in {:.1} s: {large_label}, seed {}",
                t.elapsed().as_secs_f64(),
                self.seed
            ));
            let tree = Tree {
                spec: large,
                plan,
                dir,
            };
            let target = ssh(&ctx, storage::WARM_STORAGE_DIR)?;
            let seeded = storage::seed(&ctx, &target, &tree)?;
            ssh_target = Some((target, seeded));
            large_tree = Some(tree);
        }
        if want(Section::Boot) {
            eprintln!("==> boot");
            for case in [
                boot::Case::NoStorage,
                boot::Case::EmptyStorage,
                boot::Case::Warm,
            ] {
                match boot::measure(&ctx, case, self.runs) {
                    Ok(s) => report.figures.extend(boot::figures(case, &s)),
                    Err(e) => report.notes.push(format!("boot {case:?}: {e:#}")),
                }
            }
        }
        if want(Section::Shutdown) {
            eprintln!("==> scale-down and footprint");
            match shutdown::measure(&ctx, self.runs) {
                Ok(s) => {
                    report.figures.extend(shutdown::figures(&s));
                    report
                        .figures
                        .extend(footprint::figures(&s.idle_mem, &s.busy_mem));
                }
                Err(e) => report.notes.push(format!("scale-down: {e:#}")),
            }
        }
        if want(Section::Storage) {
            let (Some((ssh_t, seeded)), Some(tree)) = (ssh_target, large_tree) else {
                anyhow::bail!("no tree")
            };
            eprintln!("==> ci-storage, {large_label}");
            let local_t = local(work, "large")?;
            let mut figures: Vec<Figure> = Vec::new();
            for (target, initial) in [(local_t, None), (ssh_t, Some(seeded))] {
                let result = (|| {
                    let initial = match initial {
                        Some(s) => s,
                        None => storage::seed(&ctx, &target, &tree)?,
                    };
                    let mut s = storage::measure(&ctx, &target, &tree, self.runs)?;
                    s.initial_store = Some(initial);
                    anyhow::Ok(s)
                })();
                match result {
                    Ok(s) => figures.extend(storage::figures(target.label, &large_label, &s)),
                    Err(e) => report
                        .notes
                        .push(format!("ci-storage {}: {e:#}", target.label)),
                }
            }
            let small = TreeSpec {
                files: self.small_files,
                bytes: self.small_size,
                seed: self.seed + 1,
            };
            let small_label = format!("{} files / {:.0} MB", small.files, small.bytes as f64 / 1e6);
            eprintln!("==> ci-storage, {small_label}");
            let dir = work.join("tree-small");
            let plan = small.generate(&dir)?;
            let tree = Tree {
                spec: small,
                plan,
                dir,
            };
            for target in [
                local(work, "small")?,
                ssh(&ctx, "~/ci-storage/bench/small")?,
            ] {
                let result = storage::seed(&ctx, &target, &tree)
                    .and_then(|_| storage::measure(&ctx, &target, &tree, self.runs));
                match result {
                    Ok(s) => {
                        figures.extend(storage::overhead_figures(target.label, &small_label, &s))
                    }
                    Err(e) => report
                        .notes
                        .push(format!("ci-storage {} (small tree): {e:#}", target.label)),
                }
            }
            report.figures.extend(figures);
        }
        Ok(())
    }
}

/// The storage host as a ci-storage target.
fn ssh(ctx: &Ctx, dir: &str) -> anyhow::Result<Target> {
    let host = ctx.storage_host.as_ref().context("no storage host")?;
    Ok(Target {
        label: "ssh",
        storage_dir: dir.to_owned(),
        host: Some((
            format!("user@127.0.0.1:{}", host.port),
            ctx.key.path.clone(),
        )),
        real_dir: dir.replacen('~', "/home/user", 1),
        container: Some(host.name.clone()),
    })
}

/// A fresh local storage dir as a ci-storage target.
fn local(work: &std::path::Path, name: &str) -> anyhow::Result<Target> {
    let dir = work.join("storage").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let d = dir.to_str().context("path is not UTF-8")?.to_owned();
    Ok(Target {
        label: "local",
        storage_dir: d.clone(),
        host: None,
        real_dir: d,
        container: None,
    })
}

/// `cargo build --release -p runner --bin ci-storage`; its path.
fn build_ci_storage(sh: &Shell) -> anyhow::Result<PathBuf> {
    eprintln!("==> cargo build --release -p runner --bin ci-storage");
    cmd!(
        sh,
        "cargo build --release --quiet -p runner --bin ci-storage"
    )
    .run()
    .context("building ci-storage")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    Ok(target.join("release").join("ci-storage"))
}

/// A throwaway ed25519 key in `work`.
fn keygen(sh: &Shell, work: &std::path::Path) -> anyhow::Result<Key> {
    let path = work.join("id_ed25519");
    for p in [path.clone(), path.with_extension("pub")] {
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    cmd!(
        sh,
        "ssh-keygen -q -t ed25519 -N '' -C cargo-xtask-bench -f {path}"
    )
    .quiet()
    .run()
    .context("ssh-keygen (apt-get install -y openssh-client)")?;
    let private = std::fs::read_to_string(&path).context("reading the generated key")?;
    Ok(Key { path, private })
}

/// `cargo xtask bench <args>` as it was invoked.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo xtask {}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("1234"), Ok(1234));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("x").is_err());
    }
}
