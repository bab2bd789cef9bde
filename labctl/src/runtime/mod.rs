//! Where a lab runs. Every runtime implements [`Runtime`]; commands pick one once and never branch
//! on which they have.

pub mod docker;
pub mod launch;
pub mod process;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use labctl_core::plane::Durability;
use labctl_core::NodeId;
use labctl_fault::NodeAction;
use labctl_topology::{Timing, Topology};

use crate::cli::RuntimeArg;
use crate::lab::{LabDir, Process, Record};

/// What every node of a lab is started with.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Heartbeats and suspicion.
    pub timing: Timing,
    /// When a chat write is acknowledged.
    pub durability: Durability,
}

impl NodeSettings {
    /// The settings a recorded lab's nodes were started with (a restarted node gets the same).
    pub fn of(record: &Record, topology: &Topology) -> NodeSettings {
        NodeSettings {
            timing: topology.timing,
            durability: record.durability,
        }
    }
}

/// What a daemon's process (or container) is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// It runs.
    Running,
    /// It is frozen (SIGSTOP, a paused container).
    Paused,
    /// It is gone (exited, killed, never started).
    Down,
}

impl ProcState {
    /// As reports say it: `running`, `paused`, `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcState::Running => "running",
            ProcState::Paused => "paused",
            ProcState::Down => "down",
        }
    }
}

/// What one of a runtime's daemons is called where people read it: `container` (Docker) or
/// `process`, plural unless `count` is 1.
pub fn noun(kind: &str, count: usize) -> &'static str {
    match (kind, count) {
        ("docker", 1) => "container",
        ("docker", _) => "containers",
        (_, 1) => "process",
        _ => "processes",
    }
}

/// `1 container`, `8 processes`.
pub fn count(count: usize, kind: &str) -> String {
    format!("{count} {}", noun(kind, count))
}

/// What `labctl shell` asks of a runtime: a shell in one node.
#[derive(Clone, Debug, Default)]
pub struct Shell {
    /// Environment variables to set (the node's: `LABCTL_LAB`, `LABCTL_NODE` …).
    pub env: Vec<(String, String)>,
    /// A command to run instead of an interactive shell (empty: the shell).
    pub command: Vec<String>,
    /// Run as root inside the node's container (Docker only).
    pub root: bool,
    /// Give the shell a terminal (stdin and stdout are one).
    pub tty: bool,
}

/// How long a daemon may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A place to run a lab's daemons.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// `process` or `docker`, as reports say it.
    fn kind(&self) -> &'static str;
    /// Make what every lab of this runtime needs and that is not part of starting one (the
    /// Docker image). `progress`: draw progress on stderr.
    async fn build(&self, _progress: bool) -> Result<()> {
        Ok(())
    }
    /// Get ready to start `topology` as `lab` (an image, networks …), before any daemon starts.
    /// What it creates is noted in `record`. `progress`: draw progress on stderr.
    async fn prepare(
        &self,
        _lab: &LabDir,
        _record: &mut Record,
        _topology: &Topology,
        _settings: &NodeSettings,
        _progress: bool,
    ) -> Result<()> {
        Ok(())
    }
    /// Start the bootstrap server; returns once it listens.
    async fn start_bootstrap(&self, lab: &LabDir) -> Result<Process>;
    /// Start the nameserver; returns once it listens.
    async fn start_nameserver(&self, lab: &LabDir) -> Result<Process>;
    /// Start one node per id, all at once. `started` is told of each node as soon as it exists
    /// (so the record knows it even if a later one fails); returns once every node listens.
    async fn start_nodes(
        &self,
        lab: &LabDir,
        ids: &[NodeId],
        bootstrap: &Process,
        nameserver: &Process,
        settings: &NodeSettings,
        started: &mut (dyn FnMut(u64, Process) -> Result<()> + Send),
    ) -> Result<BTreeMap<NodeId, Process>>;
    /// Stop everything the record names, whatever faults are in force (a paused daemon is
    /// thawed first). Idempotent: what is already gone is skipped.
    async fn stop(&self, lab: &LabDir, record: &Record) -> Result<()>;
    /// What each process of the record is doing, by label (`bootstrap`, `nameserver`,
    /// `node <id>`).
    async fn states(&self, lab: &LabDir, record: &Record) -> BTreeMap<String, ProcState>;
    /// Whether each process of the record is still there (a paused one is), by label.
    async fn alive(&self, lab: &LabDir, record: &Record) -> BTreeMap<String, bool> {
        self.states(lab, record)
            .await
            .into_iter()
            .map(|(label, state)| (label, state != ProcState::Down))
            .collect()
    }
    /// Carry out a fault on node `id` for real (SPEC §7): SIGKILL, SIGSTOP, SIGCONT, or a start
    /// on its own folder with its own ports (a running node is killed first). A restart notes the
    /// node's new process in `record`; returns once a restarted node listens.
    async fn node_fault(
        &self,
        lab: &LabDir,
        record: &mut Record,
        id: NodeId,
        action: NodeAction,
        settings: &NodeSettings,
    ) -> Result<()>;
    /// The command that opens `shell` in node `id` of the lab: with the node's environment
    /// variables, in the node's folder. The caller runs it in its own place (`exec`).
    fn shell(
        &self,
        lab: &LabDir,
        record: &Record,
        id: NodeId,
        shell: &Shell,
    ) -> Result<std::process::Command>;
    /// Refuse a lab name this runtime cannot take for `lab` (Docker: one the engine already holds
    /// for another home, a compose file, or a lab of this home whose folder was deleted), before
    /// anything is made. Processes share nothing across homes: any name is free.
    async fn refuse_taken(&self, _lab: &LabDir) -> Result<()> {
        Ok(())
    }
    /// Whether this runtime cuts a link itself (Docker: by setting the link's veth pair down, or disconnecting its network).
    /// If not, the nodes' fault filters do it.
    fn cuts_links(&self) -> bool {
        false
    }
    /// Cut (`cut`) or heal the link between nodes `a` and `b`, when [`Runtime::cuts_links`].
    async fn set_link_cut(
        &self,
        _lab: &LabDir,
        _record: &Record,
        _a: NodeId,
        _b: NodeId,
        _cut: bool,
    ) -> Result<()> {
        Ok(())
    }
}

/// The runtime `--runtime` asks for. `auto` is Docker when an engine answers, else processes.
pub async fn select(choice: RuntimeArg) -> Result<Box<dyn Runtime>> {
    Ok(match choice {
        RuntimeArg::Process => Box::new(process::ProcessRuntime),
        RuntimeArg::Docker => {
            let runtime = docker::DockerRuntime::default();
            docker::engine::connect().await?;
            Box::new(runtime)
        }
        RuntimeArg::Auto if docker::engine::answers().await => {
            Box::new(docker::DockerRuntime::default())
        }
        RuntimeArg::Auto => Box::new(process::ProcessRuntime),
    })
}

/// The runtime that started a recorded lab.
pub fn for_record(record: &Record) -> Result<Box<dyn Runtime>> {
    match record.runtime.as_str() {
        "process" => Ok(Box::new(process::ProcessRuntime)),
        "docker" => Ok(Box::new(docker::DockerRuntime::default())),
        other => anyhow::bail!(
            "lab {} uses runtime {other:?}, which this labctl does not know",
            record.name
        ),
    }
}
