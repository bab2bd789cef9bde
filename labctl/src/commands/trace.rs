//! `labctl trace FILE|NAME`: an election told step by step (SPEC §9), from the simulator (a
//! topology file) or from a running lab's recorded trace (every epoch its nodes kept, so a
//! failover can be replayed): on a terminal one block per step (`--step` waits for Enter
//! between them), and with `--html` one self-contained replay page.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use labctl_classroom::html;
use labctl_classroom::layout::Layout;
use labctl_classroom::picture;
use labctl_classroom::story::Story;
use labctl_classroom::text;
use labctl_core::event::TraceLine;
use labctl_core::report::Adjacency;
use labctl_core::NodeId;
use labctl_sim::{Config, Simulation};
use labctl_topology::Topology;

use crate::cli::{DeliveryArg, TraceArgs};
use crate::lab::resolve;
use crate::live::Nodes;
use crate::Outcome;

pub fn run(args: &TraceArgs) -> Result<Outcome> {
    let (title, story, adjacency, trace, notes) = if !args.file.exists()
        && crate::lab::LabDir::new(&args.file.display().to_string())?.exists()
    {
        live(args)?
    } else {
        simulated(args)?
    };
    if story.elections.is_empty() {
        bail!(
            "{title}'s nodes recorded no election: they keep the trace of their last 16 epochs \
             in memory, and every node that answered restarted since (or none ran yet)"
        );
    }
    if args.json {
        let missing: std::collections::BTreeMap<String, &String> = notes
            .iter()
            .filter_map(|(id, note)| id.map(|id| (id.to_string(), note)))
            .collect();
        let out = serde_json::json!({ "elections": story.elections, "missing": missing });
        println!("{out}");
        return Ok(Outcome::Done);
    }
    let notes: Vec<String> = notes.into_iter().map(|(_, note)| note).collect();
    if let Some(out) = &args.html {
        let page = html::page(&title, &story, &adjacency, &trace, &notes);
        std::fs::write(out, page).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "wrote {} ({} elections, {} steps)",
            out.display(),
            story.elections.len(),
            story
                .elections
                .iter()
                .map(|e| 2 + 2 * e.iterations.len())
                .sum::<usize>()
        );
        return Ok(Outcome::Done);
    }
    if let Some(dir) = &args.svg {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let layout = Layout::of(&adjacency);
        let mut written = 0;
        for election in &story.elections {
            let pictures = election.pictures(&adjacency);
            let last = pictures.len() - 1;
            for (i, picture) in pictures.iter().enumerate() {
                let name = match i {
                    0 => "setup".to_string(),
                    i if i == last && election.shout.is_some() => "tree".to_string(),
                    i => format!(
                        "iteration-{}-{}",
                        i.div_ceil(2),
                        if i % 2 == 1 { "down" } else { "up" }
                    ),
                };
                let path = dir.join(format!("epoch-{}-{name}.svg", election.epoch));
                std::fs::write(&path, picture::svg(picture, &layout, 520))
                    .with_context(|| format!("writing {}", path.display()))?;
                written += 1;
            }
        }
        println!("wrote {written} pictures into {}", dir.display());
        return Ok(Outcome::Done);
    }
    let blocks = text::steps(&story);
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

/// What the story lacks: each node's record that is missing, and why.
type Notes = Vec<(Option<NodeId>, String)>;

/// The election of a topology file, from the simulator.
fn simulated(args: &TraceArgs) -> Result<(String, Story, Adjacency, Vec<TraceLine>, Notes)> {
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
    Ok((topology.name, story, adjacency, run.trace, Vec::new()))
}

/// Every election a running lab's nodes recorded (each node keeps its last epochs).
fn live(args: &TraceArgs) -> Result<(String, Story, Adjacency, Vec<TraceLine>, Notes)> {
    let name = args.file.display().to_string();
    if args.seed != 0 || args.delivery != DeliveryArg::Sync {
        bail!(
            "--seed and --delivery choose a simulated run; {name} is a running lab, whose trace \
             its nodes recorded"
        );
    }
    let lab = resolve(Some(&name))?;
    let record = lab.load()?;
    let topology = Topology::from_toml(
        &record.topology,
        &record.topology_file.display().to_string(),
    )?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let recorded = tokio.block_on(async { anyhow::Ok(Nodes::new(&record)?.recorded().await) })?;
    let notes: Notes = recorded
        .missing
        .iter()
        .map(|(&id, why)| {
            let note = format!(
                "node {id} did not answer ({why}): its record, kept in its memory, is missing, \
                 and its part of the story with it"
            );
            (Some(id), note)
        })
        .collect();
    for (_, note) in &notes {
        eprintln!("note: {note}");
    }
    let adjacency = topology.adjacency();
    let story = Story::of(&recorded.lines, &adjacency);
    Ok((record.name, story, adjacency, recorded.lines, notes))
}
