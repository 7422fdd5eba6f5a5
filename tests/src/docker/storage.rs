//! The ci-storage host container (sshd + rsync) and seeding slots into it.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, CopyTargetOptions, GenericImage, ImageExt};

use super::engine::Engine;
use super::images::{names, Images};
use super::keys::SshKey;
use super::wait::eventually;

/// Account on the storage host that owns the slots.
pub const STORAGE_USER: &str = "user";

/// A running storage host.
pub struct StorageHost {
    /// Container name = DNS name on the test network.
    pub name: String,
    container: ContainerAsync<GenericImage>,
}

impl std::fmt::Debug for StorageHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageHost")
            .field("name", &self.name)
            .finish()
    }
}

/// The container request for a storage host trusting `key` (unit-testable builder).
pub fn request(
    images: &Images,
    name: &str,
    network: &str,
    key: &SshKey,
) -> Result<ContainerRequest<GenericImage>> {
    let (repo, tag) = images.get(names::STORAGE_HOST)?;
    Ok(GenericImage::new(repo, tag)
        .with_network(network)
        .with_container_name(name)
        .with_env_var("CI_STORAGE_PUBLIC_KEY", key.public.clone()))
}

/// `~/ci-storage/<owner>/<repo>`: the runner's default storage dir for a repository.
pub fn storage_dir(repository: &str) -> String {
    format!("~/ci-storage/{repository}")
}

impl StorageHost {
    /// Starts the host and waits until sshd accepts connections (its log line, or health).
    pub async fn start(
        engine: &Engine,
        images: &Images,
        name: &str,
        network: &str,
        key: &SshKey,
    ) -> Result<StorageHost> {
        let container = request(images, name, network, key)?
            .start()
            .await
            .with_context(|| format!("starting the storage host {name}"))?;
        let id = container.id().to_owned();
        eventually(
            &format!("sshd in {name}"),
            Duration::from_secs(30),
            || async {
                let info = engine.docker().inspect_container(&id, None).await?;
                let state = info.state.unwrap_or_default();
                let health = state.health.and_then(|h| h.status).map(|s| s.to_string());
                if health.as_deref() == Some("healthy") {
                    return Ok(Some(()));
                }
                ensure!(
                    state.running == Some(true),
                    "{name} exited: {}",
                    engine.tail(&id, 30).await
                );
                let log = engine.log_text(&id).await;
                Ok(log.contains("Server listening on").then_some(()))
            },
        )
        .await?;
        Ok(StorageHost {
            name: name.to_owned(),
            container,
        })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// `user@<name>`: what runners get as `CI_STORAGE_HOST`.
    pub fn spec(&self) -> String {
        format!("{STORAGE_USER}@{}", self.name)
    }

    /// Slot ids (committed directories, not `.tmp`/`.bak`) in the repository's storage dir.
    pub async fn slots(&self, engine: &Engine, repository: &str) -> Result<Vec<String>> {
        let script = format!(
            "cd {} 2>/dev/null && ls -1 || true",
            storage_dir(repository)
        );
        let out = engine
            .exec_ok(self.id(), Some(STORAGE_USER), &["sh", "-c", &script])
            .await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty() && !l.contains(".tmp.") && !l.contains(".bak.") && !l.starts_with('.')
            })
            .map(str::to_owned)
            .collect())
    }

    /// Contents of `file` in slot `slot` of `repository`.
    pub async fn read_slot_file(
        &self,
        engine: &Engine,
        repository: &str,
        slot: &str,
        file: &str,
    ) -> Result<String> {
        let path = format!("{}/{slot}/{file}", storage_dir(repository));
        engine
            .exec_ok(
                self.id(),
                Some(STORAGE_USER),
                &["sh", "-c", &format!("cat {path}")],
            )
            .await
    }
}

/// Stores `files` (path relative to the work dir, contents) as slot `slot_id` of `repository`,
/// with `ci-storage store` run in a throwaway container of `runner_image` on `network`.
#[allow(clippy::too_many_arguments)]
pub async fn seed_slot(
    engine: &Engine,
    images: &Images,
    runner_image: &str,
    network: &str,
    container_name: &str,
    host: &StorageHost,
    key: &SshKey,
    repository: &str,
    slot_id: &str,
    files: &[(&str, &[u8])],
) -> Result<Duration> {
    let (repo, tag) = images.get(runner_image)?;
    let mut request = GenericImage::new(repo, tag)
        .with_entrypoint("/usr/local/bin/ci-storage")
        .with_wait_for(WaitFor::Nothing)
        .with_network(network)
        .with_container_name(container_name)
        .with_copy_to(
            CopyTargetOptions::new("/root/.ssh/id_ed25519").with_mode(0o600),
            key.private.clone().into_bytes(),
        )
        .with_cmd([
            "store".to_owned(),
            "--slot-id".to_owned(),
            slot_id.to_owned(),
            "--local-dir".to_owned(),
            "/seed".to_owned(),
            "--storage-host".to_owned(),
            host.spec(),
            "--storage-dir".to_owned(),
            storage_dir(repository),
            "--verbose".to_owned(),
        ]);
    for (path, contents) in files {
        request = request.with_copy_to(
            CopyTargetOptions::new(format!("/seed/{path}")).with_mode(0o644),
            contents.to_vec(),
        );
    }
    let start = Instant::now();
    let container = request
        .start()
        .await
        .context("starting the seeding container")?;
    let exited = engine
        .wait_exit(container.id(), Duration::from_secs(60))
        .await?;
    ensure!(
        exited.code == 0,
        "ci-storage store (seeding slot {slot_id}) exited {}:\n{}",
        exited.code,
        engine.tail(container.id(), 40).await
    );
    Ok(start.elapsed())
}
