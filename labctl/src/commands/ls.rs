//! `labctl ls`: list labs: this home's (by their folders), this home's labs whose folders were
//! deleted but whose daemons or containers remain, and labs started from an exported compose
//! file (by their containers' labels; read-only: `docker compose down` removes them).

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::LsArgs;
use crate::lab::{all_labs, stray_daemons, LabDir};
use crate::runtime::{self, docker::EngineLab};
use crate::Outcome;

/// One lab, as `--json` prints it (one object per line).
#[derive(Serialize)]
struct Line {
    name: String,
    runtime: String,
    nodes: usize,
    /// Daemons of the lab (processes or containers).
    processes: usize,
    running: usize,
    /// `running`, `degraded`, `stopped`, `damaged` (its record is unreadable), `orphaned` (its
    /// folder is gone) or, for a compose lab, the same words as for labctl's own.
    state: &'static str,
    folder: String,
    /// Who started it: `labctl`, or `compose` (read-only to labctl).
    started_by: &'static str,
}

pub fn run(args: &LsArgs) -> Result<Outcome> {
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut lines = Vec::new();
    for lab in all_labs()? {
        lines.push(tokio.block_on(line(&lab)));
    }
    // The engine and /proc are asked once each.
    let strays = stray_daemons();
    let engine = tokio.block_on(runtime::docker::engine_labs());
    for name in crate::lifecycle::orphans_among(&strays, &engine)? {
        let daemons: Vec<_> = strays.iter().filter(|d| d.lab == name).collect();
        let containers = engine
            .iter()
            .find(|l| l.lab == name && l.owner.as_deref() != Some("compose") && l.folder.is_some());
        let (runtime, nodes, processes, running) = match containers {
            Some(c) => ("docker", c.nodes, c.containers, c.running),
            None => {
                let nodes = daemons.iter().filter(|d| d.kind == "node").count();
                ("process", nodes, daemons.len(), daemons.len())
            }
        };
        lines.push(Line {
            name: name.clone(),
            runtime: runtime.into(),
            nodes,
            processes,
            running,
            state: "orphaned",
            folder: format!("(deleted; `labctl down {name}` stops what is left)"),
            started_by: "labctl",
        });
    }
    for lab in &engine {
        if lab.owner.as_deref() == Some("compose") {
            lines.push(compose_line(lab));
        }
    }

    let mut stdout = std::io::stdout().lock();
    if args.json {
        for line in &lines {
            serde_json::to_writer(&mut stdout, line)?;
            writeln!(stdout)?;
        }
        return Ok(Outcome::Done);
    }
    if lines.is_empty() {
        writeln!(stdout, "no labs; start one with `labctl up FILE`")?;
        return Ok(Outcome::Done);
    }
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.runtime.clone(),
                l.nodes.to_string(),
                l.state.to_string(),
                format!(
                    "{}/{} {}",
                    l.running,
                    l.processes,
                    runtime::noun(&l.runtime, l.processes)
                ),
                l.folder.clone(),
            ]
        })
        .collect();
    stdout.write_all(
        crate::render::table(
            &["NAME", "RUNTIME", "NODES", "STATE", "RUNNING", "FOLDER"],
            &rows,
            &[false, false, true, false, false, false],
        )
        .as_bytes(),
    )?;
    Ok(Outcome::Done)
}

/// A lab of this home, by its folder.
async fn line(lab: &LabDir) -> Line {
    let folder = lab.path.display().to_string();
    let record = match lab.load() {
        Ok(record) => record,
        Err(_) => {
            return Line {
                name: lab.name.clone(),
                runtime: "?".into(),
                nodes: 0,
                processes: 0,
                running: 0,
                state: "damaged",
                folder,
                started_by: "labctl",
            }
        }
    };
    let alive = match runtime::for_record(&record) {
        Ok(runtime) => runtime.alive(lab, &record).await,
        Err(_) => Default::default(),
    };
    let running = alive.values().filter(|a| **a).count();
    Line {
        name: lab.name.clone(),
        runtime: record.runtime.clone(),
        nodes: record.nodes.len(),
        processes: alive.len(),
        running,
        state: state(running, alive.len()),
        folder,
        started_by: "labctl",
    }
}

/// A lab started from a compose file.
fn compose_line(lab: &EngineLab) -> Line {
    Line {
        name: lab.lab.clone(),
        runtime: "docker".into(),
        nodes: lab.nodes,
        processes: lab.containers,
        running: lab.running,
        state: state(lab.running, lab.containers),
        folder: format!(
            "(docker compose, project {}; read-only)",
            lab.project.as_deref().unwrap_or("?")
        ),
        started_by: "compose",
    }
}

fn state(running: usize, all: usize) -> &'static str {
    match running {
        0 => "stopped",
        r if r == all => "running",
        _ => "degraded",
    }
}
