//! One check per variable; each records a [`Problem`] naming the variable and the expected form.
//! Secret values are never echoed back in a problem.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use super::{is_abs, problem, Auth, Problem, Repo, Source, Storage};
use crate::secret::Secret;

/// Characters GitHub accepts in owner and repository names (and that we accept in name parts).
pub fn is_valid_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A runner label: non-empty, at most 256 characters, no whitespace or commas.
pub fn is_valid_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && !s.chars().any(|c| c.is_whitespace() || c == ',')
}

pub(super) fn repo(v: Option<&str>, p: &mut Vec<Problem>) -> Option<Repo> {
    const FORM: &str = "expected owner/repo (letters, digits, . _ -)";
    let Some(v) = v else {
        p.push(problem("GH_REPOSITORY", format!("required; {FORM}")));
        return None;
    };
    let parts: Vec<&str> = v.split('/').collect();
    match parts.as_slice() {
        [owner, name]
            if is_valid_name_part(owner)
                && is_valid_name_part(name)
                && *name != "."
                && *name != ".." =>
        {
            Some(Repo {
                owner: owner.to_string(),
                name: name.to_string(),
            })
        }
        _ => {
            p.push(problem("GH_REPOSITORY", format!("{FORM}, got {v:?}")));
            None
        }
    }
}

pub(super) fn labels(v: Option<&str>, p: &mut Vec<Problem>) -> Option<Vec<String>> {
    const FORM: &str = "expected comma-separated labels, e.g. \"linux,big\" (no spaces inside a label, none empty)";
    let Some(v) = v else {
        p.push(problem("GH_LABELS", format!("required; {FORM}")));
        return None;
    };
    let labels: Vec<String> = v.split(',').map(|l| l.trim().to_string()).collect();
    if labels.iter().all(|l| is_valid_label(l)) {
        Some(labels)
    } else {
        p.push(problem("GH_LABELS", format!("{FORM}, got {v:?}")));
        None
    }
}

pub(super) fn auth(src: &Source, p: &mut Vec<Problem>) -> Option<Auth> {
    let token = src.secret("GH_TOKEN", &["GH_TOKEN"], p);
    let app_id = src.var("GH_APP_ID");
    let key = src.secret("GH_APP_PRIVATE_KEY", &["GH_APP_PRIVATE_KEY"], p);
    let installation = src.var("GH_APP_INSTALLATION_ID");
    match (token, app_id) {
        (Some(_), Some(_)) => {
            p.push(problem(
                "GH_TOKEN",
                "set either GH_TOKEN (a PAT) or GH_APP_ID with GH_APP_PRIVATE_KEY (a GitHub App), not both",
            ));
            None
        }
        (Some(t), None) => {
            if key.is_some() {
                p.push(problem(
                    "GH_APP_PRIVATE_KEY",
                    "set only with GH_APP_ID (GitHub App auth), not with GH_TOKEN",
                ));
            }
            if t.expose()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            {
                p.push(problem(
                    "GH_TOKEN",
                    "expected a single-line token without spaces (a PAT with admin rights on the repository)",
                ));
                return None;
            }
            Some(Auth::Pat(t))
        }
        (None, Some(id)) => app(id, key, installation, p),
        (None, None) => {
            p.push(problem(
                "GH_TOKEN",
                "required: a PAT with admin rights on the repository (GH_TOKEN or /run/secrets/GH_TOKEN), or set GH_APP_ID and GH_APP_PRIVATE_KEY for a GitHub App",
            ));
            None
        }
    }
}

fn app(
    id: &str,
    key: Option<Secret>,
    installation: Option<&str>,
    p: &mut Vec<Problem>,
) -> Option<Auth> {
    let app_id = id.parse::<u64>().ok().filter(|n| *n > 0);
    if app_id.is_none() {
        p.push(problem(
            "GH_APP_ID",
            format!("expected a positive integer (the App's id), got {id:?}"),
        ));
    }
    let installation_id = match installation {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                p.push(problem(
                    "GH_APP_INSTALLATION_ID",
                    format!("expected a positive integer, got {v:?}"),
                ));
                None
            }
        },
    };
    let key = match key {
        None => {
            p.push(problem(
                "GH_APP_PRIVATE_KEY",
                "required with GH_APP_ID: the App's RSA private key in PEM (or /run/secrets/GH_APP_PRIVATE_KEY)",
            ));
            None
        }
        Some(k) => {
            // Signing once proves the key is usable, without any request.
            if crate::github::app_jwt(1, &k).is_err() {
                p.push(problem(
                    "GH_APP_PRIVATE_KEY",
                    "expected an RSA private key in PEM (-----BEGIN RSA PRIVATE KEY----- or PKCS#8)",
                ));
                None
            } else {
                Some(k)
            }
        }
    };
    Some(Auth::App {
        app_id: app_id?,
        private_key: key?,
        installation_id,
    })
}

pub(super) fn url(var: &str, v: Option<&str>, p: &mut Vec<Problem>) -> Option<String> {
    let v = v?;
    match Url::parse(v) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty() =>
        {
            Some(v.trim_end_matches('/').to_string())
        }
        _ => {
            p.push(problem(
                var,
                format!("expected an http(s) URL like https://github.example.com, got {v:?}"),
            ));
            None
        }
    }
}

pub(super) fn user_home(user: &str, p: &mut Vec<Problem>) -> Option<PathBuf> {
    let valid = !user.is_empty()
        && user.len() <= 32
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        p.push(problem(
            "RUNNER_USER",
            format!("expected a user name (letters, digits, _ - .), got {user:?}"),
        ));
        return None;
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Some(u.dir),
        Ok(None) => {
            p.push(problem(
                "RUNNER_USER",
                format!("expected an existing account, but user {user:?} does not exist"),
            ));
            None
        }
        Err(e) => {
            p.push(problem(
                "RUNNER_USER",
                format!("cannot look up user {user:?}: {e}"),
            ));
            None
        }
    }
}

/// `[user@]host[:port]`, as the original ci-storage accepts.
pub fn is_valid_storage_host(v: &str) -> bool {
    let host_part = match v.split_once('@') {
        Some((user, rest)) => {
            if !is_valid_name_part(user) {
                return false;
            }
            rest
        }
        None => v,
    };
    let host = match host_part.rsplit_once(':') {
        Some((h, port)) => {
            if !matches!(port.parse::<u16>(), Ok(n) if n > 0) {
                return false;
            }
            h
        }
        None => host_part,
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A pinned host key: `[hosts] type base64 [comment]`, type one of ssh's key types.
pub fn is_valid_host_key(v: &str) -> bool {
    let words: Vec<&str> = v.split_whitespace().collect();
    words.windows(2).any(|w| {
        let kind = w[0];
        let known = kind.starts_with("ssh-")
            || kind.starts_with("ecdsa-sha2-")
            || kind.starts_with("sk-ssh-")
            || kind.starts_with("sk-ecdsa-");
        let b64 = w[1].len() >= 16
            && w[1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
        known && b64
    }) && !v.contains('\n')
}

pub(super) fn storage(src: &Source, repo: Option<&Repo>, p: &mut Vec<Problem>) -> Option<Storage> {
    let key = src.secret(
        "CI_STORAGE_HOST_PRIVATE_KEY",
        &["CI_STORAGE_PRIVATE_KEY", "CI_STORAGE_HOST_PRIVATE_KEY"],
        p,
    );
    if let Some(k) = &key {
        let s = k.expose();
        if !(s.starts_with("-----BEGIN ") && s.contains("PRIVATE KEY-----")) {
            p.push(problem(
                "CI_STORAGE_HOST_PRIVATE_KEY",
                "expected an ssh private key in PEM/OpenSSH form (-----BEGIN ... PRIVATE KEY-----)",
            ));
        }
    }
    let host_key = src.var("CI_STORAGE_HOST_KEY").map(str::to_string);
    if let Some(hk) = &host_key {
        if !is_valid_host_key(hk) {
            p.push(problem(
                "CI_STORAGE_HOST_KEY",
                format!("expected a known_hosts line or \"ssh-ed25519 AAAA...\", got {hk:?}"),
            ));
        }
    }
    let dir = src.var("CI_STORAGE_DIR").map(str::to_string);
    if let Some(d) = &dir {
        if d.chars().any(|c| c.is_control()) {
            p.push(problem(
                "CI_STORAGE_DIR",
                "expected a directory path on the storage host, without control characters",
            ));
        }
    }
    let timeout = secs("CI_STORAGE_PREWARM_TIMEOUT_SEC", src, 300.0, false, p);
    let host = src.var("CI_STORAGE_HOST")?;
    if !is_valid_storage_host(host) {
        p.push(problem(
            "CI_STORAGE_HOST",
            format!("expected [user@]host[:port], got {host:?}"),
        ));
        return None;
    }
    let dir = dir.unwrap_or_else(|| match repo {
        Some(r) => format!("~/ci-storage/{}/{}", r.owner, r.name),
        None => "~/ci-storage".to_string(),
    });
    Some(Storage {
        host: host.to_string(),
        private_key: key,
        host_key,
        dir,
        prewarm_timeout: timeout,
    })
}

pub(super) fn abs_path(var: &str, v: Option<&str>, p: &mut Vec<Problem>) -> Option<PathBuf> {
    let v = v?;
    if is_abs(v) && !v.chars().any(|c| c.is_control()) {
        Some(PathBuf::from(v))
    } else {
        p.push(problem(
            var,
            format!("expected an absolute path, got {v:?}"),
        ));
        None
    }
}

/// Seconds as a non-negative decimal number (fractions allowed, handy in tests).
pub(super) fn secs(
    var: &str,
    src: &Source,
    default: f64,
    zero_ok: bool,
    p: &mut Vec<Problem>,
) -> Duration {
    let Some(v) = src.var(var) else {
        return Duration::from_secs_f64(default);
    };
    match v.parse::<f64>() {
        Ok(n) if n.is_finite() && (0.0..=1e7).contains(&n) && (zero_ok || n > 0.0) => {
            Duration::from_secs_f64(n)
        }
        _ => {
            let form = if zero_ok {
                "a number of seconds >= 0"
            } else {
                "a number of seconds > 0"
            };
            p.push(problem(var, format!("expected {form}, got {v:?}")));
            Duration::from_secs_f64(default)
        }
    }
}

pub(super) fn tz(v: Option<&str>, p: &mut Vec<Problem>) -> String {
    let Some(v) = v else {
        return "UTC".to_string();
    };
    let form_ok = !v.starts_with('/')
        && !v.contains("..")
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
    // Only checked against the zone database when the image has one.
    let zoneinfo = std::path::Path::new("/usr/share/zoneinfo");
    let known = !zoneinfo.is_dir() || zoneinfo.join(v).is_file();
    if form_ok && known {
        v.to_string()
    } else {
        p.push(problem(
            "TZ",
            format!("expected a tz database name like Europe/Berlin or UTC, got {v:?}"),
        ));
        "UTC".to_string()
    }
}
