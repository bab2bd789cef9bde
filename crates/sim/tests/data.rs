//! The data plane in the simulator (SPEC §4–§6): a workload of writes and reads under faults,
//! checked after every run: no acknowledged write lost with `majority`, one writer per epoch, no
//! read older than its client's own writes, no 503 followed by the write appearing, nothing
//! stored twice. And the teaching point of §4: `replicas` can lose an acknowledged write.

mod common;

use labctl_core::plane::Durability;
use labctl_fault::{Fault, Target};
use labctl_sim::faults::FaultError;
use labctl_sim::faults::{self, FaultConfig, Step};
use labctl_sim::workload::DataConfig;

use common::graph;

fn ring6() -> labctl_core::report::Adjacency {
    graph(
        &[1, 2, 3, 4, 5, 6],
        &[(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 1)],
    )
}

fn with_data(seed: u64, steps: Vec<Step>, durability: Durability) -> FaultConfig {
    let mut config = FaultConfig::new(seed, steps);
    config.data = Some(DataConfig {
        durability,
        ..DataConfig::default()
    });
    config
}

#[test]
fn a_clean_lab_acknowledges_writes_and_every_node_applies_them() {
    let config = with_data(3, Vec::new(), Durability::Majority);
    let run = faults::run("ring6", &ring6(), &config).unwrap_or_else(|e| panic!("{e}"));
    let stats = run.data.expect("data stats");
    println!("{stats:?}");
    assert!(stats.acked > 20, "{stats:?}");
    assert_eq!(stats.texts, stats.acked);
    assert_eq!((stats.refused, stats.unknown), (0, 0), "{stats:?}");
}

/// One seed of the random sweep: the fault runs' graph and schedule, with the workload.
fn random_data_case(seed: u64) -> (labctl_core::report::Adjacency, FaultConfig) {
    let (adjacency, mut config) = common::random_fault_case(seed);
    config.data = Some(DataConfig::default());
    (adjacency, config)
}

/// Run one seed; the simulator checks every rule of the workload.
fn check_data_seed(seed: u64) -> Result<faults::FaultRun, String> {
    let (adjacency, config) = random_data_case(seed);
    let run = faults::run("random", &adjacency, &config).map_err(|e| e.to_string())?;
    let stats = run.data.as_ref().expect("data stats");
    if config.heal_at_end && stats.texts < stats.acked {
        return Err(format!("seed {seed}: {stats:?}"));
    }
    Ok(run)
}

/// The seeds the sweep runs: `LABCTL_DATA_SEEDS` of them (else 1000), from
/// `LABCTL_DATA_SEED_START` (else 0); `LABCTL_DATA_SEED=N` replays one.
fn data_seeds() -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(seed) = var("LABCTL_DATA_SEED") {
        return vec![seed];
    }
    let start = var("LABCTL_DATA_SEED_START").unwrap_or(0);
    (start..start + var("LABCTL_DATA_SEEDS").unwrap_or(1000)).collect()
}

#[test]
fn random_faults_lose_no_acknowledged_write() {
    let mut failures = Vec::new();
    let (mut acked, mut unknown, mut refused, mut faults_applied) = (0, 0, 0, 0);
    for seed in data_seeds() {
        match check_data_seed(seed) {
            Ok(run) => {
                let stats = run.data.expect("data stats");
                acked += stats.acked;
                unknown += stats.unknown;
                refused += stats.refused;
                faults_applied += run.applied.iter().filter(|a| a.refused.is_none()).count();
            }
            Err(e) => failures.push(e),
        }
    }
    println!(
        "{faults_applied} faults; writes: {acked} acknowledged, {refused} refused, {unknown} unknown"
    );
    assert!(
        failures.is_empty(),
        "{} seed(s) failed; replay one with LABCTL_DATA_SEED=N cargo test -p labctl-sim --test data random -- --nocapture\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The seeds of the first 100,000-seed release sweep that did not settle: an `Announce` lost
/// on a link cut for a moment left the writer without a route to a node, so its repairs (or the
/// view change's fetch) never reached it. Traffic up the tree now teaches routes, and a message
/// for a node with no route known goes to every child.
#[test]
fn the_seeds_where_a_lost_announce_stranded_a_node_settle() {
    for seed in [
        2384, 9677, 14465, 19350, 24166, 25356, 25711, 67940, 73892, 90925,
    ] {
        if let Err(e) = check_data_seed(seed) {
            panic!("{e}");
        }
    }
}

/// Line 1 - 2 - 3 - 4 - 5: the writer 1 has one persistence replica, 2.
fn line5() -> labctl_core::report::Adjacency {
    graph(&[1, 2, 3, 4, 5], &[(1, 2), (2, 3), (3, 4), (4, 5)])
}

/// Kill the writer and its only replica together, then bring them back.
fn writer_and_replica_killed(durability: Durability) -> Result<faults::FaultRun, FaultError> {
    let kill = |node| Fault::Kill {
        node: Target::Id(node),
    };
    let steps = vec![
        Step {
            at_ms: 4_000,
            fault: kill(1),
        },
        Step {
            at_ms: 4_000,
            fault: kill(2),
        },
        Step {
            at_ms: 9_000,
            fault: Fault::Restart {
                node: Target::Id(2),
            },
        },
    ];
    faults::run("line5", &line5(), &with_data(11, steps, durability))
}

#[test]
fn replicas_loses_acknowledged_writes_that_majority_keeps() {
    // SPEC §4's teaching point. With `replicas`, a write is acknowledged once the writer (1) and
    // its persistence replica (2) hold it; both die, and 3, 4, 5 are a majority with none of
    // it: the new writer starts from nothing, and when 1 and 2 come back they take its log.
    let run = writer_and_replica_killed(Durability::Replicas).unwrap_or_else(|e| panic!("{e}"));
    let stats = run.data.expect("data stats");
    assert!(
        !stats.lost.is_empty(),
        "replicas lost nothing acknowledged: {stats:?}"
    );
    println!(
        "replicas: {} of {} acknowledged writes lost, e.g. {:?}",
        stats.lost.len(),
        stats.acked,
        &stats.lost[..stats.lost.len().min(3)]
    );
    // With `majority`, every acknowledged write was on 3 of the 5 nodes, so on one of 3, 4, 5:
    // the simulator's checks (no acknowledged write lost, every node the same state) pass.
    let run = writer_and_replica_killed(Durability::Majority).unwrap_or_else(|e| panic!("{e}"));
    let stats = run.data.expect("data stats");
    assert!(stats.lost.is_empty() && stats.acked > 20, "{stats:?}");
    assert!(stats.texts >= stats.acked, "{stats:?}");
}

#[test]
fn random_schedules_find_a_loss_under_replicas_and_never_under_majority() {
    // The sweep finds schedules under which `replicas` loses acknowledged writes (`writer`
    // too); the same schedules under `majority` lose nothing. Every other rule holds in all
    // three modes.
    let mut found = Vec::new();
    for seed in 0..60 {
        let (adjacency, config) = random_data_case(seed);
        for durability in [Durability::Replicas, Durability::Writer] {
            let mut weaker = config.clone();
            weaker.data.as_mut().expect("data").durability = durability;
            let run = faults::run("random", &adjacency, &weaker)
                .unwrap_or_else(|e| panic!("{durability}: {e}"));
            let stats = run.data.expect("data stats");
            if !stats.lost.is_empty() {
                found.push((seed, durability, stats.lost.len()));
            }
        }
        if found.iter().any(|f| f.0 == seed) {
            check_data_seed(seed).unwrap_or_else(|e| panic!("majority: {e}"));
        }
    }
    println!("losses (seed, durability, writes lost): {found:?}");
    assert!(
        found.iter().any(|f| f.1 == Durability::Replicas),
        "no schedule lost a write under replicas: {found:?}"
    );
}

/// kite8: the root 1 with a leaf 2 and a tail 3 - 4 - 5 - 6 - 7 - 8 (3 its one persistence
/// replica), as `scenarios/replicas-loses-writes.toml` runs it live.
fn kite8() -> labctl_core::report::Adjacency {
    graph(
        &[1, 2, 3, 4, 5, 6, 7, 8],
        &[(1, 2), (1, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8)],
    )
}

/// {1, 2, 3} cut off from {4, …, 8}, then healed; `live_like`: with that store latency (ms),
/// on loopback-like links.
fn kite8_partitioned(
    durability: Durability,
    seed: u64,
    live_like: Option<u64>,
) -> Result<faults::FaultRun, FaultError> {
    let steps = vec![
        Step {
            at_ms: 4_000,
            fault: Fault::Partition {
                groups: vec![vec![1, 2, 3], vec![4, 5, 6, 7, 8]],
            },
        },
        Step {
            at_ms: 9_000,
            fault: Fault::HealAll,
        },
        // The clients go on until the last step.
        Step {
            at_ms: 14_000,
            fault: Fault::HealAll,
        },
    ];
    let mut config = with_data(seed, steps, durability);
    if let Some(store_ms) = live_like {
        config = config.live_like(store_ms);
    }
    faults::run("kite8", &kite8(), &config)
}

#[test]
fn a_healed_minority_writer_takes_the_majoritys_log_and_writes_go_on() {
    // Found live by `labctl chaos scenarios/replicas-loses-writes.toml`: after the heal, the
    // old writer (1) wins again and takes node 4's log whole (its own tail was never
    // replicated); the lab must then acknowledge writes again, in every mode. The view change
    // may get node 4's snapshot twice (a fetch repeated), and a copy must not undo it: the
    // simulator's timings (messages slower than the store) and a live lab's (the store slower
    // than messages) order the copies and the store's reports differently.
    // (store latency of the live-like timings, seeds): before the fix, the default timings
    // stalled about one seed in twenty with `replicas`, a 40 ms store one in five.
    let timings = [(None, 100), (Some(5), 50), (Some(40), 50)];
    for durability in [
        Durability::Replicas,
        Durability::Writer,
        Durability::Majority,
    ] {
        for (live_like, seeds) in timings {
            for seed in 0..seeds {
                let run = kite8_partitioned(durability, seed, live_like).unwrap_or_else(|e| {
                    panic!("{durability}, seed {seed}, live-like store {live_like:?}: {e}")
                });
                let stats = run.data.expect("data stats");
                assert!(
                    stats.last_acked_ms > 12_000,
                    "{durability}, seed {seed}, live-like store {live_like:?}: no write \
                     acknowledged well after the heal: {stats:?}"
                );
            }
        }
    }
}

#[test]
fn random_schedules_under_replicas_and_writer_break_no_other_rule() {
    // `replicas` and `writer` may lose acknowledged writes (SPEC §4), and nothing else: one
    // writer per epoch, a read never older than its client's read position (the write at that
    // position, which need not be the client's last acknowledged: a cut-off old writer may
    // acknowledge at an older position after a new writer did), no 503 followed by its write,
    // every node the same state once healed. With live-like timing (a store job outlasts a
    // message), where a first sweep found a read position tracked by the last acknowledgement.
    // `LABCTL_WEAK_SEEDS=N` sweeps more (150 by default).
    let seeds = std::env::var("LABCTL_WEAK_SEEDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(150);
    let mut failures = Vec::new();
    // The seeds where the first 1,000-seed sweep caught the read position mistracked.
    for seed in (0..seeds).chain([510, 541, 835]) {
        let (adjacency, config) = random_data_case(seed);
        for durability in [Durability::Replicas, Durability::Writer] {
            let mut weaker = config.clone().live_like(40);
            weaker.data.as_mut().expect("data").durability = durability;
            if let Err(e) = faults::run("random", &adjacency, &weaker) {
                failures.push(format!("seed {seed}, {durability}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
