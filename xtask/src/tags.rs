//! Tag names, in one place, and `target/images.json`, which e2e tests and the bench read.
//!
//! - intermediate layers: `warm-runners-layers/<layer>:<hash>`
//! - final images: `<repository>/<image>:<hash>`, alias `<repository>/<image>:latest`
//! - published: `<registry>/<image>:<version>`, `:<git short sha>`, `:latest`
//!
//! `<hash>` is the first 16 hex digits of the sha256 of everything that went into the layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Label that marks test images; `publish` refuses images carrying it.
pub const TEST_LABEL: &str = "warm-runners.test";
/// Local repository of intermediate layers (never published).
pub const LAYER_REPOSITORY: &str = "warm-runners-layers";
/// Hex digits of the content hash kept in tags.
pub const HASH_LEN: usize = 16;

/// Tag of an intermediate layer.
pub fn layer_tag(layer: &str, hash: &str) -> String {
    format!("{LAYER_REPOSITORY}/{layer}:{}", short(hash))
}

/// Content tag of a final image.
pub fn image_tag(repository: &str, image: &str, hash: &str) -> String {
    format!("{repository}/{image}:{}", short(hash))
}

/// Stable local alias of a final image.
pub fn alias(repository: &str, image: &str) -> String {
    format!("{repository}/{image}:latest")
}

/// Tag of a bootstrapped base image.
pub fn base_tag(base: &str, hash: &str) -> String {
    format!("{LAYER_REPOSITORY}/base-{base}:{}", short(hash))
}

/// Tags `publish` pushes for one image.
pub fn publish_tags(
    registry: &str,
    image: &str,
    version: &str,
    sha: &str,
    latest: bool,
    extra: &[String],
) -> Vec<String> {
    let registry = registry.trim_end_matches('/');
    let mut tags = vec![version.to_string(), sha.to_string()];
    if latest {
        tags.push("latest".into());
    }
    tags.extend(extra.iter().cloned());
    tags.dedup();
    tags.into_iter()
        .map(|t| format!("{registry}/{image}:{t}"))
        .collect()
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(HASH_LEN)]
}

/// Splits `repo/name:tag` into (`repo/name`, `tag`); a `:` in a registry port is not a tag.
pub fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

/// One built image in `target/images.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuiltImage {
    /// Content tag: `warm-runners-test/ci-runner:0123456789abcdef`.
    pub tag: String,
    /// Stable alias: `warm-runners-test/ci-runner:latest`.
    pub alias: String,
    /// Docker image id (`sha256:…`).
    pub id: String,
    /// Whether it is a test image.
    pub test: bool,
}

/// `target/images.json`: image set (`release`, `test`) → image name → built image.
pub type ImagesJson = BTreeMap<String, BTreeMap<String, BuiltImage>>;

/// Where `images.json` lives.
pub fn images_json_path(workspace: &Path) -> PathBuf {
    workspace.join("target").join("images.json")
}

/// Reads `images.json` (empty when missing).
pub fn read_images_json(path: &Path) -> anyhow::Result<ImagesJson> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ImagesJson::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Merges `built` into the `set` of `images.json` and writes it.
pub fn update_images_json(
    path: &Path,
    set: &str,
    built: BTreeMap<String, BuiltImage>,
) -> anyhow::Result<()> {
    let mut all = read_images_json(path)?;
    all.entry(set.to_string()).or_default().extend(built);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&all)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names() {
        let h = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            layer_tag("system", h),
            "warm-runners-layers/system:0123456789abcdef"
        );
        assert_eq!(
            image_tag("warm-runners", "ci-runner", h),
            "warm-runners/ci-runner:0123456789abcdef"
        );
        assert_eq!(
            alias("warm-runners-test", "ci-runner"),
            "warm-runners-test/ci-runner:latest"
        );
        assert_eq!(
            base_tag("debian", h),
            "warm-runners-layers/base-debian:0123456789abcdef"
        );
        assert_eq!(
            publish_tags(
                "127.0.0.1:5000/wr/",
                "ci-runner",
                "0.1.0",
                "abc1234",
                true,
                &["x".into()]
            ),
            [
                "127.0.0.1:5000/wr/ci-runner:0.1.0",
                "127.0.0.1:5000/wr/ci-runner:abc1234",
                "127.0.0.1:5000/wr/ci-runner:latest",
                "127.0.0.1:5000/wr/ci-runner:x"
            ]
        );
        assert_eq!(
            publish_tags("r", "i", "1", "s", false, &[]),
            ["r/i:1", "r/i:s"]
        );
    }

    #[test]
    fn split_tags() {
        assert_eq!(split_tag("a/b:c"), ("a/b", "c"));
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b"),
            ("127.0.0.1:5000/a/b", "latest")
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b:1.0"),
            ("127.0.0.1:5000/a/b", "1.0")
        );
    }

    #[test]
    fn images_json_merges_sets() {
        let dir = tempfile::tempdir().unwrap();
        let path = images_json_path(dir.path());
        let img = |t: &str| BuiltImage {
            tag: t.into(),
            alias: "a".into(),
            id: "i".into(),
            test: false,
        };
        update_images_json(&path, "release", [("a".to_string(), img("1"))].into()).unwrap();
        update_images_json(&path, "test", [("a".to_string(), img("2"))].into()).unwrap();
        update_images_json(&path, "release", [("b".to_string(), img("3"))].into()).unwrap();
        let all = read_images_json(&path).unwrap();
        assert_eq!(all["release"].len(), 2);
        assert_eq!(all["test"]["a"].tag, "2");
    }
}
