//! `labctl up FILE`: start a live lab, wait for it to converge, report, and leave it running.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use labctl_proto::bootstrap::bootstrap_client::BootstrapClient;
use labctl_proto::bootstrap::{Link, Topology as TopologyMessage};
use labctl_topology::Topology;

use crate::cli::UpArgs;
use crate::lab::{now_unix, LabDir, Record};
use crate::live::{self, Progress};
use crate::runtime;
use crate::Outcome;

pub fn run(args: &UpArgs) -> Result<Outcome> {
    let topology = Topology::from_path(&args.file)?;
    let name = args.name.clone().unwrap_or_else(|| topology.name.clone());
    if !labctl_topology::valid_name(&name) {
        bail!("--name {name:?} is not a valid lab name: use [a-z0-9][a-z0-9-]*, at most 63 characters");
    }
    let lab = LabDir::new(&name)?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if lab.exists() {
        let record = lab.load()?;
        let alive = tokio.block_on(runtime::for_record(&record)?.alive(&lab, &record));
        let running = alive.values().filter(|a| **a).count();
        if running > 0 {
            bail!(
                "lab {name} is already running ({running} processes); `labctl down {name}` stops it, \
                 or start this topology under another name with --name"
            );
        }
        bail!(
            "lab {name} exists but none of its processes runs (a crash?); `labctl down {name}` \
             removes it, or use --name"
        );
    }
    let runtime = tokio.block_on(runtime::select(args.runtime))?;
    if !args.force {
        if let Some(machine) = crate::guard::Machine::here() {
            crate::guard::check(topology.node_count() as u64, runtime.kind(), &machine)
                .map_err(|why| anyhow::anyhow!("lab {name} would not fit this machine: {why}"))?;
        }
    }

    let terminal = std::io::stdout().is_terminal();
    // The image (Docker) is made before the clock starts: it is not part of starting a lab.
    tokio.block_on(runtime.build(terminal))?;
    let settings = runtime::NodeSettings {
        timing: topology.timing,
        // The flag, else the topology file's `[lab] durability`, else majority.
        durability: args
            .durability
            .map(crate::cli::DurabilityArg::durability)
            .or(topology.durability)
            .unwrap_or_default()
            .to_string(),
    };
    let progress = Progress::new(topology.node_count() as u64, terminal);
    let report = tokio.block_on(start(
        &lab,
        &topology,
        &args.file,
        runtime.as_ref(),
        &settings,
        Duration::from_secs(args.timeout),
        &progress,
    ));
    progress.finish();
    let report = report?;

    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        stdout.write_all(crate::render::live(&report).as_bytes())?;
        if report.report.converged {
            writeln!(stdout, "\nThe lab keeps running: `labctl status {name}` reports on it, `labctl down {name}` removes it.")?;
        }
    }
    if !report.report.converged {
        writeln!(
            std::io::stderr(),
            "labctl: lab {name} did not converge within {} s; it is still running for inspection \
             (logs in {}); `labctl down {name}` removes it",
            args.timeout,
            lab.logs().display()
        )?;
        return Ok(Outcome::ChecksFailed);
    }
    Ok(if report.report.failed_checks().next().is_some() {
        Outcome::ChecksFailed
    } else {
        Outcome::Done
    })
}

/// Start lab `lab` (its folder must not exist) from `topology`, read from `file`, and wait up to
/// `timeout` for it to converge; returns the last report (converged or not). A failure to start
/// stops what started and keeps the folder, whose logs say what went wrong.
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
        durability: settings.durability.clone(),
        ..Record::default()
    };
    lab.save(&record)?;
    lab.write_secret()?;
    let prepared = runtime
        .prepare(lab, &mut record, topology, settings, terminal)
        .await;
    let result = match prepared {
        Ok(()) => deploy(lab, &mut record, runtime, topology, settings, progress).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        // Stop what started; keep the folder (its logs say what went wrong).
        let _ = runtime.stop(lab, &record).await;
        return Err(e.context(format!(
            "starting lab {name} failed; its logs are in {} (`labctl down {name}` removes them)",
            lab.logs().display()
        )));
    }
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
    load_topology(&bootstrap.grpc, &record.name, topology).await?;

    let nameserver = runtime.start_nameserver(lab).await?;
    record.nameserver = Some(nameserver.clone());
    lab.save(record)?;

    let ids = topology.ids();
    let mut ready = 0;
    let mut started = |id: u64, process: crate::lab::Process| -> Result<()> {
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
