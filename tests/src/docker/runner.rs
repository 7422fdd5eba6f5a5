//! Runner containers: the environment of ARCHITECTURE.md §2, and what tests do with them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testcontainers::core::WaitFor;
use testcontainers::{ContainerAsync, ContainerRequest, CopyTargetOptions, GenericImage, ImageExt};

use super::engine::{Engine, Exec, Exited, LogLine};
use super::images::{names, Images};

/// What the fake actions runner prints once it takes jobs (as the real one does).
pub const LISTENING: &str = "Listening for Jobs";

/// How a runner container is configured.
#[derive(Debug, Clone)]
pub struct RunnerSpec {
    /// Logical image name (key of `images.json`).
    pub image: String,
    /// `owner/repo`.
    pub repository: String,
    /// Environment (`None` removes a default).
    pub env: BTreeMap<String, Option<String>>,
    /// Files under `/run/secrets/` (name, contents).
    pub secrets: Vec<(String, String)>,
}

impl RunnerSpec {
    /// A runner of the test image for `repository`, talking to `gh_url` with the test PAT.
    pub fn new(repository: &str, gh_url: &str, labels: &str, name_prefix: &str) -> RunnerSpec {
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("GH_REPOSITORY", repository),
            ("GH_LABELS", labels),
            ("GH_URL", gh_url),
            ("GH_TOKEN", super::TEST_TOKEN),
            ("RUNNER_NAME_PREFIX", name_prefix),
            ("SHUTDOWN_RETRY_INTERVAL_SEC", "2"),
            ("RUST_LOG", "info"),
        ] {
            env.insert(k.to_owned(), Some(v.to_owned()));
        }
        RunnerSpec {
            image: names::RUNNER.to_owned(),
            repository: repository.to_owned(),
            env,
            secrets: Vec::new(),
        }
    }

    /// Sets (or overrides) a variable.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> RunnerSpec {
        self.env.insert(key.to_owned(), Some(value.into()));
        self
    }

    /// Removes a variable.
    pub fn without(mut self, key: &str) -> RunnerSpec {
        self.env.insert(key.to_owned(), None);
        self
    }

    /// Adds `/run/secrets/<name>`.
    pub fn secret(mut self, name: &str, contents: impl Into<String>) -> RunnerSpec {
        self.secrets.push((name.to_owned(), contents.into()));
        self
    }

    /// Uses another image (e.g. an add-on image).
    pub fn image(mut self, image: &str) -> RunnerSpec {
        self.image = image.to_owned();
        self
    }

    /// Pre-warms from `host_spec` (`user@host`) with `private_key`.
    pub fn storage(self, host_spec: &str, private_key: &str) -> RunnerSpec {
        self.env("CI_STORAGE_HOST", host_spec)
            .env("CI_STORAGE_HOST_PRIVATE_KEY", private_key)
    }

    /// The value of a variable, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key).and_then(|v| v.as_deref())
    }

    /// The custom labels.
    pub fn labels(&self) -> Vec<String> {
        self.get("GH_LABELS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The repository name part (`repo` of `owner/repo`).
    pub fn repo_name(&self) -> &str {
        self.repository.rsplit('/').next().unwrap_or_default()
    }

    /// The pre-warmed checkout directory: `<work>/<repo>/<repo>`.
    pub fn checkout_dir(&self) -> String {
        let work = self.get("RUNNER_WORK_DIR").unwrap_or("/home/user/_work");
        format!("{work}/{0}/{0}", self.repo_name())
    }

    /// The container request (unit-testable).
    pub fn request(
        &self,
        images: &Images,
        name: &str,
        network: &str,
    ) -> Result<ContainerRequest<GenericImage>> {
        let (repo, tag) = images.get(&self.image)?;
        let mut request = GenericImage::new(repo, tag)
            .with_wait_for(WaitFor::Nothing)
            .with_network(network)
            .with_container_name(name);
        for (k, v) in &self.env {
            if let Some(v) = v {
                request = request.with_env_var(k.clone(), v.clone());
            }
        }
        for (secret, contents) in &self.secrets {
            request = request.with_copy_to(
                CopyTargetOptions::new(format!("/run/secrets/{secret}")).with_mode(0o600),
                contents.clone().into_bytes(),
            );
        }
        Ok(request)
    }
}

/// A started runner container.
pub struct Runner {
    /// Container name = DNS name on the test network.
    pub name: String,
    /// How it was configured.
    pub spec: RunnerSpec,
    /// When `docker start` was asked for.
    pub started: Instant,
    engine: Engine,
    container: ContainerAsync<GenericImage>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("name", &self.name).finish()
    }
}

impl Runner {
    pub(crate) fn new(
        name: String,
        spec: RunnerSpec,
        started: Instant,
        engine: Engine,
        container: ContainerAsync<GenericImage>,
    ) -> Runner {
        Runner {
            name,
            spec,
            started,
            engine,
            container,
        }
    }

    /// The container id.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// Waits until the actions runner listens for jobs; returns the log line and the time from
    /// container start.
    pub async fn wait_listening(&self, timeout: Duration) -> Result<(LogLine, Duration)> {
        let line = self
            .engine
            .wait_for_log(self.id(), "`Listening for Jobs`", timeout, |l| {
                l.contains(LISTENING)
            })
            .await?;
        Ok((line, self.started.elapsed()))
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> Result<LogLine> {
        self.engine
            .wait_for_log(self.id(), &format!("{needle:?}"), timeout, |l| {
                l.contains(needle)
            })
            .await
    }

    /// Every log line so far.
    pub async fn logs(&self) -> Result<Vec<LogLine>> {
        self.engine.logs(self.id()).await
    }

    /// The log as text.
    pub async fn log_text(&self) -> String {
        self.engine.log_text(self.id()).await
    }

    /// `docker stop -t <grace>`; returns the exit code and stop→exit time.
    pub async fn stop(&self, grace_sec: i32) -> Result<Exited> {
        self.engine.stop(self.id(), grace_sec).await
    }

    /// `docker kill -s <signal>`, then waits (at most `timeout`) for the exit.
    pub async fn signal_and_wait(&self, signal: &str, timeout: Duration) -> Result<Exited> {
        let start = Instant::now();
        self.engine.kill(self.id(), signal).await?;
        let exited = self.engine.wait_exit(self.id(), timeout).await?;
        Ok(Exited {
            code: exited.code,
            after: start.elapsed(),
        })
    }

    /// Waits for the container to exit on its own.
    pub async fn wait_exit(&self, timeout: Duration) -> Result<Exited> {
        self.engine.wait_exit(self.id(), timeout).await
    }

    /// `docker exec [-u user]`.
    pub async fn exec(&self, user: Option<&str>, cmd: &[&str]) -> Result<Exec> {
        self.engine.exec(self.id(), user, cmd).await
    }

    /// `docker exec` that must succeed; returns stdout.
    pub async fn exec_ok(&self, user: Option<&str>, cmd: &[&str]) -> Result<String> {
        self.engine.exec_ok(self.id(), user, cmd).await
    }

    /// `sh -c <script>` as root, must succeed.
    pub async fn sh(&self, script: &str) -> Result<String> {
        self.exec_ok(None, &["sh", "-c", script])
            .await
            .with_context(|| format!("in {}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> Images {
        Images::from_map(
            [(
                names::RUNNER.to_owned(),
                "warm-runners-test/ci-runner:abc".to_owned(),
            )]
            .into(),
        )
    }

    #[test]
    fn request_carries_the_documented_environment() {
        let spec = RunnerSpec::new("o/widgets", "http://mock:8080", "a,b", "e2e-x")
            .without("GH_TOKEN")
            .env("GH_APP_ID", "1")
            .secret("GH_APP_PRIVATE_KEY", "pem");
        let request = spec.request(&images(), "c1", "net1").unwrap();
        assert_eq!(request.descriptor(), "warm-runners-test/ci-runner:abc");
        assert_eq!(request.network().as_deref(), Some("net1"));
        assert_eq!(request.container_name().as_deref(), Some("c1"));
        let env: BTreeMap<String, String> = request
            .env_vars()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(env["GH_REPOSITORY"], "o/widgets");
        assert_eq!(env["GH_URL"], "http://mock:8080");
        assert_eq!(env["GH_LABELS"], "a,b");
        assert_eq!(env["RUNNER_NAME_PREFIX"], "e2e-x");
        assert_eq!(env["GH_APP_ID"], "1");
        assert!(!env.contains_key("GH_TOKEN"));
        assert_eq!(request.copy_to_sources().count(), 1);
        assert_eq!(spec.labels(), ["a", "b"]);
        assert_eq!(spec.checkout_dir(), "/home/user/_work/widgets/widgets");
    }

    #[test]
    fn unknown_image_names_the_known_ones() {
        let spec = RunnerSpec::new("o/r", "http://m", "a", "p").image("nope");
        let err = spec.request(&images(), "c", "n").unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains(names::RUNNER), "{err}");
    }
}
