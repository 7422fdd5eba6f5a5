//! The image manifest (`images/*.toml`): types, loading with `extends`, and validation.
//!
//! Every key is documented in `images/README.md`. A manifest may `extends` another one; entries
//! of the extending file replace whole entries of the same name (`[artifact.actions-runner]`,
//! `[image.ci-runner]`, ...), top-level keys override. Errors name the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// One manifest file as written on disk.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    extends: Option<String>,
    name: Option<String>,
    repository: Option<String>,
    registry: Option<String>,
    test: Option<bool>,
    platforms: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    base: BTreeMap<String, Base>,
    #[serde(default)]
    artifact: BTreeMap<String, Artifact>,
    #[serde(default)]
    layer: BTreeMap<String, Layer>,
    #[serde(default)]
    image: BTreeMap<String, Image>,
}

/// A loaded, merged and validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file given on the command line (after `extends` were followed).
    pub path: PathBuf,
    /// Name of this image set (`release`, `test`): the key in `target/images.json`.
    pub name: String,
    /// Local repository prefix of final images: `<repository>/<image>:<hash>`.
    pub repository: String,
    /// Default registry prefix for `cargo xtask publish`.
    pub registry: Option<String>,
    /// Every image of this manifest is a test image (labelled, never published).
    pub test: bool,
    /// Platforms the images are declared for (`linux/amd64`, `linux/arm64`).
    pub platforms: Vec<String>,
    /// Labels put on every final image.
    pub labels: BTreeMap<String, String>,
    /// Base images by name.
    pub bases: BTreeMap<String, Base>,
    /// Downloadable, checksummed tarballs by name.
    pub artifacts: BTreeMap<String, Artifact>,
    /// Layers by name.
    pub layers: BTreeMap<String, Layer>,
    /// Images by name.
    pub images: BTreeMap<String, Image>,
    /// Which file each entry (`image.x`, `layer.y`, ...) came from, for error messages.
    pub sources: BTreeMap<String, PathBuf>,
}

/// `[base.NAME]`: a base image used as is, or bootstrapped with mmdebstrap.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// Image reference used if present locally (or pullable): `debian:bookworm-slim`.
    pub image: Option<String>,
    /// Seconds to wait for a pull of `image` before bootstrapping instead (0 = never pull).
    #[serde(default = "default_pull_timeout")]
    pub pull_timeout_sec: u64,
    /// Recipe to build the base locally when `image` is unavailable.
    pub bootstrap: Option<Bootstrap>,
}

fn default_pull_timeout() -> u64 {
    20
}

/// `[base.NAME.bootstrap]`: an mmdebstrap (or debootstrap) recipe, imported as a local image.
#[derive(Debug, Clone, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// Distribution suite: `bookworm`.
    pub suite: String,
    /// Package mirror: `http://deb.debian.org/debian`.
    pub mirror: String,
    /// mmdebstrap variant: `minbase` (default), `apt`, `required`...
    #[serde(default = "default_variant")]
    pub variant: String,
    /// Archive components: `["main"]` (default).
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// Extra packages included in the bootstrap.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Leave out docs, man pages and locales, as Debian's `-slim` images do (default true).
    #[serde(default = "yes")]
    pub slim: bool,
}

fn default_variant() -> String {
    "minbase".into()
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

fn yes() -> bool {
    true
}

/// `[artifact.NAME]`: a tarball fetched from a URL or a local path, always sha256-checked.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Version, substituted for `{version}` in `url`, `sha256_file` and `prepare`.
    pub version: Option<String>,
    /// URL template (`https://…`, `http://…`) or path relative to the workspace root;
    /// `{version}`, `{arch}` (`x64`, `arm64`) and `{platform_arch}` (`amd64`, `arm64`) are
    /// substituted.
    pub url: String,
    /// Pinned sha256: one hex string, or one per arch (`{ x64 = "…", arm64 = "…" }`).
    pub sha256: Option<Sha256Spec>,
    /// Checksum file in `sha256sum` format (URL or path), used when `sha256` is not pinned.
    pub sha256_file: Option<String>,
    /// Shell command run from the workspace root before the artifact is fetched (makes it).
    pub prepare: Option<String>,
}

/// A pinned sha256, arch-independent or per arch.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Sha256Spec {
    /// Same file for every arch.
    Any(String),
    /// Per arch: `x64`, `arm64`.
    PerArch(BTreeMap<String, String>),
}

/// `[layer.NAME]`: one build step on top of a parent image (one generated Dockerfile).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// What the layer is for (shown in `--print`).
    pub description: Option<String>,
    /// Environment variables (`ENV`), set first so later steps see them.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Directories prepended to `PATH`.
    #[serde(default)]
    pub path: Vec<String>,
    /// Debian packages (`apt-get install --no-install-recommends`).
    #[serde(default)]
    pub apt: Vec<String>,
    /// Files or directories copied from the workspace.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Artifacts unpacked into the image.
    #[serde(default)]
    pub tarballs: Vec<TarballSpec>,
    /// Binaries built from this workspace (`cargo build --release -p PACKAGE --bins`).
    #[serde(default)]
    pub cargo: Vec<CargoSpec>,
    /// Shell steps, one `RUN` each, after the packages and files.
    #[serde(default)]
    pub run: Vec<String>,
    /// `WORKDIR`.
    pub workdir: Option<String>,
    /// `USER` for the image's default process.
    pub user: Option<String>,
    /// `ENTRYPOINT` (exec form).
    pub entrypoint: Option<Vec<String>>,
    /// `CMD` (exec form).
    pub cmd: Option<Vec<String>>,
    /// `STOPSIGNAL`.
    pub stopsignal: Option<String>,
    /// `HEALTHCHECK`.
    pub healthcheck: Option<Healthcheck>,
    /// `EXPOSE` ports.
    #[serde(default)]
    pub expose: Vec<String>,
    /// `VOLUME` paths.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Commands run in the freshly built image (`docker run --entrypoint ARGV0 … ARGS`);
    /// a failure removes the tag and fails the build.
    #[serde(default)]
    pub check: Vec<Vec<String>>,
}

/// A file or directory copied into a layer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path relative to the workspace root.
    pub src: String,
    /// Destination in the image (a trailing `/` keeps the file name).
    pub dest: String,
    /// Octal mode of copied files, e.g. `"0755"`.
    pub mode: Option<String>,
    /// `user[:group]` owning the copy (default root).
    pub owner: Option<String>,
}

/// An artifact unpacked into a layer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TarballSpec {
    /// Name of an `[artifact.NAME]`.
    pub artifact: String,
    /// Directory it is unpacked into.
    pub dest: String,
    /// `user[:group]` owning the unpacked files (default root).
    pub owner: Option<String>,
    /// Leading path components dropped, like `tar --strip-components`.
    #[serde(default)]
    pub strip_components: usize,
    /// Unpack (default), or copy the archive itself to `dest` (a file path then).
    #[serde(default = "yes")]
    pub unpack: bool,
}

/// Binaries of one workspace package copied into a layer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CargoSpec {
    /// Workspace package: `runner`.
    pub package: String,
    /// Binaries of that package: `["runner", "ci-storage"]`.
    pub bins: Vec<String>,
    /// Directory in the image (default `/usr/local/bin`).
    #[serde(default = "default_bin_dir")]
    pub dest: String,
}

fn default_bin_dir() -> String {
    "/usr/local/bin".into()
}

/// `HEALTHCHECK` settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// Command (exec form).
    pub cmd: Vec<String>,
    /// `--interval`, e.g. `"30s"`.
    pub interval: Option<String>,
    /// `--timeout`.
    pub timeout: Option<String>,
    /// `--start-period`.
    pub start_period: Option<String>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// `[image.NAME]`: a base (or another image) plus an ordered list of layers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// What the image is for (the `org.opencontainers.image.description` label).
    pub description: Option<String>,
    /// A `[base.NAME]` or another `[image.NAME]`.
    pub from: String,
    /// Layers applied in order; equal prefixes are shared between images.
    #[serde(default)]
    pub layers: Vec<String>,
    /// A test image: labelled `warm-runners.test=true`, never published.
    pub test: Option<bool>,
    /// Built when no image names are given (default true).
    #[serde(default = "yes")]
    pub default: bool,
}

impl Manifest {
    /// Reads `path`, follows `extends`, merges and validates.
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let mut chain = Vec::new();
        let mut next = Some(path.to_path_buf());
        while let Some(p) = next {
            if chain.iter().any(|(q, _): &(PathBuf, ManifestFile)| q == &p) {
                bail!("{}: `extends` forms a cycle", p.display());
            }
            let file = read_file(&p)?;
            next = file.extends.as_ref().map(|e| resolve_relative(&p, e));
            chain.push((p, file));
        }
        let mut manifest = Manifest::empty(path);
        for (p, file) in chain.into_iter().rev() {
            manifest.merge(&p, file);
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Parses one manifest from a string (no `extends`), for tests.
    #[cfg(test)]
    pub fn parse(path: &str, text: &str) -> anyhow::Result<Manifest> {
        let file: ManifestFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let mut manifest = Manifest::empty(Path::new(path));
        manifest.merge(Path::new(path), file);
        manifest.validate()?;
        Ok(manifest)
    }

    fn empty(path: &Path) -> Manifest {
        Manifest {
            path: path.to_path_buf(),
            name: "release".into(),
            repository: "warm-runners".into(),
            registry: None,
            test: false,
            platforms: vec!["linux/amd64".into()],
            labels: BTreeMap::new(),
            bases: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            layers: BTreeMap::new(),
            images: BTreeMap::new(),
            sources: BTreeMap::new(),
        }
    }

    fn merge(&mut self, path: &Path, file: ManifestFile) {
        let src = |kind: &str, name: &str| (format!("{kind}.{name}"), path.to_path_buf());
        self.name = file.name.unwrap_or(std::mem::take(&mut self.name));
        self.repository = file
            .repository
            .unwrap_or(std::mem::take(&mut self.repository));
        self.registry = file.registry.or(self.registry.take());
        self.test = file.test.unwrap_or(self.test);
        if let Some(p) = file.platforms {
            self.platforms = p;
        }
        self.labels.extend(file.labels.unwrap_or_default());
        for (k, v) in file.base {
            self.sources.extend([src("base", &k)]);
            self.bases.insert(k, v);
        }
        for (k, v) in file.artifact {
            self.sources.extend([src("artifact", &k)]);
            self.artifacts.insert(k, v);
        }
        for (k, v) in file.layer {
            self.sources.extend([src("layer", &k)]);
            self.layers.insert(k, v);
        }
        for (k, v) in file.image {
            self.sources.extend([src("image", &k)]);
            self.images.insert(k, v);
        }
    }

    /// The file an entry (`image.ci-runner`) came from, for error messages.
    pub fn source_of(&self, key: &str) -> String {
        let file = self.sources.get(key).unwrap_or(&self.path);
        file.display().to_string()
    }

    /// Whether image `name` is a test image.
    pub fn is_test(&self, name: &str) -> bool {
        self.test || self.images.get(name).and_then(|i| i.test).unwrap_or(false)
    }

    /// The images built when none are named: every image with `default = true`.
    pub fn default_images(&self) -> Vec<String> {
        self.images
            .iter()
            .filter(|(_, i)| i.default)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Names of every image, for "unknown image" errors.
    pub fn image_names(&self) -> String {
        self.images.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn read_file(path: &Path) -> anyhow::Result<ManifestFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading manifest {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `extends` is relative to the file that names it.
fn resolve_relative(file: &Path, target: &str) -> PathBuf {
    match file.parent() {
        Some(dir) => dir.join(target),
        None => PathBuf::from(target),
    }
}

mod validate;

pub use validate::check_hex;

#[cfg(test)]
mod tests;
