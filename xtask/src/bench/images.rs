//! Images: cold build, add-on-only rebuild and no-op rebuild times through the image factory
//! (in-process `build-image`), image sizes and per-layer sizes (`docker history`).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use xshell::{cmd, Shell};

use super::report::{Figure, Goal, LayerRow, Unit};
use crate::build_image::{BuildImage, BuildReport};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    build: BuildImage,
}

/// `cargo xtask build-image <args>` in-process; returns (seconds, what was built).
fn build(sh: &Shell, args: &[&str]) -> anyhow::Result<(f64, BuildReport)> {
    let parsed = Args::try_parse_from(std::iter::once("build-image").chain(args.iter().copied()))
        .context("build-image arguments")?;
    let start = Instant::now();
    let report = parsed
        .build
        .build(sh)
        .with_context(|| format!("cargo xtask build-image {}", args.join(" ")))?;
    Ok((start.elapsed().as_secs_f64(), report))
}

/// A manifest extending `manifest` with a one-line add-on (`nonce` makes it new) and an image
/// `ci-runner-bench` = system, actions-runner, the add-on, runner.
fn addon_manifest(manifest: &Path, nonce: &str) -> String {
    format!(
        "# Written by `cargo xtask bench`: a changed add-on, to time an add-on-only rebuild.\n\
         extends = {manifest:?}\nname = \"bench\"\nrepository = \"warm-runners-bench\"\n\n\
         [layer.bench-addon]\ndescription = \"bench add-on ({nonce})\"\nrun = [\"echo {nonce} > /etc/bench-addon\"]\n\n\
         [image.ci-runner-bench]\ndescription = \"ci-runner with the bench add-on\"\nfrom = \"debian\"\n\
         layers = [\"system\", \"actions-runner\", \"bench-addon\", \"runner\"]\n",
        manifest = manifest.display().to_string()
    )
}

/// What the images section measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Figures.
    pub figures: Vec<Figure>,
    /// Layers of the images.
    pub layers: Vec<LayerRow>,
    /// Remarks.
    pub notes: Vec<String>,
}

/// Runs the image figures with `manifest` (relative to the workspace).
pub fn measure(
    sh: &Shell,
    manifest: &Path,
    sets: &[String],
    runs: usize,
    cold_runs: usize,
    work: &Path,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome::default();
    let m = manifest.to_str().context("manifest path is not UTF-8")?;
    eprintln!("==> images: making sure everything is built (untimed)");
    let (_, first) = build(sh, &["--manifest", m])?;
    let mut noop = Vec::new();
    for i in 0..runs {
        let (secs, r) = build(sh, &["--manifest", m])?;
        if !r.built.is_empty() {
            out.notes
                .push(format!("no-op rebuild #{} built {:?}", i + 1, r.built));
        }
        noop.push(secs);
    }
    out.figures.push(
        Figure::new("images", "no-op rebuild of the default set", Unit::S, &noop)
            .goal(Goal::Below(5.0))
            .note(format!("`build-image --manifest {m}` with everything up to date ({} images; includes `cargo build --release` of the binaries)", first.images.len())),
    );

    let abs = crate::workspace_root().join(manifest);
    let bench_manifest = work.join("bench-addon.toml");
    let mut addon = Vec::new();
    let mut cleanup = Vec::new();
    for i in 0..runs {
        let nonce = format!(
            "{}-{i}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        std::fs::write(&bench_manifest, addon_manifest(&abs, &nonce))
            .with_context(|| format!("writing {}", bench_manifest.display()))?;
        let bm = bench_manifest.to_str().context("path is not UTF-8")?;
        let (secs, r) = build(sh, &["--manifest", bm, "ci-runner-bench"])?;
        eprintln!(
            "    add-on rebuild #{}: {secs:.1} s, built {:?}",
            i + 1,
            r.built
        );
        cleanup.extend(r.built.clone());
        cleanup.extend(r.images.values().map(|b| b.alias.clone()));
        addon.push(secs);
    }
    forget_bench_set();
    if !cleanup.is_empty() {
        let _ = cmd!(sh, "docker rmi {cleanup...}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run();
    }
    out.figures.push(
        Figure::new("images", "add-on-only rebuild", Unit::S, &addon)
            .note("a changed one-line add-on between actions-runner and runner: rebuilds the add-on and the runner layer above it; lower layers cached"),
    );

    let mut cold = Vec::new();
    for i in 0..cold_runs {
        let (secs, r) = build(sh, &["--manifest", m, "--no-cache", "ci-runner"])?;
        eprintln!(
            "    cold build #{}: {secs:.1} s, {} layers",
            i + 1,
            r.built.len()
        );
        cold.push(secs);
    }
    if cold_runs > 0 {
        out.figures.push(Figure::new("images", "cold build of ci-runner (system + actions-runner + runner layers)", Unit::S, &cold).note(
            "`--no-cache`: every layer of ci-runner rebuilt without Docker's cache (apt downloads included); the base image (bootstrapped/local Debian) is reused",
        ));
    }
    sizes(sh, sets, &mut out)?;
    Ok(out)
}

/// Drops the `bench` set from target/images.json.
fn forget_bench_set() {
    let path = crate::tags::images_json_path(&crate::workspace_root());
    if let Ok(mut all) = crate::tags::read_images_json(&path) {
        if all.remove("bench").is_some() {
            if let Ok(text) = serde_json::to_string_pretty(&all) {
                let _ = std::fs::write(&path, text + "\n");
            }
        }
    }
}

/// One `docker history` row: (created by, bytes).
pub fn parse_history(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter_map(|l| {
            let (by, size) = l.rsplit_once('\t')?;
            let by = by
                .trim()
                .trim_start_matches("/bin/sh -c ")
                .trim_start_matches("#(nop) ")
                .trim();
            Some((by.to_owned(), size.trim().parse().ok()?))
        })
        .collect()
}

/// Shortens a layer's instruction for the table.
fn shorten(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 90 {
        format!("{}…", s.chars().take(89).collect::<String>())
    } else {
        s
    }
}

fn sizes(sh: &Shell, sets: &[String], out: &mut Outcome) -> anyhow::Result<()> {
    let path = crate::tags::images_json_path(&crate::workspace_root());
    let all = crate::tags::read_images_json(&path)?;
    for (set, images) in all.iter().filter(|(set, _)| sets.contains(set)) {
        for (name, img) in images {
            let tag = &img.tag;
            let size_fmt = "{{.Size}}";
            let Ok(bytes) = cmd!(sh, "docker image inspect -f {size_fmt} {tag}")
                .quiet()
                .ignore_stderr()
                .read()
            else {
                continue;
            };
            let bytes: f64 = bytes.trim().parse().unwrap_or(f64::NAN);
            let history_fmt = "{{.CreatedBy}}\t{{.Size}}";
            let history = cmd!(
                sh,
                "docker history --no-trunc --human=false --format {history_fmt} {tag}"
            )
            .quiet()
            .read()?;
            let rows = parse_history(&history);
            let payload: u64 = rows
                .iter()
                .filter(|(by, _)| {
                    by.contains("/home/user/actions-runner")
                        && (by.contains("COPY") || by.contains("ADD"))
                })
                .map(|(_, b)| b)
                .sum();
            out.figures.push(
                Figure::new(
                    "images",
                    &format!("size of {name} ({set})"),
                    Unit::Mb,
                    &[bytes / 1e6],
                )
                .note(tag.clone()),
            );
            if name == "ci-runner" {
                out.figures.push(
                    Figure::new(
                        "images",
                        &format!("size of {name} ({set}) without the actions-runner payload"),
                        Unit::Mb,
                        &[(bytes - payload as f64) / 1e6],
                    )
                    .goal(Goal::Below(200.0))
                    .note(format!("payload layer(s): {:.1} MB", payload as f64 / 1e6)),
                );
            }
            for (by, b) in rows.into_iter().filter(|(_, b)| *b > 0).rev() {
                out.layers.push(LayerRow {
                    image: format!("{name} ({set})"),
                    created_by: shorten(&by),
                    size_mb: b as f64 / 1e6,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_history() {
        let out = "/bin/sh -c #(nop)  ENTRYPOINT [\"/usr/bin/tini\"]\t0\n/bin/sh -c #(nop) COPY dir:ab in /home/user/actions-runner \t1500000\n/bin/sh -c apt-get update\t120000000\nbogus\n";
        let rows = parse_history(out);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            (
                "COPY dir:ab in /home/user/actions-runner".to_owned(),
                1_500_000
            )
        );
        assert_eq!(rows[2].0, "apt-get update");
    }

    #[test]
    fn addon_manifest_extends_the_given_one() {
        let text = addon_manifest(Path::new("/w/images/test.toml"), "n1");
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["extends"].as_str(), Some("/w/images/test.toml"));
        assert_eq!(
            v["image"]["ci-runner-bench"]["layers"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert!(v["layer"]["bench-addon"]["run"][0]
            .as_str()
            .unwrap()
            .contains("n1"));
    }
}
