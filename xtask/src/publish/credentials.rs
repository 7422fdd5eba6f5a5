//! Registry credentials: `REGISTRY_USERNAME`/`REGISTRY_PASSWORD`, else the Docker config
//! (`credHelpers`, `auths`, `credsStore`, as `docker login` leaves them). Never printed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use bollard::auth::DockerCredentials;
use serde::Deserialize;
use xshell::{cmd, Shell};

/// Credentials for one registry and where they came from.
pub struct Auth {
    /// Where they came from (printable: never the secret).
    pub source: String,
    creds: DockerCredentials,
}

/// `DockerCredentials` derives `Debug` with the password in it; this does not.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// The credentials, for the engine's push and pull calls.
    pub fn credentials(&self) -> DockerCredentials {
        self.creds.clone()
    }

    fn basic(source: String, host: &str, username: String, password: String) -> Auth {
        let creds = DockerCredentials {
            username: Some(username),
            password: Some(password),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        };
        Auth { source, creds }
    }
}

#[derive(Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The registry host of a registry prefix: `ghcr.io/org` → `ghcr.io`; `org` → `docker.io`.
pub fn registry_host(registry: &str) -> String {
    let first = registry.split('/').next().unwrap_or(registry);
    if first.contains('.') || first.contains(':') || first == "localhost" {
        first.to_string()
    } else {
        "docker.io".to_string()
    }
}

/// The key a host has in `auths` (`docker.io` is stored under its v1 index URL).
fn matches(key: &str, host: &str) -> bool {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    k == host || (host == "docker.io" && (k == "index.docker.io" || k == "registry-1.docker.io"))
}

/// Credentials for `host`, or None (anonymous push).
pub fn lookup(sh: &Shell, host: &str) -> anyhow::Result<Option<Auth>> {
    if let (Ok(user), Ok(pass)) = (
        std::env::var("REGISTRY_USERNAME"),
        std::env::var("REGISTRY_PASSWORD"),
    ) {
        return Ok(Some(Auth::basic(
            "env REGISTRY_USERNAME/REGISTRY_PASSWORD".into(),
            host,
            user,
            pass,
        )));
    }
    let path = config_path();
    let config: DockerConfig = match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        Err(_) => return Ok(None),
    };
    let helper = config
        .cred_helpers
        .iter()
        .find(|(k, _)| matches(k, host))
        .map(|(_, v)| v.clone());
    if let Some(helper) = helper {
        return from_helper(sh, &helper, host).map(Some);
    }
    if let Some((_, entry)) = config.auths.iter().find(|(k, _)| matches(k, host)) {
        let source = format!("{} (auths)", path.display());
        if let Some(token) = &entry.identitytoken {
            let creds = DockerCredentials {
                identitytoken: Some(token.clone()),
                serveraddress: Some(host.to_string()),
                ..Default::default()
            };
            return Ok(Some(Auth { source, creds }));
        }
        if let Some(encoded) = &entry.auth {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .with_context(|| format!("{}: auths.{host}.auth is not base64", path.display()))?;
            let text = String::from_utf8(bytes).context("auth is not UTF-8")?;
            let (user, pass) = text.split_once(':').with_context(|| {
                format!("{}: auths.{host}.auth is not user:password", path.display())
            })?;
            return Ok(Some(Auth::basic(source, host, user.into(), pass.into())));
        }
    }
    match config.creds_store {
        Some(store) => from_helper(sh, &store, host).map(Some),
        None => Ok(None),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".docker")
        });
    dir.join("config.json")
}

/// `docker-credential-<helper> get`, host on stdin.
fn from_helper(sh: &Shell, helper: &str, host: &str) -> anyhow::Result<Auth> {
    let program = format!("docker-credential-{helper}");
    let out = cmd!(sh, "{program} get")
        .stdin(host)
        .quiet()
        .secret()
        .ignore_stderr()
        .read()
        .with_context(|| {
            format!("{program} get {host} failed (is the helper installed and logged in?)")
        })?;
    let parsed: HelperOutput = serde_json::from_str(&out)
        .with_context(|| format!("{program} answered something else than JSON credentials"))?;
    let source = format!("credential helper {program}");
    if parsed.username == "<token>" {
        let creds = DockerCredentials {
            identitytoken: Some(parsed.secret),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        };
        return Ok(Auth { source, creds });
    }
    Ok(Auth::basic(source, host, parsed.username, parsed.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(registry_host("ghcr.io/warm-runners"), "ghcr.io");
        assert_eq!(registry_host("127.0.0.1:5000/x"), "127.0.0.1:5000");
        assert_eq!(registry_host("localhost/x"), "localhost");
        assert_eq!(registry_host("myorg"), "docker.io");
        assert!(matches("https://index.docker.io/v1/", "docker.io"));
        assert!(matches("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(matches("https://ghcr.io", "ghcr.io"));
        assert!(!matches("ghcr.io", "quay.io"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let auth = Auth::basic("test".into(), "h", "u".into(), "hunter2".into());
        let shown = format!("{auth:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("test"),
            "{shown}"
        );
    }
}
