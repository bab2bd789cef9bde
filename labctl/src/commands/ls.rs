//! `labctl ls`: list labs.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::LsArgs;
use crate::lab::all_labs;
use crate::runtime;
use crate::Outcome;

#[derive(Serialize)]
struct Line {
    name: String,
    runtime: String,
    nodes: usize,
    processes: usize,
    running: usize,
    state: &'static str,
    folder: String,
}

pub fn run(args: &LsArgs) -> Result<Outcome> {
    let mut stdout = std::io::stdout().lock();
    let labs = all_labs()?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if labs.is_empty() && !args.json {
        writeln!(stdout, "no labs; start one with `labctl up FILE`")?;
    }
    for lab in labs {
        let line = match lab.load() {
            Ok(record) => {
                let alive = tokio.block_on(runtime::for_record(&record)?.alive(&lab, &record));
                let running = alive.values().filter(|a| **a).count();
                Line {
                    name: lab.name.clone(),
                    runtime: record.runtime.clone(),
                    nodes: record.nodes.len(),
                    processes: alive.len(),
                    running,
                    state: match running {
                        0 => "stopped",
                        r if r == alive.len() => "running",
                        _ => "degraded",
                    },
                    folder: lab.path.display().to_string(),
                }
            }
            Err(_) => Line {
                name: lab.name.clone(),
                runtime: "?".into(),
                nodes: 0,
                processes: 0,
                running: 0,
                state: "damaged",
                folder: lab.path.display().to_string(),
            },
        };
        if args.json {
            serde_json::to_writer(&mut stdout, &line)?;
            writeln!(stdout)?;
        } else {
            writeln!(
                stdout,
                "{:<24} {:<8} {:>3} nodes  {:<9} {}/{} processes  {}",
                line.name,
                line.runtime,
                line.nodes,
                line.state,
                line.running,
                line.processes,
                line.folder
            )?;
        }
    }
    Ok(Outcome::Done)
}
