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
    // One `up` or `down` of a name at a time, whichever comes first.
    let _claim = crate::lab::claim(&name, "started")?;
    let lab = LabDir::new(&name)?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    refuse_existing(&tokio, &lab)?;
    let runtime = tokio.block_on(runtime::select(args.runtime))?;
    if !args.force {
        if let Some(machine) = crate::guard::Machine::here() {
            crate::guard::check(topology.node_count() as u64, runtime.kind(), &machine)
                .map_err(|why| anyhow::anyhow!("lab {name} would not fit this machine: {why}"))?;
        }
    }

    let terminal = std::io::stdout().is_terminal();
    // The image (Docker) is made before the clock starts: it is not part of starting a lab.
    let built = tokio.block_on(async {
        tokio::select! {
            built = runtime.build(terminal) => Some(built),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match built {
        Some(built) => built?,
        None => {
            eprintln!(
                "labctl: interrupted while making the lab image; nothing of lab {name} was started"
            );
            return Ok(Outcome::Interrupted);
        }
    }
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
    let started = tokio.block_on(async {
        tokio::select! {
            report = start(
                &lab,
                &topology,
                &args.file,
                runtime.as_ref(),
                &settings,
                Duration::from_secs(args.timeout),
                &progress,
            ) => Some(report),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    progress.finish();
    let report = match started {
        Some(Ok(report)) => report,
        Some(Err(e)) => {
            eprintln!("labctl: starting lab {name} failed; removing what it started…");
            let kept = tokio.block_on(roll_back(&lab, runtime.as_ref(), true));
            return Err(match kept {
                Ok(Some(logs)) => e.context(format!(
                    "starting lab {name} failed; everything it started was removed (its logs are \
                     kept in {})",
                    logs.display()
                )),
                Ok(None) => e.context(format!(
                    "starting lab {name} failed; everything it started was removed"
                )),
                Err(left) => e.context(format!(
                    "starting lab {name} failed, and removing what it started failed too \
                     ({left:#}); `labctl down {name}` removes the rest"
                )),
            });
        }
        None => return Ok(interrupted(&tokio, &lab, runtime.as_ref())),
    };

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

/// Refuse to start `lab` over one that exists: its folder, or daemons of a lab of that name
/// whose folder was deleted.
fn refuse_existing(tokio: &tokio::runtime::Runtime, lab: &LabDir) -> Result<()> {
    let name = &lab.name;
    if lab.exists() {
        let record = lab.load()?;
        let runtime = runtime::for_record(&record)?;
        let alive = tokio.block_on(runtime.alive(lab, &record));
        let running = alive.values().filter(|a| **a).count();
        if running > 0 {
            bail!(
                "lab {name} is already running ({}); `labctl down {name}` stops it, or start this \
                 topology under another name with --name",
                runtime::count(running, runtime.kind())
            );
        }
        bail!(
            "lab {name} exists but none of its {} runs (a crash?); `labctl down {name}` removes \
             it, or use --name",
            runtime::noun(runtime.kind(), 2)
        );
    }
    let strays: Vec<String> = crate::lab::stray_daemons()
        .into_iter()
        .filter(|d| &d.lab == name)
        .map(|d| d.pid.to_string())
        .collect();
    if !strays.is_empty() {
        bail!(
            "daemons of an earlier lab {name} whose folder was deleted still run (pids {}); \
             `labctl down {name}` stops them, or use --name",
            strays.join(", ")
        );
    }
    Ok(())
}

/// Ctrl-C stopped `up`: remove what it started, and say so. A second Ctrl-C leaves at once,
/// saying what is left.
fn interrupted(
    tokio: &tokio::runtime::Runtime,
    lab: &LabDir,
    runtime: &dyn runtime::Runtime,
) -> Outcome {
    let name = &lab.name;
    eprintln!(
        "labctl: interrupted; removing what lab {name} started (Ctrl-C again leaves it as it is)…"
    );
    let undone = tokio.block_on(async {
        tokio::select! {
            undone = roll_back(lab, runtime, false) => Some(undone),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match undone {
        Some(Ok(_)) => eprintln!("labctl: lab {name} was removed; nothing of it is left"),
        Some(Err(e)) => eprintln!(
            "labctl: removing lab {name} failed ({e:#}); `labctl down {name}` removes the rest"
        ),
        None => {
            let left = lab
                .load()
                .ok()
                .map(|record| {
                    let alive = tokio.block_on(runtime.alive(lab, &record));
                    let running = alive.values().filter(|a| **a).count();
                    format!(
                        "{} still run, and ",
                        runtime::count(running, runtime.kind())
                    )
                })
                .unwrap_or_default();
            eprintln!(
                "labctl: interrupted again; leaving at once: {left}its folder {} remains; \
                 `labctl down {name}` removes it",
                lab.path.display()
            );
        }
    }
    Outcome::Interrupted
}

/// Undo a partial `up`: stop and remove everything of `lab` (by its record, its daemons' command
/// lines, and its owner's labels in the engine), then its folder. With `keep_logs`, the logs are
/// moved to `<home>/failed/<name>/` first, and that place is returned.
async fn roll_back(
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
async fn hold(stage: &str) {
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
        durability: settings.durability.clone(),
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
