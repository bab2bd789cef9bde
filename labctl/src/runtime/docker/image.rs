//! The lab image: the running labctl, with the shared libraries and the dynamic loader it links,
//! and a static busybox for a shell, in an image built `FROM scratch` through the Docker engine's
//! API, so the Docker runtime works on a machine with no registry at all (no base image to pull,
//! no `docker` CLI) and without compiling labctl a second time.
//!
//! [`ensure`] walks four steps:
//!
//! 1. **The files** ([`gather`]). The running labctl executable (`target/release/labctl`, or
//!    `target/debug/labctl` under `cargo test`), with its debug information stripped from a copy
//!    (`strip --strip-debug`, else `objcopy --strip-debug`; the symbol table stays, so backtraces
//!    still name functions). Unless it is static (no `PT_INTERP`, see [`is_static_elf`]), the
//!    dynamic loader and the libraries it links, as `ldd` lists them ([`parse_ldd`]), each at the
//!    path it has on this machine (`/lib64/ld-linux-x86-64.so.2`, `/lib/x86_64-linux-gnu/…`).
//!    Then busybox (Debian's `busybox-static`: `/bin/busybox`), with a link `/bin/<applet>` for
//!    every applet it lists, so `docker exec -it <lab>-<id> sh` has `ip`, `ping`, `nc`, `wget`.
//!    No NSS libraries are needed: glibc (2.34 on) has its `files` and `dns` name services built
//!    in. The image's `/etc/nsswitch.conf` says `hosts: files dns`: a name is looked up in the
//!    container's `/etc/hosts` first (where a lab wired with veth pairs names the neighbours at
//!    their ends of the links), then by the DNS server of `/etc/resolv.conf`, which Docker mounts
//!    into every container (its embedded DNS, which knows the lab's container names). Without the
//!    file glibc would ask the DNS server first.
//! 2. **A build context**, made in memory as a tar ([`Context::tar`]): a `Dockerfile`, the
//!    executable (mode 0755), the loader, libraries and busybox under `system/`, and the page
//!    templates of `<workspace>/templates/`. Without the workspace the image leaves `/templates`
//!    out: the binary embeds the same templates (see `labctl-web`'s `pages.rs`), so it only loses
//!    the option of `--templates /templates`.
//! 3. **A tag named by the content** ([`Context::tag`]): `labctl:<16 hex of sha256>` over the
//!    Dockerfile, the stripped executable, the system files and the templates. An image with that
//!    tag is reused.
//! 4. **The build**, by the engine's classic builder, under an exclusive file lock so that two
//!    labctl processes building at once build once; the image is also tagged `labctl:latest`
//!    (the exported compose files use it). The system files and the templates are copied before
//!    labctl, so a new labctl reuses their layers from the engine's build cache. The build is
//!    labelled with the labctl home that made it ([`BUILDER_LABEL`]), and a new build prunes the
//!    unused lab images of that home only.

use std::collections::VecDeque;
use std::fs::File;
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

/// How many lines of a failed build's output an error quotes.
const TAIL_LINES: usize = 15;

/// Make sure the lab image exists; returns its tag (`labctl:<16 hex of the content hash>`).
///
/// Gathers the image's files (see the module docs), then builds the image unless one with the
/// same content exists (`force` builds it anyway, without the engine's build cache,
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

/// The label naming the labctl home that built a lab image (`$LABCTL_HOME`'s path): a home
/// prunes only its own images, never those another user or CI job on the same engine built.
pub const BUILDER_LABEL: &str = "labctl.builder";

/// This home, as [`BUILDER_LABEL`] names it.
fn builder() -> String {
    crate::lab::home()
        .map(|home| home.display().to_string())
        .unwrap_or_default()
}

/// Remove the lab images other than `keep` that this home built and no container uses: every
/// source change makes a new one, and each holds a whole executable. Best effort: the engine
/// refuses to remove an image a container (a running lab's) still uses, and that one stays.
/// Images another home built are left alone, unused or not: on a shared engine that home may be
/// about to start containers from one.
async fn prune(docker: &Docker, keep: &str) {
    let filters = std::collections::HashMap::from([
        ("reference".to_string(), vec![format!("{REPOSITORY}:*")]),
        (
            "label".to_string(),
            vec![format!("{BUILDER_LABEL}={}", builder())],
        ),
    ]);
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

/// The image's `/etc/nsswitch.conf`: names from `/etc/hosts` first, then from DNS.
const NSSWITCH: &[u8] = b"hosts: files dns\n";

/// Everything the image holds, read from this machine (blocking: it reads and strips a large
/// executable).
fn gather(progress: bool) -> Result<Context> {
    let spinner = spinner(progress, "image");
    spinner.set_message("gathering labctl, its libraries and busybox");
    let exe = std::env::current_exe().context("finding the running labctl executable")?;
    let running = std::fs::read(&exe)
        .with_context(|| format!("reading the running labctl executable {}", exe.display()))?;
    let mut system = System::default();
    if !is_static_elf(&running) {
        system.add_libraries(&exe)?;
    }
    let binary = strip_debug(&exe)?.unwrap_or(running);
    system.file(Path::new("/etc/nsswitch.conf"), 0o644, NSSWITCH.to_vec());
    match find_busybox() {
        Some(busybox) => system.add_busybox(&busybox)?,
        None => {
            spinner.suspend(|| {
                eprintln!(
                    "labctl: warning: no busybox on this machine, so the lab image has no shell \
                     (`labctl shell` and `docker exec … sh` need one); install Debian's \
                     busybox-static (`apt-get install busybox-static`), then `labctl image build`"
                )
            });
        }
    }
    let templates = match workspace() {
        Some(workspace) => Some(read_templates(&workspace.join("templates"))?),
        None => None,
    };
    spinner.finish_and_clear();
    Ok(Context::new(binary, system.entries(), templates))
}

/// A copy of the executable `exe` without its debug information (`strip --strip-debug`, else
/// `objcopy --strip-debug`); `None` when neither tool is installed (the image then carries it
/// whole). Stripping a stripped file changes nothing, so an image's own labctl makes the same
/// image again.
fn strip_debug(exe: &Path) -> Result<Option<Vec<u8>>> {
    let folder = std::env::temp_dir().join(format!(
        "labctl-image-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("creating the temporary folder {}", folder.display()))?;
    let copy = folder.join("labctl");
    let result = (|| {
        let tools: [(&str, Vec<&std::ffi::OsStr>); 2] = [
            (
                "strip",
                vec![
                    "--strip-debug".as_ref(),
                    "-o".as_ref(),
                    copy.as_os_str(),
                    exe.as_os_str(),
                ],
            ),
            (
                "objcopy",
                vec!["--strip-debug".as_ref(), exe.as_os_str(), copy.as_os_str()],
            ),
        ];
        for (tool, args) in tools {
            let output = match Command::new(tool).args(&args).stdin(Stdio::null()).output() {
                Ok(output) => output,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("running {tool}")),
            };
            if !output.status.success() {
                bail!(
                    "`{tool} --strip-debug` failed on {} ({}): {}",
                    exe.display(),
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            let stripped = std::fs::read(&copy)
                .with_context(|| format!("reading the stripped copy {}", copy.display()))?;
            return Ok(Some(stripped));
        }
        Ok(None)
    })();
    let _ = std::fs::remove_dir_all(&folder);
    result
}

/// The shared objects `ldd` lists: the dynamic loader and every library, by the path each is
/// loaded from, sorted, without duplicates. The vDSO (no file) is left out; an executable `ldd`
/// calls static has none; a library `ldd` cannot find is an error naming it.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut paths = std::collections::BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") || line.contains("not a dynamic executable") {
            continue;
        }
        // `name => path (address)`, `path (address)` (the loader) or `name (address)` (vDSO).
        let (name, rest) = match line.split_once("=>") {
            Some((name, rest)) => (name.trim(), rest.trim()),
            None => ("", line),
        };
        if rest.starts_with("not found") {
            bail!("ldd finds no {name}: install the package that provides it");
        }
        let path = match rest.rsplit_once(" (0x") {
            Some((path, _)) => path.trim(),
            None => rest,
        };
        if path.starts_with('/') {
            paths.insert(PathBuf::from(path));
        }
    }
    Ok(paths.into_iter().collect())
}

/// The files of the image besides labctl and the templates, by their path in the image
/// (relative, no leading `/`).
#[derive(Default)]
struct System {
    entries: std::collections::BTreeMap<String, Entry>,
}

impl System {
    /// The dynamic loader and the libraries `executable` links (its `ldd`), at their own paths.
    fn add_libraries(&mut self, executable: &Path) -> Result<()> {
        let output = Command::new("ldd")
            .arg(executable)
            .stdin(Stdio::null())
            .output()
            .with_context(|| {
                format!(
                    "running ldd on {} (it lists the libraries the lab image needs; Debian's \
                     libc-bin provides it)",
                    executable.display()
                )
            })?;
        if !output.status.success() {
            bail!(
                "ldd {} failed ({}): {}",
                executable.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let listed = parse_ldd(&String::from_utf8_lossy(&output.stdout))
            .with_context(|| format!("the libraries of {}", executable.display()))?;
        for library in listed {
            // Read through symlinks (/lib64/ld-linux-x86-64.so.2 is one on Debian): the image
            // gets a regular file at the path the executable asks for.
            let bytes = std::fs::read(&library)
                .with_context(|| format!("reading the library {}", library.display()))?;
            self.file(&library, 0o755, bytes);
        }
        Ok(())
    }

    /// `busybox` at `/bin/busybox`, its libraries if it has any, and a link `/bin/<applet>` to it
    /// for every applet it lists (`busybox --list`).
    fn add_busybox(&mut self, busybox: &Path) -> Result<()> {
        let bytes = std::fs::read(busybox)
            .with_context(|| format!("reading busybox at {}", busybox.display()))?;
        if !is_static_elf(&bytes) {
            self.add_libraries(busybox)?;
        }
        let output = Command::new(busybox)
            .arg("--list")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} --list", busybox.display()))?;
        if !output.status.success() {
            bail!("{} --list failed ({})", busybox.display(), output.status);
        }
        self.file(Path::new("/bin/busybox"), 0o755, bytes);
        for applet in String::from_utf8_lossy(&output.stdout).lines() {
            let applet = applet.trim();
            if applet.is_empty() || applet.contains('/') || applet == "busybox" {
                continue;
            }
            self.entries.insert(
                format!("bin/{applet}"),
                Entry::Symlink("busybox".to_string()),
            );
        }
        Ok(())
    }

    /// A regular file at the absolute path `path`.
    fn file(&mut self, path: &Path, mode: u32, bytes: Vec<u8>) {
        let relative = path.to_string_lossy().trim_start_matches('/').to_string();
        self.entries.insert(relative, Entry::File { mode, bytes });
    }

    /// Every entry with its path, sorted by path.
    fn entries(self) -> Vec<(String, Entry)> {
        self.entries.into_iter().collect()
    }
}

/// Busybox on this machine: `/bin/busybox` or `/usr/bin/busybox` (Debian's `busybox-static`
/// installs the former), else the first on `PATH`.
fn find_busybox() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/bin", "/usr/bin"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join("busybox"))
        .find(|candidate| candidate.is_file())
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

/// One file of the image's `system/` part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A regular file with its mode.
    File {
        /// Its permission bits.
        mode: u32,
        /// Its content.
        bytes: Vec<u8>,
    },
    /// A symbolic link to the path given.
    Symlink(String),
}

/// One member of the context's tar, borrowed from the [`Context`].
enum Member<'a> {
    /// A folder.
    Dir,
    /// A regular file: mode and bytes.
    File(u32, &'a [u8]),
    /// A symbolic link and its target.
    Symlink(&'a str),
}

/// The image's build context: a Dockerfile, the executable, the system files (loader,
/// libraries, busybox) and the page templates.
pub struct Context {
    /// The Dockerfile's text (see [`dockerfile`]).
    dockerfile: String,
    /// The labctl executable.
    binary: Vec<u8>,
    /// The files under `system/`, copied to `/`, by path, sorted.
    system: Vec<(String, Entry)>,
    /// The page templates by file name, sorted; `None` leaves `/templates` out of the image.
    templates: Option<Vec<(String, Vec<u8>)>>,
}

/// The Dockerfile of the lab image; it copies `system/` only when there are system files and
/// `/templates` only when there are templates. labctl comes last: the layers before it are
/// the same from one labctl to the next, so the engine's build cache keeps them.
pub fn dockerfile(with_system: bool, with_templates: bool) -> String {
    let mut text = String::from(
        "# The lab image, built by `labctl image build` through the engine's API: no base image.\n\
         FROM scratch\n",
    );
    text.push_str(&format!(
        "LABEL labctl.image=\"{}\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    if with_system {
        text.push_str("COPY system /\n");
    }
    if with_templates {
        text.push_str("COPY templates /templates\n");
    }
    text.push_str("COPY labctl /labctl\n");
    text.push_str("ENTRYPOINT [\"/labctl\"]\n");
    text
}

impl Context {
    /// The context for `binary`, the `system` files (paths relative to `/`) and `templates`
    /// (none: no `/templates` in the image).
    pub fn new(
        binary: Vec<u8>,
        system: Vec<(String, Entry)>,
        templates: Option<Vec<(String, Vec<u8>)>>,
    ) -> Context {
        let mut system = system;
        system.sort_by(|a, b| a.0.cmp(&b.0));
        Context {
            dockerfile: dockerfile(!system.is_empty(), templates.is_some()),
            binary,
            system,
            templates,
        }
    }

    /// Every member with its path in the context, in a fixed order: the Dockerfile, labctl,
    /// `system/` (each folder before what it holds), `templates/`.
    fn members(&self) -> Vec<(String, Member<'_>)> {
        let mut members = vec![
            (
                "Dockerfile".to_string(),
                Member::File(0o644, self.dockerfile.as_bytes()),
            ),
            (
                "labctl".to_string(),
                Member::File(0o755, self.binary.as_slice()),
            ),
        ];
        let mut folders = std::collections::BTreeSet::new();
        for (path, entry) in &self.system {
            let path = format!("system/{path}");
            // Its folders, outermost first, each once.
            let mut at = 0;
            while let Some(slash) = path[at..].find('/') {
                at += slash + 1;
                if folders.insert(path[..at].to_string()) {
                    members.push((path[..at].to_string(), Member::Dir));
                }
            }
            members.push(match entry {
                Entry::File { mode, bytes } => (path, Member::File(*mode, bytes)),
                Entry::Symlink(target) => (path, Member::Symlink(target)),
            });
        }
        if let Some(templates) = &self.templates {
            members.push(("templates/".to_string(), Member::Dir));
            for (name, text) in templates {
                members.push((format!("templates/{name}"), Member::File(0o644, text)));
            }
        }
        members
    }

    /// `labctl:<first 16 hex digits of the sha256>` over every member's path, kind and bytes.
    pub fn tag(&self) -> String {
        let mut hash = Sha256::new();
        for (path, member) in self.members() {
            // Framed (path, kind, mode, length, bytes), so that no two contexts hash alike.
            hash.update(path.as_bytes());
            hash.update([0]);
            let (kind, mode, bytes): (u8, u32, &[u8]) = match member {
                Member::Dir => (b'd', 0o755, &[]),
                Member::File(mode, bytes) => (b'f', mode, bytes),
                Member::Symlink(target) => (b'l', 0o777, target.as_bytes()),
            };
            hash.update([kind]);
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
        for (path, member) in self.members() {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            let bytes: &[u8] = match member {
                Member::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    &[]
                }
                Member::File(mode, bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(mode);
                    bytes
                }
                Member::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header
                        .set_link_name(target)
                        .with_context(|| format!("the link {path} -> {target}"))?;
                    &[]
                }
            };
            header.set_size(bytes.len() as u64);
            header
                .set_path(&path)
                .with_context(|| format!("the path {path} in the build context"))?;
            header.set_cksum();
            tar.append(&header, bytes)
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
        .labels(&std::collections::HashMap::from([(
            BUILDER_LABEL,
            builder(),
        )]))
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
        let context = || format!("locking the image build lock {}", path.display());
        if !crate::lock::try_exclusive(&file).with_context(context)? {
            if progress {
                eprintln!("waiting for another labctl building the lab image");
            }
            crate::lock::wait_exclusive(&file).with_context(context)?;
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

    fn system() -> Vec<(String, Entry)> {
        vec![
            ("bin/sh".into(), Entry::Symlink("busybox".into())),
            (
                "lib64/ld-linux-x86-64.so.2".into(),
                Entry::File {
                    mode: 0o755,
                    bytes: b"loader".to_vec(),
                },
            ),
            (
                "bin/busybox".into(),
                Entry::File {
                    mode: 0o755,
                    bytes: b"busybox".to_vec(),
                },
            ),
        ]
    }

    /// Every entry of a tar: path, type, mode, link target, bytes.
    fn entries(tar: &[u8]) -> Vec<(String, char, u32, String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        let mut entries = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Regular => 'f',
                tar::EntryType::Symlink => 'l',
                other => panic!("unexpected {other:?}"),
            };
            let mode = header.mode().unwrap();
            let (uid, gid) = (header.uid().unwrap(), header.gid().unwrap());
            assert_eq!((uid, gid), (0, 0), "{path}: owned by root");
            let link = entry
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            entries.push((path, kind, mode, link, bytes));
        }
        entries
    }

    #[test]
    fn the_context_holds_the_dockerfile_the_binary_the_system_and_the_templates() {
        let context = Context::new(b"\x7fELF binary".to_vec(), system(), templates());
        let file = |path: &str, mode: u32, bytes: &[u8]| {
            (path.to_string(), 'f', mode, String::new(), bytes.to_vec())
        };
        let dir = |path: &str| (path.to_string(), 'd', 0o755, String::new(), vec![]);
        let expected = vec![
            file("Dockerfile", 0o644, dockerfile(true, true).as_bytes()),
            file("labctl", 0o755, b"\x7fELF binary"),
            dir("system/"),
            dir("system/bin/"),
            file("system/bin/busybox", 0o755, b"busybox"),
            (
                "system/bin/sh".to_string(),
                'l',
                0o777,
                "busybox".to_string(),
                vec![],
            ),
            dir("system/lib64/"),
            file("system/lib64/ld-linux-x86-64.so.2", 0o755, b"loader"),
            dir("templates/"),
            file("templates/base.html", 0o644, &templates().unwrap()[0].1),
            file("templates/index.html", 0o644, &templates().unwrap()[1].1),
        ];
        assert_eq!(entries(&context.tar().unwrap()), expected);

        let text = dockerfile(true, true);
        let instructions: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            instructions,
            [
                "FROM scratch",
                &format!("LABEL labctl.image=\"{}\"", env!("CARGO_PKG_VERSION")),
                "COPY system /",
                "COPY templates /templates",
                "COPY labctl /labctl",
                "ENTRYPOINT [\"/labctl\"]",
            ]
        );
        assert!(!dockerfile(false, false).contains("templates"));
        assert!(!dockerfile(false, false).contains("system"));

        // No system files: no system/ folder, and no COPY of it.
        let bare = Context::new(b"static".to_vec(), vec![], None);
        let paths: Vec<String> = entries(&bare.tar().unwrap())
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(paths, ["Dockerfile", "labctl"]);
    }

    #[test]
    fn the_tag_follows_the_content() {
        let tag = Context::new(b"binary".to_vec(), system(), templates()).tag();
        let hex = tag.strip_prefix("labctl:").expect("repository labctl");
        assert!(
            hex.len() == 16
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            Context::new(b"binary".to_vec(), system(), templates()).tag(),
            tag,
            "deterministic"
        );
        let mut reordered = system();
        reordered.reverse();
        assert_eq!(
            Context::new(b"binary".to_vec(), reordered, templates()).tag(),
            tag,
            "the system files are sorted"
        );

        let mut changed = templates();
        changed.as_mut().unwrap()[1].1.push(b'\n');
        let mut relinked = system();
        relinked[0].1 = Entry::Symlink("busybox2".into());
        let mut library = system();
        library[1].1 = Entry::File {
            mode: 0o755,
            bytes: b"loader 2".to_vec(),
        };
        let others = [
            Context::new(b"binary2".to_vec(), system(), templates()).tag(),
            Context::new(b"binary".to_vec(), system(), changed).tag(),
            Context::new(b"binary".to_vec(), system(), None).tag(),
            Context::new(b"binary".to_vec(), system(), Some(vec![])).tag(),
            Context::new(b"binary".to_vec(), vec![], templates()).tag(),
            Context::new(b"binary".to_vec(), relinked, templates()).tag(),
            Context::new(b"binary".to_vec(), library, templates()).tag(),
        ];
        for other in &others {
            assert_ne!(other, &tag);
        }
        let distinct: std::collections::BTreeSet<_> = others.iter().collect();
        assert_eq!(distinct.len(), others.len());
    }

    #[test]
    fn ldd_lists_the_loader_and_the_libraries() {
        // As Debian 12's ldd prints a Rust executable.
        let text = "\tlinux-vdso.so.1 (0x00007ffc2b1e4000)\n\
                    \tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f0e1c400000)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0e1c9e0000)\n\
                    \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f0e1c321000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1c140000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f0e1ca1a000)\n\
                    \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f0e1c321000)\n";
        let paths: Vec<String> = parse_ldd(text)
            .unwrap()
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib/x86_64-linux-gnu/libstdc++.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ]
        );

        // A path with a space, an old-style vDSO line, and a static executable.
        let spaced = "\tlibx.so.1 => /opt/my libs/libx.so.1 (0x00007f0e1c140000)\n\
                      \tlinux-gate.so.1 =>  (0x00007f0e1c140000)\n";
        assert_eq!(
            parse_ldd(spaced).unwrap(),
            [PathBuf::from("/opt/my libs/libx.so.1")]
        );
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
        assert!(parse_ldd("\tnot a dynamic executable\n")
            .unwrap()
            .is_empty());

        // A library the loader cannot find is an error naming it.
        let missing = "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1c140000)\n\
                       \tlibzmq.so.5 => not found\n";
        let error = parse_ldd(missing).unwrap_err().to_string();
        assert!(error.contains("libzmq.so.5"), "{error}");
    }

    #[test]
    fn ldd_on_the_test_executable_finds_the_loader_it_names() {
        // The test executable is dynamically linked: ldd lists the loader of its PT_INTERP and
        // libc, and every listed file exists.
        let exe = std::env::current_exe().unwrap();
        let output = Command::new("ldd").arg(&exe).output().expect("ldd runs");
        assert!(output.status.success(), "ldd {}", exe.display());
        let paths = parse_ldd(&String::from_utf8_lossy(&output.stdout)).unwrap();
        assert!(
            paths.iter().any(|p| p.ends_with("ld-linux-x86-64.so.2")),
            "{paths:?}"
        );
        assert!(paths.iter().any(|p| p.ends_with("libc.so.6")), "{paths:?}");
        for path in &paths {
            assert!(path.is_file(), "{} exists", path.display());
        }
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
