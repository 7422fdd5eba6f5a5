//! `cargo xtask build-image [NAMES…]`: builds images from the manifest, layer by layer, each
//! layer tagged by the hash of its inputs and skipped when that tag already exists.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use bollard::Docker;
use xshell::{cmd, Shell};

use crate::artifact::{Artifacts, ACTIONS_RUNNER};
use crate::context::{context_tar, layer_hash, Sources};
use crate::dockerfile::{render, ContextItem, ImageLabels};
use crate::manifest::Manifest;
use crate::plan::{self, Parent, Step};
use crate::tags::{self, BuiltImage};

/// Build images from a manifest (default: every default image of images/images.toml).
#[derive(Debug, Clone, clap::Args)]
pub struct BuildImage {
    /// Images to build (and the images they are built from). Default: the manifest's default set.
    pub names: Vec<String>,
    /// The manifest.
    #[arg(long, default_value = "images/images.toml")]
    pub manifest: PathBuf,
    /// Print the generated Dockerfiles instead of building (needs no Docker).
    #[arg(long)]
    pub print: bool,
    /// Rebuild every layer even when its tag exists, without Docker's build cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Never try to pull a base image; bootstrap it when it is not present locally.
    #[arg(long)]
    pub no_pull: bool,
    /// Local actions runner tarball (checked against the manifest's sha256, or FILE.sha256).
    #[arg(long, value_name = "FILE")]
    pub runner_tarball: Option<PathBuf>,
    /// Platform to build for.
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    /// Print every line of build output, not only the Dockerfile steps.
    #[arg(long, short)]
    pub verbose: bool,
}

/// What one run of `build-image` did.
#[derive(Debug, Default)]
pub struct BuildReport {
    /// Final images by name.
    pub images: BTreeMap<String, BuiltImage>,
    /// Layer tags built (not found in the local engine).
    pub built: Vec<String>,
    /// Seconds in `cargo build` of the binaries and in artifacts' `prepare` commands.
    pub prepare_secs: f64,
    /// Seconds in the image phase (bases, hashing, Docker builds, checks).
    pub docker_secs: f64,
}

impl BuildImage {
    /// Runs the command.
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        self.build(sh).map(|_| ())
    }

    /// Builds and returns what was built (used by `e2e` and `bench`).
    pub fn build(self, sh: &Shell) -> anyhow::Result<BuildReport> {
        let started = Instant::now();
        let workspace = crate::workspace_root();
        let manifest = Manifest::load(&workspace.join(&self.manifest))?;
        let names = if self.names.is_empty() {
            manifest.default_images()
        } else {
            self.names.clone()
        };
        let images = plan::order(&manifest, &names)?;
        let steps = plan::steps(&manifest, &images);
        let labels = ImageLabels {
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        if self.print {
            print!("{}", print_plan(&manifest, &steps, &labels));
            return Ok(BuildReport::default());
        }
        let arch = check_platform(&manifest, &self.platform)?;
        let cargo_started = Instant::now();
        let binaries = build_binaries(sh, &workspace, &manifest, &steps, &labels)?;
        let cargo_time = cargo_started.elapsed();
        let overrides: BTreeMap<String, PathBuf> = self
            .runner_tarball
            .iter()
            .map(|f| (ACTIONS_RUNNER.to_string(), f.clone()))
            .collect();
        let mut artifacts = Artifacts::new(&manifest, &workspace, arch, overrides);
        let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
        let images_started = Instant::now();
        let mut report = runtime.block_on(async {
            let docker = crate::docker::connect().await?;
            let mut builder = Builder {
                sh,
                docker: &docker,
                manifest: &manifest,
                workspace: &workspace,
                opts: &self,
                labels: &labels,
                volatile: volatile_labels(sh, &workspace),
                bases: HashMap::new(),
                report: BuildReport::default(),
                done: BTreeSet::new(),
            };
            builder
                .build_all(&images, &steps, &mut artifacts, &binaries)
                .await?;
            Ok::<_, anyhow::Error>(builder.report)
        })?;
        report.prepare_secs = artifacts.prepare_time.as_secs_f64() + cargo_time.as_secs_f64();
        report.docker_secs =
            images_started.elapsed().as_secs_f64() - artifacts.prepare_time.as_secs_f64();
        let path = tags::images_json_path(&workspace);
        tags::update_images_json(&path, &manifest.name, report.images.clone())?;
        eprintln!(
            "==> {} image(s) ready, {} layer(s) built, in {:.1}s (cargo builds and prepare {:.1}s, images {:.1}s); tags in {}",
            report.images.len(),
            report.built.len(),
            started.elapsed().as_secs_f64(),
            report.prepare_secs,
            report.docker_secs,
            path.display()
        );
        for (name, img) in &report.images {
            eprintln!("    {name:<20} {}  ({})", img.tag, img.alias);
        }
        Ok(report)
    }
}

/// The `--print` output: every layer's Dockerfile, image by image; a layer shared with an
/// image printed before (same base, same layers below) is named, not repeated.
pub fn print_plan(manifest: &Manifest, steps: &[Step], labels: &ImageLabels) -> String {
    let mut out = String::new();
    let mut printed = BTreeMap::new();
    for step in steps {
        let Some(image) = manifest.images.get(&step.image) else {
            continue;
        };
        let chain = format!("{} {:?}", image.from, &image.layers[..=step.index]);
        let head = format!(
            "### image {} (from {}), layer {}/{}: {}",
            step.image,
            image.from,
            step.index + 1,
            step.count,
            step.layer
        );
        if let (false, Some(first)) = (step.is_final(), printed.get(&chain)) {
            out.push_str(&format!("{head}: same as in image {first}\n\n"));
            continue;
        }
        printed.insert(chain, step.image.clone());
        out.push_str(&format!(
            "{head}\n{}\n",
            render(manifest, step, labels).text
        ));
    }
    out
}

/// Maps `linux/amd64` to the artifact arch `x64`; refuses platforms this host cannot build.
fn check_platform(manifest: &Manifest, platform: &str) -> anyhow::Result<&'static str> {
    if !manifest.platforms.iter().any(|p| p == platform) {
        bail!(
            "platform {platform} is not declared in {} (platforms = {:?})",
            manifest.path.display(),
            manifest.platforms
        );
    }
    let host = match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => other,
    };
    if platform != host {
        bail!(
            "{platform} is declared in {} but cannot be built on this {host} host: the runner binaries are built \
             natively by cargo and the engine runs {host} containers. Build it on a {platform} host (for example a \
             {platform} CI runner) with the same command.",
            manifest.path.display()
        );
    }
    Ok(if platform == "linux/arm64" {
        "arm64"
    } else {
        "x64"
    })
}

/// Builds the workspace binaries that layers copy (`cargo build --release -p PKG --bins`).
fn build_binaries(
    sh: &Shell,
    workspace: &Path,
    manifest: &Manifest,
    steps: &[Step],
    labels: &ImageLabels,
) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut packages = BTreeMap::<String, Vec<String>>::new();
    for step in steps {
        for item in render(manifest, step, labels).items {
            if let ContextItem::Binary { package, bin } = item {
                packages.entry(package).or_default().push(bin);
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let mut out = BTreeMap::new();
    let _dir = sh.push_dir(workspace);
    for (package, bins) in packages {
        let started = Instant::now();
        eprintln!("==> cargo build --release -p {package} --bins");
        cmd!(sh, "cargo build --release -p {package} --bins")
            .run()
            .with_context(|| format!("building the {package} binaries for the images"))?;
        eprintln!("    ({:.1}s)", started.elapsed().as_secs_f64());
        for bin in bins {
            out.insert(
                format!("{package}/{bin}"),
                target.join("release").join(&bin),
            );
        }
    }
    Ok(out)
}

/// Build args `REVISION` and `CREATED` for the `revision` and `created` labels: not part of the
/// tag hash, so a new commit that changes nothing in an image does not rebuild it.
fn volatile_labels(sh: &Shell, workspace: &Path) -> HashMap<String, String> {
    let _dir = sh.push_dir(workspace);
    let mut args = HashMap::new();
    if let Ok(rev) = cmd!(sh, "git rev-parse HEAD")
        .quiet()
        .ignore_stderr()
        .read()
    {
        args.insert("REVISION".to_string(), rev);
    }
    args.insert(
        "CREATED".to_string(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    args
}

struct Builder<'a> {
    sh: &'a Shell,
    docker: &'a Docker,
    manifest: &'a Manifest,
    workspace: &'a Path,
    opts: &'a BuildImage,
    labels: &'a ImageLabels,
    volatile: HashMap<String, String>,
    bases: HashMap<String, crate::base::ResolvedBase>,
    report: BuildReport,
    done: BTreeSet<String>,
}

impl Builder<'_> {
    async fn build_all(
        &mut self,
        images: &[String],
        steps: &[Step],
        artifacts: &mut Artifacts<'_>,
        binaries: &BTreeMap<String, PathBuf>,
    ) -> anyhow::Result<()> {
        for image in images {
            let mut parent = self.image_parent(image).await?;
            for step in steps.iter().filter(|s| &s.image == image) {
                parent = self.build_step(step, &parent, artifacts, binaries).await?;
            }
            let (tag, id) = parent;
            let alias = tags::alias(&self.manifest.repository, image);
            crate::docker::tag(self.docker, &tag, &alias).await?;
            let test = self.manifest.is_test(image);
            self.report.images.insert(
                image.clone(),
                BuiltImage {
                    tag,
                    alias,
                    id,
                    test,
                },
            );
        }
        Ok(())
    }

    /// (reference, image id) an image starts from.
    async fn image_parent(&mut self, image: &str) -> anyhow::Result<(String, String)> {
        match plan::parent(self.manifest, image) {
            Some(Parent::Image(from)) => {
                let built = self
                    .report
                    .images
                    .get(&from)
                    .with_context(|| format!("image {from} was not built before {image}"))?;
                Ok((built.tag.clone(), built.id.clone()))
            }
            Some(Parent::Base(base)) => {
                if !self.bases.contains_key(&base) {
                    let def = self
                        .manifest
                        .bases
                        .get(&base)
                        .with_context(|| format!("unknown base {base}"))?;
                    let resolved = crate::base::resolve(
                        self.sh,
                        self.docker,
                        self.workspace,
                        &base,
                        def,
                        self.opts.no_pull,
                    )
                    .await?;
                    self.bases.insert(base.clone(), resolved);
                }
                let b = &self.bases[&base];
                Ok((b.reference.clone(), b.id.clone()))
            }
            None => bail!("unknown image {image}"),
        }
    }

    async fn build_step(
        &mut self,
        step: &Step,
        parent: &(String, String),
        artifacts: &mut Artifacts<'_>,
        binaries: &BTreeMap<String, PathBuf>,
    ) -> anyhow::Result<(String, String)> {
        let generated = render(self.manifest, step, self.labels);
        let mut sources = Sources {
            workspace: self.workspace,
            artifacts,
            binaries,
        };
        let hash = layer_hash(self.sh, &parent.1, &generated, &mut sources)?;
        let tag = if step.is_final() {
            tags::image_tag(&self.manifest.repository, &step.image, &hash)
        } else {
            tags::layer_tag(&step.layer, &hash)
        };
        let label = format!(
            "{} [{}/{}] {}",
            step.image,
            step.index + 1,
            step.count,
            step.layer
        );
        let rebuild = self.opts.no_cache && !self.done.contains(&tag);
        if !rebuild {
            if let Some(id) = crate::docker::image_id(self.docker, &tag).await? {
                eprintln!("==> {label}: up to date ({tag})");
                return Ok((tag, id));
            }
        }
        eprintln!("==> {label}: building {tag}");
        let started = Instant::now();
        let context = context_tar(self.sh, &generated, &mut sources).await?;
        let request = crate::docker::BuildRequest {
            tag: &tag,
            args: self
                .volatile
                .clone()
                .into_iter()
                .chain([("PARENT".to_string(), parent.0.clone())])
                .collect(),
            no_cache: self.opts.no_cache,
            verbose: self.opts.verbose,
        };
        let id = crate::docker::build(self.docker, context, request)
            .await
            .with_context(|| {
                format!(
                    "{label}: build failed (layer `{}` of {})",
                    step.layer,
                    self.manifest.source_of(&format!("layer.{}", step.layer))
                )
            })?;
        self.run_checks(step, &tag).await?;
        eprintln!(
            "==> {label}: built in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        self.done.insert(tag.clone());
        self.report.built.push(tag.clone());
        Ok((tag, id))
    }

    /// Runs the layer's `check` commands; on failure the tag is removed, so the next run retries.
    async fn run_checks(&self, step: &Step, tag: &str) -> anyhow::Result<()> {
        let checks = self
            .manifest
            .layers
            .get(&step.layer)
            .map(|l| l.check.clone())
            .unwrap_or_default();
        for argv in checks {
            let (code, output) = crate::docker::run_check(self.docker, tag, &argv).await?;
            if code == 0 {
                eprintln!("    check `{}`: ok", argv.join(" "));
                continue;
            }
            let _ = crate::docker::untag(self.docker, tag).await;
            let mut msg = format!(
                "check `{}` failed in {tag} (exit {code}):\n{}",
                argv.join(" "),
                output.trim_end()
            );
            if output.contains("GLIBC") || output.contains("not found") && output.contains(".so") {
                msg.push_str(&format!(
                    "\nThe binary does not run on this base: it was linked against the build host's glibc ({}), which is newer \
                     than the base's. Build on a host with the base's distribution (a bookworm host for a bookworm base) \
                     or choose a base with a newer glibc.",
                    host_glibc(self.sh)
                ));
            }
            bail!(msg);
        }
        Ok(())
    }
}

fn host_glibc(sh: &Shell) -> String {
    cmd!(sh, "getconf GNU_LIBC_VERSION")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_else(|_| "unknown".into())
}
