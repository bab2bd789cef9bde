//! `labctl up FILE`: start a live lab, wait for it to converge, report, and leave it running.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use labctl_topology::Topology;

use crate::cli::UpArgs;
use crate::lab::LabDir;
use crate::live::Progress;
use crate::runtime;
use crate::{lifecycle, Outcome};

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
    tokio.block_on(runtime.refuse_taken(&lab))?;
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
        durability: args.durability.or(topology.durability).unwrap_or_default(),
    };
    let progress = Progress::new(topology.node_count() as u64, terminal);
    let started = tokio.block_on(async {
        tokio::select! {
            report = lifecycle::start(
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
            let kept = tokio.block_on(lifecycle::roll_back(&lab, runtime.as_ref(), true));
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
            undone = lifecycle::roll_back(lab, runtime, false) => Some(undone),
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
