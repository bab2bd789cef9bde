//! `labctl trace FILE`: an election told step by step (SPEC §9), from the simulator: on a
//! terminal one block per step (`--step` waits for Enter between them), and with `--html` one
//! self-contained replay page.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use labctl_classroom::html;
use labctl_classroom::story::Story;
use labctl_classroom::text;
use labctl_core::bounds::Bounds;
use labctl_sim::{Config, Simulation};
use labctl_topology::Topology;

use crate::cli::TraceArgs;
use crate::Outcome;

pub fn run(args: &TraceArgs) -> Result<Outcome> {
    if !args.file.exists() && crate::lab::LabDir::new(&args.file.display().to_string())?.exists() {
        bail!(
            "{} is a running lab: tracing a live lab is not built yet (the election of a topology \
             file is: `labctl trace topologies/ring6.toml`)",
            args.file.display()
        );
    }
    let topology = Topology::from_path(&args.file)?;
    let config = Config {
        seed: args.seed,
        delivery: args.delivery.delivery(),
        trace: true,
    };
    let run = Simulation::run(&topology, &config)
        .with_context(|| format!("simulating {}", args.file.display()))?;
    let adjacency = topology.adjacency();
    let story = Story::of(&run.trace, &adjacency);
    let bounds = Bounds::new(topology.node_count() as u64, topology.links().len() as u64);
    if let Some(out) = &args.html {
        let page = html::page(&topology.name, &story, &adjacency, &run.trace, bounds);
        std::fs::write(out, page).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "wrote {} ({} steps)",
            out.display(),
            story
                .elections
                .iter()
                .map(|e| 2 + 2 * e.iterations.len())
                .sum::<usize>()
        );
        return Ok(Outcome::Done);
    }
    let blocks = text::steps(&story, bounds);
    let wait = args.step && std::io::stdin().is_terminal();
    let mut stdout = std::io::stdout().lock();
    let count = blocks.len();
    for (i, block) in blocks.iter().enumerate() {
        writeln!(stdout, "── step {} of {count} ──", i + 1)?;
        stdout.write_all(block.as_bytes())?;
        if wait && i + 1 < count {
            write!(stdout, "(Enter for the next step) ")?;
            stdout.flush()?;
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line)? == 0 {
                break;
            }
        } else {
            writeln!(stdout)?;
        }
    }
    Ok(Outcome::Done)
}
