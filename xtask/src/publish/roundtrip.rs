//! The publish round trip, for real: a local registry (Debian's `docker-registry`) with htpasswd
//! auth; `cargo xtask publish` to it; tags and manifest digests read back from the registry
//! API; the image pulled back. Called by `cargo xtask e2e`, or alone:
//! `cargo test -p xtask -- --ignored publish_roundtrip`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use xshell::{cmd, Shell};

use crate::tags;

/// Manifest of the round-trip image: a real (non-test) image small enough to build here.
pub const MANIFEST: &str = "xtask/tests/roundtrip.toml";
const IMAGE: &str = "roundtrip";
const USER: &str = "publisher";

/// A `docker-registry` we started; stopped (by its pid) when dropped.
struct Registry {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the whole round trip; fails on the first wrong answer.
pub fn registry_roundtrip(sh: &Shell) -> anyhow::Result<()> {
    let started = Instant::now();
    let password = format!("pw-{}-{}", std::process::id(), started.elapsed().as_nanos());
    let registry = start_registry(sh, &password)?;
    let prefix = format!("127.0.0.1:{}/warm-runners", registry.port);
    eprintln!(
        "==> roundtrip: registry at 127.0.0.1:{} (htpasswd auth)",
        registry.port
    );

    let publish = |pass: &str, extra: &[&str]| {
        cmd!(sh, "cargo xtask publish {IMAGE} --manifest {MANIFEST} --registry {prefix} --tag roundtrip {extra...}")
            .env("REGISTRY_USERNAME", USER)
            .env("REGISTRY_PASSWORD", pass)
            .secret()
            .run()
    };
    ensure!(
        publish("wrong-password", &[]).is_err(),
        "a push with a wrong password succeeded"
    );
    let refused = cmd!(
        sh,
        "cargo xtask publish ci-runner --manifest images/test.toml --registry {prefix} --dry-run"
    )
    .ignore_stderr()
    .run();
    ensure!(refused.is_err(), "publishing a test image was not refused");
    publish(&password, &["--latest"]).context("publishing to the local registry")?;

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(check_registry(&registry, &prefix, &password))?;
    eprintln!(
        "==> roundtrip: ok in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn start_registry(sh: &Shell, password: &str) -> anyhow::Result<Registry> {
    let dir = crate::workspace_root()
        .join("target/xtask")
        .join(format!("registry-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let htpasswd = cmd!(sh, "htpasswd -Bbn {USER} {password}")
        .quiet()
        .secret()
        .read()
        .context("htpasswd (apt-get install -y apache2-utils)")?;
    std::fs::write(dir.join("htpasswd"), htpasswd + "\n")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: roundtrip\n    path: {htpasswd}\n",
        data = dir.join("data").display(),
        htpasswd = dir.join("htpasswd").display(),
    );
    std::fs::write(dir.join("config.yml"), config)?;
    let log = std::fs::File::create(dir.join("registry.log"))?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("starting docker-registry (apt-get install -y docker-registry)")?;
    let registry = Registry { child, port, dir };
    wait_ready(port, &registry.dir)?;
    Ok(registry)
}

/// The registry answers 401 on `/v2/` without credentials once it is up.
fn wait_ready(port: u16, dir: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() {
                ensure!(
                    head.ends_with(b"401"),
                    "registry /v2/ without credentials: {}",
                    String::from_utf8_lossy(&head)
                );
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
    bail!("docker-registry did not start on port {port}:\n{log}")
}

async fn check_registry(registry: &Registry, prefix: &str, password: &str) -> anyhow::Result<()> {
    let api = format!("http://127.0.0.1:{}/v2/warm-runners/{IMAGE}", registry.port);
    let http = reqwest::Client::new();
    let list: serde_json::Value = http
        .get(format!("{api}/tags/list"))
        .basic_auth(USER, Some(password))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let found: Vec<&str> = list["tags"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_default();
    for want in [env!("CARGO_PKG_VERSION"), "latest", "roundtrip"] {
        ensure!(
            found.contains(&want),
            "tag {want} missing in the registry: {found:?}"
        );
    }
    // the git short sha (HEAD may move while this runs: other commits land)
    let is_sha = |t: &&str| t.len() == 7 && t.chars().all(|c| c.is_ascii_hexdigit());
    ensure!(
        found.iter().any(is_sha),
        "no git short sha tag in the registry: {found:?}"
    );
    eprintln!("    registry tags: {found:?}");

    let docker = crate::docker::connect().await?;
    let local = tags::read_images_json(&tags::images_json_path(&crate::workspace_root()))?
        .get("roundtrip")
        .and_then(|s| s.get(IMAGE))
        .cloned()
        .context("target/images.json has no roundtrip image")?;
    let inspect = docker.inspect_image(&local.tag).await?;
    let repo_digest = inspect
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.starts_with(prefix))
        .context("no repo digest after push")?;
    for tag in &found {
        let resp = http
            .head(format!("{api}/manifests/{tag}"))
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .basic_auth(USER, Some(password))
            .send()
            .await?
            .error_for_status()?;
        let digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        ensure!(
            repo_digest.ends_with(&digest) && !digest.is_empty(),
            "tag {tag}: registry digest {digest}, local {repo_digest}"
        );
    }
    eprintln!(
        "    manifest digest of every tag: {}",
        repo_digest.rsplit('@').next().unwrap_or("")
    );

    // Pull back: drop every local tag of the image, pull it from the registry, compare ids.
    let pulled = format!("{prefix}/{IMAGE}:roundtrip");
    for t in inspect.repo_tags.unwrap_or_default() {
        crate::docker::untag(&docker, &t).await?;
    }
    ensure!(
        crate::docker::image_id(&docker, &local.tag)
            .await?
            .is_none(),
        "image still present before the pull"
    );
    let creds = bollard::auth::DockerCredentials {
        username: Some(USER.into()),
        password: Some(password.into()),
        serveraddress: Some(format!("127.0.0.1:{}", registry.port)),
        ..Default::default()
    };
    let (repo, tag) = tags::split_tag(&pulled);
    let opts = CreateImageOptionsBuilder::default()
        .from_image(repo)
        .tag(tag)
        .build();
    let mut stream = docker.create_image(Some(opts), None, Some(creds));
    while let Some(item) = stream.next().await {
        item.with_context(|| format!("pulling {pulled}"))?;
    }
    let id = crate::docker::image_id(&docker, &pulled)
        .await?
        .context("pulled image missing")?;
    ensure!(
        id == local.id,
        "pulled image id {id} differs from the pushed {}",
        local.id
    );
    crate::docker::tag(&docker, &pulled, &local.tag).await?;
    crate::docker::tag(&docker, &pulled, &local.alias).await?;
    crate::docker::untag(&docker, &pulled).await?;
    eprintln!("    pulled {pulled} back: same image id {id}");
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Needs Docker, `docker-registry` and `htpasswd`.
    #[test]
    #[ignore]
    fn publish_roundtrip() {
        let sh = xshell::Shell::new().unwrap();
        sh.change_dir(crate::workspace_root());
        super::registry_roundtrip(&sh).unwrap();
    }
}
