//! The mock GitHub as a container on the test's network, driven through its control API on a
//! mapped host port.

use std::time::Duration;

use anyhow::{Context, Result};
use fixtures::mock_github::{MockClient, RequestRecord, RunnerView};
use testcontainers::core::{ContainerPort, IntoContainerPort};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};

use super::images::{names, Images};
use super::wait::eventually;

/// Port the mock listens on inside its container.
pub const MOCK_PORT: u16 = 8080;

/// A running mock GitHub container.
pub struct Mock {
    /// Container name = DNS name on the test network.
    pub name: String,
    /// `http://<name>:8080`, what runners use as `GH_URL`.
    pub url: String,
    /// Control API client on the mapped host port.
    pub client: MockClient,
    container: ContainerAsync<GenericImage>,
}

impl std::fmt::Debug for Mock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mock")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish()
    }
}

/// The container request for a mock named `name` on `network` (unit-testable builder).
pub fn request(
    images: &Images,
    name: &str,
    network: &str,
) -> Result<ContainerRequest<GenericImage>> {
    let (repo, tag) = images.get(names::MOCK_GITHUB)?;
    Ok(GenericImage::new(repo, tag)
        .with_exposed_port(MOCK_PORT.tcp())
        .with_network(network)
        .with_container_name(name)
        .with_env_var("RUST_LOG", "info"))
}

impl Mock {
    /// Starts the mock and waits until its control API answers.
    pub async fn start(images: &Images, name: &str, network: &str) -> Result<Mock> {
        let container = request(images, name, network)?
            .start()
            .await
            .with_context(|| format!("starting the mock GitHub container {name}"))?;
        let port = container
            .get_host_port_ipv4(ContainerPort::Tcp(MOCK_PORT))
            .await?;
        let client = MockClient::new(format!("http://127.0.0.1:{port}"));
        eventually(
            "the mock's control API",
            Duration::from_secs(30),
            || async { Ok(client.runners().await.ok().map(|_| ())) },
        )
        .await?;
        Ok(Mock {
            name: name.to_owned(),
            url: format!("http://{name}:{MOCK_PORT}"),
            client,
            container,
        })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// Runners registered for `repository` (`owner/repo`, case-insensitive).
    pub async fn runners_of(&self, repository: &str) -> Result<Vec<RunnerView>> {
        Ok(self
            .client
            .runners()
            .await?
            .into_iter()
            .filter(|r| r.repository.eq_ignore_ascii_case(repository))
            .collect())
    }

    /// Requests whose path contains `needle`.
    pub async fn requests_matching(&self, needle: &str) -> Result<Vec<RequestRecord>> {
        Ok(self
            .client
            .requests()
            .await?
            .into_iter()
            .filter(|r| r.path.contains(needle))
            .collect())
    }

    /// Requests that registered or configured a runner (registration token or agent creation).
    pub async fn registration_requests(&self) -> Result<Vec<RequestRecord>> {
        Ok(self
            .client
            .requests()
            .await?
            .into_iter()
            .filter(|r| {
                r.path.contains("registration-token")
                    || r.path.contains("runner-registration")
                    || (r.method == "POST" && r.path.ends_with("/_runner/agents"))
            })
            .collect())
    }
}
