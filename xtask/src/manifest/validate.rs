//! Checks a merged manifest; every error names the file, the key and what is expected.

use anyhow::bail;

use super::{Artifact, Layer, Manifest, Sha256Spec};

/// Platforms the manifest may declare.
pub const KNOWN_PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];
/// Arch names used by `{arch}` and per-arch `sha256` keys (as the actions runner names them).
pub const KNOWN_ARCHES: &[&str] = &["x64", "arm64"];

impl Manifest {
    /// Validates names, references, checksums and the `from` graph.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let top = self.path.display().to_string();
        check_name(&top, "name", &self.name)?;
        check_name(&top, "repository", &self.repository)?;
        for (i, p) in self.platforms.iter().enumerate() {
            if !KNOWN_PLATFORMS.contains(&p.as_str()) {
                bail!("{top}: platforms[{i}]: unknown platform `{p}`; expected one of {KNOWN_PLATFORMS:?}");
            }
        }
        for (name, base) in &self.bases {
            let at = format!("{}: base.{name}", self.source_of(&format!("base.{name}")));
            check_name(&at, "", name)?;
            if base.image.is_none() && base.bootstrap.is_none() {
                bail!("{at}: neither `image` nor `bootstrap` is set; expected an image reference (`image = \"debian:bookworm-slim\"`) and/or a `[base.{name}.bootstrap]` recipe");
            }
            if let Some(b) = &base.bootstrap {
                for (key, v) in [
                    ("suite", &b.suite),
                    ("mirror", &b.mirror),
                    ("variant", &b.variant),
                ] {
                    if v.trim().is_empty() {
                        bail!("{at}.bootstrap.{key}: empty; expected e.g. suite = \"bookworm\", mirror = \"http://deb.debian.org/debian\"");
                    }
                }
            }
        }
        for (name, artifact) in &self.artifacts {
            let at = format!(
                "{}: artifact.{name}",
                self.source_of(&format!("artifact.{name}"))
            );
            check_name(&at, "", name)?;
            check_artifact(&at, artifact)?;
        }
        for (name, layer) in &self.layers {
            let at = format!("{}: layer.{name}", self.source_of(&format!("layer.{name}")));
            check_name(&at, "", name)?;
            self.check_layer(&at, layer)?;
        }
        for (name, image) in &self.images {
            let at = format!("{}: image.{name}", self.source_of(&format!("image.{name}")));
            check_name(&at, "", name)?;
            if !self.bases.contains_key(&image.from) && !self.images.contains_key(&image.from) {
                let known: Vec<_> = self.bases.keys().chain(self.images.keys()).collect();
                bail!(
                    "{at}.from: unknown base or image `{}`; expected one of {known:?}",
                    image.from
                );
            }
            if image.layers.is_empty() {
                bail!("{at}.layers: empty; expected at least one `[layer.NAME]` name");
            }
            for (i, l) in image.layers.iter().enumerate() {
                if !self.layers.contains_key(l) {
                    let known: Vec<_> = self.layers.keys().collect();
                    bail!("{at}.layers[{i}]: unknown layer `{l}`; expected one of {known:?}");
                }
            }
        }
        crate::plan::order(self, &self.images.keys().cloned().collect::<Vec<_>>())?;
        Ok(())
    }

    fn check_layer(&self, at: &str, layer: &Layer) -> anyhow::Result<()> {
        for key in layer.env.keys() {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("{at}.env: bad variable name `{key}`; expected letters, digits and `_`");
            }
        }
        for (i, f) in layer.files.iter().enumerate() {
            if f.src.is_empty() || f.src.starts_with('/') || f.src.split('/').any(|c| c == "..") {
                bail!("{at}.files[{i}].src: `{}`; expected a path inside the workspace, relative to its root", f.src);
            }
            check_abs(&format!("{at}.files[{i}].dest"), &f.dest)?;
            if let Some(mode) = &f.mode {
                if u32::from_str_radix(mode, 8).map_or(true, |m| m > 0o7777) {
                    bail!("{at}.files[{i}].mode: `{mode}`; expected an octal mode like \"0755\"");
                }
            }
        }
        for (i, t) in layer.tarballs.iter().enumerate() {
            if !self.artifacts.contains_key(&t.artifact) {
                let known: Vec<_> = self.artifacts.keys().collect();
                bail!(
                    "{at}.tarballs[{i}].artifact: unknown artifact `{}`; expected one of {known:?}",
                    t.artifact
                );
            }
            check_abs(&format!("{at}.tarballs[{i}].dest"), &t.dest)?;
        }
        for (i, c) in layer.cargo.iter().enumerate() {
            if c.package.is_empty() || c.bins.is_empty() {
                bail!(
                    "{at}.cargo[{i}]: expected `package = \"runner\"` and `bins = [\"runner\", …]`"
                );
            }
            check_abs(&format!("{at}.cargo[{i}].dest"), &c.dest)?;
        }
        for (i, c) in layer.check.iter().enumerate() {
            if c.first().is_none_or(|a| a.is_empty()) {
                bail!("{at}.check[{i}]: empty; expected a command like [\"/usr/local/bin/runner\", \"--version\"]");
            }
        }
        if let Some(h) = &layer.healthcheck {
            if h.cmd.is_empty() {
                bail!("{at}.healthcheck.cmd: empty; expected a command like [\"curl\", \"-fsS\", \"http://127.0.0.1:8088/status\"]");
            }
        }
        for (key, v) in [("entrypoint", &layer.entrypoint), ("cmd", &layer.cmd)] {
            if v.as_ref().is_some_and(|v| v.is_empty()) {
                bail!("{at}.{key}: empty list; expected the program and its arguments");
            }
        }
        Ok(())
    }
}

fn check_artifact(at: &str, a: &Artifact) -> anyhow::Result<()> {
    if a.url.trim().is_empty() {
        bail!("{at}.url: empty; expected an https:// URL template or a path relative to the workspace root");
    }
    for (key, value) in [
        ("url", Some(&a.url)),
        ("sha256_file", a.sha256_file.as_ref()),
        ("prepare", a.prepare.as_ref()),
    ] {
        let Some(value) = value else { continue };
        for placeholder in placeholders(value) {
            match placeholder {
                "arch" | "platform_arch" => {}
                "version" if a.version.is_some() => {}
                "version" => bail!("{at}.{key}: uses {{version}} but `version` is not set; expected `version = \"…\"`"),
                other => bail!("{at}.{key}: unknown placeholder {{{other}}}; expected {{version}}, {{arch}} or {{platform_arch}}"),
            }
        }
    }
    match &a.sha256 {
        None if a.sha256_file.is_none() => bail!("{at}: no checksum; expected `sha256 = {{ x64 = \"<64 hex>\", arm64 = \"<64 hex>\" }}` (or `sha256_file` naming a sha256sum-format file)"),
        None => {}
        Some(Sha256Spec::Any(hex)) => check_hex(&format!("{at}.sha256"), hex)?,
        Some(Sha256Spec::PerArch(map)) => {
            for (arch, hex) in map {
                if !KNOWN_ARCHES.contains(&arch.as_str()) {
                    bail!("{at}.sha256.{arch}: unknown arch; expected one of {KNOWN_ARCHES:?}");
                }
                check_hex(&format!("{at}.sha256.{arch}"), hex)?;
            }
        }
    }
    Ok(())
}

/// `{name}` placeholders in a template.
pub fn placeholders(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(p, _)| p))
        .collect()
}

/// A sha256 is 64 lowercase hex digits.
pub fn check_hex(at: &str, hex: &str) -> anyhow::Result<()> {
    if hex.len() != 64
        || !hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        bail!("{at}: `{hex}`; expected 64 lowercase hex digits (a sha256)");
    }
    Ok(())
}

fn check_abs(at: &str, path: &str) -> anyhow::Result<()> {
    if !path.starts_with('/') {
        bail!("{at}: `{path}`; expected an absolute path in the image");
    }
    Ok(())
}

/// Names become parts of Docker tags: lowercase letters, digits, `-`, `_`, `.`, `/`.
fn check_name(at: &str, key: &str, name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        let at = if key.is_empty() {
            at.to_string()
        } else {
            format!("{at}: {key}")
        };
        bail!("{at}: bad name `{name}`; expected lowercase letters, digits, `-`, `_`, `.`, `/` (it becomes part of a Docker tag)");
    }
    Ok(())
}
