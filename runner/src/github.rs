//! GitHub REST client: registration and remove tokens, runner lookup, labels, deletion.
//! PAT or GitHub App auth; retries transient failures and honours rate-limit headers.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{ExponentialBuilder, Retryable};
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{Auth, Config, Repo};
use crate::secret::Secret;

mod error;

pub use error::{rate_limit_reset, retry_after, ApiError, ErrorKind};

/// Longest wait we accept from `Retry-After`/`X-RateLimit-Reset` before retrying.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15 * 60);

/// A runner as the REST API shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct RunnerInfo {
    /// Runner id.
    pub id: u64,
    /// Runner name.
    pub name: String,
    /// Whether it runs a job right now.
    #[serde(default)]
    pub busy: bool,
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
    #[serde(default)]
    expires_at: Option<String>,
}

/// REST client for one repository.
pub struct Github {
    http: reqwest::Client,
    api: String,
    repo: Repo,
    auth: Auth,
    /// App installation token and when to refresh it.
    app_token: Mutex<Option<(Secret, Instant)>>,
    installation_id: Mutex<Option<u64>>,
    backoff: ExponentialBuilder,
}

/// Signs a GitHub App JWT (RS256, valid 9 minutes, issued a minute ago against clock skew;
/// `iss` is the numeric app id, as GitHub documents).
pub fn app_jwt(app_id: u64, key: &Secret) -> anyhow::Result<String> {
    #[derive(serde::Serialize)]
    struct Claims {
        iat: u64,
        exp: u64,
        iss: u64,
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        iat: now.saturating_sub(60),
        exp: now + 9 * 60,
        iss: app_id,
    };
    // The key's own parse error could quote it; keep errors generic.
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key.expose().as_bytes())
        .map_err(|_| anyhow::anyhow!("GH_APP_PRIVATE_KEY is not an RSA private key in PEM"))?;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|_| anyhow::anyhow!("cannot sign a JWT with GH_APP_PRIVATE_KEY"))
}

impl Github {
    /// A client for the configured repository and credentials.
    pub fn new(cfg: &Config) -> anyhow::Result<Github> {
        use anyhow::Context;
        let http = reqwest::Client::builder()
            .user_agent(concat!("warm-runner/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        let installation_id = match &cfg.auth {
            Auth::App {
                installation_id, ..
            } => *installation_id,
            Auth::Pat(_) => None,
        };
        Ok(Github {
            http,
            api: cfg.api_url.clone(),
            repo: cfg.repo.clone(),
            auth: cfg.auth.clone(),
            app_token: Mutex::new(None),
            installation_id: Mutex::new(installation_id),
            backoff: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(30))
                .with_max_times(10)
                .with_jitter(),
        })
    }

    /// A fresh registration token for `config.sh`.
    pub async fn registration_token(&self) -> Result<Secret, ApiError> {
        let path = format!("repos/{}/actions/runners/registration-token", self.repo);
        self.token_post(&path).await
    }

    /// A fresh remove token for `config.sh remove`.
    pub async fn remove_token(&self) -> Result<Secret, ApiError> {
        let path = format!("repos/{}/actions/runners/remove-token", self.repo);
        self.token_post(&path).await
    }

    /// The repository's runner with exactly this name, if any.
    pub async fn runner_by_name(&self, name: &str) -> Result<Option<RunnerInfo>, ApiError> {
        #[derive(Deserialize)]
        struct Page {
            runners: Vec<RunnerInfo>,
        }
        let path = format!(
            "repos/{}/actions/runners?name={}&per_page=100",
            self.repo,
            form_encode(name)
        );
        let body = self.call(Method::GET, &path).await?;
        let page: Page = serde_json::from_value(body)
            .map_err(|e| ApiError::other(&format!("GET {path}"), format!("bad body: {e}")))?;
        Ok(page.runners.into_iter().find(|r| r.name == name))
    }

    /// Removes every custom label of a runner, so label-targeted jobs stop reaching it.
    pub async fn remove_custom_labels(&self, id: u64) -> Result<(), ApiError> {
        let path = format!("repos/{}/actions/runners/{id}/labels", self.repo);
        self.call(Method::DELETE, &path).await.map(|_| ())
    }

    /// Deletes a runner by id; `Ok(false)` when it was already gone, `ErrorKind::Busy` while busy.
    pub async fn delete_runner(&self, id: u64) -> Result<bool, ApiError> {
        let path = format!("repos/{}/actions/runners/{id}", self.repo);
        match self.call(Method::DELETE, &path).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn token_post(&self, path: &str) -> Result<Secret, ApiError> {
        let body = self.call(Method::POST, path).await?;
        let t: TokenBody = serde_json::from_value(body)
            .map_err(|_| ApiError::other(&format!("POST {path}"), "no token in the answer"))?;
        Ok(Secret::new(t.token))
    }

    /// One API call with retries; returns the JSON body (`null` when empty).
    async fn call(&self, method: Method, path: &str) -> Result<Value, ApiError> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        (|| async {
            let auth = self.auth_header().await?;
            self.send(method.clone(), path, &auth, &what).await
        })
        .retry(self.backoff)
        .when(|e: &ApiError| e.kind == ErrorKind::Transient)
        .adjust(adjust_wait)
        .notify(|e: &ApiError, d: Duration| {
            tracing::warn!(retry_in_ms = d.as_millis() as u64, "{e}; retrying");
        })
        .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: &Secret,
        what: &str,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/{path}", self.api);
        let resp = self
            .http
            .request(method, &url)
            .header("Authorization", format!("Bearer {}", auth.expose()))
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| ApiError::transport(what, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text)
                .map_err(|e| ApiError::other(what, format!("bad JSON in answer: {e}")));
        }
        Err(self.classify(what, status, &headers, &text))
    }

    fn classify(
        &self,
        what: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
    ) -> ApiError {
        let hint = match &self.auth {
            Auth::Pat(_) => format!(
                "GH_TOKEN must be a valid PAT with admin rights on {} (classic: repo scope; fine-grained: Administration read and write)",
                self.repo
            ),
            Auth::App { .. } => format!(
                "check GH_APP_ID/GH_APP_PRIVATE_KEY and that the App is installed on {} with Administration read and write",
                self.repo
            ),
        };
        ApiError::from_response(what, status, headers, body, SystemTime::now(), &hint)
    }

    /// The bearer credential: the PAT, or a (cached) App installation token.
    async fn auth_header(&self) -> Result<Secret, ApiError> {
        let (app_id, key) = match &self.auth {
            Auth::Pat(t) => return Ok(t.clone()),
            Auth::App {
                app_id,
                private_key,
                ..
            } => (*app_id, private_key),
        };
        if let Ok(guard) = self.app_token.lock() {
            if let Some((t, refresh_at)) = guard.as_ref() {
                if Instant::now() < *refresh_at {
                    return Ok(t.clone());
                }
            }
        }
        let jwt = app_jwt(app_id, key)
            .map(Secret::new)
            .map_err(|e| ApiError::fatal("GitHub App JWT", e.to_string()))?;
        let cached_id = self.installation_id.lock().ok().and_then(|g| *g);
        let id = match cached_id {
            Some(id) => id,
            None => {
                let path = format!("repos/{}/installation", self.repo);
                let what = format!("GET {path}");
                let v = self.send(Method::GET, &path, &jwt, &what).await?;
                let id = v
                    .get("id")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ApiError::other(&what, "no installation id in the answer"))?;
                if let Ok(mut g) = self.installation_id.lock() {
                    *g = Some(id);
                }
                id
            }
        };
        let path = format!("app/installations/{id}/access_tokens");
        let what = format!("POST {path}");
        let v = self.send(Method::POST, &path, &jwt, &what).await?;
        let t: TokenBody = serde_json::from_value(v)
            .map_err(|_| ApiError::other(&what, "no token in the answer"))?;
        // Installation tokens live an hour; refresh well before, or after 50 minutes.
        let lifetime = t
            .expires_at
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .and_then(|at| {
                (at.timestamp() - chrono::Utc::now().timestamp())
                    .try_into()
                    .ok()
            })
            .map(|secs: u64| Duration::from_secs(secs.saturating_sub(300)))
            .unwrap_or(Duration::from_secs(50 * 60));
        let token = Secret::new(t.token);
        if let Ok(mut g) = self.app_token.lock() {
            *g = Some((token.clone(), Instant::now() + lifetime));
        }
        Ok(token)
    }
}

/// Backon's adjust hook: a server-given wait replaces the exponential delay.
fn adjust_wait(e: &ApiError, next: Option<Duration>) -> Option<Duration> {
    let next = next?;
    Some(match e.wait {
        Some(w) => w.min(MAX_RATE_LIMIT_WAIT),
        None => next,
    })
}

/// Percent-encodes a query value (runner names are plain, but be safe).
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
