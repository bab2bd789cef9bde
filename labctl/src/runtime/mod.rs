//! Where a lab runs. Every runtime implements [`Runtime`]; commands pick one once and never branch
//! on which they have.

pub mod docker;
pub mod process;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use labctl_topology::Timing;

use labctl_topology::Topology;

use crate::cli::RuntimeArg;
use crate::lab::{LabDir, Process, Record};

/// What every node of a lab is started with.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Heartbeats and suspicion.
    pub timing: Timing,
    /// `replicas` or `writer`.
    pub durability: String,
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
        ids: &[u64],
        bootstrap: &Process,
        nameserver: &Process,
        settings: &NodeSettings,
        started: &mut (dyn FnMut(u64, Process) -> Result<()> + Send),
    ) -> Result<BTreeMap<u64, Process>>;
    /// Stop everything the record names. Idempotent: what is already gone is skipped.
    async fn stop(&self, lab: &LabDir, record: &Record) -> Result<()>;
    /// Whether each process of the record is still running, by label.
    async fn alive(&self, lab: &LabDir, record: &Record) -> BTreeMap<String, bool>;
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
