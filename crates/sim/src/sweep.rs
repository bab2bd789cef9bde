//! Fault simulations at volume: one random fault schedule per seed, the seeds shared out over
//! threads, every failure named by the seed that replays it (as TigerBeetle's VOPR and
//! FoundationDB's simulation sweep their seeds).
//!
//! Each seed's run is exactly what `labctl sim FILE --faults random --seed N` runs
//! ([`random_config`]), so a failing seed of a sweep replays, traced, with that command. A seed
//! whose run panics (a bug in the core or the simulator) is a failure like any other: the sweep
//! goes on and reports it.
//!
//! ```
//! use labctl_sim::sweep::{self, Sweep};
//! use labctl_topology::Topology;
//!
//! let ring = Topology::from_toml(
//!     "name = \"ring4\"\nnodes = [4, 2, 3, 1]\nlinks = [[4, 2], [2, 3], [3, 1], [1, 4]]\n",
//!     "ring4.toml",
//! ).unwrap();
//! let adjacency = ring.adjacency();
//! let plan = Sweep {
//!     lab: "ring4",
//!     adjacency: &adjacency,
//!     config: &|seed| sweep::random_config(&adjacency, ring.timing, seed, 6_000),
//!     seeds: 0..4,
//!     threads: 2,
//! };
//! let summary = sweep::run(&plan, |_| {});
//! assert_eq!(summary.seeds, 4);
//! assert!(summary.failed.is_empty());
//! ```

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use labctl_core::report::Adjacency;
use labctl_core::Timing;
use serde::Serialize;

use crate::faults::{self, Action, FaultConfig, RandomSpec};

/// A random fault schedule's mean time between faults, in ms.
pub const EVERY_MS: u64 = 2_000;
/// How long each random fault lasts before it is undone, in ms.
pub const HOLD_MS: u64 = 3_000;

/// The run of `--faults random --seed seed`: faults of every kind drawn for `duration_ms`, about
/// every [`EVERY_MS`], each undone [`HOLD_MS`] later, then everything healed; the lab's timings,
/// and convergence held for three suspicion timeouts.
pub fn random_config(
    adjacency: &Adjacency,
    timing: Timing,
    seed: u64,
    duration_ms: u64,
) -> FaultConfig {
    let spec = RandomSpec {
        duration_ms,
        every_ms: EVERY_MS,
        hold_ms: HOLD_MS,
        actions: Action::ALL.to_vec(),
    };
    let mut config = FaultConfig::new(seed, faults::random_schedule(adjacency, seed, &spec));
    config.timing = timing;
    config.stable_ms = 3 * timing.suspicion_ms;
    config.heal_at_end = true;
    config
}

/// A sweep to run.
pub struct Sweep<'a> {
    /// The lab's name, for its reports.
    pub lab: &'a str,
    /// The graph (connected).
    pub adjacency: &'a Adjacency,
    /// Each seed's run: [`random_config`], as `labctl sim --faults random` runs it, or any other.
    pub config: &'a (dyn Fn(u64) -> FaultConfig + Sync),
    /// The seeds, one run each.
    pub seeds: Range<u64>,
    /// Threads to run on (at least one is used).
    pub threads: usize,
}

/// How one seed went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// None when it settled safely; else what failed.
    pub failure: Option<String>,
    /// Faults applied (refused steps not counted).
    pub faults_applied: u64,
    /// Epochs started over all nodes.
    pub epochs_started: u64,
    /// Messages and heartbeats delivered.
    pub delivered: u64,
}

/// One failing seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The seed that replays it.
    pub seed: u64,
    /// What failed.
    pub error: String,
}

/// What a sweep found.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// The failing seeds, in seed order.
    pub failed: Vec<Failure>,
    /// Faults applied over all seeds.
    pub faults_applied: u64,
    /// Epochs started over all seeds.
    pub epochs_started: u64,
    /// Messages and heartbeats delivered over all seeds.
    pub delivered: u64,
    /// Threads used.
    pub threads: usize,
    /// Wall time, in ms.
    pub elapsed_ms: u64,
    /// Seeds per second of wall time.
    pub seeds_per_second: f64,
}

/// Run every seed of `plan`, calling `each` (on the calling thread) with each seed's result as it
/// comes, in completion order; returns the summary once all are done.
pub fn run(plan: &Sweep<'_>, mut each: impl FnMut(&SeedResult)) -> Summary {
    let started = Instant::now();
    let threads = plan.threads.clamp(
        1,
        (plan.seeds.end.saturating_sub(plan.seeds.start)).max(1) as usize,
    );
    let next = AtomicU64::new(plan.seeds.start);
    let (tx, rx) = mpsc::channel();
    let mut summary = Summary {
        seeds: 0,
        failed: Vec::new(),
        faults_applied: 0,
        epochs_started: 0,
        delivered: 0,
        threads,
        elapsed_ms: 0,
        seeds_per_second: 0.0,
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= plan.seeds.end {
                    break;
                }
                if tx.send(one_seed(plan, seed)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for result in rx {
            summary.seeds += 1;
            summary.faults_applied += result.faults_applied;
            summary.epochs_started += result.epochs_started;
            summary.delivered += result.delivered;
            if let Some(error) = &result.failure {
                summary.failed.push(Failure {
                    seed: result.seed,
                    error: error.clone(),
                });
            }
            each(&result);
        }
    });
    summary.failed.sort_by_key(|f| f.seed);
    let elapsed = started.elapsed().max(Duration::from_micros(1));
    summary.elapsed_ms = elapsed.as_millis() as u64;
    summary.seeds_per_second = summary.seeds as f64 / elapsed.as_secs_f64();
    summary
}

/// Run one seed; a panic is a failure of that seed.
fn one_seed(plan: &Sweep<'_>, seed: u64) -> SeedResult {
    // Nothing a seed touches outlives its run: its state cannot be seen half-updated.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let config = (plan.config)(seed);
        faults::run(plan.lab, plan.adjacency, &config)
    }));
    let mut result = SeedResult {
        seed,
        failure: None,
        faults_applied: 0,
        epochs_started: 0,
        delivered: 0,
    };
    match outcome {
        Ok(Ok(run)) => {
            result.faults_applied =
                run.applied.iter().filter(|a| a.refused.is_none()).count() as u64;
            result.epochs_started = run.epochs_started;
            result.delivered = run.delivered;
        }
        Ok(Err(error)) => result.failure = Some(error.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            result.failure = Some(format!("the simulation panicked: {what}"));
        }
    }
    result
}
