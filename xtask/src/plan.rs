//! Build order: images after the images they are built `from`, cycles reported with their path.

use std::collections::BTreeSet;

use anyhow::bail;

use crate::manifest::Manifest;

/// What an image starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    /// A `[base.NAME]`.
    Base(String),
    /// The final layer of another `[image.NAME]`.
    Image(String),
}

/// One layer of one image, in build order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The image this step belongs to.
    pub image: String,
    /// The `[layer.NAME]` applied.
    pub layer: String,
    /// 0-based position in the image's `layers`.
    pub index: usize,
    /// Number of layers of the image.
    pub count: usize,
}

impl Step {
    /// The last layer of an image carries its labels and its name.
    pub fn is_final(&self) -> bool {
        self.index + 1 == self.count
    }
}

/// The parent of image `name` in `manifest`.
pub fn parent(manifest: &Manifest, name: &str) -> Option<Parent> {
    let image = manifest.images.get(name)?;
    Some(if manifest.images.contains_key(&image.from) {
        Parent::Image(image.from.clone())
    } else {
        Parent::Base(image.from.clone())
    })
}

/// The requested images and the images they depend on, dependencies first.
///
/// Unknown names are an error listing the known ones; a `from` cycle is an error showing it.
pub fn order(manifest: &Manifest, names: &[String]) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    let mut seen = BTreeSet::new();
    for name in names {
        if !manifest.images.contains_key(name) {
            bail!(
                "unknown image `{name}` in {}; known images: {}",
                manifest.path.display(),
                manifest.image_names()
            );
        }
        visit(manifest, name, &mut Vec::new(), &mut seen, &mut done)?;
    }
    Ok(done)
}

fn visit(
    manifest: &Manifest,
    name: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
    done: &mut Vec<String>,
) -> anyhow::Result<()> {
    if let Some(at) = path.iter().position(|p| p == name) {
        let cycle = path[at..].join(" → ");
        bail!(
            "{}: image.{name}.from: cycle {cycle} → {name}; expected images to form a tree on top of a base",
            manifest.source_of(&format!("image.{name}"))
        );
    }
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    path.push(name.to_string());
    if let Some(Parent::Image(from)) = parent(manifest, name) {
        visit(manifest, &from, path, seen, done)?;
    }
    path.pop();
    done.push(name.to_string());
    Ok(())
}

/// Every layer step of `images` (already in build order), image by image.
pub fn steps(manifest: &Manifest, images: &[String]) -> Vec<Step> {
    let mut out = Vec::new();
    for image in images {
        let Some(def) = manifest.images.get(image) else {
            continue;
        };
        for (index, layer) in def.layers.iter().enumerate() {
            out.push(Step {
                image: image.clone(),
                layer: layer.clone(),
                index,
                count: def.layers.len(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [base.debian]
        image = "debian:bookworm-slim"
        [layer.l]
        run = ["true"]
    "#;

    fn manifest(images: &str) -> anyhow::Result<Manifest> {
        Manifest::parse("test.toml", &format!("{BASE}{images}"))
    }

    #[test]
    fn dependencies_come_first() {
        let m = manifest(
            r#"
            [image.c]
            from = "b"
            layers = ["l"]
            [image.b]
            from = "a"
            layers = ["l"]
            [image.a]
            from = "debian"
            layers = ["l"]
            "#,
        )
        .unwrap();
        assert_eq!(order(&m, &["c".into()]).unwrap(), ["a", "b", "c"]);
        assert_eq!(
            order(&m, &["b".into(), "c".into(), "a".into()]).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(parent(&m, "a"), Some(Parent::Base("debian".into())));
        assert_eq!(parent(&m, "b"), Some(Parent::Image("a".into())));
    }

    #[test]
    fn cycles_are_reported_with_their_path() {
        let err = manifest(
            r#"
            [image.a]
            from = "b"
            layers = ["l"]
            [image.b]
            from = "a"
            layers = ["l"]
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cycle a → b → a"), "{err}");
        assert!(err.contains("test.toml: image.a.from"), "{err}");
    }

    #[test]
    fn unknown_image_lists_known_ones() {
        let m = manifest("[image.a]\nfrom = \"debian\"\nlayers = [\"l\"]\n").unwrap();
        let err = order(&m, &["nope".into()]).unwrap_err().to_string();
        assert!(
            err.contains("unknown image `nope`") && err.contains("known images: a"),
            "{err}"
        );
    }

    #[test]
    fn steps_mark_the_final_layer() {
        let m = manifest(
            "[layer.m]\nrun=[\"x\"]\n[image.a]\nfrom = \"debian\"\nlayers = [\"l\", \"m\"]\n",
        )
        .unwrap();
        let s = steps(&m, &["a".into()]);
        assert_eq!(s.len(), 2);
        assert!(!s[0].is_final() && s[1].is_final());
        assert_eq!(s[1].layer, "m");
    }
}
