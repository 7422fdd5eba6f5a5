//! A layer's content hash and its build context (a tar with the Dockerfile and its inputs).
//!
//! The hash covers everything that goes into the layer: the parent image id, the Dockerfile,
//! every copied file's path, mode and bytes, each binary's bytes, each tarball's sha256.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use xshell::Shell;

use crate::artifact::Artifacts;
use crate::dockerfile::{ContextItem, Generated};

/// Bumped when the meaning of a hash changes, so old tags are not reused.
const HASH_VERSION: &str = "warm-runners layer v1";

/// Where context items come from.
pub struct Sources<'a, 'm> {
    /// Workspace root (`files[].src` is relative to it).
    pub workspace: &'a Path,
    /// Artifacts of the manifest.
    pub artifacts: &'a mut Artifacts<'m>,
    /// Built binaries: `package/bin` → path.
    pub binaries: &'a BTreeMap<String, PathBuf>,
}

/// A file of the context: path in the context, mode, bytes.
struct Entry {
    path: String,
    mode: u32,
    data: Vec<u8>,
}

/// The content hash of a layer (hex sha256).
pub fn layer_hash(
    sh: &Shell,
    parent_id: &str,
    generated: &Generated,
    src: &mut Sources<'_, '_>,
) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        h.update(name.as_bytes());
        h.update((value.len() as u64).to_le_bytes());
        h.update(value);
    };
    field("version", HASH_VERSION.as_bytes());
    field("parent", parent_id.as_bytes());
    field("dockerfile", generated.text.as_bytes());
    for item in &generated.items {
        match item {
            ContextItem::File { .. } => {
                for e in file_entries(src.workspace, item)? {
                    field("file", e.path.as_bytes());
                    field("mode", &e.mode.to_le_bytes());
                    field("sha256", &Sha256::digest(&e.data));
                }
            }
            ContextItem::Tarball {
                artifact,
                ctx,
                strip_components,
                unpack,
            } => {
                let sha = src.artifacts.expected_sha256(sh, artifact)?;
                field(
                    "tarball",
                    format!("{ctx} {strip_components} {unpack} {sha}").as_bytes(),
                );
            }
            ContextItem::Binary { package, bin } => {
                let path = binary(src.binaries, package, bin)?;
                field("binary", bin.as_bytes());
                field("sha256", crate::artifact::sha256_file(path)?.as_bytes());
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

fn binary<'b>(
    binaries: &'b BTreeMap<String, PathBuf>,
    package: &str,
    bin: &str,
) -> anyhow::Result<&'b PathBuf> {
    binaries
        .get(&format!("{package}/{bin}"))
        .with_context(|| format!("binary {bin} of package {package} was not built"))
}

/// The build context: a tar holding the Dockerfile and every item.
pub async fn context_tar(
    sh: &Shell,
    generated: &Generated,
    src: &mut Sources<'_, '_>,
) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append(
        &mut tar,
        &Entry {
            path: "Dockerfile".into(),
            mode: 0o644,
            data: generated.text.clone().into_bytes(),
        },
    )?;
    for item in &generated.items {
        match item {
            ContextItem::File { .. } => {
                for e in file_entries(src.workspace, item)? {
                    append(&mut tar, &e)?;
                }
            }
            ContextItem::Tarball {
                artifact,
                ctx,
                strip_components,
                unpack,
            } => {
                let path = src.artifacts.fetch(sh, artifact).await?;
                if *unpack {
                    repack(&mut tar, &path, ctx, *strip_components)?;
                } else {
                    let data = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    append(
                        &mut tar,
                        &Entry {
                            path: ctx.clone(),
                            mode: 0o644,
                            data,
                        },
                    )?;
                }
            }
            ContextItem::Binary { package, bin } => {
                let path = binary(src.binaries, package, bin)?;
                let data =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                append(
                    &mut tar,
                    &Entry {
                        path: format!("bin/{bin}"),
                        mode: 0o755,
                        data,
                    },
                )?;
            }
        }
    }
    tar.into_inner().context("finishing the build context")
}

fn append(tar: &mut tar::Builder<Vec<u8>>, e: &Entry) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(e.data.len() as u64);
    header.set_mode(e.mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, &e.path, e.data.as_slice())
        .with_context(|| format!("adding {} to the context", e.path))
}

/// The files of a `files[]` item: one file, or a directory's files (sorted, recursively).
fn file_entries(workspace: &Path, item: &ContextItem) -> anyhow::Result<Vec<Entry>> {
    let ContextItem::File {
        src,
        ctx,
        mode,
        key,
    } = item
    else {
        return Ok(Vec::new());
    };
    let path = workspace.join(src);
    let meta = std::fs::metadata(&path).with_context(|| {
        format!(
            "{key}.src: `{src}` not found in the workspace ({})",
            path.display()
        )
    })?;
    let mut out = Vec::new();
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(&path, &mut files)?;
        for f in files {
            let rel = f
                .strip_prefix(&path)
                .unwrap_or(&f)
                .to_string_lossy()
                .to_string();
            out.push(read_entry(&f, format!("{ctx}/{rel}"), *mode)?);
        }
    } else {
        out.push(read_entry(&path, ctx.clone(), *mode)?);
    }
    Ok(out)
}

fn read_entry(path: &Path, ctx: String, mode: Option<u32>) -> anyhow::Result<Entry> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let disk_mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    Ok(Entry {
        path: ctx,
        mode: mode.unwrap_or(disk_mode),
        data,
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Copies the entries of a `.tar.gz` under `ctx/`, dropping `strip` leading components.
fn repack(
    tar: &mut tar::Builder<Vec<u8>>,
    archive: &Path,
    ctx: &str,
    strip: usize,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut input = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let bad = || format!("unpacking {}", archive.display());
    for entry in input.entries().with_context(bad)? {
        let mut entry = entry.with_context(bad)?;
        let Some(rel) = stripped(&entry.path().with_context(bad)?, strip) else {
            continue;
        };
        let path = format!("{ctx}/{rel}");
        let mut header = entry.header().clone();
        match header.entry_type() {
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .with_context(bad)?
                    .with_context(bad)?
                    .to_path_buf();
                tar.append_link(&mut header, &path, target)
                    .with_context(bad)?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name().with_context(bad)?.with_context(bad)?;
                let Some(target) = stripped(&target, strip) else {
                    bail!("{}: hard link outside the stripped tree", bad())
                };
                tar.append_link(&mut header, &path, format!("{ctx}/{target}"))
                    .with_context(bad)?;
            }
            tar::EntryType::Regular | tar::EntryType::Directory => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).with_context(bad)?;
                tar.append_data(&mut header, &path, data.as_slice())
                    .with_context(bad)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn stripped(path: &Path, strip: usize) -> Option<String> {
    let parts: Vec<_> = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .skip(strip)
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(
        parts
            .iter()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_components() {
        assert_eq!(stripped(Path::new("./a/b/c"), 0).as_deref(), Some("a/b/c"));
        assert_eq!(stripped(Path::new("./a/b/c"), 1).as_deref(), Some("b/c"));
        assert_eq!(stripped(Path::new("a"), 1), None);
        assert_eq!(stripped(Path::new("./"), 0), None);
    }
}
