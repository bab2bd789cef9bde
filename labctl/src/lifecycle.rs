//! A lab's life, as the commands and the chaos runner share it: start one (and roll a partial
//! start back), read its live report, remove it (with or without its folder). The commands in
//! `commands/` parse arguments and print; they and `chaos`, `fault` and `failover` all call here,
//! and no module outside `commands/` imports a command.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use labctl_core::NodeId;
use labctl_proto::bootstrap::bootstrap_client::BootstrapClient;
use labctl_proto::bootstrap::{Link, Topology as TopologyMessage};
use labctl_topology::Topology;

use crate::lab::{home, now_unix, stray_daemons_async, LabDir, Record, StrayDaemon};
use crate::live::{self, LiveReport, Nodes, Progress};
use crate::runtime::{self, docker::Selector, ProcState};

/// Undo a partial `up`: stop and remove everything of `lab` (by its record, its daemons' command
/// lines, and its owner's labels in the engine), then its folder. With `keep_logs`, the logs are
/// moved to `<home>/failed/<name>/` first, and that place is returned.
pub async fn roll_back(
    lab: &LabDir,
    runtime: &dyn runtime::Runtime,
    keep_logs: bool,
) -> Result<Option<std::path::PathBuf>> {
    if let Ok(record) = lab.load() {
        runtime.stop(lab, &record).await?;
    }
    // Daemons spawned but not yet on record.
    runtime::process::stop_strays(lab).await;
    let mut kept = None;
    if keep_logs && lab.logs().exists() {
        let place = crate::lab::home()?.join("failed").join(&lab.name);
        let _ = std::fs::remove_dir_all(&place);
        if let Some(parent) = place.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        if std::fs::rename(lab.logs(), &place).is_ok() {
            kept = Some(place);
        }
    }
    if lab.path.exists() {
        std::fs::remove_dir_all(&lab.path)
            .with_context(|| format!("removing {}", lab.path.display()))?;
    }
    Ok(kept)
}

/// Stop at `stage` while `LABCTL_HOLD_AT` names it (at most two minutes): a testing aid that lets
/// the rollback tests interrupt `up` at each stage, announced on stderr.
pub async fn hold(stage: &str) {
    if std::env::var("LABCTL_HOLD_AT").is_ok_and(|v| v == stage) {
        eprintln!("labctl: holding at stage {stage} (LABCTL_HOLD_AT)");
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
}

/// Start lab `lab` (its folder must not exist) from `topology`, read from `file`, and wait up to
/// `timeout` for it to converge; returns the last report (converged or not). On a failure to
/// start, what started is left for the caller to remove (see `roll_back`): its record on disk
/// names it.
pub async fn start(
    lab: &LabDir,
    topology: &Topology,
    file: &std::path::Path,
    runtime: &dyn runtime::Runtime,
    settings: &runtime::NodeSettings,
    timeout: Duration,
    progress: &Progress,
) -> Result<live::LiveReport> {
    let terminal = std::io::stdout().is_terminal();
    let started = Instant::now();
    let name = &lab.name;
    lab.create()?;
    let mut record = Record {
        name: name.clone(),
        runtime: runtime.kind().to_string(),
        topology_file: file.to_path_buf(),
        topology: std::fs::read_to_string(file)
            .with_context(|| format!("reading {}", file.display()))?,
        created_unix: now_unix(),
        durability: settings.durability,
        owner: crate::lab::new_owner()?,
        ..Record::default()
    };
    lab.save(&record)?;
    lab.write_secret()?;
    runtime
        .prepare(lab, &mut record, topology, settings, terminal)
        .await?;
    hold("prepare").await;
    deploy(lab, &mut record, runtime, topology, settings, progress).await?;
    hold("nodes").await;
    live::wait_converged(
        lab,
        &record,
        runtime,
        &topology.adjacency(),
        started,
        timeout,
        progress,
    )
    .await
}

/// Start the bootstrap, give it the topology, start the nameserver and the nodes.
async fn deploy(
    lab: &LabDir,
    record: &mut Record,
    runtime: &dyn runtime::Runtime,
    topology: &Topology,
    settings: &runtime::NodeSettings,
    progress: &Progress,
) -> Result<()> {
    let bootstrap = runtime.start_bootstrap(lab).await?;
    record.bootstrap = Some(bootstrap.clone());
    lab.save(record)?;
    hold("bootstrap").await;
    load_topology(&bootstrap.grpc, &record.name, topology).await?;

    let nameserver = runtime.start_nameserver(lab).await?;
    record.nameserver = Some(nameserver.clone());
    lab.save(record)?;
    hold("nameserver").await;

    let ids = topology.ids();
    let mut ready = 0;
    let mut started = |id: NodeId, process: crate::lab::Process| -> Result<()> {
        if !process.grpc.is_empty() {
            ready += 1;
            progress.started(ready);
        }
        record.nodes.insert(id, process);
        lab.save(record)
    };
    runtime
        .start_nodes(lab, &ids, &bootstrap, &nameserver, settings, &mut started)
        .await?;
    Ok(())
}

/// Hand the topology to the bootstrap, so nodes learn their neighbours from it.
async fn load_topology(address: &str, lab: &str, topology: &Topology) -> Result<()> {
    let mut client = BootstrapClient::connect(format!("http://{address}"))
        .await
        .with_context(|| format!("connecting to the bootstrap at {address}"))?;
    let message = TopologyMessage {
        lab: lab.to_string(),
        nodes: topology.ids(),
        links: topology
            .links()
            .into_iter()
            .map(|(a, b)| Link { a, b })
            .collect(),
    };
    client
        .load_topology(message)
        .await
        .map_err(|s| anyhow::anyhow!("the bootstrap refused the topology: {}", s.message()))?;
    Ok(())
}

/// One report on `lab`: one of this home, or (read-only) one started from a compose file.
pub async fn report(lab: &LabDir) -> Result<LiveReport> {
    let started = Instant::now();
    let record = match lab.load() {
        Ok(record) => record,
        Err(e) if !lab.path.exists() => match runtime::docker::compose_record(&lab.name).await {
            Ok(Some(record)) => record,
            _ => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let topology = Topology::from_toml(
        &record.topology,
        &record.topology_file.display().to_string(),
    )?;
    let runtime = runtime::for_record(&record)?;
    let states = runtime.states(lab, &record).await;
    // Ask only the nodes that run: a paused one never answers (the call waits out its timeout)
    // and a dead container's address does not even refuse the connection.
    let mut nodes = Nodes::new(&record)?;
    for &id in record.nodes.keys() {
        if states.get(&format!("node {id}")) != Some(&ProcState::Running) {
            nodes = nodes.without(id);
        }
    }
    let answers = nodes.statuses().await;
    let faults = lab.load_faults()?;
    Ok(live::report(
        lab,
        &record,
        runtime.kind(),
        &topology.adjacency(),
        &answers,
        &states,
        &faults,
        started.elapsed(),
    ))
}

/// Stop everything the lab's record names, then delete its folder. Works on a lab whose
/// processes died, and (stopping what its daemons' command lines and its containers' labels
/// show) on one whose record is damaged.
pub async fn remove(lab: &LabDir) -> Result<()> {
    match lab.load() {
        Ok(record) => {
            let runtime = runtime::for_record(&record)?;
            runtime.stop(lab, &record).await?;
            let left: Vec<String> = runtime
                .alive(lab, &record)
                .await
                .into_iter()
                .filter(|(_, alive)| *alive)
                .map(|(label, _)| label)
                .collect();
            if !left.is_empty() {
                bail!(
                    "lab {}: {} would not stop; its folder {} is kept",
                    lab.name,
                    left.join(", "),
                    lab.path.display()
                );
            }
        }
        Err(_) => {
            remove_orphan(lab).await?;
        }
    }
    std::fs::remove_dir_all(&lab.path).with_context(|| format!("removing {}", lab.path.display()))
}

/// Stop the daemons and remove the containers of `lab` found without its record. Returns whether
/// there was anything.
pub async fn remove_orphan(lab: &LabDir) -> Result<bool> {
    let daemons = stray_daemons_async()
        .await
        .into_iter()
        .any(|d| d.lab == lab.name);
    if daemons {
        runtime::process::stop_strays(lab).await;
    }
    let containers = runtime::docker::sweep(&Selector::orphan(lab)).await?;
    Ok(daemons || containers)
}

/// The names of this home's labs whose folders are gone but whose daemons or containers remain.
pub async fn orphans() -> Result<BTreeSet<String>> {
    let strays = stray_daemons_async().await;
    let engine = runtime::docker::engine_labs().await;
    orphans_among(&strays, &engine)
}

/// [`orphans`], from daemons and engine labs already listed.
pub fn orphans_among(
    strays: &[StrayDaemon],
    engine: &[runtime::docker::EngineLab],
) -> Result<BTreeSet<String>> {
    let root = home()?.join("labs");
    let mut names: BTreeSet<String> = strays.iter().map(|d| d.lab.clone()).collect();
    for lab in engine {
        let folder = lab.folder.as_deref().map(std::path::Path::new);
        if folder.is_some_and(|f| f.parent() == Some(root.as_path())) {
            names.insert(lab.lab.clone());
        }
    }
    names.retain(|name| !root.join(name).join("lab.json").exists());
    Ok(names)
}
