//! `labctl status [NAME]`: report on a running lab, read live from its nodes.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use labctl_topology::Topology;

use crate::cli::StatusArgs;
use crate::lab::{resolve, LabDir};
use crate::live::{self, LiveReport, Nodes};
use crate::runtime::{self, ProcState};
use crate::Outcome;

pub fn run(args: &StatusArgs) -> Result<Outcome> {
    let lab = resolve(args.name.as_deref())?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio.block_on(async {
        let mut stdout = std::io::stdout().lock();
        let tty = std::io::stdout().is_terminal();
        loop {
            let report = once(&lab).await?;
            if args.json {
                serde_json::to_writer(&mut stdout, &report)?;
                writeln!(stdout)?;
            } else {
                if args.watch && tty {
                    // Clear the screen and go home, like `watch`.
                    write!(stdout, "\x1b[2J\x1b[H")?;
                }
                stdout.write_all(crate::render::live(&report).as_bytes())?;
            }
            stdout.flush()?;
            if !args.watch {
                return Ok(if report.report.converged {
                    Outcome::Done
                } else {
                    Outcome::ChecksFailed
                });
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(Outcome::Done),
            }
        }
    })
}

/// One report on `lab`: one of this home, or (read-only) one started from a compose file.
pub async fn once(lab: &LabDir) -> Result<LiveReport> {
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
