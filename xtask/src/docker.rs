//! Docker engine calls through bollard: connect, inspect, build (with readable progress),
//! import, pull, tag, run a check command.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

/// Connects to the local engine and negotiates the API version.
pub async fn connect() -> anyhow::Result<Docker> {
    let hint = "is the Docker engine running? (`systemctl start docker` or `dockerd &`; DOCKER_HOST selects another engine)";
    let docker = Docker::connect_with_local_defaults()
        .with_context(|| format!("connecting to Docker: {hint}"))?;
    let docker = docker
        .negotiate_version()
        .await
        .with_context(|| format!("cannot reach the Docker engine: {hint}"))?;
    Ok(docker)
}

/// The image id of `reference`, or None when it is not present locally.
pub async fn image_id(docker: &Docker, reference: &str) -> anyhow::Result<Option<String>> {
    match docker.inspect_image(reference).await {
        Ok(img) => Ok(img.id),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("inspecting image {reference}")),
    }
}

/// Labels of a local image.
pub async fn image_labels(
    docker: &Docker,
    reference: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let img = docker
        .inspect_image(reference)
        .await
        .with_context(|| format!("inspecting image {reference}"))?;
    Ok(img.config.and_then(|c| c.labels).unwrap_or_default())
}

/// Adds the tag `target` (`repo:tag`) to image `source`.
pub async fn tag(docker: &Docker, source: &str, target: &str) -> anyhow::Result<()> {
    let (repo, tag) = crate::tags::split_tag(target);
    let opts = TagImageOptionsBuilder::default()
        .repo(repo)
        .tag(tag)
        .build();
    docker
        .tag_image(source, Some(opts))
        .await
        .with_context(|| format!("tagging {source} as {target}"))
}

/// Removes the tag `reference` (the image stays while other tags point at it).
pub async fn untag(docker: &Docker, reference: &str) -> anyhow::Result<()> {
    let opts = RemoveImageOptionsBuilder::default().noprune(true).build();
    docker
        .remove_image(reference, Some(opts), None)
        .await
        .with_context(|| format!("removing {reference}"))?;
    Ok(())
}

/// What a build needs besides the context.
pub struct BuildRequest<'a> {
    /// Tag of the result.
    pub tag: &'a str,
    /// Build args (`PARENT`, `REVISION`, `CREATED`).
    pub args: HashMap<String, String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// Print every output line, not just the steps.
    pub verbose: bool,
}

/// Builds a context tar with the classic builder, printing one line per Dockerfile step with its
/// duration; on failure, prints the failing step's output. Returns the image id.
pub async fn build(
    docker: &Docker,
    context: Vec<u8>,
    req: BuildRequest<'_>,
) -> anyhow::Result<String> {
    let opts = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(req.tag)
        .rm(true)
        .forcerm(true)
        .nocache(req.no_cache)
        .buildargs(&req.args)
        .build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(context.into())));
    let mut progress = Progress::default();
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => {
                progress.dump_failed();
                bail!("building {}: {e}", req.tag);
            }
        };
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            progress.dump_failed();
            bail!("building {}: {detail}", req.tag);
        }
        if let Some(text) = info.stream {
            progress.feed(&text, req.verbose);
        }
    }
    progress.finish();
    // The image id is read back by tag rather than from the stream's `aux` record, whose type
    // depends on bollard's `buildkit` feature (which testcontainers turns on workspace-wide).
    image_id(docker, req.tag)
        .await?
        .with_context(|| format!("build of {} produced no image", req.tag))
}

/// Step lines of the classic builder's output, with timings.
#[derive(Default)]
struct Progress {
    step: Option<(String, Instant)>,
    output: Vec<String>,
    partial: String,
}

impl Progress {
    fn feed(&mut self, text: &str, verbose: bool) {
        self.partial.push_str(text);
        while let Some(nl) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=nl).collect();
            let line = line.trim_end().to_string();
            if line.starts_with("Step ") {
                self.finish();
                let mut line = line.split_whitespace().collect::<Vec<_>>().join(" ");
                if line.chars().count() > 150 {
                    line = line.chars().take(147).chain("...".chars()).collect();
                }
                self.step = Some((line, Instant::now()));
                self.output.clear();
            } else if !line.is_empty() && !is_noise(&line) {
                if verbose {
                    eprintln!("      | {line}");
                }
                self.output.push(line);
            }
        }
    }

    fn finish(&mut self) {
        if let Some((step, started)) = self.step.take() {
            eprintln!("    {step}  ({:.1}s)", started.elapsed().as_secs_f64());
        }
    }

    fn dump_failed(&mut self) {
        if let Some((step, started)) = self.step.take() {
            eprintln!(
                "    {step}  FAILED after {:.1}s; its output:",
                started.elapsed().as_secs_f64()
            );
        }
        let rest = self.partial.trim();
        for line in self
            .output
            .iter()
            .map(String::as_str)
            .chain((!rest.is_empty()).then_some(rest))
        {
            eprintln!("      | {line}");
        }
    }
}

fn is_noise(line: &str) -> bool {
    line.starts_with(" ---> ")
        || line.starts_with("Removing intermediate")
        || line.starts_with("Successfully")
}

/// Imports a root file system tar as `reference` (like `docker import`). Returns the image id.
pub async fn import(docker: &Docker, rootfs: Vec<u8>, reference: &str) -> anyhow::Result<String> {
    let (repo, tag) = crate::tags::split_tag(reference);
    let opts = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .build();
    let mut stream = docker.create_image(Some(opts), Some(bollard::body_full(rootfs.into())), None);
    while let Some(item) = stream.next().await {
        item.with_context(|| format!("importing {reference}"))?;
    }
    image_id(docker, reference)
        .await?
        .with_context(|| format!("import of {reference} produced no image"))
}

/// Pulls `reference`, giving up after `timeout`. Ok(false) when it could not be pulled.
pub async fn pull(docker: &Docker, reference: &str, timeout: Duration) -> anyhow::Result<bool> {
    let (repo, tag) = crate::tags::split_tag(reference);
    let opts = CreateImageOptionsBuilder::default()
        .from_image(repo)
        .tag(tag)
        .build();
    let pulling = async {
        let mut stream = docker.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            item?;
        }
        Ok::<_, bollard::errors::Error>(())
    };
    match tokio::time::timeout(timeout, pulling).await {
        Ok(Ok(())) => Ok(true),
        Ok(Err(e)) => {
            eprintln!("    pull of {reference} failed: {e}");
            Ok(false)
        }
        Err(_) => {
            eprintln!(
                "    pull of {reference} timed out after {}s",
                timeout.as_secs()
            );
            Ok(false)
        }
    }
}

/// Runs `argv` in a throwaway container of `image` (`--entrypoint argv[0]`); returns the exit
/// code and the combined output.
pub async fn run_check(
    docker: &Docker,
    image: &str,
    argv: &[String],
) -> anyhow::Result<(i64, String)> {
    let Some((entry, args)) = argv.split_first() else {
        bail!("empty check command")
    };
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec![entry.clone()]),
        cmd: Some(args.to_vec()),
        ..Default::default()
    };
    let created = docker
        .create_container(None, body)
        .await
        .with_context(|| format!("creating a container of {image}"))?;
    let id = created.id;
    let result = async {
        docker
            .start_container(&id, None)
            .await
            .context("starting the check container")?;
        let mut code = 0;
        let mut wait =
            docker.wait_container(&id, Some(WaitContainerOptionsBuilder::default().build()));
        while let Some(w) = wait.next().await {
            match w {
                Ok(w) => code = w.status_code,
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
                Err(e) => return Err(e).context("waiting for the check container"),
            }
        }
        let mut output = String::new();
        let mut logs = docker.logs(
            &id,
            Some(
                LogsOptionsBuilder::default()
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        );
        while let Some(chunk) = logs.next().await {
            output.push_str(&chunk.context("reading the check's output")?.to_string());
        }
        Ok((code, output))
    }
    .await;
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    let _ = docker.remove_container(&id, Some(rm)).await;
    result
}
