//! `labctl image build` against the machine's real Docker engine: the image is built from
//! nothing (`FROM scratch`, no registry), tagged by its content, reused when nothing changed,
//! rebuilt with `--force`, and holds only what our Dockerfile puts there, with a labctl that runs
//! as it is (static).
//!
//! Needs a Docker engine (the test fails, saying so, when none answers). The first run also
//! builds labctl as a static executable, which takes minutes on a cold target directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use bollard::models::{ContainerCreateBody, ImageInspect};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

/// How long one `labctl image build` may take: a cold static cargo build (6–8 minutes on two
/// cores), possibly after waiting for another build of the same target directory.
const BUILD_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// Runs `labctl image build extra…` with the executable `labctl`; insists on success, a silent
/// stderr (not a terminal, so no spinner) and one line `labctl:<16 lowercase hex digits>` on
/// stdout, which it returns.
fn image_build(mut labctl: Command, extra: &[&str]) -> String {
    let output = labctl
        .args(["image", "build"])
        .args(extra)
        .timeout(BUILD_DEADLINE)
        .output()
        .expect("labctl image build runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "labctl image build {extra:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    assert_eq!(stderr, "", "stderr stays silent off a terminal");
    let tag = stdout
        .strip_suffix('\n')
        .filter(|line| !line.contains('\n'))
        .unwrap_or_else(|| panic!("one line on stdout: {stdout:?}"));
    let hex = tag
        .strip_prefix("labctl:")
        .unwrap_or_else(|| panic!("the tag is labctl:<hex>: {tag:?}"));
    assert!(
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "16 lowercase hex digits: {tag:?}"
    );
    tag.to_string()
}

/// The binary under test, built by cargo (dynamically linked: it builds the static one).
fn cargo_labctl() -> Command {
    Command::cargo_bin("labctl").expect("the labctl binary")
}

/// Copies the file `path` out of the image `image` into the folder `into` (through a container
/// that is created, never started, and removed); returns the copy's path.
async fn copy_out(docker: &Docker, image: &str, path: &str, into: &Path) -> PathBuf {
    let container = docker
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(image.to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("a container of {image}: {e}"))
        .id;
    let mut archive = Vec::new();
    let mut stream = docker.download_from_container(
        &container,
        Some(
            DownloadFromContainerOptionsBuilder::new()
                .path(path)
                .build(),
        ),
    );
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("copying {path}: {e}")));
    }
    docker
        .remove_container(
            &container,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap_or_else(|e| panic!("removing the container {container}: {e}"));
    tar::Archive::new(archive.as_slice())
        .unpack(into)
        .unwrap_or_else(|e| panic!("unpacking {path}: {e}"));
    let name = Path::new(path).file_name().expect("a file name");
    into.join(name)
}

/// What the engine says about the image `name`.
async fn inspect(docker: &Docker, name: &str) -> ImageInspect {
    docker
        .inspect_image(name)
        .await
        .unwrap_or_else(|e| panic!("the engine has no image {name}: {e}"))
}

/// A client of the local engine, speaking its API version.
async fn engine() -> Docker {
    let docker = Docker::connect_with_defaults().expect("a Docker client");
    docker.negotiate_version().await.expect(
        "a Docker engine answers at $DOCKER_HOST or /var/run/docker.sock (this test needs one: \
         start it with `sudo systemctl start docker`)",
    )
}

/// What the classic builder records for each instruction of our Dockerfile after `FROM
/// scratch`, newest first, or `None` for a line that is not ours.
fn our_instruction(created_by: &str) -> Option<&'static str> {
    let step = created_by.strip_prefix("/bin/sh -c #(nop)")?.trim();
    let copied = |what: &str, to: &str| {
        step.strip_prefix(&format!("COPY {what}:"))
            .and_then(|rest| rest.split_once(" in "))
            .is_some_and(|(hash, dest)| {
                hash.bytes().all(|b| b.is_ascii_hexdigit()) && dest.trim() == to
            })
    };
    if step == format!("LABEL labctl.image={}", env!("CARGO_PKG_VERSION")) {
        Some("LABEL")
    } else if copied("file", "/labctl") {
        Some("COPY labctl")
    } else if copied("dir", "/templates") {
        Some("COPY templates")
    } else if step == r#"ENTRYPOINT ["/labctl"]"# {
        Some("ENTRYPOINT")
    } else {
        None
    }
}

#[test]
fn builds_an_image_from_scratch_and_reuses_it() {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let docker = tokio.block_on(engine());

    // Built (or found) by the cargo-built labctl, which builds labctl statically first.
    let tag = image_build(cargo_labctl(), &[]);
    let first = tokio.block_on(inspect(&docker, &tag));

    // Only our Dockerfile made it: no base image's layers or history.
    let config = first.config.clone().expect("an image config");
    assert_eq!(config.entrypoint, Some(vec!["/labctl".to_string()]));
    assert_eq!(
        config
            .labels
            .as_ref()
            .and_then(|labels| labels.get("labctl.image"))
            .map(String::as_str),
        Some(env!("CARGO_PKG_VERSION")),
        "labels: {:?}",
        config.labels
    );
    assert_eq!(first.os.as_deref(), Some("linux"));
    let layers = first.root_fs.as_ref().and_then(|r| r.layers.clone());
    assert_eq!(
        layers.map(|l| l.len()),
        Some(2),
        "exactly the two COPY layers (labctl, templates): {:?}",
        first.root_fs
    );
    let history = tokio
        .block_on(docker.image_history(&tag))
        .expect("the image's history");
    let steps: Vec<Option<&str>> = history
        .iter()
        .map(|entry| our_instruction(&entry.created_by))
        .collect();
    assert_eq!(
        steps,
        [
            Some("ENTRYPOINT"),
            Some("COPY templates"),
            Some("COPY labctl"),
            Some("LABEL")
        ],
        "the history holds our instructions and nothing else (newest first): {:#?}",
        history
            .iter()
            .map(|entry| &entry.created_by)
            .collect::<Vec<_>>()
    );

    // The image's own labctl is static, so it goes into the image as it is: run from a copy, it
    // finds the same content, hence the same tag and the very same image (the cargo-built labctl
    // would do the same, but it rebuilds the static executable from the workspace, which may
    // change under a test running beside other work).
    let folder = tempfile::tempdir().unwrap();
    let inside = tokio.block_on(copy_out(&docker, &tag, "/labctl", folder.path()));
    assert_eq!(
        image_build(Command::new(&inside), &[]),
        tag,
        "the tag follows the content"
    );
    let again = tokio.block_on(inspect(&docker, &tag));
    assert_eq!(
        (&again.id, &again.created),
        (&first.id, &first.created),
        "an unchanged image is reused, not rebuilt"
    );
    assert_eq!(
        tokio.block_on(inspect(&docker, "labctl:latest")).id,
        first.id,
        "labctl:latest is {tag}"
    );

    // --force builds it again under the same tag.
    assert_eq!(
        image_build(Command::new(&inside), &["--force"]),
        tag,
        "--force keeps the tag"
    );
    let forced = tokio.block_on(inspect(&docker, &tag));
    assert_ne!(forced.id, first.id, "--force builds a new image");
    assert_eq!(
        tokio.block_on(inspect(&docker, "labctl:latest")).id,
        forced.id,
        "labctl:latest follows the rebuilt image"
    );
}
