//! Image tags, read from the one place xtask writes them: `target/images.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Logical names of the images the suite uses (keys of a set in `target/images.json`).
pub mod names {
    /// The runner image with the fake actions runner (`images/test.toml`).
    pub const RUNNER: &str = "ci-runner";
    /// The node add-on image (test set).
    pub const RUNNER_NODE: &str = "ci-runner-node";
    /// The python add-on image (test set).
    pub const RUNNER_PYTHON: &str = "ci-runner-python";
    /// The test runner plus `images/test-hooks` (root and user hooks), for scenario 7.
    pub const RUNNER_HOOKS: &str = "ci-runner-hooks";
    /// The mock GitHub.
    pub const MOCK_GITHUB: &str = "mock-github";
    /// The ci-storage host (sshd + rsync + perl).
    pub const STORAGE_HOST: &str = "ci-storage-host";
}

/// Image sets searched, in order, unless `E2E_IMAGE_SETS` (comma-separated) says otherwise:
/// the test images, then the e2e additions (hooks).
pub const DEFAULT_SETS: &[&str] = &["test", "e2e"];

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
        let sets: Vec<String> = match std::env::var("E2E_IMAGE_SETS") {
            Ok(list) => list.split(',').map(|s| s.trim().to_owned()).collect(),
            Err(_) => DEFAULT_SETS.iter().map(|s| s.to_string()).collect(),
        };
        let refs = parse(&text, &sets).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Images { refs, source: path })
    }

    /// Images from a name → `repository:tag` map (for unit tests of request builders).
    pub fn from_map(refs: BTreeMap<String, String>) -> Images {
        Images {
            refs,
            source: PathBuf::from("<in memory>"),
        }
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

/// Parses `{set: {name: {"tag": "repo:tag", ..}}}` (what xtask writes) into name → reference,
/// earlier sets of `sets` winning; a flat `{name: "repo:tag" | {"tag": ..}}` is accepted too.
fn parse(text: &str, sets: &[String]) -> Result<BTreeMap<String, String>> {
    let value: Value = serde_json::from_str(text)?;
    let Value::Object(top) = value else {
        bail!("expected a JSON object of image sets")
    };
    let nested = top.values().all(|v| {
        v.as_object()
            .is_some_and(|o| o.values().all(Value::is_object))
    }) && top
        .values()
        .any(|v| v.as_object().is_some_and(|o| !o.is_empty()));
    let mut refs = BTreeMap::new();
    if !nested {
        for (name, v) in &top {
            refs.insert(name.clone(), reference_of(name, v)?);
        }
        return Ok(refs);
    }
    for set in sets.iter().rev() {
        if let Some(Value::Object(images)) = top.get(set) {
            for (name, v) in images {
                refs.insert(name.clone(), reference_of(name, v)?);
            }
        }
    }
    Ok(refs)
}

fn reference_of(name: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Object(o) => o
            .get("tag")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("image {name:?}: no \"tag\" string in {v}")),
        _ => bail!("image {name:?}: expected a string or an object, got {v}"),
    }
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
    fn parses_sets_and_flat_maps() {
        let sets = vec!["test".to_owned(), "e2e".to_owned()];
        let text = r#"{"release":{"ci-runner":{"tag":"r/ci-runner:1"}},
            "test":{"ci-runner":{"tag":"t/ci-runner:2","alias":"t/ci-runner:latest"}},
            "e2e":{"ci-runner":{"tag":"e/ci-runner:3"},"hooks":{"tag":"e/hooks:4"}}}"#;
        let refs = parse(text, &sets).unwrap();
        assert_eq!(refs["ci-runner"], "t/ci-runner:2");
        assert_eq!(refs["hooks"], "e/hooks:4");
        let flat = parse(r#"{"mock-github":"warm/mock-github:abc"}"#, &sets).unwrap();
        assert_eq!(flat["mock-github"], "warm/mock-github:abc");
        assert!(parse("[1]", &sets).is_err());
    }
}
