//! The simulator's fault mode: scripted schedules with known outcomes, then random graphs under
//! random schedules (SPEC §6): once faults stop, every component converges to one tree rooted at
//! its minimum id, in one epoch, with the roles of §3.4, and the safety rules hold throughout.

mod common;

use labctl_core::Role;
use labctl_fault::{Fault, Target};
use labctl_sim::faults::{self, FaultConfig, Step};
use labctl_sim::sweep;

use common::graph;

fn ring6() -> labctl_core::report::Adjacency {
    graph(
        &[1, 2, 3, 4, 5, 6],
        &[(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 1)],
    )
}

fn roles(run: &faults::FaultRun, id: u64) -> Vec<Role> {
    run.report.roles[&id.to_string()].clone()
}

#[test]
fn the_writer_killed_the_survivors_elect_the_next_smallest() {
    let steps = vec![Step {
        at_ms: 3000,
        fault: Fault::Kill {
            node: Target::LEADER,
        },
    }];
    let mut config = FaultConfig::new(1, steps);
    config.heal_at_end = false;
    let run = faults::run("ring6", &ring6(), &config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run.applied[0].step.fault,
        Fault::Kill {
            node: Target::Id(1)
        }
    );
    let report = &run.report;
    assert!(
        report.converged,
        "{:?}",
        report.failed_checks().collect::<Vec<_>>()
    );
    assert_eq!(report.components.len(), 1);
    assert_eq!(report.components[0].nodes, vec![2, 3, 4, 5, 6]);
    assert_eq!(report.leader, Some(2));
    assert!(report.components[0].quorum);
    assert_eq!(roles(&run, 2), vec![Role::Writer]);
    assert!(
        !report.tree.contains_key("1"),
        "a dead node is no part of any tree"
    );
    println!(
        "converged {} ms after the kill, epoch {}",
        run.converged_after_ms, run.max_epoch
    );
}

fn at(at_ms: u64, fault: Fault) -> Step {
    Step { at_ms, fault }
}

fn id(n: u64) -> Target {
    Target::Id(n)
}

/// Run `steps` on ring6 and leave the last faults in force.
fn ring6_after(steps: Vec<Step>) -> faults::FaultRun {
    let mut config = FaultConfig::new(7, steps);
    config.heal_at_end = false;
    faults::run("ring6", &ring6(), &config).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_clean_start_runs_exactly_one_epoch() {
    for seed in 0..20 {
        let run = faults::run("ring6", &ring6(), &FaultConfig::new(seed, vec![])).unwrap();
        assert_eq!(run.max_epoch, 1, "seed {seed}");
        assert_eq!(run.report.leader, Some(1));
        assert!(
            run.report.failed_checks().next().is_none(),
            "seed {seed}: {:?}",
            run.report.checks
        );
    }
}

#[test]
fn a_two_four_partition_leaves_a_writer_and_a_leader() {
    let run = ring6_after(vec![at(
        3000,
        Fault::Partition {
            groups: vec![vec![1, 2], vec![3, 4, 5, 6]],
        },
    )]);
    let report = &run.report;
    assert!(report.converged);
    let parts: Vec<(Vec<u64>, Option<u64>, bool)> = report
        .components
        .iter()
        .map(|c| (c.nodes.clone(), c.leader, c.quorum))
        .collect();
    assert_eq!(
        parts,
        vec![
            (vec![1, 2], Some(1), false),
            (vec![3, 4, 5, 6], Some(3), true)
        ]
    );
    assert_eq!(roles(&run, 1), vec![Role::Leader], "2 of 6 cannot write");
    assert_eq!(roles(&run, 2), vec![Role::Input]);
    assert_eq!(roles(&run, 3), vec![Role::Writer]);
    assert_eq!((report.leader, report.epoch.is_some()), (Some(3), true));
}

#[test]
fn a_partition_healed_comes_back_to_one_tree() {
    let run = faults::run(
        "ring6",
        &ring6(),
        &FaultConfig::new(
            3,
            vec![at(
                3000,
                Fault::Partition {
                    groups: vec![vec![1, 2], vec![3, 4, 5, 6]],
                },
            )],
        ),
    )
    .unwrap();
    assert_eq!(run.report.components.len(), 1);
    assert_eq!(run.report.leader, Some(1));
    assert_eq!(roles(&run, 1), vec![Role::Writer]);
}

#[test]
fn the_writer_killed_then_restarted_rejoins_above_its_epoch_and_wins_again() {
    let run = ring6_after(vec![
        at(
            3000,
            Fault::Kill {
                node: Target::LEADER,
            },
        ),
        at(8000, Fault::Restart { node: id(1) }),
    ]);
    assert!(run.report.converged);
    assert_eq!(run.report.leader, Some(1));
    assert_eq!(roles(&run, 1), vec![Role::Writer]);
    assert!(
        run.max_epoch >= 3,
        "start, the kill, the restart: epoch {}",
        run.max_epoch
    );
    assert!(run.statuses.values().all(|s| s.epoch == run.max_epoch));
}

#[test]
fn a_paused_node_is_left_out_then_taken_back_in() {
    let paused = ring6_after(vec![at(3000, Fault::Pause { node: id(4) })]);
    assert_eq!(paused.report.components[0].nodes, vec![1, 2, 3, 5, 6]);
    assert!(paused.report.converged);
    assert!(!paused.report.tree.contains_key("4"));
    let resumed = ring6_after(vec![
        at(3000, Fault::Pause { node: id(4) }),
        at(6000, Fault::Resume { node: id(4) }),
    ]);
    assert!(resumed.report.converged);
    assert_eq!(resumed.report.components[0].nodes, vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn a_forwarder_killed_splits_nothing_in_a_ring() {
    let run = ring6_after(vec![at(3000, Fault::Kill { node: id(4) })]);
    assert_eq!(run.report.leader, Some(1));
    assert_eq!(run.report.components[0].nodes, vec![1, 2, 3, 5, 6]);
    // With 4 gone the ring is a line 3-2-1-6-5: 1 roots it, 2 and 6 persist, 3 and 5 serve.
    assert_eq!(roles(&run, 2), vec![Role::Persistence]);
    assert_eq!(roles(&run, 3), vec![Role::Input]);
    assert_eq!(roles(&run, 5), vec![Role::Input]);
}

#[test]
fn a_flapping_link_costs_few_epochs() {
    // Link 2-3 is cut for 1.5 s and healed for 0.5 s, ten times over 20 s.
    let mut steps = Vec::new();
    for i in 0..10 {
        let t = 3000 + 2000 * i;
        steps.push(at(t, Fault::Cut { a: id(2), b: id(3) }));
        steps.push(at(t + 1500, Fault::Heal { a: id(2), b: id(3) }));
    }
    let run = faults::run("ring6", &ring6(), &FaultConfig::new(11, steps)).unwrap();
    assert!(run.report.converged);
    // Without damping every flap would cost two epochs (the cut, the heal): 21 in all. The hold
    // doubles each time the link comes back, so it soon stays out while it flaps.
    assert!(run.max_epoch <= 12, "{} epochs", run.max_epoch);
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let (adjacency, config) = common::random_fault_case(42);
    let a = faults::run("r", &adjacency, &config).unwrap();
    let b = faults::run("r", &adjacency, &config).unwrap();
    assert_eq!(
        (a.delivered, a.time, a.max_epoch),
        (b.delivered, b.time, b.max_epoch)
    );
    assert_eq!(a.statuses, b.statuses);
    assert_eq!(a.applied, b.applied);
}

#[test]
fn a_failing_run_names_its_seed() {
    let mut config = FaultConfig::new(99, vec![at(3000, Fault::Kill { node: id(1) })]);
    config.heal_at_end = false;
    config.converge_within_ms = 10; // far too short to re-elect
    let err = faults::run("ring6", &ring6(), &config).unwrap_err();
    assert_eq!(err.seed(), 99);
    assert!(err.to_string().contains("replay with seed 99"), "{err}");
}

#[test]
fn a_fault_that_does_not_fit_is_refused_and_the_run_goes_on() {
    let run = ring6_after(vec![
        at(3000, Fault::Resume { node: id(2) }),
        at(3100, Fault::Cut { a: id(1), b: id(4) }),
    ]);
    assert!(
        run.applied.iter().all(|a| a.refused.is_some()),
        "{:?}",
        run.applied
    );
    assert_eq!(run.max_epoch, 1);
}

/// Run one seed and check everything: the simulator's own safety and convergence checks, and,
/// independently, the components and roles once the faults stop.
fn check_seed(seed: u64) -> Result<faults::FaultRun, String> {
    let (adjacency, config) = common::random_fault_case(seed);
    let run = faults::run("random", &adjacency, &config).map_err(|e| e.to_string())?;
    let report = &run.report;
    if !report.converged {
        return Err(format!("seed {seed}: the run ended unconverged"));
    }
    // Independently: each component's root is its minimum, and only a majority's root writes.
    let n = adjacency.len();
    for component in &report.components {
        let min = component.nodes[0];
        if component.leader != Some(min) {
            return Err(format!(
                "seed {seed}: component {:?} led by {:?}",
                component.nodes, component.leader
            ));
        }
        let root_roles = &report.roles[&min.to_string()];
        let writes = root_roles.contains(&Role::Writer);
        if writes != (2 * component.nodes.len() > n) || writes == root_roles.contains(&Role::Leader)
        {
            return Err(format!(
                "seed {seed}: root {min} of {} of {n} nodes has {root_roles:?}",
                component.nodes.len()
            ));
        }
    }
    let writers = report
        .roles
        .values()
        .filter(|r| r.contains(&Role::Writer))
        .count();
    if writers > 1 {
        return Err(format!("seed {seed}: {writers} writers at the end"));
    }
    if config.heal_at_end && (report.components.len() != 1 || report.components[0].nodes.len() != n)
    {
        return Err(format!(
            "seed {seed}: healed, yet components {:?}",
            report.components
        ));
    }
    Ok(run)
}

/// The seeds `random_schedules_converge_and_stay_safe` runs: `LABCTL_FAULT_SEEDS` of them
/// (else 1000), from `LABCTL_FAULT_SEED_START` (else 0).
fn seeds() -> std::ops::Range<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let start = var("LABCTL_FAULT_SEED_START").unwrap_or(0);
    start..start + var("LABCTL_FAULT_SEEDS").unwrap_or(1000)
}

#[test]
fn random_schedules_converge_and_stay_safe() {
    // `LABCTL_FAULT_SEED=N` replays one seed.
    let only: Option<u64> = std::env::var("LABCTL_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    let range: Vec<u64> = match only {
        Some(seed) => vec![seed],
        None => seeds().collect(),
    };
    let mut failures = Vec::new();
    let (mut epochs, mut faults_applied) = (0u64, 0usize);
    for seed in range {
        match check_seed(seed) {
            Ok(run) => {
                epochs += run.max_epoch;
                faults_applied += run.applied.iter().filter(|a| a.refused.is_none()).count();
            }
            Err(e) => failures.push(e),
        }
    }
    println!("{faults_applied} faults applied, {epochs} epochs reached in all");
    assert!(
        failures.is_empty(),
        "{} seed(s) failed; replay one with LABCTL_FAULT_SEED=N cargo test -p labctl-sim --test faults random -- --nocapture\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The sweep's summary adds up its seeds' runs exactly as running them one by one does, whatever
/// the threads finish in which order.
#[test]
fn a_sweep_on_two_threads_adds_up_to_the_seeds_run_one_by_one() {
    let adjacency = ring6();
    let timing = labctl_core::Timing::default();
    let make = |seed| sweep::random_config(&adjacency, timing, seed, 10_000);
    let plan = sweep::Sweep {
        lab: "ring6",
        adjacency: &adjacency,
        config: &make,
        seeds: 100..112,
        threads: 2,
    };
    let mut seen = Vec::new();
    let summary = sweep::run(&plan, |r| seen.push(r.seed));
    seen.sort_unstable();
    assert_eq!(seen, (100..112).collect::<Vec<_>>(), "each seed once");
    assert_eq!((summary.seeds, summary.threads), (12, 2));
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let (mut faults_applied, mut epochs, mut delivered) = (0, 0, 0);
    for seed in 100..112 {
        let run = faults::run("ring6", &adjacency, &make(seed)).unwrap();
        faults_applied += run.applied.iter().filter(|a| a.refused.is_none()).count() as u64;
        epochs += run.epochs_started;
        delivered += run.delivered;
    }
    assert!(faults_applied > 0, "the schedules applied faults");
    assert_eq!(
        (
            summary.faults_applied,
            summary.epochs_started,
            summary.delivered
        ),
        (faults_applied, epochs, delivered)
    );
}

/// Every failing seed is listed, in seed order, with its error; a seed whose run panics is a
/// failure like the others, and the sweep goes on past it.
#[test]
fn a_sweep_lists_each_failing_seed_and_survives_a_panic() {
    let adjacency = ring6();
    let timing = labctl_core::Timing::default();
    let make = |seed: u64| {
        assert_ne!(seed, 7, "seed 7 breaks the simulator on purpose");
        let mut config = sweep::random_config(&adjacency, timing, seed, 6_000);
        if seed.is_multiple_of(2) {
            // A last kill of the writer, left in force, with far too little time to re-elect
            // after it.
            let last = config.schedule.last().map_or(0, |s| s.at_ms);
            config.schedule.push(at(
                last + 5000,
                Fault::Kill {
                    node: Target::LEADER,
                },
            ));
            config.heal_at_end = false;
            config.converge_within_ms = 10;
        }
        config
    };
    let plan = sweep::Sweep {
        lab: "ring6",
        adjacency: &adjacency,
        config: &make,
        seeds: 0..10,
        threads: 2,
    };
    let summary = sweep::run(&plan, |_| {});
    assert_eq!(summary.seeds, 10);
    let failed: Vec<u64> = summary.failed.iter().map(|f| f.seed).collect();
    assert_eq!(failed, vec![0, 2, 4, 6, 7, 8]);
    for failure in &summary.failed {
        if failure.seed == 7 {
            assert!(
                failure.error.contains("panicked") && failure.error.contains("on purpose"),
                "{}",
                failure.error
            );
        } else {
            assert!(
                failure
                    .error
                    .contains(&format!("replay with seed {}", failure.seed)),
                "{}",
                failure.error
            );
        }
    }
}
