//! Image tags, read from the one place xtask writes them: `target/images.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Logical names of the images the suite uses (keys of `target/images.json`).
pub mod names {
    /// The runner image with the fake actions runner (built from the test manifest).
    pub const RUNNER: &str = "ci-runner-test";
    /// The node add-on on top of the test runner image.
    pub const RUNNER_NODE: &str = "ci-runner-node-test";
    /// The python add-on on top of the test runner image.
    pub const RUNNER_PYTHON: &str = "ci-runner-python-test";
    /// The test runner plus `images/test-hooks` (root and user hooks), for scenario 7.
    pub const RUNNER_HOOKS: &str = "ci-runner-hooks-test";
    /// The mock GitHub.
    pub const MOCK_GITHUB: &str = "mock-github";
    /// The ci-storage host (sshd + rsync + perl).
    pub const STORAGE_HOST: &str = "ci-storage-host";
}

/// Image name → local image reference (`repository:tag`).
#[derive(Debug, Clone)]
pub struct Images {
    refs: BTreeMap<String, String>,
    source: PathBuf,
}

impl Images {
    /// Reads `$E2E_IMAGES_JSON`, else `<target dir>/images.json`.
    pub fn load() -> Result<Images> {
        let path = match std::env::var_os("E2E_IMAGES_JSON") {
            Some(p) => PathBuf::from(p),
            None => target_dir().join("images.json"),
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (run `cargo xtask e2e`, which builds the test images and writes it)",
                path.display()
            )
        })?;
        let refs = parse(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Images { refs, source: path })
    }

    /// The local reference of image `name`, split into (repository, tag) for testcontainers.
    pub fn get(&self, name: &str) -> Result<(String, String)> {
        let Some(reference) = self.refs.get(name) else {
            bail!(
                "image {name:?} is not in {} (known: {}); build it with `cargo xtask e2e`",
                self.source.display(),
                self.refs.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        Ok(split_reference(reference))
    }

    /// The full `repository:tag` reference of image `name`.
    pub fn reference(&self, name: &str) -> Result<String> {
        let (repo, tag) = self.get(name)?;
        Ok(format!("{repo}:{tag}"))
    }
}

/// The cargo target directory of this workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    }
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Accepts `{name: "repo:tag"}`, `{name: {"tag"|"reference"|"image": "repo:tag", ..}}`, and
/// either of those under a top-level `"images"` key.
fn parse(text: &str) -> Result<BTreeMap<String, String>> {
    let value: Value = serde_json::from_str(text)?;
    let map = match value.get("images") {
        Some(Value::Object(m)) => m.clone(),
        _ => match value {
            Value::Object(m) => m,
            _ => bail!("expected a JSON object of image name → tag"),
        },
    };
    let mut refs = BTreeMap::new();
    for (name, v) in map {
        let reference = match &v {
            Value::String(s) => s.clone(),
            Value::Object(o) => ["reference", "tag", "image", "local_tag", "local"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str))
                .map(str::to_owned)
                .with_context(|| format!("image {name:?}: no \"tag\" string in {v}"))?,
            _ => bail!("image {name:?}: expected a string or an object, got {v}"),
        };
        refs.insert(name, reference);
    }
    Ok(refs)
}

/// `registry:5000/a/b:tag` → (`registry:5000/a/b`, `tag`); no tag → `latest`.
fn split_reference(reference: &str) -> (String, String) {
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(i) => (
            reference[..last_slash + i].to_owned(),
            reference[last_slash + i + 1..].to_owned(),
        ),
        None => (reference.to_owned(), "latest".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_references() {
        assert_eq!(split_reference("a:1"), ("a".into(), "1".into()));
        assert_eq!(
            split_reference("localhost:5000/x/y:abc"),
            ("localhost:5000/x/y".into(), "abc".into())
        );
        assert_eq!(
            split_reference("localhost:5000/x"),
            ("localhost:5000/x".into(), "latest".into())
        );
    }

    #[test]
    fn parses_flat_and_nested_maps() {
        let flat = parse(r#"{"mock-github":"warm/mock-github:abc"}"#).unwrap();
        assert_eq!(flat["mock-github"], "warm/mock-github:abc");
        let nested = parse(r#"{"images":{"x":{"tag":"x:1","test":true}}}"#).unwrap();
        assert_eq!(nested["x"], "x:1");
        assert!(parse("[1]").is_err());
    }
}
