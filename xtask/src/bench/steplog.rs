//! Parsing the entrypoint's step log: `step=<name> elapsed_ms=<n> [uptime_ms=<n>]` lines, as
//! printed by `docker logs -t` (a timestamp before each line).

use chrono::{DateTime, Utc};

/// One `step=` line of the entrypoint's log.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Step name (`validate`, `hooks.root`, `setup`, `prewarm`, `register`, …).
    pub name: String,
    /// The step's own duration, when logged.
    pub elapsed_ms: Option<u64>,
    /// Milliseconds since the entrypoint started, when logged.
    pub uptime_ms: Option<u64>,
    /// Docker's timestamp of the line, when the line had one.
    pub at: Option<DateTime<Utc>>,
}

/// A log line split into Docker's timestamp (from `docker logs -t`) and the text.
pub fn split_timestamp(line: &str) -> (Option<DateTime<Utc>>, &str) {
    if let Some((first, rest)) = line.split_once(' ') {
        if let Ok(t) = DateTime::parse_from_rfc3339(first) {
            return (Some(t.with_timezone(&Utc)), rest);
        }
    }
    (None, line)
}

/// The value of `key=` in a tracing line (quotes removed), if present.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=");
    let mut from = 0;
    while let Some(i) = text[from..].find(&pat) {
        let start = from + i;
        let boundary = start == 0 || text[..start].ends_with([' ', '\t', '{', ',']);
        let value = &text[start + pat.len()..];
        if boundary {
            return Some(match value.strip_prefix('"') {
                Some(v) => v.split('"').next().unwrap_or(v),
                None => value.split([' ', ',', '}', ':']).next().unwrap_or(value),
            });
        }
        from = start + pat.len();
    }
    None
}

/// Parses one line; `None` unless it carries `step=`.
pub fn parse_line(line: &str) -> Option<Step> {
    let (at, text) = split_timestamp(line);
    let name = field(text, "step")?.to_owned();
    let num = |k: &str| field(text, k).and_then(|v| v.parse().ok());
    Some(Step {
        name,
        elapsed_ms: num("elapsed_ms"),
        uptime_ms: num("uptime_ms"),
        at,
    })
}

/// Every step line of a log, in order.
pub fn parse(log: &str) -> Vec<Step> {
    log.lines().filter_map(parse_line).collect()
}

/// The first step called `name`.
pub fn find<'a>(steps: &'a [Step], name: &str) -> Option<&'a Step> {
    steps.iter().find(|s| s.name == name)
}

/// The last step called `name`.
pub fn find_last<'a>(steps: &'a [Step], name: &str) -> Option<&'a Step> {
    steps.iter().rev().find(|s| s.name == name)
}

/// Milliseconds from `a` to `b` (negative when `b` is earlier).
pub fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a)
        .num_microseconds()
        .map_or(f64::NAN, |us| us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2025-01-02T03:04:05.100000000Z 2025-01-02T03:04:05.099Z  INFO step=\"validate\" elapsed_ms=1 uptime_ms=2 repository=o/r: configuration valid
2025-01-02T03:04:05.200000000Z 2025-01-02T03:04:05.199Z  INFO config.sh: √ Settings Saved.
2025-01-02T03:04:05.300000000Z 2025-01-02T03:04:05.299Z  INFO step=register elapsed_ms=812 runner_name=r-1: registered
2025-01-02T03:04:05.400000000Z  WARN step=\"prewarm\" elapsed_ms=17: pre-warm failed, continuing cold: no host_step=x
2025-01-02T03:04:05.500000000Z  INFO step=\"runner.start\" elapsed_ms=0 uptime_ms=401: started run.sh as user
";

    #[test]
    fn parses_step_lines_with_and_without_quotes() {
        let steps = parse(LOG);
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["validate", "register", "prewarm", "runner.start"]);
        assert_eq!(steps[0].elapsed_ms, Some(1));
        assert_eq!(steps[0].uptime_ms, Some(2));
        assert_eq!(steps[1].elapsed_ms, Some(812));
        assert_eq!(steps[1].uptime_ms, None);
        assert_eq!(find(&steps, "runner.start").unwrap().uptime_ms, Some(401));
        let t0 = steps[0].at.unwrap();
        let t3 = steps[3].at.unwrap();
        assert_eq!(ms_between(t0, t3), 400.0);
    }

    #[test]
    fn field_needs_a_word_boundary() {
        assert_eq!(field("host_step=x step=y", "step"), Some("y"));
        assert_eq!(field("a=1", "step"), None);
        assert_eq!(split_timestamp("no timestamp here").1, "no timestamp here");
    }
}
