//! Manifest parsing and validation: the shipped manifests load, and each error case says file,
//! key and what is expected.

use super::*;

const OK: &str = r#"
[base.debian]
image = "debian:bookworm-slim"
[base.debian.bootstrap]
suite = "bookworm"
mirror = "http://deb.debian.org/debian"

[artifact.tool]
version = "1.0"
url = "https://example.invalid/tool-{arch}-{version}.tar.gz"
sha256 = { x64 = "0000000000000000000000000000000000000000000000000000000000000000" }

[layer.l]
apt = ["curl"]
tarballs = [{ artifact = "tool", dest = "/opt/tool" }]

[image.a]
from = "debian"
layers = ["l"]
"#;

fn err(extra: &str) -> String {
    Manifest::parse("m.toml", &format!("{OK}{extra}"))
        .unwrap_err()
        .to_string()
}

fn replaced(from: &str, to: &str) -> String {
    assert!(OK.contains(from), "{from}");
    Manifest::parse("m.toml", &OK.replace(from, to))
        .unwrap_err()
        .to_string()
}

fn assert_has(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "`{p}` missing in: {err}");
    }
}

#[test]
fn shipped_manifests_load() {
    let root = crate::workspace_root();
    let release = Manifest::load(&root.join("images/images.toml")).unwrap();
    assert_eq!(release.name, "release");
    assert!(!release.test);
    for name in ["ci-runner", "ci-runner-node", "ci-runner-python"] {
        assert!(release.images.contains_key(name), "{name}");
        assert!(!release.is_test(name));
    }
    let test = Manifest::load(&root.join("images/test.toml")).unwrap();
    assert_eq!(test.name, "test");
    assert_eq!(test.repository, "warm-runners-test");
    assert!(test.images.contains_key("ci-runner") && test.images.contains_key("mock-github"));
    assert!(test.is_test("ci-runner"));
    // test.toml replaces the artifact, keeps the layers of images.toml
    assert_eq!(
        test.artifacts["actions-runner"].version.as_deref(),
        Some("2.999.0")
    );
    assert_eq!(test.layers["system"], release.layers["system"]);
    assert!(test
        .source_of("artifact.actions-runner")
        .ends_with("test.toml"));
    assert!(test.source_of("layer.system").ends_with("images.toml"));
    let example = Manifest::load(&root.join("images/example.toml")).unwrap();
    assert!(example.images.contains_key("my-runner") && !example.is_test("my-runner"));
}

#[test]
fn minimal_manifest_parses_with_defaults() {
    let m = Manifest::parse("m.toml", OK).unwrap();
    assert_eq!(m.repository, "warm-runners");
    let b = m.bases["debian"].bootstrap.as_ref().unwrap();
    assert_eq!(
        (b.variant.as_str(), b.slim, b.components.clone()),
        ("minbase", true, vec!["main".to_string()])
    );
    assert!(m.layers["l"].tarballs[0].unpack);
    assert_eq!(m.default_images(), ["a"]);
}

#[test]
fn syntax_and_unknown_keys_name_the_file() {
    assert_has(
        &err("[layer.x]\napt = [\"a\"]\nfoo = 1\n"),
        &["m.toml", "unknown field `foo`"],
    );
    assert_has(&err("[image.b]\nfrom = 3\n"), &["m.toml", "invalid type"]);
    assert_has(
        &Manifest::parse("m.toml", "nope = ")
            .unwrap_err()
            .to_string(),
        &["m.toml"],
    );
}

#[test]
fn base_needs_image_or_bootstrap() {
    assert_has(
        &err("[base.empty]\n"),
        &["m.toml: base.empty", "neither `image` nor `bootstrap`"],
    );
    assert_has(
        &err("[base.b]\n[base.b.bootstrap]\nsuite = \"\"\nmirror = \"m\"\n"),
        &["base.b.bootstrap.suite: empty", "expected"],
    );
}

#[test]
fn artifact_errors() {
    assert_has(
        &replaced("sha256 = { x64 = \"0000000000000000000000000000000000000000000000000000000000000000\" }", ""),
        &["m.toml: artifact.tool: no checksum", "expected `sha256"],
    );
    assert_has(
        &replaced("x64 = \"0000", "x64 = \"zz00"),
        &["artifact.tool.sha256.x64", "expected 64 lowercase hex"],
    );
    assert_has(
        &replaced("{ x64 =", "{ riscv ="),
        &["artifact.tool.sha256.riscv: unknown arch"],
    );
    assert_has(
        &replaced("version = \"1.0\"\n", ""),
        &["artifact.tool.url: uses {version} but `version` is not set"],
    );
    assert_has(
        &replaced("{arch}", "{os}"),
        &["artifact.tool.url: unknown placeholder {os}"],
    );
}

#[test]
fn layer_errors() {
    assert_has(
        &err("[layer.x]\nenv = { \"A-B\" = \"1\" }\n"),
        &["layer.x.env: bad variable name `A-B`"],
    );
    assert_has(
        &err("[layer.x]\nfiles = [{ src = \"../etc/passwd\", dest = \"/x\" }]\n"),
        &["layer.x.files[0].src", "inside the workspace"],
    );
    assert_has(
        &err("[layer.x]\nfiles = [{ src = \"a\", dest = \"rel\" }]\n"),
        &["layer.x.files[0].dest", "absolute path"],
    );
    assert_has(
        &err("[layer.x]\nfiles = [{ src = \"a\", dest = \"/a\", mode = \"0999\" }]\n"),
        &["files[0].mode", "octal"],
    );
    assert_has(
        &err("[layer.x]\ntarballs = [{ artifact = \"nope\", dest = \"/x\" }]\n"),
        &[
            "layer.x.tarballs[0].artifact: unknown artifact `nope`",
            "\"tool\"",
        ],
    );
    assert_has(
        &err("[layer.x]\ncargo = [{ package = \"runner\", bins = [] }]\n"),
        &["layer.x.cargo[0]"],
    );
    assert_has(
        &err("[layer.x]\ncheck = [[]]\n"),
        &["layer.x.check[0]: empty"],
    );
    assert_has(
        &err("[layer.x]\nentrypoint = []\n"),
        &["layer.x.entrypoint: empty list"],
    );
    assert_has(&err("[layer.Bad]\n"), &["layer.Bad", "bad name"]);
}

#[test]
fn image_errors() {
    assert_has(
        &err("[image.b]\nfrom = \"nope\"\nlayers = [\"l\"]\n"),
        &[
            "m.toml: image.b.from: unknown base or image `nope`",
            "\"debian\"",
        ],
    );
    assert_has(
        &err("[image.b]\nfrom = \"a\"\nlayers = [\"zz\"]\n"),
        &["image.b.layers[0]: unknown layer `zz`", "\"l\""],
    );
    assert_has(
        &err("[image.b]\nfrom = \"a\"\n"),
        &["image.b.layers: empty"],
    );
    let e = Manifest::parse("m.toml", &format!("platforms = [\"linux/s390x\"]\n{OK}"))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["m.toml: platforms[0]: unknown platform"]);
}

#[test]
fn extends_replaces_whole_entries_and_names_sources() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.toml"), OK).unwrap();
    let child = "extends = \"base.toml\"\nname = \"child\"\ntest = true\n[layer.l]\nrun = [\"true\"]\n[image.c]\nfrom = \"a\"\nlayers = [\"l\"]\n";
    std::fs::write(dir.path().join("child.toml"), child).unwrap();
    let m = Manifest::load(&dir.path().join("child.toml")).unwrap();
    assert_eq!(m.name, "child");
    assert!(m.layers["l"].apt.is_empty(), "the whole layer is replaced");
    assert_eq!(m.images.len(), 2);
    assert!(m.is_test("a"));
    assert!(m.source_of("image.a").ends_with("base.toml"));
    assert!(m.source_of("image.c").ends_with("child.toml"));

    std::fs::write(dir.path().join("loop.toml"), "extends = \"loop.toml\"\n").unwrap();
    let e = Manifest::load(&dir.path().join("loop.toml"))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["loop.toml", "cycle"]);
    let e = Manifest::load(&dir.path().join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["reading manifest", "missing.toml"]);
}
