//! The benchmark: `labctl sim` on a random graph of 100,000 nodes, average degree 4,
//! shuffled ids, async delivery. Goal: ≤ 5 s wall time and ≤ 1 GiB peak memory on 2 cores.
//!
//! Run with `cargo bench -p labctl-sim --bench sim100k`. It loads `topologies/bench-random100k.toml`
//! (the graph the CLI command in BENCHMARKS.md uses), runs the simulation `RUNS` times and prints
//! each run's wall time, the messages per second and the process's peak resident memory.
//! `SIM_BENCH_N=1000000` runs the same generator at another size instead (issue 14's goal: 1M
//! nodes in ≤ 5 s and ≤ 1 GiB), and `SIM_BENCH_RUNS` sets the number of runs. The resident
//! memory at each stage of the election goes to stderr: where the peak comes from.

use std::path::PathBuf;
use std::time::Instant;

use labctl_sim::{Config, Delivery, Simulation};
use labctl_topology::Topology;

const RUNS: usize = 3;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters like libtest would: ignore.
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topologies/bench-random100k.toml");
    let started = Instant::now();
    let topology = match std::env::var("SIM_BENCH_N") {
        Ok(n) => Topology::from_toml(
            &format!(
                "name = \"bench-random{n}\"\n[generate]\nshape = \"random\"\nn = {n}\n\
                 degree = 4\nids = \"shuffle\"\nseed = 1\n"
            ),
            "SIM_BENCH_N",
        )
        .expect("SIM_BENCH_N is a node count"),
        Err(_) => Topology::from_path(&path).expect("the benchmark topology loads"),
    };
    println!(
        "sim100k: {} nodes, {} links, loaded in {:.0} ms",
        topology.node_count(),
        topology.link_count(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let runs = std::env::var("SIM_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(RUNS);
    for run in 1..=runs {
        let config = Config {
            seed: run as u64,
            delivery: Delivery::Async,
            trace: false,
        };
        // As `labctl sim` runs it: the simulator builds the graph's rows and gives the topology
        // up (the benchmark keeps its own, for the next run).
        let given = topology.clone();
        let started = Instant::now();
        let mut last = None;
        let result = Simulation::run_topology(given, &config, &mut |p| {
            if last != Some(p.stage) {
                last = Some(p.stage);
                eprintln!(
                    "  {:>6.2} s {:?}: {} delivered, {} in flight, resident {:.0} MiB",
                    started.elapsed().as_secs_f64(),
                    p.stage,
                    p.delivered,
                    p.in_flight,
                    rss_mib().unwrap_or(0.0)
                );
            }
        })
        .expect("the simulation goes quiet");
        let seconds = started.elapsed().as_secs_f64();
        let messages = result.report.messages.election + result.report.messages.tree;
        assert!(result.report.converged, "run {run} did not converge");
        println!(
            "run {run} (seed {run}): {seconds:.2} s, {messages} messages ({} election, {} tree, {} iterations), {:.2} M messages/s, checks {}",
            result.report.messages.election,
            result.report.messages.tree,
            result.report.iterations,
            messages as f64 / seconds / 1e6,
            if result.report.failed_checks().next().is_none() { "all passed" } else { "FAILED" }
        );
    }
    match peak_rss_mib() {
        Some(mib) => println!("peak resident memory: {mib:.0} MiB"),
        None => println!("peak resident memory: unknown (no /proc/self/status)"),
    }
}
