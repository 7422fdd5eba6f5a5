//! Dockerfile generation: golden files of `cargo xtask build-image --print`, and the content
//! hash (same input, same tag; any input change, a new tag).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::artifact::Artifacts;
use crate::context::{layer_hash, Sources};
use crate::plan;

fn labels() -> ImageLabels {
    ImageLabels {
        version: "0.0.0-golden".into(),
    }
}

/// Compares `actual` with the golden file, or rewrites it with `UPDATE_GOLDEN=1`.
fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b);
        panic!(
            "{} is out of date (first difference at line {}).\n\
             If the change is intended, run `cargo xtask bless` (or UPDATE_GOLDEN=1 cargo test -p xtask golden).\n\
             --- actual ---\n{actual}",
            path.display(),
            first.map_or("end".into(), |l| (l + 1).to_string())
        );
    }
}

fn printed(manifest: &str) -> String {
    let m = Manifest::load(&crate::workspace_root().join("images").join(manifest)).unwrap();
    let images = plan::order(&m, &m.images.keys().cloned().collect::<Vec<_>>()).unwrap();
    crate::build_image::print_plan(&m, &plan::steps(&m, &images), &labels())
}

#[test]
fn golden_release_dockerfiles() {
    golden("images.Dockerfiles", &printed("images.toml"));
}

#[test]
fn golden_test_dockerfiles() {
    golden("test.Dockerfiles", &printed("test.toml"));
}

#[test]
fn golden_example_dockerfiles() {
    golden("example.Dockerfiles", &printed("example.toml"));
}

const MANIFEST: &str = r#"
[base.b]
image = "x:y"
[artifact.t]
url = "https://example.invalid/t.tar.gz"
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
[layer.l]
env = { A = "1" }
path = ["/opt/t/bin"]
apt = ["curl"]
files = [{ src = "f.sh", dest = "/root/", mode = "0755", owner = "user" }]
tarballs = [{ artifact = "t", dest = "/opt/t", strip_components = 1 }]
cargo = [{ package = "runner", bins = ["runner"] }]
run = ["echo one", "echo two\necho three"]
workdir = "/w"
healthcheck = { cmd = ["true"], interval = "5s", retries = 2 }
entrypoint = ["/e"]
cmd = ["--x"]
stopsignal = "SIGTERM"
[layer.m]
run = ["true"]
[image.i]
from = "b"
layers = ["l", "m"]
"#;

#[test]
fn renders_every_key_in_order() {
    let m = Manifest::parse("m.toml", MANIFEST).unwrap();
    let steps = plan::steps(&m, &["i".to_string()]);
    let g = render(&m, &steps[0], &labels());
    let lines: Vec<&str> = g.text.lines().filter(|l| !l.starts_with('#')).collect();
    let first_word: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        first_word,
        [
            "ARG",
            "FROM",
            "ENV",
            "PATH=\"/opt/t/bin:${PATH}\"",
            "RUN",
            "RUN",
            "&&",
            "curl",
            "&&",
            "&&",
            "COPY",
            "COPY",
            "COPY",
            "RUN",
            "RUN",
            "WORKDIR",
            "STOPSIGNAL",
            "HEALTHCHECK",
            "ENTRYPOINT",
            "CMD"
        ]
    );
    assert!(
        g.text
            .contains("ENV A=\"1\" \\\n    PATH=\"/opt/t/bin:${PATH}\""),
        "{}",
        g.text
    );
    assert!(g.text.contains("COPY --chown=user files/0/f.sh /root/"));
    assert!(g.text.contains("COPY tarballs/0/ /opt/t/"));
    assert!(g
        .text
        .contains("RUN [\"/bin/sh\",\"-eu\",\"-c\",\"echo two\\necho three\"]"));
    assert!(g
        .text
        .contains("HEALTHCHECK --interval=5s --retries=2 CMD [\"true\"]"));
    assert!(
        !g.text.contains("LABEL"),
        "only the final layer is labelled"
    );
    assert_eq!(g.items.len(), 3);
    let last = render(&m, &steps[1], &labels());
    assert!(last
        .text
        .contains("\"org.opencontainers.image.title\"=\"i\""));
    assert!(!last.text.contains(crate::tags::TEST_LABEL));
    let test = Manifest::parse("m.toml", &format!("test = true\n{MANIFEST}")).unwrap();
    assert!(render(&test, &steps[1], &labels())
        .text
        .contains("\"warm-runners.test\"=\"true\""));
}

/// Hashes layer `l` of MANIFEST (with `edit` applied) in `dir`.
fn hash(dir: &Path, parent: &str, edit: impl Fn(&mut Manifest)) -> String {
    let mut m = Manifest::parse("m.toml", MANIFEST).unwrap();
    edit(&mut m);
    let steps = plan::steps(&m, &["i".to_string()]);
    let g = render(&m, &steps[0], &labels());
    let sh = xshell::Shell::new().unwrap();
    let mut artifacts = Artifacts::new(&m, dir, "x64", BTreeMap::new());
    let binaries = BTreeMap::from([("runner/runner".to_string(), dir.join("runner"))]);
    let mut src = Sources {
        workspace: dir,
        artifacts: &mut artifacts,
        binaries: &binaries,
    };
    layer_hash(&sh, parent, &g, &mut src).unwrap()
}

#[test]
fn hash_changes_with_every_input_and_only_then() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("f.sh"), "echo hi\n").unwrap();
    std::fs::write(d.join("runner"), "binary v1").unwrap();
    let base = hash(d, "sha256:p1", |_| {});
    assert_eq!(base, hash(d, "sha256:p1", |_| {}), "same input, same hash");
    assert_eq!(base.len(), 64);

    let mut seen = vec![base.clone()];
    let mut differs = |what: &str, h: String| {
        assert!(!seen.contains(&h), "{what} did not change the hash");
        seen.push(h);
    };
    differs("parent", hash(d, "sha256:p2", |_| {}));
    differs(
        "dockerfile",
        hash(d, "sha256:p1", |m| {
            m.layers.get_mut("l").unwrap().apt.push("git".into())
        }),
    );
    differs(
        "file mode",
        hash(d, "sha256:p1", |m| {
            m.layers.get_mut("l").unwrap().files[0].mode = Some("0700".into())
        }),
    );
    differs(
        "artifact sha",
        hash(d, "sha256:p1", |m| {
            m.artifacts.get_mut("t").unwrap().sha256 =
                Some(crate::manifest::Sha256Spec::Any("2".repeat(64)));
        }),
    );
    std::fs::write(d.join("f.sh"), "echo ho\n").unwrap();
    differs("file bytes", hash(d, "sha256:p1", |_| {}));
    std::fs::write(d.join("runner"), "binary v2").unwrap();
    differs("binary bytes", hash(d, "sha256:p1", |_| {}));

    // the file's own mode counts when the manifest sets none
    let no_mode = |m: &mut Manifest| m.layers.get_mut("l").unwrap().files[0].mode = None;
    let before = hash(d, "sha256:p1", no_mode);
    std::fs::set_permissions(d.join("f.sh"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_ne!(before, hash(d, "sha256:p1", no_mode));
    // the image a layer belongs to does not count: shared layers share a tag
    assert_eq!(
        seen.last(),
        Some(&hash(d, "sha256:p1", |m| {
            let i = m.images.remove("i").unwrap();
            m.images.insert("other".into(), i.clone());
            m.images.insert("i".into(), i);
        }))
    );
}
