//! `labctl sim FILE`: run the election and the tree in the deterministic simulator.

use std::io::Write;

use anyhow::{Context, Result};
use labctl_core::Report;
use labctl_sim::{Config, Delivery, Simulation};
use labctl_topology::Topology;
use serde::{Deserialize, Serialize};

use crate::cli::{DeliveryArg, SimArgs};
use crate::render;
use crate::Outcome;

/// The report of SPEC §7 plus what only a simulation knows.
#[derive(Debug, Serialize, Deserialize)]
pub struct SimReport {
    #[serde(flatten)]
    pub report: Report,
    /// The seed of the run.
    pub seed: u64,
    /// `sync` or `async`.
    pub delivery: Delivery,
    /// Virtual time when the network went quiet (rounds, under `sync`).
    pub virtual_time: u64,
    /// Messages delivered.
    pub delivered: u64,
}

pub fn run(args: &SimArgs) -> Result<Outcome> {
    let topology = Topology::from_path(&args.file)?;
    let config = Config {
        seed: args.seed,
        delivery: match args.delivery {
            DeliveryArg::Sync => Delivery::Sync,
            DeliveryArg::Async => Delivery::Async,
        },
        trace: args.trace,
    };
    let run = Simulation::run(&topology, &config)
        .with_context(|| format!("simulating {}", args.file.display()))?;
    let outcome = if run.report.failed_checks().next().is_none() {
        Outcome::Done
    } else {
        Outcome::ChecksFailed
    };

    let mut stdout = std::io::stdout().lock();
    if args.trace {
        for line in &run.trace {
            serde_json::to_writer(&mut stdout, line)?;
            writeln!(stdout)?;
        }
    }
    let report = SimReport {
        report: run.report,
        seed: config.seed,
        delivery: config.delivery,
        virtual_time: run.time,
        delivered: run.delivered,
    };
    if args.json {
        serde_json::to_writer(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        let setting = match config.delivery {
            Delivery::Sync => "synchronous rounds".to_string(),
            Delivery::Async => format!("random delays, seed {}", config.seed),
        };
        let header = format!(
            "simulated, {setting}: {} messages, quiet after {} {}",
            report.delivered,
            report.virtual_time,
            if config.delivery == Delivery::Sync {
                "rounds"
            } else {
                "time units"
            }
        );
        let text = render::report(&report.report, &header);
        if args.trace {
            // Keep stdout pure JSON Lines; the summary is for the person watching.
            std::io::stderr().write_all(text.as_bytes())?;
        } else {
            stdout.write_all(text.as_bytes())?;
        }
    }
    Ok(outcome)
}
