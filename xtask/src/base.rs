//! Base images: a local image, a pulled one, or one bootstrapped with mmdebstrap (debootstrap as
//! a fallback) and imported — so the default manifest builds with no registry at all.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::Docker;
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::manifest::{Base, Bootstrap};
use crate::tags;

/// The image a base resolved to.
#[derive(Debug, Clone)]
pub struct ResolvedBase {
    /// Reference given to `FROM` (as the `PARENT` build arg).
    pub reference: String,
    /// Its image id.
    pub id: String,
}

/// Bumped when `bootstrap` changes what it makes from the same recipe.
const BOOTSTRAP_VERSION: &str = "mmdebstrap/merged-usr-hook/slim v2";

/// Tag of the image bootstrapped from `recipe` (content-addressed like every layer).
pub fn bootstrap_tag(name: &str, recipe: &Bootstrap) -> String {
    let text = format!(
        "{BOOTSTRAP_VERSION}\n{}",
        toml::to_string(recipe).unwrap_or_default()
    );
    tags::base_tag(name, &hex::encode(Sha256::digest(text.as_bytes())))
}

/// Finds or makes base `name`: its `image` if present locally, else an earlier bootstrap, else
/// a pull (unless `no_pull`), else a bootstrap. Says which and why.
pub async fn resolve(
    sh: &Shell,
    docker: &Docker,
    workspace: &Path,
    name: &str,
    base: &Base,
    no_pull: bool,
) -> anyhow::Result<ResolvedBase> {
    if let Some(image) = &base.image {
        if let Some(id) = crate::docker::image_id(docker, image).await? {
            return Ok(ResolvedBase {
                reference: image.clone(),
                id,
            });
        }
    }
    let boot_tag = base.bootstrap.as_ref().map(|b| bootstrap_tag(name, b));
    if let Some(tag) = &boot_tag {
        if let Some(id) = crate::docker::image_id(docker, tag).await? {
            if let Some(image) = &base.image {
                eprintln!(
                    "==> base {name}: {image} is not present locally; using the bootstrapped {tag}"
                );
            }
            return Ok(ResolvedBase {
                reference: tag.clone(),
                id,
            });
        }
    }
    if let Some(image) = &base.image {
        if no_pull || base.pull_timeout_sec == 0 {
            eprintln!("==> base {name}: {image} is not present locally (not pulling: --no-pull or pull_timeout_sec = 0)");
        } else {
            eprintln!(
                "==> base {name}: {image} is not present locally; trying a pull ({}s timeout)",
                base.pull_timeout_sec
            );
            if crate::docker::pull(docker, image, Duration::from_secs(base.pull_timeout_sec))
                .await?
            {
                let id = crate::docker::image_id(docker, image)
                    .await?
                    .with_context(|| format!("{image} missing after pull"))?;
                return Ok(ResolvedBase {
                    reference: image.clone(),
                    id,
                });
            }
        }
    }
    let (Some(recipe), Some(tag)) = (&base.bootstrap, boot_tag) else {
        let image = base.image.as_deref().unwrap_or("?");
        bail!("base {name}: {image} is not present locally and could not be pulled; `docker load` it, or add a [base.{name}.bootstrap] recipe to the manifest");
    };
    eprintln!(
        "==> base {name}: bootstrapping Debian {} ({}) from {} as {tag}",
        recipe.suite, recipe.variant, recipe.mirror
    );
    let started = Instant::now();
    let rootfs = bootstrap(sh, workspace, name, recipe)?;
    let id = crate::docker::import(docker, rootfs, &tag).await?;
    eprintln!(
        "==> base {name}: imported {tag} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(ResolvedBase { reference: tag, id })
}

/// dpkg options that leave out docs, man pages and locales (what Debian's `-slim` images drop).
const SLIM_DPKG_OPTS: &[&str] = &[
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
];

/// Runs mmdebstrap (or debootstrap + tar) and returns the root file system as a tar.
fn bootstrap(sh: &Shell, workspace: &Path, name: &str, r: &Bootstrap) -> anyhow::Result<Vec<u8>> {
    let dir = workspace.join("target").join("xtask").join("bootstrap");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let out = dir.join(format!("{name}.tar"));
    let (suite, mirror, variant) = (&r.suite, &r.mirror, &r.variant);
    let components = format!("--components={}", r.components.join(","));
    let include: Vec<String> = (!r.packages.is_empty())
        .then(|| format!("--include={}", r.packages.join(",")))
        .into_iter()
        .collect();
    if which(sh, "mmdebstrap") {
        let slim: Vec<String> = if r.slim {
            SLIM_DPKG_OPTS
                .iter()
                .map(|o| format!("--dpkgopt={o}"))
                .collect()
        } else {
            Vec::new()
        };
        let norec = "--aptopt=APT::Install-Recommends \"false\"";
        // merged /usr without the `usrmerge` package (which drags perl into the base)
        let hook = Path::new("/usr/share/mmdebstrap/hooks/merged-usr");
        let hooks: Vec<String> = hook
            .is_dir()
            .then(|| format!("--hook-dir={}", hook.display()))
            .into_iter()
            .collect();
        cmd!(sh, "mmdebstrap --quiet --variant={variant} {components} {include...} {slim...} {norec} {hooks...} --format=tar {suite} {out} {mirror}")
            .run()
            .context("mmdebstrap failed (see its output above)")?;
    } else if which(sh, "debootstrap") {
        eprintln!(
            "    mmdebstrap not found; falling back to debootstrap (slower; `slim` is not applied)"
        );
        let root = dir.join(format!("{name}.root"));
        let _ = std::fs::remove_dir_all(&root);
        cmd!(
            sh,
            "debootstrap --variant={variant} {components} {include...} {suite} {root} {mirror}"
        )
        .run()
        .context("debootstrap failed (see its output above); it needs root")?;
        cmd!(sh, "tar -C {root} -cf {out} .").run()?;
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    } else {
        bail!("base {name} needs a bootstrap, but neither mmdebstrap nor debootstrap is installed; install mmdebstrap: apt-get install -y mmdebstrap");
    }
    let tar = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    Ok(tar)
}

fn which(sh: &Shell, program: &str) -> bool {
    let script = format!("command -v {program}");
    cmd!(sh, "sh -c {script}")
        .quiet()
        .ignore_stdout()
        .run()
        .is_ok()
}
