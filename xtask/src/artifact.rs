//! Artifacts (`[artifact.NAME]`): tarballs from a cache, a URL, or a local file — always
//! sha256-checked. Downloads land in a cache keyed by sha256, so they happen once.
//!
//! The expected sha256 is the pinned one (`sha256`), else the one in `sha256_file` (or in
//! `FILE.sha256` next to a `--runner-tarball FILE`). Nothing is trusted unchecked.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::manifest::{Artifact, Manifest, Sha256Spec};

/// The artifact `--runner-tarball` stands for.
pub const ACTIONS_RUNNER: &str = "actions-runner";

/// Resolves and fetches the artifacts of one manifest for one arch.
pub struct Artifacts<'a> {
    manifest: &'a Manifest,
    workspace: PathBuf,
    arch: String,
    overrides: BTreeMap<String, PathBuf>,
    cache: PathBuf,
    prepared: BTreeMap<String, ()>,
    /// Time spent in `prepare` commands (they may build, e.g. the fake runner).
    pub prepare_time: std::time::Duration,
    expected: BTreeMap<String, String>,
    fetched: BTreeMap<String, PathBuf>,
}

impl<'a> Artifacts<'a> {
    /// `overrides` maps artifact names to local files given on the command line.
    pub fn new(
        manifest: &'a Manifest,
        workspace: &Path,
        arch: &str,
        overrides: BTreeMap<String, PathBuf>,
    ) -> Self {
        Artifacts {
            manifest,
            workspace: workspace.to_path_buf(),
            arch: arch.to_string(),
            overrides,
            cache: cache_dir(),
            prepared: BTreeMap::new(),
            prepare_time: std::time::Duration::ZERO,
            expected: BTreeMap::new(),
            fetched: BTreeMap::new(),
        }
    }

    fn def(&self, name: &str) -> anyhow::Result<&'a Artifact> {
        self.manifest
            .artifacts
            .get(name)
            .with_context(|| format!("unknown artifact `{name}`"))
    }

    /// `{version}`, `{arch}` (`x64`, `arm64`) and `{platform_arch}` (`amd64`, `arm64`) substituted.
    fn expand(&self, a: &Artifact, template: &str) -> String {
        let platform_arch = if self.arch == "x64" {
            "amd64"
        } else {
            self.arch.as_str()
        };
        template
            .replace("{version}", a.version.as_deref().unwrap_or(""))
            .replace("{arch}", &self.arch)
            .replace("{platform_arch}", platform_arch)
    }

    /// Runs the artifact's `prepare` command once.
    fn prepare(&mut self, sh: &Shell, name: &str) -> anyhow::Result<()> {
        let a = self.def(name)?;
        let Some(prepare) = &a.prepare else {
            return Ok(());
        };
        if self.prepared.insert(name.to_string(), ()).is_some() {
            return Ok(());
        }
        let script = self.expand(a, prepare);
        eprintln!("==> artifact {name}: {script}");
        let _dir = sh.push_dir(&self.workspace);
        let started = std::time::Instant::now();
        cmd!(sh, "sh -c {script}")
            .run()
            .with_context(|| format!("artifact.{name}.prepare failed"))?;
        self.prepare_time += started.elapsed();
        Ok(())
    }

    /// The sha256 the artifact must have (runs `prepare` if it makes the checksum file).
    pub fn expected_sha256(&mut self, sh: &Shell, name: &str) -> anyhow::Result<String> {
        if let Some(s) = self.expected.get(name) {
            return Ok(s.clone());
        }
        let a = self.def(name)?;
        let at = format!(
            "{}: artifact.{name}",
            self.manifest.source_of(&format!("artifact.{name}"))
        );
        let pinned = match &a.sha256 {
            Some(Sha256Spec::Any(s)) => Some(s.clone()),
            Some(Sha256Spec::PerArch(map)) => Some(map.get(&self.arch).cloned().with_context(|| {
                format!("{at}.sha256: no checksum for arch `{}`; expected `sha256.{} = \"<64 hex>\"`", self.arch, self.arch)
            })?),
            None => None,
        };
        let sha = if let Some(sha) = pinned {
            sha
        } else if let Some(file) = self.overrides.get(name) {
            let sums = PathBuf::from(format!("{}.sha256", file.display()));
            let text = std::fs::read_to_string(&sums).with_context(|| {
                format!(
                    "{at} pins no sha256, so {} must have {} next to it (sha256sum format)",
                    file.display(),
                    sums.display()
                )
            })?;
            parse_sha256sum(&text, file).with_context(|| format!("reading {}", sums.display()))?
        } else {
            self.prepare(sh, name)?;
            let location = self.expand(a, a.sha256_file.as_deref().unwrap_or_default());
            let text = read_location(&self.workspace, &location)
                .with_context(|| format!("{at}.sha256_file: cannot read `{location}`"))?;
            parse_sha256sum(&text, Path::new(&self.expand(a, &a.url)))
                .with_context(|| format!("{at}.sha256_file: `{location}`"))?
        };
        self.expected.insert(name.to_string(), sha.clone());
        Ok(sha)
    }

    /// A local, verified copy of the artifact.
    pub async fn fetch(&mut self, sh: &Shell, name: &str) -> anyhow::Result<PathBuf> {
        if let Some(p) = self.fetched.get(name) {
            return Ok(p.clone());
        }
        let expected = self.expected_sha256(sh, name)?;
        let a = self.def(name)?;
        let cached = self.cache.join("tarballs").join(&expected);
        let path = if let Some(file) = self.overrides.get(name).cloned() {
            verify(&file, &expected)?;
            store(&file, &cached)?;
            file
        } else if cached.exists() && verify(&cached, &expected).is_ok() {
            cached
        } else {
            self.prepare(sh, name)?;
            let url = self.expand(a, &a.url);
            if is_remote(&url) {
                if let Err(e) = download(&url, &cached, &expected).await {
                    bail!("{}", self.fetch_help(name, a, &url, &expected, &cached, &e));
                }
                cached
            } else {
                let file = local_path(&self.workspace, &url);
                verify(&file, &expected)
                    .with_context(|| format!("artifact `{name}` at {}", file.display()))?;
                file
            }
        };
        self.fetched.insert(name.to_string(), path.clone());
        Ok(path)
    }

    fn fetch_help(
        &self,
        name: &str,
        a: &Artifact,
        url: &str,
        sha: &str,
        cached: &Path,
        e: &anyhow::Error,
    ) -> String {
        let version = a.version.as_deref().unwrap_or("");
        let file = url.rsplit('/').next().unwrap_or("FILE");
        let flag = if name == ACTIONS_RUNNER {
            format!(
                "  2. a local file:   cargo xtask build-image --runner-tarball /path/to/{file}\n"
            )
        } else {
            String::new()
        };
        format!(
            "could not download artifact `{name}` {version} ({arch}) from {url}: {e:#}\n\
             The file must have sha256 {sha}. Provide it in one of these ways:\n\
             \x20 1. seed the cache:  copy the file to {cached}\n{flag}\
             \x20 3. a mirror:        set `url` of [artifact.{name}] in a manifest that `extends` {manifest}\n\
             \x20                     (a GitHub Enterprise Server, an internal mirror, or the mock GitHub)",
            arch = self.arch,
            cached = cached.display(),
            manifest = self.manifest.path.display(),
        )
    }
}

/// `WARM_RUNNERS_CACHE_DIR`, else `$XDG_CACHE_HOME/warm-runners`, else `~/.cache/warm-runners`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WARM_RUNNERS_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            home.join(".cache")
        });
    base.join("warm-runners")
}

fn is_remote(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

fn local_path(workspace: &Path, location: &str) -> PathBuf {
    workspace.join(location.strip_prefix("file://").unwrap_or(location))
}

fn read_location(workspace: &Path, location: &str) -> anyhow::Result<String> {
    if is_remote(location) {
        bail!("remote checksum files are not supported here; pin `sha256` in the manifest instead");
    }
    let path = local_path(workspace, location);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The checksum for `file` in `sha256sum` output (the line naming it, else the only line).
pub fn parse_sha256sum(text: &str, file: &Path) -> anyhow::Result<String> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((
                parts.next()?,
                parts.next().unwrap_or("").trim_start_matches('*'),
            ))
        })
        .collect();
    let hit = lines
        .iter()
        .find(|(_, n)| n.rsplit('/').next() == Some(name.as_str()));
    let (hex, _) = match (hit, lines.as_slice()) {
        (Some(h), _) => *h,
        (None, [only]) => *only,
        _ => bail!("no checksum line for `{name}`; expected `<64 hex>  {name}`"),
    };
    crate::manifest::check_hex("checksum", hex)?;
    Ok(hex.to_string())
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Fails with expected vs got when `path` does not have sha256 `expected`.
pub fn verify(path: &Path, expected: &str) -> anyhow::Result<()> {
    let got = sha256_file(path)?;
    if got != expected {
        bail!(
            "sha256 mismatch for {}:\n  expected {expected}\n  got      {got}",
            path.display()
        );
    }
    Ok(())
}

fn store(file: &Path, cached: &Path) -> anyhow::Result<()> {
    if cached.exists() {
        return Ok(());
    }
    if let Some(dir) = cached.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = cached.with_extension("tmp");
    std::fs::copy(file, &tmp)
        .with_context(|| format!("copying {} into the cache", file.display()))?;
    std::fs::rename(&tmp, cached).with_context(|| format!("renaming into {}", cached.display()))
}

async fn download(url: &str, cached: &Path, expected: &str) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    use std::io::Write;
    eprintln!("==> downloading {url}");
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(900))
        .build()?;
    let resp = client.get(url).send().await?.error_for_status()?;
    if let Some(dir) = cached.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = cached.with_extension("part");
    let mut out =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut hasher = Sha256::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        out.write_all(&chunk)
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    let got = hex::encode(hasher.finalize());
    if got != expected {
        let _ = std::fs::remove_file(&tmp);
        bail!("sha256 mismatch for {url}:\n  expected {expected}\n  got      {got}");
    }
    std::fs::rename(&tmp, cached).with_context(|| format!("renaming into {}", cached.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sum_lines() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = format!("{a}  x.tar.gz\n{b} *dir/y.tar.gz\n");
        assert_eq!(parse_sha256sum(&text, Path::new("/p/y.tar.gz")).unwrap(), b);
        assert_eq!(
            parse_sha256sum(&format!("{a}  other\n"), Path::new("x")).unwrap(),
            a
        );
        assert!(parse_sha256sum(&text, Path::new("z")).is_err());
        assert!(parse_sha256sum("xyz  z\n", Path::new("z")).is_err());
    }

    #[test]
    fn verify_reports_expected_and_got() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        let good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        verify(&f, good).unwrap();
        let err = verify(&f, &"0".repeat(64)).unwrap_err().to_string();
        assert!(
            err.contains("expected 0000") && err.contains(&format!("got      {good}")),
            "{err}"
        );
    }
}
