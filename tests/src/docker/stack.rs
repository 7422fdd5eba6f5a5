//! [`Stack`]: one test's world — a private network, a mock GitHub, keys, and whatever storage
//! hosts and runners the test starts on it.

use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::distributions::Alphanumeric;
use rand::Rng;
use testcontainers::runners::AsyncRunner;

use super::engine::Engine;
use super::images::{names, Images};
use super::keys::SshKey;
use super::mock::Mock;
use super::runner::{Runner, RunnerSpec};
use super::storage::{self, StorageHost};
use super::timing::Timings;

/// Labels every test runner gets unless a test says otherwise.
pub const DEFAULT_LABELS: &str = "e2e,docker";

/// One test's containers and network; everything is removed on drop (unless `E2E_KEEP=1`).
pub struct Stack {
    /// Scenario name (used in container names and timings).
    pub scenario: String,
    /// Random suffix shared by this stack's names.
    pub suffix: String,
    /// The private network.
    pub network: String,
    /// Image tags.
    pub images: Images,
    /// The Docker engine.
    pub engine: Engine,
    /// The mock GitHub.
    pub mock: Mock,
    /// The storage host's key pair (runners get the private half).
    pub ssh_key: SshKey,
    /// Timings of this scenario.
    pub timings: Timings,
    counter: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

static KEEP: Once = Once::new();

/// `E2E_KEEP=1` → testcontainers' `keep` command (containers and networks are left behind).
fn honour_keep() {
    KEEP.call_once(|| {
        if std::env::var("E2E_KEEP").is_ok_and(|v| v == "1" || v == "true")
            && std::env::var_os("TESTCONTAINERS_COMMAND").is_none()
        {
            // Set before the first testcontainers client reads its configuration.
            std::env::set_var("TESTCONTAINERS_COMMAND", "keep");
        }
    });
}

/// A random lower-case suffix for names.
pub fn random_suffix() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(6)
        .map(|c| (c as char).to_ascii_lowercase())
        .collect()
}

impl Stack {
    /// Creates the network (through the first container on it) and starts the mock GitHub.
    pub async fn new(scenario: &str) -> Result<Stack> {
        honour_keep();
        let scenario = scenario.replace('_', "-");
        let suffix = random_suffix();
        let network = format!("e2e-{scenario}-{suffix}");
        let images = Images::load()?;
        let engine = Engine::connect().await?;
        let ssh_key = SshKey::generate(&format!("e2e-{scenario}"))?;
        let mock_name = format!("e2e-{scenario}-mock-{suffix}");
        let mock = Mock::start(&images, &mock_name, &network).await?;
        let timings = Timings::new(&scenario);
        eprintln!(
            "[{scenario}] network {network}, mock {} on {}",
            mock.name,
            mock.client.base_url()
        );
        Ok(Stack {
            scenario,
            suffix,
            network,
            images,
            engine,
            mock,
            ssh_key,
            timings,
            counter: Default::default(),
        })
    }

    /// A unique container name for `role` in this stack.
    pub fn name(&self, role: &str) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("e2e-{}-{role}{n}-{}", self.scenario, self.suffix)
    }

    /// `e2e/<scenario>`: a repository no other test uses.
    pub fn repository(&self) -> String {
        format!("e2e/{}", self.scenario)
    }

    /// `e2e-<scenario>`: the runner name prefix of this stack's runners.
    pub fn name_prefix(&self) -> String {
        format!("e2e-{}", self.scenario)
    }

    /// A runner spec for this stack's repository, against this stack's mock.
    pub fn runner_spec(&self) -> RunnerSpec {
        RunnerSpec::new(
            &self.repository(),
            &self.mock.url,
            DEFAULT_LABELS,
            &self.name_prefix(),
        )
    }

    /// Starts a storage host trusting this stack's key.
    pub async fn storage_host(&self) -> Result<StorageHost> {
        let start = Instant::now();
        let host = StorageHost::start(
            &self.engine,
            &self.images,
            &self.name("storage"),
            &self.network,
            &self.ssh_key,
        )
        .await?;
        self.timings.record("storage_host_ready", start.elapsed());
        Ok(host)
    }

    /// Stores `files` as slot `slot_id` of this stack's repository on `host`.
    pub async fn seed_slot(
        &self,
        host: &StorageHost,
        slot_id: &str,
        files: &[(&str, &[u8])],
    ) -> Result<()> {
        let took = storage::seed_slot(
            &self.engine,
            &self.images,
            names::RUNNER,
            &self.network,
            &self.name("seed"),
            host,
            &self.ssh_key,
            &self.repository(),
            slot_id,
            files,
        )
        .await?;
        self.timings.record("seed_slot", took);
        Ok(())
    }

    /// Starts a runner container (it is not waited for).
    pub async fn start_runner(&self, spec: RunnerSpec) -> Result<Runner> {
        let name = self.name("runner");
        let request = spec.request(&self.images, &name, &self.network)?;
        let started = Instant::now();
        let container = request
            .start()
            .await
            .with_context(|| format!("starting runner container {name}"))?;
        Ok(Runner::new(
            name,
            spec,
            started,
            self.engine.clone(),
            container,
        ))
    }

    /// Starts a runner and waits until it listens; records `boot_to_listening`.
    pub async fn boot_runner(&self, spec: RunnerSpec) -> Result<Runner> {
        let runner = self.start_runner(spec).await?;
        let (_, took) = runner.wait_listening(Duration::from_secs(90)).await?;
        self.timings.record("boot_to_listening", took);
        Ok(runner)
    }
}
