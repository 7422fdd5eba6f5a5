//! The mock GitHub's control API (`/_mock`, ARCHITECTURE.md §3) over plain HTTP.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

/// One entry of `GET /_mock/requests`.
#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Path (and redacted query).
    pub path: String,
    /// Response status.
    pub status: u16,
    /// When the request arrived (ms precision).
    pub at: DateTime<Utc>,
}

/// A client for one mock.
pub struct Mock {
    base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Mock {
    /// A client for the mock at `base` (`http://127.0.0.1:<port>`).
    pub fn new(base: String) -> anyhow::Result<Mock> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting tokio")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Mock { base, http, rt })
    }

    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        self.rt
            .block_on(async {
                let resp = self.http.get(&url).send().await?.error_for_status()?;
                Ok::<_, anyhow::Error>(resp.json().await?)
            })
            .with_context(|| format!("GET {url}"))
    }

    fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        self.rt
            .block_on(async {
                let resp = self
                    .http
                    .post(&url)
                    .json(&body)
                    .send()
                    .await?
                    .error_for_status()?;
                Ok::<_, anyhow::Error>(resp.json().await.unwrap_or(Value::Null))
            })
            .with_context(|| format!("POST {url}"))
    }

    /// Waits until the control API answers.
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            match self.runners() {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() > timeout => {
                    return Err(e.context("the mock GitHub did not come up"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Every runner (`GET /_mock/runners`).
    pub fn runners(&self) -> anyhow::Result<Vec<Value>> {
        match self.get("/_mock/runners")? {
            Value::Array(v) => Ok(v),
            other => bail!("GET /_mock/runners: expected an array, got {other}"),
        }
    }

    /// The runner whose name starts with `prefix`, if registered.
    pub fn runner_with_prefix(&self, prefix: &str) -> anyhow::Result<Option<Value>> {
        Ok(self
            .runners()?
            .into_iter()
            .find(|r| r["name"].as_str().is_some_and(|n| n.starts_with(prefix))))
    }

    /// Queues a job; returns its id.
    pub fn create_job(
        &self,
        repository: &str,
        labels: &[&str],
        name: &str,
        script: &str,
    ) -> anyhow::Result<u64> {
        let v = self.post(
            "/_mock/jobs",
            json!({"repository": repository, "labels": labels, "name": name, "script": script}),
        )?;
        v["id"]
            .as_u64()
            .with_context(|| format!("POST /_mock/jobs: no id in {v}"))
    }

    /// A job's view (`state`, `result`, `runner_name`, …).
    pub fn job(&self, id: u64) -> anyhow::Result<Value> {
        self.get(&format!("/_mock/jobs/{id}"))
    }

    /// Polls until job `id` is in `state`.
    pub fn wait_job_state(&self, id: u64, state: &str, timeout: Duration) -> anyhow::Result<Value> {
        let start = Instant::now();
        loop {
            let job = self.job(id)?;
            if job["state"] == state {
                return Ok(job);
            }
            if start.elapsed() > timeout {
                bail!("job {id} not {state} within {timeout:?}: {job}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The request log.
    pub fn requests(&self) -> anyhow::Result<Vec<Request>> {
        serde_json::from_value(self.get("/_mock/requests")?).context("parsing /_mock/requests")
    }
}

/// When the first request matching `pred` arrived.
pub fn first_at(requests: &[Request], pred: impl Fn(&Request) -> bool) -> Option<DateTime<Utc>> {
    requests.iter().filter(|r| pred(r)).map(|r| r.at).min()
}
