//! `cargo xtask publish [NAMES…] --registry R [--tag T…] [--dry-run]`: builds (a no-op when up
//! to date), tags `<version>`, `<git short sha>` and `latest` (on the default branch), and
//! pushes through the engine. Refuses test images.

mod credentials;
pub mod roundtrip;

use std::path::PathBuf;

use anyhow::{bail, Context};
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;
use xshell::{cmd, Shell};

use crate::build_image::BuildImage;
use crate::manifest::Manifest;
use crate::tags;

/// Tag and push images to a registry.
#[derive(Debug, Clone, clap::Args)]
pub struct Publish {
    /// Images to publish. Default: the manifest's default set.
    pub names: Vec<String>,
    /// The manifest.
    #[arg(long, default_value = "images/images.toml")]
    pub manifest: PathBuf,
    /// Registry prefix (`ghcr.io/org`, `127.0.0.1:5000/team`). Default: the manifest's `registry`.
    #[arg(long)]
    pub registry: Option<String>,
    /// Extra tags (repeatable), besides the version, the git short sha and `latest`.
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Also push `latest` when not on the default branch.
    #[arg(long)]
    pub latest: bool,
    /// Print the plan (images, tags, credential source) and push nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Local actions runner tarball for the build (see `build-image --runner-tarball`).
    #[arg(long, value_name = "FILE")]
    pub runner_tarball: Option<PathBuf>,
    /// Test publishing instead: start a local registry with htpasswd auth, publish a small image
    /// to it, read tags and digests back from its API, pull the image back (see roundtrip.rs).
    #[arg(long, conflicts_with_all = ["names", "registry", "dry_run"])]
    pub roundtrip: bool,
}

/// One pushed tag and the manifest digest the registry answered.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `registry/image:tag`.
    pub reference: String,
    /// `sha256:…`.
    pub digest: Option<String>,
}

impl Publish {
    /// Runs the command.
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        if self.roundtrip {
            return roundtrip::registry_roundtrip(sh);
        }
        let dry_run = self.dry_run;
        let pushed = self.publish(sh)?;
        if !dry_run {
            eprintln!("==> published {} tag(s):", pushed.len());
            for p in &pushed {
                eprintln!(
                    "    {}@{}",
                    p.reference,
                    p.digest.as_deref().unwrap_or("(no digest reported)")
                );
            }
        }
        Ok(())
    }

    /// Publishes and returns what was pushed.
    pub fn publish(self, sh: &Shell) -> anyhow::Result<Vec<Pushed>> {
        let workspace = crate::workspace_root();
        let manifest = Manifest::load(&workspace.join(&self.manifest))?;
        let names = if self.names.is_empty() {
            manifest.default_images()
        } else {
            self.names.clone()
        };
        crate::plan::order(&manifest, &names)?;
        for name in &names {
            if manifest.is_test(name) {
                let why = if manifest.test {
                    format!("{} sets `test = true`", manifest.path.display())
                } else {
                    format!(
                        "{} sets `test = true` on image.{name}",
                        manifest.source_of(&format!("image.{name}"))
                    )
                };
                bail!("refusing to publish `{name}`: it is a test image ({why}); publish the images of images/images.toml");
            }
        }
        let registry = self
            .registry
            .clone()
            .or(manifest.registry.clone())
            .with_context(|| {
                format!(
                    "no registry: pass --registry (e.g. ghcr.io/org) or set `registry` in {}",
                    manifest.path.display()
                )
            })?;
        let registry = registry.trim_end_matches('/').to_string();
        let version = env!("CARGO_PKG_VERSION");
        let sha = cmd!(sh, "git rev-parse --short=7 HEAD")
            .quiet()
            .read()
            .context("reading the git revision")?;
        let latest = self.latest || on_default_branch(sh);
        let host = credentials::registry_host(&registry);
        let auth = credentials::lookup(sh, &host)?;
        let auth_source = auth
            .as_ref()
            .map_or("none (anonymous)".to_string(), |a| a.source.clone());

        if self.dry_run {
            let built = tags::read_images_json(&tags::images_json_path(&workspace))?;
            println!("publish plan (dry run): registry {registry}, credentials: {auth_source}");
            for name in &names {
                let local = built
                    .get(&manifest.name)
                    .and_then(|s| s.get(name))
                    .map_or("(not built yet: built first)".into(), |b| b.tag.clone());
                println!("  {name}: {local}");
                for t in tags::publish_tags(&registry, name, version, &sha, latest, &self.tags) {
                    println!("    push {t}");
                }
            }
            return Ok(Vec::new());
        }

        let report = BuildImage {
            names: names.clone(),
            manifest: self.manifest.clone(),
            print: false,
            no_cache: false,
            no_pull: false,
            runner_tarball: self.runner_tarball.clone(),
            platform: "linux/amd64".into(),
            verbose: false,
        }
        .build(sh)?;
        let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
        runtime.block_on(async {
            let docker = crate::docker::connect().await?;
            let mut pushed = Vec::new();
            eprintln!("==> publishing to {registry} (credentials: {auth_source})");
            for name in &names {
                let img = report
                    .images
                    .get(name)
                    .with_context(|| format!("{name} was not built"))?;
                let labels = crate::docker::image_labels(&docker, &img.tag).await?;
                if labels.get(tags::TEST_LABEL).map(String::as_str) == Some("true") {
                    bail!(
                        "refusing to publish {}: it carries the label {}=true",
                        img.tag,
                        tags::TEST_LABEL
                    );
                }
                for target in tags::publish_tags(&registry, name, version, &sha, latest, &self.tags)
                {
                    crate::docker::tag(&docker, &img.tag, &target).await?;
                    let digest = push(&docker, &target, auth.as_ref()).await?;
                    eprintln!("    pushed {target} {}", digest.as_deref().unwrap_or(""));
                    pushed.push(Pushed {
                        reference: target,
                        digest,
                    });
                }
            }
            Ok(pushed)
        })
    }
}

/// Pushes one `repo:tag`; returns the digest the registry reported.
async fn push(
    docker: &bollard::Docker,
    reference: &str,
    auth: Option<&credentials::Auth>,
) -> anyhow::Result<Option<String>> {
    let (repo, tag) = tags::split_tag(reference);
    let opts = PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = docker.push_image(repo, Some(opts), auth.map(|a| a.credentials()));
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("pushing {reference}"))?;
        if let Some(d) = info
            .status
            .as_deref()
            .and_then(|s| s.split("digest: ").nth(1))
        {
            digest = d.split_whitespace().next().map(String::from);
        }
    }
    Ok(digest)
}

/// Whether HEAD is on the default branch (origin's HEAD, else `main`/`master`).
fn on_default_branch(sh: &Shell) -> bool {
    let Ok(branch) = cmd!(sh, "git rev-parse --abbrev-ref HEAD")
        .quiet()
        .ignore_stderr()
        .read()
    else {
        return false;
    };
    let default = cmd!(sh, "git symbolic-ref --short refs/remotes/origin/HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()
        .and_then(|r| r.rsplit('/').next().map(String::from));
    match default {
        Some(d) => branch == d,
        None => branch == "main" || branch == "master",
    }
}
