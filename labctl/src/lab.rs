//! A lab's state on disk: where labs live, and the record of what a runtime started.
//!
//! Every lab has a folder `<home>/labs/<name>/` holding `lab.json` (the [`Record`]), the daemons'
//! logs under `logs/`, their ready files under `run/`, and their data (`bootstrap/`, later the
//! nodes' databases). `<home>` is `$LABCTL_HOME`, else `$XDG_STATE_HOME/labctl`, else
//! `~/.local/state/labctl`. The record is rewritten after every step of `up`, so a lab whose
//! labctl crashed half-way is still fully known to `down`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use labctl_core::plane::Durability;
use labctl_core::NodeId;
use serde::{Deserialize, Serialize};

/// The folder holding every lab.
pub fn home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("LABCTL_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(state).join("labctl"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/labctl")),
        None => bail!("cannot tell where to keep labs: set LABCTL_HOME (or HOME)"),
    }
}

/// One process a runtime started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Its process id.
    pub pid: u32,
    /// `host:port` of its gRPC API.
    pub grpc: String,
    /// `host:port` of its HTTP endpoint (nameserver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// `host:port` of its ZeroMQ control socket (nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// Its container's name (Docker runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// What the bootstrap and nameserver daemons write to their ready file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReady {
    /// The process id.
    pub pid: u32,
    /// `host:port` of the gRPC API.
    pub grpc: String,
    /// `host:port` of the HTTP endpoint (nameserver only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
}

/// What `up` started, as `down` and `status` need it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The lab's name.
    pub name: String,
    /// `process` or `docker`.
    pub runtime: String,
    /// The topology file as given to `up`.
    pub topology_file: PathBuf,
    /// A copy of the topology file's text, so `status` works even if the file changes or moves.
    pub topology: String,
    /// When `up` started, RFC 3339-like seconds since the epoch.
    pub created_unix: u64,
    /// The bootstrap, once started.
    pub bootstrap: Option<Process>,
    /// The nameserver, once started.
    pub nameserver: Option<Process>,
    /// The nodes started so far, by id.
    pub nodes: BTreeMap<NodeId, Process>,
    /// The image the containers run (Docker runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The address block of the lab's networks (Docker runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_block: Option<String>,
    /// How the lab's links are made (Docker runtime): Docker networks or veth pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_links: Option<crate::runtime::docker::plan::Links>,
    /// When a write counts as done (`majority`, `replicas` or `writer`), as `up` started the nodes: a
    /// restarted node gets the same.
    #[serde(default = "default_durability")]
    pub durability: Durability,
    /// The lab's owner id ([`new_owner`]): every Docker object of the lab carries it as the label
    /// `labctl.owner`, and `down` and rollback remove only objects that carry it. Empty in a
    /// record written before owners existed (its objects are then found by the lab's name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

/// A record written before durability `majority` existed: its nodes ran `replicas`.
fn default_durability() -> Durability {
    Durability::Replicas
}

impl Record {
    /// Every process in the record, with a label.
    pub fn processes(&self) -> Vec<(String, &Process)> {
        let mut all = Vec::new();
        if let Some(p) = &self.bootstrap {
            all.push(("bootstrap".to_string(), p));
        }
        if let Some(p) = &self.nameserver {
            all.push(("nameserver".to_string(), p));
        }
        for (id, p) in &self.nodes {
            all.push((format!("node {id}"), p));
        }
        all
    }
}

/// A lab's folder.
#[derive(Clone, Debug)]
pub struct LabDir {
    /// The lab's name.
    pub name: String,
    /// `<home>/labs/<name>`.
    pub path: PathBuf,
}

impl LabDir {
    /// The folder of lab `name` (which may not exist).
    pub fn new(name: &str) -> Result<LabDir> {
        Ok(LabDir {
            name: name.to_string(),
            path: home()?.join("labs").join(name),
        })
    }

    /// `lab.json`.
    pub fn record_path(&self) -> PathBuf {
        self.path.join("lab.json")
    }
    /// Logs.
    pub fn logs(&self) -> PathBuf {
        self.path.join("logs")
    }
    /// Ready files.
    pub fn run(&self) -> PathBuf {
        self.path.join("run")
    }

    /// The faults in force (`labctl fault`), kept so that `status` lists them and `fault heal
    /// --all` undoes them.
    pub fn faults_path(&self) -> PathBuf {
        self.path.join("faults.json")
    }

    /// The faults in force (none if the file is missing).
    pub fn load_faults(&self) -> Result<labctl_fault::InForce> {
        let path = self.faults_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is damaged; `labctl fault heal --all` cannot tell what to undo (remove \
                     the file to forget the faults it listed)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(labctl_fault::InForce::default())
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Write the faults in force atomically.
    pub fn save_faults(&self, faults: &labctl_fault::InForce) -> Result<()> {
        let path = self.faults_path();
        labctl_node::write_atomically(&path, &serde_json::to_vec_pretty(faults)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Hold the lab's lock until the returned guard drops: one `labctl fault` (or `down`) at a
    /// time changes a lab.
    pub fn lock(&self) -> Result<LabLock> {
        let path = self.path.join(".lock");
        let file = crate::lock::open(&path)?;
        crate::lock::wait_exclusive(&file)
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(LabLock { _file: file })
    }

    /// The lab-wide session key (so a login at one input node holds at every other).
    pub fn secret(&self) -> PathBuf {
        self.path.join("session.key")
    }

    /// Write a fresh random session key, readable by this user only.
    pub fn write_secret(&self) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
            .context("reading /dev/urandom for the session key")?;
        let path = self.secret();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(&key)?;
        Ok(())
    }

    /// Whether the lab exists.
    pub fn exists(&self) -> bool {
        self.record_path().exists()
    }

    /// The error for a lab that does not exist: what was looked for, and how to list labs.
    pub fn not_found(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "no lab named {:?} (nothing at {}); `labctl ls` lists labs",
            self.name,
            self.record_path().display()
        )
    }

    /// Read the record.
    pub fn load(&self) -> Result<Record> {
        let path = self.record_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(self.not_found()),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("reading lab {:?}'s record {}", self.name, path.display())
                })
            }
        };
        serde_json::from_str(&text).with_context(|| {
            format!(
                "the record {} is damaged; `labctl down {}` still stops what it can find",
                path.display(),
                self.name
            )
        })
    }

    /// Write the record atomically.
    pub fn save(&self, record: &Record) -> Result<()> {
        let path = self.record_path();
        labctl_node::write_atomically(&path, &serde_json::to_vec_pretty(record)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Create the folder and its sub-folders.
    pub fn create(&self) -> Result<()> {
        for dir in [self.path.clone(), self.logs(), self.run()] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(())
    }
}

/// A lab's lock, held while it lives (see [`LabDir::lock`]).
pub struct LabLock {
    _file: std::fs::File,
}

/// A fresh owner id: 16 random hex digits, made once per lab folder by `up`. Two homes (or two
/// users) may run labs of the same name on one Docker engine one after the other; the owner id
/// tells each `labctl` which containers and networks are its own.
pub fn new_owner() -> Result<String> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom for the lab's owner id")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The claim on a lab's name, held while `up` or `down` works on it (see [`claim`]).
pub struct NameClaim {
    _file: std::fs::File,
}

/// Claim lab `name` for `doing` (`starting`, `removing`) until the returned guard drops, so that
/// two `up`s of one name, or an `up` and a `down`, exclude each other. The lock file lives beside
/// the labs' folders (`<home>/labs/.<name>.lock`), not inside one, so it outlives a folder that
/// `down` deletes or a user removed by hand. Fails at once, saying who holds the name, when
/// another labctl does.
pub fn claim(name: &str, doing: &str) -> Result<NameClaim> {
    use std::io::{Read, Seek, Write};
    let root = home()?.join("labs");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let path = root.join(format!(".{name}.lock"));
    let mut file = crate::lock::open(&path)?;
    let claimed = crate::lock::try_exclusive(&file)
        .with_context(|| format!("cannot lock {}", path.display()))?;
    if !claimed {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let who = match holder.split_once(' ') {
            Some((pid, what)) => format!("{what} by another labctl (pid {pid})"),
            None => "in use by another labctl".to_string(),
        };
        bail!(
            "lab {name} is being {who} right now; wait until it has finished (or stop it), then \
             try again"
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{} {doing}", std::process::id())?;
    Ok(NameClaim { _file: file })
}

/// A daemon of this home's labs, found by its command line rather than a record (the record, or
/// the whole folder, may be gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrayDaemon {
    /// Its process id.
    pub pid: u32,
    /// The lab whose folder its command line names.
    pub lab: String,
    /// Which daemon: `bootstrap`, `nameserver` or `node` (its command line's word after
    /// `daemon`).
    pub kind: String,
}

/// [`stray_daemons`] off the async runtime's threads (it reads `/proc`, a file per process).
pub async fn stray_daemons_async() -> Vec<StrayDaemon> {
    tokio::task::spawn_blocking(stray_daemons)
        .await
        .unwrap_or_default()
}

/// Every live `labctl daemon` process of this user whose command line names a folder under
/// `<home>/labs/`: the process runtime gives each daemon paths in its lab's folder (ready file,
/// log, data), so a lab's daemons are found even when `rm -rf` took the folder. Containers' daemons
/// name paths inside their containers and are not found here (the engine's labels find those).
pub fn stray_daemons() -> Vec<StrayDaemon> {
    use std::os::unix::fs::MetadataExt;
    let Ok(root) = home().map(|h| h.join("labs")) else {
        return Vec::new();
    };
    let prefix = format!("{}/", root.display());
    let uid = rustix::process::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if entry.metadata().map(|m| m.uid()).ok() != Some(uid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).map(String::as_str) != Some("daemon") {
            continue;
        }
        let lab = args.iter().find_map(|arg| {
            let rest = arg.strip_prefix(&prefix)?;
            let name = rest.split('/').next()?;
            labctl_topology::valid_name(name).then(|| name.to_string())
        });
        if let Some(lab) = lab {
            if process_state_of(pid).is_some() {
                let kind = args.get(2).cloned().unwrap_or_default();
                found.push(StrayDaemon { pid, lab, kind });
            }
        }
    }
    found.sort_by_key(|d| (d.lab.clone(), d.pid));
    found
}

/// When process `pid` started (clock ticks since boot, `/proc/PID/stat`'s 22nd field), while it
/// lives and is not a zombie. With the pid, it names one process: a pid taken again later by
/// another process comes with another start time.
///
/// A process being killed loses its command line (its memory is freed) before its sockets close,
/// so "no longer one of ours by its command line" is not "gone": wait on this instead.
pub fn process_start(pid: u32) -> Option<u64> {
    process_stat(pid).map(|s| s.started)
}

/// What `/proc/PID/stat` says of a live process (not a zombie).
struct ProcStat {
    /// Stopped (SIGSTOP, or traced).
    stopped: bool,
    /// Clock ticks since boot when it started.
    started: u64,
}

/// `pid`'s [`ProcStat`], or `None` if it is gone or a zombie.
fn process_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name (which may hold anything): the state is field 3,
    // the start time field 22.
    let mut rest = stat.rsplit(')').next()?.split_whitespace();
    let state = rest.next()?;
    if matches!(state, "Z" | "X") {
        return None;
    }
    Some(ProcStat {
        stopped: matches!(state, "T" | "t"),
        started: rest.nth(22 - 4)?.parse().ok()?,
    })
}

/// Whether `pid` is alive and not a zombie: `Some(stopped)`.
fn process_state_of(pid: u32) -> Option<bool> {
    process_stat(pid).map(|s| s.stopped)
}

/// Every lab under the home folder, by name.
pub fn all_labs() -> Result<Vec<LabDir>> {
    let root = home()?.join("labs");
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    let mut labs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.path().join("lab.json").exists() {
            let name = entry.file_name().to_string_lossy().into_owned();
            labs.push(LabDir {
                name,
                path: entry.path(),
            });
        }
    }
    labs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(labs)
}

/// The lab a command means: the one named, or the only one there is.
pub fn resolve(name: Option<&str>) -> Result<LabDir> {
    if let Some(name) = name {
        return LabDir::new(name);
    }
    let labs = all_labs()?;
    match labs.len() {
        1 => Ok(labs.into_iter().next().expect("one lab")),
        0 => bail!("no lab is running; start one with `labctl up FILE`"),
        _ => bail!(
            "{} labs exist ({}); name one",
            labs.len(),
            labs.iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether `pid` is a live (not zombie) process that is one of this lab's daemons: its command
/// line mentions `daemon` and the lab's folder or name. Guards against PID reuse.
pub fn is_ours(pid: u32, lab: &LabDir) -> bool {
    process_state(pid, lab).is_some()
}

/// Whether `pid`, one of this lab's daemons, is stopped (SIGSTOP): `Some(true)` paused,
/// `Some(false)` running, `None` not a live daemon of the lab.
pub fn process_state(pid: u32, lab: &LabDir) -> Option<bool> {
    let stopped = process_state_of(pid)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let folder = lab.path.to_string_lossy();
    let ours = args.iter().any(|a| a == "daemon")
        && args
            .iter()
            .any(|a| a.contains(folder.as_ref()) || a == &lab.name);
    ours.then_some(stopped)
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The end of daemon `label`'s log and raw output in `lab`, for error messages about a daemon
/// that died or did not start.
pub fn last_words(lab: &LabDir, label: &str) -> String {
    let mut words = String::new();
    for ext in ["log", "out"] {
        let text = tail(&lab.logs().join(format!("{label}.{ext}")), 8);
        if !text.trim().is_empty() {
            words.push_str(&text);
            words.push('\n');
        }
    }
    if words.is_empty() {
        words.push_str("(nothing logged)");
    }
    words.trim_end().to_string()
}

/// The last `lines` lines of a file, for error messages about a daemon that died.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
