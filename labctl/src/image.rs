//! The lab image: labctl as a static executable in an image built `FROM scratch` through the
//! Docker engine's API, so the Docker runtime works on a machine with no registry at all (no base
//! image to pull, no `docker` CLI).
//!
//! [`ensure`] walks four steps:
//!
//! 1. **A static executable.** The running labctl if it is one (an ELF with no `PT_INTERP`
//!    program header, see [`is_static_elf`]); otherwise, when the source workspace this binary
//!    was compiled from is still there, `cargo build --release --locked --target
//!    x86_64-unknown-linux-gnu --bin labctl` with `RUSTFLAGS="-C target-feature=+crt-static"`
//!    (a few minutes cold, seconds warm).
//! 2. **A build context**, made in memory as a tar ([`Context::tar`]): a `Dockerfile`, the
//!    executable (mode 0755) and the page templates of `<workspace>/templates/`. Without the
//!    workspace the image leaves `/templates` out: the binary embeds the same templates (see
//!    `labctl-web`'s `pages.rs`), so it only loses the option of `--templates /templates`.
//! 3. **A tag named by the content** ([`Context::tag`]): `labctl:<16 hex of sha256>` over the
//!    Dockerfile, the executable and the templates. An image with that tag is reused.
//! 4. **The build**, by the engine's classic builder, under an exclusive file lock so that two
//!    labctl processes building at once build once; the image is also tagged `labctl:latest`
//!    (the exported compose files use it).
//!
//! The nested `cargo build` uses cargo's usual target directory (that of the workspace, or
//! `$CARGO_TARGET_DIR`). That is safe even when this labctl runs under `cargo test` or `cargo
//! run` of the same workspace: cargo releases its build-directory lock before it runs tests or
//! the program (checked with cargo 1.95), so the nested build at worst waits for another build
//! of the same profile to finish, and it reuses everything that build compiled.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use bollard::errors::Error as EngineError;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, RemoveImageOptions, TagImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::runtime::docker::engine::explain;

/// The repository of every lab image.
pub const REPOSITORY: &str = "labctl";

/// The tag also given to the newest lab image (the exported compose files use it).
pub const LATEST: &str = "labctl:latest";

/// The Rust target of the executable in the image.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// How many lines of a failed build's output an error quotes.
const TAIL_LINES: usize = 15;

/// Make sure the lab image exists; returns its tag (`labctl:<16 hex of the content hash>`).
///
/// Builds the static executable first if needed (see the module docs), then the image unless
/// one with the same content exists (`force` builds it anyway, without the engine's build cache,
/// and removes the image it replaces unless a container uses it). `progress` draws a spinner on
/// stderr (for a terminal); otherwise nothing is printed.
pub async fn ensure(docker: &Docker, force: bool, progress: bool) -> anyhow::Result<String> {
    let context = tokio::task::spawn_blocking(move || gather(progress))
        .await
        .context("gathering the lab image's files")??;
    let tag = context.tag();

    let _lock = lock(&lock_path(), progress).await?;
    let previous = image_id(docker, &tag).await?;
    let reuse = previous.is_some() && !force;
    if reuse {
        if progress {
            eprintln!("reusing image {tag} (same content; --force builds it again)");
        }
    } else {
        build(docker, &context, &tag, force, progress).await?;
    }
    docker
        .tag_image(
            &tag,
            Some(
                TagImageOptionsBuilder::new()
                    .repo(REPOSITORY)
                    .tag("latest")
                    .build(),
            ),
        )
        .await
        .map_err(|e| explain(e, &format!("tagging {tag} as {LATEST}")))?;
    // A forced build took both tags from the image it replaces: remove that one, unless
    // something still uses it (a lab's containers; the engine refuses then, and it stays).
    if let Some(previous) = previous.filter(|_| !reuse) {
        if image_id(docker, &tag).await?.as_ref() != Some(&previous) {
            let _ = docker
                .remove_image(&previous, None::<RemoveImageOptions>, None)
                .await;
        }
    }
    if !reuse {
        prune(docker, &tag).await;
    }
    Ok(tag)
}

/// Remove the lab images other than `keep` that no container uses: every source change makes a
/// new one, and each holds a whole executable. Best effort: the engine refuses to remove an image
/// a container (a running lab's) still uses, and that one stays.
async fn prune(docker: &Docker, keep: &str) {
    let filters = std::collections::HashMap::from([(
        "reference".to_string(),
        vec![format!("{REPOSITORY}:*")],
    )]);
    let options = bollard::query_parameters::ListImagesOptionsBuilder::new()
        .filters(&filters)
        .build();
    let Ok(images) = docker.list_images(Some(options)).await else {
        return;
    };
    for image in images {
        let tags = &image.repo_tags;
        if tags.iter().any(|t| t == keep || t == LATEST) {
            continue;
        }
        for tag in tags {
            let _ = docker
                .remove_image(tag, None::<RemoveImageOptions>, None)
                .await;
        }
    }
}

// --- the executable ----------------------------------------------------------------------------

/// Whether `elf` is a statically linked ELF executable: a 64-bit little-endian ELF with no
/// `PT_INTERP` program header (no dynamic loader named; a static-pie still has `PT_DYNAMIC`, for
/// its own relocations, so that header says nothing). Anything unreadable counts as not static.
pub fn is_static_elf(elf: &[u8]) -> bool {
    /// The program header type naming the dynamic loader.
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?))
    };
    let check = || -> Option<bool> {
        // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1).
        if elf.get(0..6)? != b"\x7fELF\x02\x01" {
            return Some(false);
        }
        // e_type: ET_EXEC (2) or ET_DYN (3, a PIE).
        if !matches!(u16_at(0x10)?, 2 | 3) {
            return Some(false);
        }
        let table = usize::try_from(u64_at(0x20)?).ok()?; // e_phoff
        let entry = usize::from(u16_at(0x36)?); // e_phentsize
        let count = usize::from(u16_at(0x38)?); // e_phnum
        if count == 0 || entry < 4 {
            return Some(false);
        }
        for i in 0..count {
            if u32_at(table.checked_add(i.checked_mul(entry)?)?)? == PT_INTERP {
                return Some(false);
            }
        }
        Some(true)
    };
    check().unwrap_or(false)
}

/// The source workspace this labctl was compiled from, if it is still there.
fn workspace() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    (dir.join("Cargo.toml").is_file() && dir.join("crates").is_dir()).then(|| dir.to_path_buf())
}

/// Everything the image holds, found or built (blocking: it may run cargo for minutes).
fn gather(progress: bool) -> Result<Context> {
    let exe = std::env::current_exe().context("finding the running labctl executable")?;
    let running = std::fs::read(&exe)
        .with_context(|| format!("reading the running labctl executable {}", exe.display()))?;
    let workspace = workspace();
    let binary = if is_static_elf(&running) {
        running
    } else if let Some(workspace) = &workspace {
        let built = build_static(workspace, progress)?;
        let binary = std::fs::read(&built)
            .with_context(|| format!("reading the static executable {}", built.display()))?;
        if !is_static_elf(&binary) {
            bail!(
                "cargo built {} but it is not statically linked (it names a dynamic loader); \
                 is RUSTFLAGS overridden by a cargo config `target.{TARGET}.rustflags`?",
                built.display()
            );
        }
        binary
    } else {
        bail!(
            "the lab image needs a statically linked labctl, and {} is dynamically linked while \
             the source it was built from ({}) is gone: run `cargo run --release --bin labctl -- \
             image build` in a checkout of the repository (it builds the static executable \
             itself), or run a static labctl (`RUSTFLAGS='-C target-feature=+crt-static' cargo \
             build --release --target {TARGET} --bin labctl`); with access to a registry, the \
             repository's Dockerfile builds labctl in an image the ordinary way",
            exe.display(),
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new("/"))
                .display()
        );
    };
    let templates = match &workspace {
        Some(workspace) => Some(read_templates(&workspace.join("templates"))?),
        None => None,
    };
    Ok(Context::new(binary, templates))
}

/// Builds labctl as a static executable from `workspace` with cargo; returns its path.
fn build_static(workspace: &Path, progress: bool) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let spinner = spinner(progress, "cargo");
    spinner.set_message("static labctl, up to date? (a few minutes the first time)");
    let mut child = Command::new(&cargo)
        .args(["build", "--release", "--locked", "--target", TARGET])
        .args([
            "--bin",
            "labctl",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // It would take precedence over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} to build labctl as a static executable; install Rust \
                 (https://rustup.rs) or set $CARGO to cargo's path",
                cargo.to_string_lossy()
            )
        })?;

    // Cargo's own lines (and rustc's rendered errors) on stderr: the spinner shows the latest
    // step, and the tail goes into the error if the build fails.
    let stderr = child.stderr.take().expect("piped stderr");
    let reader_spinner = spinner.clone();
    let tail = std::thread::spawn(move || {
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            let step = line.trim_start();
            if step.starts_with("Compiling") || step.starts_with("Blocking") {
                reader_spinner.set_message(step.to_string());
            }
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail
    });

    // JSON messages on stdout: the one that names labctl's executable says where it is.
    let mut executable = None;
    let stdout = child.stdout.take().expect("piped stdout");
    for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact" && message["target"]["name"] == "labctl" {
            if let Some(path) = message["executable"].as_str() {
                executable = Some(PathBuf::from(path));
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    let tail: Vec<String> = tail.join().unwrap_or_default().into();
    spinner.finish_and_clear();
    if !status.success() {
        bail!(
            "building labctl as a static executable failed ({status}); the last lines of \
             cargo's output (run the same in {}: `RUSTFLAGS='-C target-feature=+crt-static' cargo \
             build --release --locked --target {TARGET} --bin labctl`):\n{}",
            workspace.display(),
            tail.join("\n")
        );
    }
    executable.ok_or_else(|| {
        anyhow!(
            "cargo built labctl but did not say where the executable is; its last lines:\n{}",
            tail.join("\n")
        )
    })
}

/// The files of the templates folder `dir` (regular files only, sorted by name).
fn read_templates(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading the page templates in {}", dir.display()))?;
    let mut templates = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().into_string().map_err(|name| {
            anyhow!(
                "the template {:?} in {} has a name that is not UTF-8; rename it",
                name,
                dir.display()
            )
        })?;
        let text = std::fs::read(entry.path())
            .with_context(|| format!("reading the template {}", entry.path().display()))?;
        templates.push((name, text));
    }
    templates.sort();
    Ok(templates)
}

// --- the build context -------------------------------------------------------------------------

/// The image's build context: a Dockerfile, the static executable and the page templates.
pub struct Context {
    /// The Dockerfile's text (see [`dockerfile`]).
    dockerfile: String,
    /// The static labctl executable.
    binary: Vec<u8>,
    /// The page templates by file name, sorted; `None` leaves `/templates` out of the image.
    templates: Option<Vec<(String, Vec<u8>)>>,
}

/// The Dockerfile of the lab image; it copies `/templates` only when there are templates.
pub fn dockerfile(with_templates: bool) -> String {
    let mut text = String::from(
        "# The lab image, built by `labctl image build` through the engine's API: no base image.\n\
         FROM scratch\n",
    );
    text.push_str(&format!(
        "LABEL labctl.image=\"{}\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    text.push_str("COPY labctl /labctl\n");
    if with_templates {
        text.push_str("COPY templates /templates\n");
    }
    text.push_str("ENTRYPOINT [\"/labctl\"]\n");
    text
}

impl Context {
    /// The context for `binary` and `templates` (none: no `/templates` in the image).
    pub fn new(binary: Vec<u8>, templates: Option<Vec<(String, Vec<u8>)>>) -> Context {
        Context {
            dockerfile: dockerfile(templates.is_some()),
            binary,
            templates,
        }
    }

    /// Every file with its path in the context, its mode and its bytes, in a fixed order.
    fn files(&self) -> impl Iterator<Item = (String, u32, &[u8])> {
        let fixed = [
            ("Dockerfile".to_string(), 0o644, self.dockerfile.as_bytes()),
            ("labctl".to_string(), 0o755, self.binary.as_slice()),
        ];
        let templates = self
            .templates
            .iter()
            .flatten()
            .map(|(name, text)| (format!("templates/{name}"), 0o644, text.as_slice()));
        fixed.into_iter().chain(templates)
    }

    /// `labctl:<first 16 hex digits of the sha256>` over every file's path and bytes.
    pub fn tag(&self) -> String {
        let mut hash = Sha256::new();
        for (path, mode, bytes) in self.files() {
            // Framed (path, mode, length, bytes), so that no two contexts hash alike.
            hash.update(path.as_bytes());
            hash.update([0]);
            hash.update(mode.to_le_bytes());
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        }
        let hex: String = hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{REPOSITORY}:{hex}")
    }

    /// The context as the tar archive the engine's `/build` takes (fixed owner and time, so the
    /// same files make the same archive).
    pub fn tar(&self) -> Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        let header = |path: &str, size: usize, mode: u32, kind: tar::EntryType| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(size as u64);
            header.set_mode(mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_path(path).map(|()| header)
        };
        if self.templates.is_some() {
            let mut dir = header("templates/", 0, 0o755, tar::EntryType::Directory)?;
            dir.set_cksum();
            tar.append(&dir, std::io::empty())?;
        }
        for (path, mode, bytes) in self.files() {
            let mut file = header(&path, bytes.len(), mode, tar::EntryType::Regular)?;
            file.set_cksum();
            tar.append(&file, bytes)
                .with_context(|| format!("adding {path} to the build context"))?;
        }
        Ok(tar.into_inner()?)
    }
}

// --- the engine --------------------------------------------------------------------------------

/// The id of the image tagged `tag`, if the engine has one.
async fn image_id(docker: &Docker, tag: &str) -> Result<Option<String>> {
    match docker.inspect_image(tag).await {
        Ok(image) => Ok(Some(image.id.unwrap_or_default())),
        Err(EngineError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(explain(e, &format!("looking for the image {tag}"))),
    }
}

/// Builds the image from `context` with the classic builder and tags it `tag`; `force` also
/// skips the engine's build cache.
async fn build(
    docker: &Docker,
    context: &Context,
    tag: &str,
    force: bool,
    progress: bool,
) -> Result<()> {
    let spinner = spinner(progress, "image");
    spinner.set_message(format!("building {tag}"));
    let options = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .nocache(force)
        .version(BuilderVersion::BuilderV1)
        .build();
    let body = bollard::body_full(context.tar()?.into());
    let mut stream = docker.build_image(options, None, Some(body));
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let failure = |tail: &VecDeque<String>, error: &str| {
        let output: Vec<&str> = tail.iter().map(String::as_str).collect();
        anyhow!(
            "the Docker engine could not build the lab image {tag}: {error}\n{}",
            output.join("\n")
        )
    };
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(EngineError::DockerStreamError { error }) => {
                spinner.finish_and_clear();
                return Err(failure(&tail, &error));
            }
            Err(e) => {
                spinner.finish_and_clear();
                return Err(explain(e, &format!("building the lab image {tag}")));
            }
        };
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            spinner.finish_and_clear();
            return Err(failure(&tail, &message));
        }
        for line in info.stream.iter().flat_map(|s| s.lines()) {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            spinner.set_message(line.to_string());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        }
    }
    spinner.finish_and_clear();
    if image_id(docker, tag).await?.is_none() {
        return Err(failure(&tail, "the build ended without an image"));
    }
    Ok(())
}

// --- around it ---------------------------------------------------------------------------------

/// A spinner on stderr with `prefix` and a message, drawn only if `visible`.
fn spinner(visible: bool, prefix: &'static str) -> ProgressBar {
    let spinner = ProgressBar::with_draw_target(
        None,
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>6} {elapsed:>4} {wide_msg}")
            .expect("a valid template"),
    );
    spinner.set_prefix(prefix);
    if visible {
        spinner.enable_steady_tick(Duration::from_millis(120));
    }
    spinner
}

/// An exclusive lock on the image build, held until dropped (closing the file releases it).
struct BuildLock {
    /// The locked file.
    _file: File,
}

/// The machine-wide lock file of image builds: `labctl-image.lock` in the temporary folder.
fn lock_path() -> PathBuf {
    std::env::temp_dir().join("labctl-image.lock")
}

/// Takes the exclusive lock on the file `path` (creating it), waiting while another labctl
/// holds it (and saying so when `progress` is on).
async fn lock(path: &Path, progress: bool) -> Result<BuildLock> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        // Read-only is enough for flock, for a lock file another user created.
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .or_else(|_| File::open(&path))
            .with_context(|| {
                format!(
                    "cannot open the image build lock {}; remove it if it is stale",
                    path.display()
                )
            })?;
        let fd = file.as_raw_fd();
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            if progress {
                eprintln!("waiting for another labctl building the lab image");
            }
            loop {
                // SAFETY: as above.
                if unsafe { libc::flock(fd, libc::LOCK_EX) } == 0 {
                    break;
                }
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error).with_context(|| {
                        format!("locking the image build lock {}", path.display())
                    });
                }
            }
        }
        Ok(BuildLock { _file: file })
    })
    .await
    .context("waiting for the image build lock")?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with program headers of the given types.
    fn elf(program_headers: &[u32]) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56 * program_headers.len()];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x10..0x12].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[0x38..0x3a].copy_from_slice(&(program_headers.len() as u16).to_le_bytes());
        for (i, kind) in program_headers.iter().enumerate() {
            let at = 64 + 56 * i;
            elf[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        }
        elf
    }

    #[test]
    fn the_test_executable_is_dynamically_linked() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(exe.starts_with(b"\x7fELF"));
        assert!(
            !is_static_elf(&exe),
            "cargo's test executables name a dynamic loader"
        );
    }

    #[test]
    fn crafted_headers() {
        // PT_PHDR, PT_LOAD, PT_DYNAMIC, PT_GNU_STACK: a static-pie.
        assert!(is_static_elf(&elf(&[6, 1, 2, 0x6474_e551])));
        // The same with PT_INTERP.
        assert!(!is_static_elf(&elf(&[6, 3, 1, 2])));
        // No program headers, a 32-bit class, a cut-off table, not an ELF at all.
        assert!(!is_static_elf(&elf(&[])));
        let mut class32 = elf(&[1]);
        class32[4] = 1;
        assert!(!is_static_elf(&class32));
        let whole = elf(&[1, 1]);
        assert!(!is_static_elf(&whole[..64 + 56]));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
    }

    fn templates() -> Option<Vec<(String, Vec<u8>)>> {
        Some(vec![
            (
                "base.html".into(),
                b"<html>{% block body %}{% endblock %}</html>".to_vec(),
            ),
            ("index.html".into(), b"{% extends \"base.html\" %}".to_vec()),
        ])
    }

    #[test]
    fn the_context_holds_the_dockerfile_the_binary_and_the_templates() {
        let context = Context::new(b"\x7fELF binary".to_vec(), templates());
        let tar = context.tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mode = entry.header().mode().unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            entries.push((path, mode, bytes));
        }
        let expected: Vec<(String, u32, Vec<u8>)> = vec![
            ("templates/".into(), 0o755, vec![]),
            ("Dockerfile".into(), 0o644, dockerfile(true).into_bytes()),
            ("labctl".into(), 0o755, b"\x7fELF binary".to_vec()),
            (
                "templates/base.html".into(),
                0o644,
                templates().unwrap()[0].1.clone(),
            ),
            (
                "templates/index.html".into(),
                0o644,
                templates().unwrap()[1].1.clone(),
            ),
        ];
        assert_eq!(entries, expected);

        let text = dockerfile(true);
        let instructions: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            instructions,
            [
                "FROM scratch",
                &format!("LABEL labctl.image=\"{}\"", env!("CARGO_PKG_VERSION")),
                "COPY labctl /labctl",
                "COPY templates /templates",
                "ENTRYPOINT [\"/labctl\"]",
            ]
        );
        assert!(!dockerfile(false).contains("templates"));
    }

    #[test]
    fn the_tag_follows_the_content() {
        let tag = Context::new(b"binary".to_vec(), templates()).tag();
        let hex = tag.strip_prefix("labctl:").expect("repository labctl");
        assert!(
            hex.len() == 16
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            Context::new(b"binary".to_vec(), templates()).tag(),
            tag,
            "deterministic"
        );

        let mut changed = templates();
        changed.as_mut().unwrap()[1].1.push(b'\n');
        let others = [
            Context::new(b"binary2".to_vec(), templates()).tag(),
            Context::new(b"binary".to_vec(), changed).tag(),
            Context::new(b"binary".to_vec(), None).tag(),
            Context::new(b"binary".to_vec(), Some(vec![])).tag(),
        ];
        for other in &others {
            assert_ne!(other, &tag);
        }
        let distinct: std::collections::BTreeSet<_> = others.iter().collect();
        assert_eq!(distinct.len(), others.len());
    }

    #[test]
    fn the_build_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.lock");
        let tokio = tokio::runtime::Runtime::new().unwrap();
        tokio.block_on(async {
            let first = lock(&path, false).await.unwrap();
            let second = tokio::spawn({
                let path = path.clone();
                async move { lock(&path, false).await.map(|_| ()) }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                !second.is_finished(),
                "the second waits while the first holds the lock"
            );
            drop(first);
            tokio::time::timeout(Duration::from_secs(10), second)
                .await
                .expect("the second gets the lock once the first lets go")
                .unwrap()
                .unwrap();
        });
    }
}
