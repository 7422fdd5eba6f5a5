//! API errors, their classification (retry, wait, give up) and rate-limit header parsing.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{header::HeaderMap, StatusCode};

/// What a caller can do about an [`ApiError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 5xx, timeouts, connection errors, rate limits: retried with backoff.
    Transient,
    /// Bad credentials or missing rights: retrying cannot help.
    Fatal,
    /// 422 on a runner deletion: the runner is running a job.
    Busy,
    /// 404: no such runner (or repository).
    NotFound,
    /// Anything else.
    Other,
}

/// A failed API call. Never carries a token: only the method, path, status and GitHub's message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// `METHOD path` of the call.
    pub what: String,
    /// HTTP status, if an answer came.
    pub status: Option<u16>,
    /// GitHub's message or the transport error, plus a hint on what to do.
    pub message: String,
    /// Wait the server asked for (`Retry-After`, `X-RateLimit-Reset`).
    pub wait: Option<Duration>,
    /// Classification.
    pub kind: ErrorKind,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "GitHub API {}: {s} {}", self.what, self.message),
            None => write!(f, "GitHub API {}: {}", self.what, self.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub(super) fn other(what: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            what: what.to_string(),
            status: None,
            message: message.into(),
            wait: None,
            kind: ErrorKind::Other,
        }
    }

    pub(super) fn fatal(what: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            kind: ErrorKind::Fatal,
            ..ApiError::other(what, message)
        }
    }

    pub(super) fn transport(what: &str, e: &reqwest::Error) -> ApiError {
        // reqwest's Display names the URL, never headers, so no token can appear.
        let mut message = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            message.push_str(": ");
            message.push_str(&s.to_string());
            src = s.source();
        }
        ApiError {
            kind: ErrorKind::Transient,
            ..ApiError::other(what, message)
        }
    }

    /// Classifies a non-success answer. `hint` says how to fix credentials.
    pub fn from_response(
        what: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
        now: SystemTime,
        hint: &str,
    ) -> ApiError {
        let gh_message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| body.chars().take(200).collect());
        let code = status.as_u16();
        let rate_limited = code == 429
            || (code == 403
                && (header(headers, "x-ratelimit-remaining") == Some("0")
                    || headers.contains_key("retry-after")));
        let wait = if rate_limited {
            retry_after(headers, now).or_else(|| rate_limit_reset(headers, now))
        } else {
            retry_after(headers, now)
        };
        let (kind, message) = if rate_limited || status.is_server_error() || code == 408 {
            (ErrorKind::Transient, gh_message)
        } else if code == 401 || code == 403 {
            (ErrorKind::Fatal, format!("{gh_message}: {hint}"))
        } else if code == 404 {
            (ErrorKind::NotFound, gh_message)
        } else if code == 422 {
            (ErrorKind::Busy, gh_message)
        } else {
            (ErrorKind::Other, gh_message)
        };
        ApiError {
            what: what.to_string(),
            status: Some(code),
            message,
            wait,
            kind,
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Retry-After` as delay-seconds or an HTTP date, relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = header(headers, "retry-after")?;
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Time until `X-RateLimit-Reset` (UTC epoch seconds) plus a small margin, relative to `now`;
/// the margin covers the header's one-second resolution.
pub fn rate_limit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let reset = header(headers, "x-ratelimit-reset")?.parse::<u64>().ok()?;
    let at = UNIX_EPOCH + Duration::from_secs(reset);
    let until = at.duration_since(now).unwrap_or(Duration::ZERO);
    Some(until + Duration::from_millis(250))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:30 GMT")]),
                now
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:00 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn rate_limit_reset_is_relative_with_margin() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            rate_limit_reset(&headers(&[("x-ratelimit-reset", "1700000003")]), now),
            Some(Duration::from_millis(3250))
        );
        assert_eq!(
            rate_limit_reset(&headers(&[("x-ratelimit-reset", "1600000000")]), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            rate_limit_reset(&headers(&[("x-ratelimit-reset", "x")]), now),
            None
        );
    }

    #[test]
    fn classification() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = |code: u16, h: &[(&'static str, &str)]| {
            ApiError::from_response(
                "POST x",
                StatusCode::from_u16(code).expect("status"),
                &headers(h),
                r#"{"message":"m"}"#,
                now,
                "fix the token",
            )
        };
        assert_eq!(c(500, &[]).kind, ErrorKind::Transient);
        assert_eq!(c(502, &[]).kind, ErrorKind::Transient);
        let e = c(401, &[]);
        assert_eq!(e.kind, ErrorKind::Fatal);
        assert!(e.to_string().contains("fix the token"), "{e}");
        assert_eq!(c(403, &[]).kind, ErrorKind::Fatal);
        let e = c(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000002"),
            ],
        );
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.wait, Some(Duration::from_millis(2250)));
        let e = c(429, &[("retry-after", "3")]);
        assert_eq!(e.kind, ErrorKind::Transient);
        assert_eq!(e.wait, Some(Duration::from_secs(3)));
        assert_eq!(c(429, &[]).wait, None);
        assert_eq!(c(422, &[]).kind, ErrorKind::Busy);
        assert_eq!(c(404, &[]).kind, ErrorKind::NotFound);
    }
}
