//! POSIX shell quoting for remote commands, `rsync -e`, and the `$ <command>` echo lines.

/// Quotes one word for a POSIX shell (and for rsync's own `-e` splitting).
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Joins words into one shell command line.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `$ …` line echoed before running a command: embedded scripts show as `<NAME>`,
/// newlines as `\n`, and `'--opt=a b'` as `--opt='a b'` (as the original prints them).
pub fn echo_line<S: AsRef<str>>(words: &[S], scripts: &[(&str, &str)]) -> String {
    let shown: Vec<String> = words
        .iter()
        .map(|w| {
            let w = w.as_ref();
            if let Some((name, _)) = scripts.iter().find(|(_, text)| *text == w) {
                return format!("<{name}>");
            }
            let flat = w.trim_end().replace('\n', "\\n");
            let quoted = quote(&flat);
            match (quoted.strip_prefix("'--"), flat.split_once('=')) {
                (Some(_), Some((opt, value))) if opt.starts_with("--") && quote(opt) == opt => {
                    format!("{opt}={}", quote(value))
                }
                _ => quoted,
            }
        })
        .collect();
    format!("$ {}", shown.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("abc/d-e.f"), "abc/d-e.f");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn echo_line_is_readable() {
        let script = "use strict;\nprint 1;";
        let line = echo_line(
            &["perl", "-we", script, "--exclude=a b", "x\ny"],
            &[("S", script)],
        );
        assert_eq!(line, r"$ perl -we <S> --exclude='a b' 'x\ny'");
    }
}
