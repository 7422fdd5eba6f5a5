//! A generated work directory: deterministic (seeded) file names, sizes, contents and mtimes,
//! shaped like a `node_modules/` + `target/` mix: many small files, fewer big ones.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeSpec {
    /// Number of files.
    pub files: usize,
    /// Total bytes (approximately: sizes are scaled to it and rounded).
    pub bytes: u64,
    /// RNG seed.
    pub seed: u64,
}

/// One file of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the tree's root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// splitmix64: tiny, fast, good enough for test data, and stable across versions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-uniform in [lo, hi).
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }
}

/// mtime every generated file gets (deterministic, so two generations compare equal in rsync).
const BASE_MTIME: u64 = 1_700_000_000;

impl TreeSpec {
    /// The files: 90 % small sources (100 B–8 KB) under `node_modules/`, 9 % medium (8–128
    /// KB) and 1 % large (128 KB–2 MB) build outputs under `target/`; sizes scaled so they
    /// add up to `bytes`.
    pub fn plan(&self) -> Vec<Entry> {
        let mut rng = Rng::new(self.seed);
        let mut raw = Vec::with_capacity(self.files);
        for i in 0..self.files {
            let r = rng.unit();
            let (path, size) = if r < 0.90 {
                let pkg = i / 40;
                (
                    format!(
                        "node_modules/pkg-{:04}/lib/d{}/file-{i}.js",
                        pkg % 2500,
                        (i / 10) % 4
                    ),
                    rng.log_uniform(100.0, 8e3),
                )
            } else if r < 0.99 {
                (
                    format!("target/debug/deps/d{:03}/lib-{i}.rlib", i % 97),
                    rng.log_uniform(8e3, 128e3),
                )
            } else {
                (
                    format!("target/debug/build/b{:02}/out-{i}.o", i % 13),
                    rng.log_uniform(128e3, 2e6),
                )
            };
            raw.push((path, size));
        }
        let total: f64 = raw.iter().map(|(_, s)| s).sum();
        let scale = if total > 0.0 {
            self.bytes as f64 / total
        } else {
            0.0
        };
        raw.into_iter()
            .map(|(path, s)| Entry {
                path,
                size: (s * scale).round() as u64,
            })
            .collect()
    }

    /// Writes the tree into `root` (emptied first); returns the plan.
    pub fn generate(&self, root: &Path) -> anyhow::Result<Vec<Entry>> {
        if root.exists() {
            fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
        }
        let plan = self.plan();
        for (i, e) in plan.iter().enumerate() {
            write_file(root, e, self.content_seed(i, 0), original_mtime(i))?;
        }
        Ok(plan)
    }

    /// Which files round `round` of a change touches: `fraction` of them, spread by the seed.
    pub fn changed(&self, round: u64, fraction: f64) -> Vec<usize> {
        let n = ((self.files as f64 * fraction).ceil() as usize).min(self.files);
        let mut rng = Rng::new(self.seed ^ 0xC0FFEE ^ round.wrapping_mul(0x1000_0001));
        let mut picked = std::collections::BTreeSet::new();
        while picked.len() < n {
            picked.insert((rng.next_u64() % self.files as u64) as usize);
        }
        picked.into_iter().collect()
    }

    /// Rewrites the files of [`changed`](Self::changed) with new contents (same sizes) and a
    /// new mtime, deterministically for `round`.
    pub fn change(
        &self,
        root: &Path,
        plan: &[Entry],
        round: u64,
        fraction: f64,
    ) -> anyhow::Result<usize> {
        let files = self.changed(round, fraction);
        for &i in &files {
            let mtime = BASE_MTIME + 10_000_000 + round;
            write_file(root, &plan[i], self.content_seed(i, round + 1), mtime)?;
        }
        Ok(files.len())
    }

    /// Undoes [`change`](Self::change): original contents and mtimes.
    pub fn restore(
        &self,
        root: &Path,
        plan: &[Entry],
        round: u64,
        fraction: f64,
    ) -> anyhow::Result<()> {
        for i in self.changed(round, fraction) {
            write_file(root, &plan[i], self.content_seed(i, 0), original_mtime(i))?;
        }
        Ok(())
    }

    fn content_seed(&self, index: usize, version: u64) -> u64 {
        self.seed
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(index as u64)
            ^ version.wrapping_mul(0xD6E8_FEB8_6659_FD93)
    }
}

fn original_mtime(index: usize) -> u64 {
    BASE_MTIME + index as u64
}

/// Deterministic contents of `size` bytes.
pub fn contents(seed: u64, size: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut buf = Vec::with_capacity(size as usize + 8);
    while (buf.len() as u64) < size {
        buf.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    buf.truncate(size as usize);
    buf
}

fn write_file(root: &Path, e: &Entry, seed: u64, mtime: u64) -> anyhow::Result<()> {
    let path: PathBuf = root.join(&e.path);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(&contents(seed, e.size))
        .with_context(|| format!("writing {}", path.display()))?;
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
        .with_context(|| format!("setting the mtime of {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_sized() {
        let spec = TreeSpec {
            files: 5000,
            bytes: 50_000_000,
            seed: 7,
        };
        let a = spec.plan();
        assert_eq!(a, spec.plan());
        assert_ne!(a, TreeSpec { seed: 8, ..spec }.plan());
        assert_eq!(a.len(), 5000);
        let total: u64 = a.iter().map(|e| e.size).sum();
        assert!(total.abs_diff(50_000_000) < 5000, "{total}");
        let small = a
            .iter()
            .filter(|e| e.path.starts_with("node_modules/"))
            .count();
        assert!((4300..4700).contains(&small), "{small}");
        let names: std::collections::BTreeSet<_> = a.iter().map(|e| &e.path).collect();
        assert_eq!(names.len(), a.len(), "paths are unique");
    }

    #[test]
    fn generate_change_restore_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TreeSpec {
            files: 300,
            bytes: 300_000,
            seed: 1,
        };
        let plan = spec.generate(dir.path()).unwrap();
        let read = |e: &Entry| fs::read(dir.path().join(&e.path)).unwrap();
        let before: Vec<Vec<u8>> = plan.iter().map(read).collect();
        assert_eq!(before[5], contents(spec.content_seed(5, 0), plan[5].size));
        let changed = spec.changed(3, 0.01);
        assert_eq!(changed, spec.changed(3, 0.01));
        assert_eq!(changed.len(), 3);
        assert_eq!(spec.change(dir.path(), &plan, 3, 0.01).unwrap(), 3);
        let after: Vec<Vec<u8>> = plan.iter().map(read).collect();
        let differing: Vec<usize> = (0..plan.len())
            .filter(|&i| before[i] != after[i] || plan[i].size == 0)
            .collect();
        assert!(
            differing.iter().all(|i| changed.contains(i)),
            "{differing:?} vs {changed:?}"
        );
        spec.restore(dir.path(), &plan, 3, 0.01).unwrap();
        let restored: Vec<Vec<u8>> = plan.iter().map(read).collect();
        assert_eq!(before, restored);
        let mtime = fs::metadata(dir.path().join(&plan[changed[0]].path))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            mtime,
            SystemTime::UNIX_EPOCH + Duration::from_secs(original_mtime(changed[0]))
        );
    }
}
