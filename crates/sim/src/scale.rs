//! How Yo-Yo's cost grows: one clean election on random graphs of growing size, each measured
//! against the algorithm's bounds (SPEC §3.2): iterations against ⌈log₂ n⌉ + 1, messages against
//! 2m(⌈log₂ n⌉ + 2). `labctl sim --scale` prints the table and draws it.
//!
//! Every graph is `[generate] shape = "random"` with the given average degree, shuffled ids and
//! a fixed seed, and runs under async delivery with a fixed seed: the same sizes give the same
//! table (but for the wall time and memory, which are this machine's).

use std::time::Instant;

use labctl_core::Bounds;
use labctl_topology::{Generate, IdOrder, Shape, Topology};
use serde::Serialize;

use crate::{Config, Delivery, SimError, Simulation};

/// The graphs' seed and the delays' seed.
pub const SEED: u64 = 1;

/// One size's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Nodes.
    pub n: u64,
    /// Links.
    pub m: u64,
    /// Yo-Yo's iterations.
    pub iterations: u32,
    /// Their bound, ⌈log₂ n⌉ + 1.
    pub iteration_bound: u32,
    /// Yo-Yo's messages, setup included.
    pub messages: u64,
    /// Their bound, 2m(⌈log₂ n⌉ + 2).
    pub message_bound: u64,
    /// SHOUT+'s messages (exactly 2m).
    pub tree_messages: u64,
    /// The simulation's wall time, in seconds (the graph's generation not included).
    pub seconds: f64,
    /// The process's peak resident memory during this size's run, in bytes, when known.
    pub peak_bytes: Option<u64>,
    /// Every check of the run's report passed.
    pub checks_passed: bool,
}

/// The generator of the random graph of `n` nodes and average degree `degree` the table uses.
fn spec(n: usize, degree: f64) -> Generate {
    Generate {
        shape: Shape::Random { n, degree },
        ids: IdOrder::Shuffle,
        seed: SEED,
    }
}

/// The node and link counts of [`graph`]`(n, degree)`, checked, without building it.
pub fn counts(n: usize, degree: f64) -> Result<(usize, usize), labctl_topology::TopologyError> {
    Topology::generated_counts(&format!("scale-{n}"), &spec(n, degree))
}

/// The random graph of `n` nodes and average degree `degree` the table uses.
pub fn graph(n: usize, degree: f64) -> Result<Topology, labctl_topology::TopologyError> {
    Topology::generate(&format!("scale-{n}"), &spec(n, degree))
}

/// Run one election on `topology` under async delivery and measure it (but its memory, which
/// the caller measures around this call, when it can), telling `observe` how it goes. The
/// topology is given back as soon as the simulator holds the graph.
pub fn measure(
    topology: Topology,
    observe: &mut dyn FnMut(&crate::Progress),
) -> Result<Row, SimError> {
    let config = Config {
        seed: SEED,
        delivery: Delivery::Async,
        trace: false,
    };
    let started = Instant::now();
    let (n, m) = (topology.node_count() as u64, topology.link_count() as u64);
    let run = Simulation::run_topology(topology, &config, observe)?;
    let seconds = started.elapsed().as_secs_f64();
    let bounds = Bounds::new(n, m);
    let report = &run.report;
    let checks_passed = report.failed_checks().next().is_none();
    Ok(Row {
        n,
        m,
        iterations: report.iterations,
        iteration_bound: bounds.iterations,
        messages: report.messages.election,
        message_bound: bounds.election,
        tree_messages: report.messages.tree,
        seconds,
        peak_bytes: None,
        checks_passed,
    })
}
