//! `--hint` expansion: plain words are hints; a line starting with `@` becomes one hint, a
//! digest of the contents of the files its patterns match (relative to the local dir).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{say, Error};

/// Expands the raw `--hint` values (each may hold several lines) into the hint list.
pub fn expand_hints(raw: &[String], local_dir: &Path) -> Result<Vec<String>, Error> {
    let mut hints = Vec::new();
    for line in raw.iter().flat_map(|arg| arg.lines()) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.strip_prefix('@') {
            Some(patterns) => hints.push(digest_hint(patterns, local_dir)?),
            None => hints.extend(line.split_whitespace().map(str::to_owned)),
        }
    }
    Ok(hints)
}

/// `@<16 hex>`: sha256 over the contents of the matched files, sorted by relative path.
/// Patterns with `*`/`?`/`[` are globs (`**` crosses directories; dot files need a literal
/// dot) and may match nothing; other items are files that must exist. Directories are skipped.
fn digest_hint(patterns: &str, local_dir: &Path) -> Result<String, Error> {
    let mut files = std::collections::BTreeSet::new();
    for item in patterns.split_whitespace() {
        if is_wildcard(item) {
            let pattern = format!(
                "{}/{}",
                glob::Pattern::escape(&local_dir.to_string_lossy()),
                item
            );
            let options = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..Default::default()
            };
            let paths = glob::glob_with(&pattern, options)
                .map_err(|e| Error::Usage(format!("bad --hint pattern \"{item}\": {e}")))?;
            for path in paths.flatten() {
                if path.is_file() {
                    let rel = path.strip_prefix(local_dir).unwrap_or(&path);
                    files.insert(rel.to_string_lossy().into_owned());
                }
            }
        } else {
            let path = local_dir.join(item);
            if !path.is_dir() {
                files.insert(item.to_owned());
            }
        }
    }
    let shown: Vec<String> = files.iter().map(|f| super::shell::quote(f)).collect();
    say(&format!("$ sha256sum {}", shown.join(" ")));
    let mut hasher = Sha256::new();
    for file in &files {
        let path = local_dir.join(file);
        let content = std::fs::read(&path).map_err(|e| {
            Error::Usage(format!(
                "--hint \"@{}\": cannot read {}: {e}",
                patterns.trim(),
                path.display()
            ))
        })?;
        hasher.update(&content);
    }
    let hint = format!("@{}", &hex::encode(hasher.finalize())[..16]);
    say(&format!("  {hint}"));
    Ok(hint)
}

fn is_wildcard(item: &str) -> bool {
    item.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_hints_split_on_whitespace_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let raw = vec!["a b\n\n  c ".to_string(), "d".to_string()];
        assert_eq!(
            expand_hints(&raw, dir.path()).unwrap(),
            vec!["a", "b", "c", "d"]
        );
    }

    #[test]
    fn digest_covers_contents_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("x/y")).unwrap();
        std::fs::write(dir.path().join("x/y/p.lock"), "one").unwrap();
        std::fs::write(dir.path().join("q.lock"), "two").unwrap();
        std::fs::write(dir.path().join(".hidden.lock"), "three").unwrap();
        let got = expand_hints(&["@**/*.lock".to_string()], dir.path()).unwrap();
        // Sorted relative paths: "q.lock" < "x/y/p.lock".
        let want = &hex::encode(Sha256::digest(b"twoone"))[..16];
        assert_eq!(got, vec![format!("@{want}")]);
        let explicit = expand_hints(&["@x/y/p.lock q.lock".to_string()], dir.path()).unwrap();
        assert_eq!(explicit, got);
    }

    #[test]
    fn missing_literal_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(expand_hints(&["@nope.json".to_string()], dir.path()).is_err());
        assert!(expand_hints(&["@*.nope".to_string()], dir.path()).is_ok());
    }
}
