//! `labctl image build` against the machine's real Docker engine: the image is built from
//! nothing (`FROM scratch`, no registry) out of the running labctl (no second compile), its
//! libraries and busybox, tagged by its content, reused when nothing changed, rebuilt with
//! `--force`, and holds only what our Dockerfile puts there; its labctl runs in a container.
//!
//! Needs a Docker engine (the test fails, saying so, when none answers).

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use bollard::models::{ContainerCreateBody, ImageInspect};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StartContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

/// How long one `labctl image build` may take: stripping and hashing the executable and the
/// engine's build take seconds; this is a backstop, with room for another labctl holding the
/// build lock.
const BUILD_DEADLINE: Duration = Duration::from_secs(10 * 60);

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

/// The binary under test, built by cargo (dynamically linked, with debug information).
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
    remove(docker, &container).await;
    tar::Archive::new(archive.as_slice())
        .unpack(into)
        .unwrap_or_else(|e| panic!("unpacking {path}: {e}"));
    let name = Path::new(path).file_name().expect("a file name");
    into.join(name)
}

/// Runs a container of `image` with `entrypoint` and `cmd` (as this user, like a lab's
/// containers), waits for it and removes it; returns its exit code and its output.
async fn run_in(docker: &Docker, image: &str, entrypoint: &[&str], cmd: &[&str]) -> (i64, String) {
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let user = format!(
        "{}:{}",
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw()
    );
    let container = docker
        .create_container(
            None::<CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(image.to_string()),
                entrypoint: Some(strings(entrypoint)),
                cmd: Some(strings(cmd)),
                user: Some(user),
                network_disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("a container of {image}: {e}"))
        .id;
    docker
        .start_container(&container, None::<StartContainerOptions>)
        .await
        .unwrap_or_else(|e| panic!("starting {entrypoint:?} {cmd:?} in {image}: {e}"));
    let mut code = None;
    let mut wait = docker.wait_container(&container, None::<WaitContainerOptions>);
    while let Some(status) = wait.next().await {
        code = Some(match status {
            Ok(response) => response.status_code,
            // bollard reports a non-zero exit as an error carrying the code.
            Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => code,
            Err(e) => panic!("waiting for {entrypoint:?} {cmd:?}: {e}"),
        });
    }
    let mut output = String::new();
    let mut logs = docker.logs(
        &container,
        Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
    );
    while let Some(chunk) = logs.next().await {
        output.push_str(&chunk.expect("the container's output").to_string());
    }
    remove(docker, &container).await;
    (code.expect("the container exited"), output)
}

/// Removes the container `container`, running or not.
async fn remove(docker: &Docker, container: &str) {
    docker
        .remove_container(
            container,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap_or_else(|e| panic!("removing the container {container}: {e}"));
}

/// What the engine says about the image `name`.
async fn inspect(docker: &Docker, name: &str) -> ImageInspect {
    docker
        .inspect_image(name)
        .await
        .unwrap_or_else(|e| panic!("the engine has no image {name}: {e}"))
}

/// Builds a tiny image `tag` (`FROM scratch`, one label) as built by the labctl home `builder`.
async fn stand_in(docker: &Docker, tag: &str, builder: &str) {
    let dockerfile = b"FROM scratch\nLABEL labctl.test=stand-in\n";
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", &dockerfile[..])
        .expect("a tar in memory");
    let context = tar.into_inner().expect("a tar in memory");
    let options = bollard::query_parameters::BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .version(bollard::query_parameters::BuilderVersion::BuilderV1)
        .labels(&std::collections::HashMap::from([(
            "labctl.builder",
            builder,
        )]))
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(step) = stream.next().await {
        step.unwrap_or_else(|e| panic!("building the stand-in {tag}: {e}"));
    }
    inspect(docker, tag).await;
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
    } else if step.starts_with("LABEL labctl.builder=/") {
        // The build's own label: which labctl home built it (only that home prunes it).
        Some("LABEL builder")
    } else if copied("file", "/labctl") {
        Some("COPY labctl")
    } else if copied("dir", "/") {
        Some("COPY system")
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

    // Built (or found) by the cargo-built labctl: its own executable goes in, stripped.
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
        Some(3),
        "exactly the three COPY layers (system, templates, labctl): {:?}",
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
            Some("LABEL builder"),
            Some("ENTRYPOINT"),
            Some("COPY labctl"),
            Some("COPY templates"),
            Some("COPY system"),
            Some("LABEL")
        ],
        "the history holds our instructions and nothing else (newest first): {:#?}",
        history
            .iter()
            .map(|entry| &entry.created_by)
            .collect::<Vec<_>>()
    );

    // The image's labctl runs in a container (its loader and libraries are where it looks for
    // them), and so does the busybox shell with the applets a lab's user reaches for.
    let (code, output) = tokio.block_on(run_in(&docker, &tag, &["/labctl"], &["--version"]));
    assert_eq!(
        (code, output.trim()),
        (0, format!("labctl {}", env!("CARGO_PKG_VERSION")).as_str()),
        "labctl --version in a container of {tag}"
    );
    let (code, output) = tokio.block_on(run_in(
        &docker,
        &tag,
        &["/bin/sh", "-c"],
        &["which sh ip ping nc wget && ip -o link show lo"],
    ));
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(code, 0, "the shell in {tag}: {output}");
    assert_eq!(
        lines[..5],
        ["/bin/sh", "/bin/ip", "/bin/ping", "/bin/nc", "/bin/wget"],
        "the applets in {tag}: {output}"
    );
    assert!(
        lines[5].contains("lo:") && lines[5].contains("LOOPBACK"),
        "busybox ip lists the loopback: {output}"
    );

    // The image's labctl is the cargo-built one without its debug information, a fraction of
    // its size.
    let folder = tempfile::tempdir().unwrap();
    let inside = tokio.block_on(copy_out(&docker, &tag, "/labctl", folder.path()));
    let built = std::fs::metadata(env!("CARGO_BIN_EXE_labctl"))
        .unwrap()
        .len();
    let carried = std::fs::metadata(&inside).unwrap().len();
    assert!(
        carried < built,
        "the image's labctl ({carried} bytes) is stripped of the debug information of {} \
         ({built} bytes)",
        env!("CARGO_BIN_EXE_labctl")
    );

    // Run from a copy, the image's own labctl finds the same content (stripping a stripped
    // executable changes nothing; the same libraries, busybox and templates), hence the same tag
    // and the very same image.
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

    // A new build prunes the unused lab images that this home built, and only those: two
    // stand-ins, one built by "another home" on the same engine, one by this one.
    let home = tempfile::tempdir().unwrap();
    let ours = home.path().display().to_string();
    let pid = std::process::id();
    let other_image = format!("labctl:t{pid}-other-home");
    let own_image = format!("labctl:t{pid}-own-stale");
    tokio.block_on(stand_in(
        &docker,
        &other_image,
        "/home/someone-else/.local/state/labctl",
    ));
    tokio.block_on(stand_in(&docker, &own_image, &ours));

    // --force builds it again under the same tag.
    let mut forced_build = Command::new(&inside);
    forced_build.env("LABCTL_HOME", home.path());
    assert_eq!(
        image_build(forced_build, &["--force"]),
        tag,
        "--force keeps the tag"
    );
    assert!(
        tokio.block_on(docker.inspect_image(&own_image)).is_err(),
        "this home's unused image {own_image} is pruned"
    );
    let other = tokio.block_on(docker.inspect_image(&other_image));
    assert!(
        other.is_ok(),
        "another home's unused image {other_image} stays"
    );
    let _ = tokio.block_on(docker.remove_image(
        &other_image,
        None::<bollard::query_parameters::RemoveImageOptions>,
        None,
    ));
    let forced = tokio.block_on(inspect(&docker, &tag));
    assert_ne!(forced.id, first.id, "--force builds a new image");
    assert_eq!(
        tokio.block_on(inspect(&docker, "labctl:latest")).id,
        forced.id,
        "labctl:latest follows the rebuilt image"
    );
}
