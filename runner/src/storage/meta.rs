//! `.ci-storage.meta`: the `key=value` file kept in every full slot and, for the local
//! directory, in `/tmp/.ci-storage.meta.<normalised local dir>` (same place as the original
//! tool, so workflows may mix both implementations).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::slots::normalize_slot_id;

/// Name of the meta file inside a slot directory (never transferred by rsync).
pub const META_FILE: &str = ".ci-storage.meta";

/// How many slot ids `full_snapshot_history` keeps.
pub const MAX_FULL_SNAPSHOT_HISTORY: usize = 10;

/// Meta information about a full (non-layer) slot or about what a local dir was loaded from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMeta {
    /// Slot ids this content descends from, the most recent first.
    pub full_snapshot_history: Vec<String>,
    /// Hints describing the content (commit, lock-file digests…), the most important first.
    pub hints: Vec<String>,
}

impl SlotMeta {
    /// Serialises to the original tool's format (`key=value` lines).
    pub fn serialize(&self) -> String {
        let history = unique(&self.full_snapshot_history);
        let history: Vec<&str> = history
            .iter()
            .take(MAX_FULL_SNAPSHOT_HISTORY)
            .map(String::as_str)
            .collect();
        format!(
            "full_snapshot_history={}\nhints={}\n",
            history.join(" "),
            unique(&self.hints).join(" ")
        )
    }

    /// Parses the `key=value` format; unknown keys and malformed lines are ignored.
    pub fn deserialize(text: &str) -> Self {
        let mut meta = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let values: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
            match key.trim() {
                "full_snapshot_history" => meta.full_snapshot_history = unique(&values),
                "hints" => meta.hints = unique(&values),
                _ => {}
            }
        }
        meta
    }

    /// Reads the local meta of `local_dir`; a missing file is an empty meta.
    pub fn read_local(local_dir: &str) -> anyhow::Result<Self> {
        let path = local_meta_path(local_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Self::deserialize(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the local meta of `local_dir`.
    pub fn write_local(&self, local_dir: &str) -> anyhow::Result<()> {
        let path = local_meta_path(local_dir);
        std::fs::write(&path, self.serialize())
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Where the local meta of `local_dir` lives: `<tmp>/.ci-storage.meta.<normalised dir>`.
pub fn local_meta_path(local_dir: &str) -> PathBuf {
    temp_dir().join(format!("{META_FILE}.{}", normalize_slot_id(local_dir)))
}

/// `/tmp` when writable (as the original does), else the system temp dir.
pub fn temp_dir() -> PathBuf {
    let tmp = Path::new("/tmp");
    if nix::unistd::access(tmp, nix::unistd::AccessFlags::W_OK).is_ok() {
        tmp.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Unique elements, first occurrence wins, order kept.
pub fn unique(items: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .filter(|item| seen.insert(item.as_str()))
        .cloned()
        .collect()
}

/// Undoes the escaping LIST_SLOTS applies to meta (`\\`, `\r`, `\n`).
pub fn unescape_listed(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_dedups_and_caps_history() {
        let meta = SlotMeta {
            full_snapshot_history: (0..15).map(|i| format!("s{}", i % 12)).collect(),
            hints: vec!["a".into(), "b".into(), "a".into()],
        };
        let text = meta.serialize();
        assert_eq!(
            text,
            "full_snapshot_history=s0 s1 s2 s3 s4 s5 s6 s7 s8 s9\nhints=a b\n"
        );
        let back = SlotMeta::deserialize(&text);
        assert_eq!(back.full_snapshot_history.len(), 10);
        assert_eq!(back.hints, vec!["a", "b"]);
    }

    #[test]
    fn deserialize_ignores_garbage() {
        let meta = SlotMeta::deserialize("junk\nhints= x  y \nother=1\n");
        assert_eq!(meta.hints, vec!["x", "y"]);
        assert!(meta.full_snapshot_history.is_empty());
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_listed(r"a=1\nb=\\x\r"), "a=1\nb=\\x\r");
    }

    #[test]
    fn local_path_is_normalised() {
        let p = local_meta_path("/home/user/_work");
        assert!(p.ends_with(".ci-storage.meta._home_user__work"));
    }
}
