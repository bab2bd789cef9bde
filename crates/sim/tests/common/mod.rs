//! Shared checks for the simulator's tests, written independently of the core's own invariants
//! so that a bug in one cannot hide a bug in the other.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use labctl_core::report::Adjacency;
use labctl_core::{Bounds, NodeId, Role};
use labctl_sim::faults::{self, Action, FaultConfig, RandomSpec};
use labctl_sim::{Config, Delivery, Run, Simulation};
use labctl_topology::rng::SplitMix64;

/// Run and fail loudly, naming the seed.
pub fn run(adjacency: &Adjacency, seed: u64, delivery: Delivery) -> Run {
    let config = Config {
        seed,
        delivery,
        trace: false,
    };
    Simulation::run_graph("test", adjacency, &config)
        .unwrap_or_else(|e| panic!("seed {seed} {delivery:?}: {e}"))
}

/// Breadth-first distances from `root`.
pub fn distances(adjacency: &Adjacency, root: NodeId) -> BTreeMap<NodeId, u32> {
    let mut dist = BTreeMap::from([(root, 0u32)]);
    let mut queue = VecDeque::from([root]);
    while let Some(id) = queue.pop_front() {
        for &n in &adjacency[&id] {
            if !dist.contains_key(&n) {
                dist.insert(n, dist[&id] + 1);
                queue.push_back(n);
            }
        }
    }
    dist
}

/// Assert every property the issue names, on one run. `what` names the case in failures.
pub fn assert_valid(adjacency: &Adjacency, run: &Run, delivery: Delivery, what: &str) {
    let n = adjacency.len() as u64;
    let m = adjacency.values().map(|s| s.len() as u64).sum::<u64>() / 2;
    let minimum = *adjacency.keys().next().unwrap();
    let report = &run.report;
    let statuses: std::collections::BTreeMap<NodeId, &labctl_core::Status> =
        run.statuses.iter().map(|s| (s.id, s)).collect();
    assert!(
        run.statuses.windows(2).all(|w| w[0].id < w[1].id),
        "{what}: the statuses in id order"
    );

    // Exactly one leader, the minimum id, known to all.
    let winners: Vec<_> = statuses
        .values()
        .filter(|s| s.election == labctl_core::Phase::Leader)
        .map(|s| s.id)
        .collect();
    assert_eq!(winners, vec![minimum], "{what}: winners");
    assert!(
        statuses.values().all(|s| s.leader == Some(minimum)),
        "{what}: every node knows the leader"
    );
    assert_eq!(report.leader, Some(minimum), "{what}: reported leader");

    // Nothing left in flight.
    assert!(
        report.checks.iter().any(|c| c.name == "quiet" && c.ok),
        "{what}: messages left in flight"
    );

    // The parents form a spanning tree of the topology rooted at the leader.
    for s in statuses.values() {
        match s.parent {
            None => assert_eq!(s.id, minimum, "{what}: only the leader has no parent"),
            Some(p) => assert!(
                adjacency[&s.id].contains(&p),
                "{what}: {}'s parent {p} is not a neighbour",
                s.id
            ),
        }
        // Following parents reaches the root in fewer than n steps (no cycle).
        let (mut at, mut steps) = (s.id, 0);
        while let Some(p) = statuses[&at].parent {
            at = p;
            steps += 1;
            assert!(steps < n, "{what}: parent cycle through {}", s.id);
        }
        assert_eq!(
            at, minimum,
            "{what}: {} does not hang from the leader",
            s.id
        );
    }
    assert_eq!(
        statuses[&minimum].subtree,
        Some(n),
        "{what}: the root's convergecast counted n"
    );

    // Roles follow SPEC §3.4.
    let children: BTreeMap<NodeId, usize> =
        statuses
            .values()
            .filter_map(|s| s.parent)
            .fold(BTreeMap::new(), |mut acc, p| {
                *acc.entry(p).or_default() += 1;
                acc
            });
    for s in statuses.values() {
        let has_children = children.contains_key(&s.id);
        let expected: Vec<Role> = if s.parent.is_none() {
            if has_children {
                vec![Role::Writer]
            } else {
                vec![Role::Writer, Role::Input]
            }
        } else if !has_children {
            vec![Role::Input]
        } else if s.parent == Some(minimum) {
            vec![Role::Persistence]
        } else {
            vec![Role::Forwarder]
        };
        assert_eq!(s.roles, expected, "{what}: roles of {}", s.id);
    }

    // Message costs.
    let bounds = Bounds::new(n, m);
    assert_eq!(run.wire_setup, 2 * m, "{what}: setup costs exactly 2m");
    let live_edges: Vec<u64> = (0..report.iterations as usize)
        .map(|i| {
            statuses
                .values()
                .filter_map(|s| s.counters.out_degrees.get(i))
                .sum::<usize>() as u64
        })
        .collect();
    let doubled: Vec<u64> = live_edges.iter().map(|e| 2 * e).collect();
    assert_eq!(
        run.wire_iterations, doubled,
        "{what}: iteration i costs exactly 2·(live edges at its start)"
    );
    // Live edges shrink strictly: pruning and the candidates' losses make progress.
    let total_election = run.wire_setup + run.wire_iterations.iter().sum::<u64>();
    assert_eq!(
        report.messages.election, total_election,
        "{what}: nodes and wire agree"
    );
    assert!(
        total_election <= bounds.election,
        "{what}: election {total_election} > bound {}",
        bounds.election
    );
    assert!(
        report.iterations <= bounds.iterations,
        "{what}: {} iterations > bound {}",
        report.iterations,
        bounds.iterations
    );
    assert_eq!(
        report.messages.tree,
        2 * m,
        "{what}: SHOUT+ costs exactly 2m"
    );

    // Under synchronous rounds SHOUT+ builds a breadth-first tree.
    if delivery == Delivery::Sync {
        let dist = distances(adjacency, minimum);
        let eccentricity = dist.values().copied().max().unwrap();
        assert_eq!(
            report.depth, eccentricity,
            "{what}: sync tree is breadth-first"
        );
        for s in statuses.values() {
            assert_eq!(s.depth, Some(dist[&s.id]), "{what}: depth of {}", s.id);
        }
    }
    assert!(report.converged, "{what}: converged");
    let failed: Vec<_> = report.failed_checks().collect();
    assert!(failed.is_empty(), "{what}: failed checks {failed:?}");
}

/// Build an adjacency from a list of links.
pub fn graph(nodes: &[NodeId], links: &[(NodeId, NodeId)]) -> Adjacency {
    let mut adjacency: Adjacency = nodes.iter().map(|&n| (n, BTreeSet::new())).collect();
    for &(a, b) in links {
        adjacency.get_mut(&a).unwrap().insert(b);
        adjacency.get_mut(&b).unwrap().insert(a);
    }
    adjacency
}

/// A connected simple graph: a random tree, then random extra links. Ids are distinct, non-zero,
/// drawn from the whole u64 range (or small, so ties in shape and order get exercised too).
pub fn random_graph(n: usize, extra: usize, wide_ids: bool, seed: u64) -> Adjacency {
    let mut rng = SplitMix64::new(seed);
    let mut ids = BTreeSet::new();
    while ids.len() < n {
        let id = if wide_ids {
            rng.next_u64()
        } else {
            1 + rng.below(4 * n as u64)
        };
        if id != 0 {
            ids.insert(id);
        }
    }
    let mut ids: Vec<u64> = ids.into_iter().collect();
    rng.shuffle(&mut ids);
    let mut links = Vec::new();
    for i in 1..n {
        links.push((ids[i], ids[rng.below(i as u64) as usize]));
    }
    let possible = n * (n - 1) / 2;
    let mut have: BTreeSet<(u64, u64)> = links.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
    let target = (n - 1 + extra).min(possible);
    while have.len() < target {
        let a = ids[rng.below(n as u64) as usize];
        let b = ids[rng.below(n as u64) as usize];
        if a != b && have.insert((a.min(b), a.max(b))) {
            links.push((a, b));
        }
    }
    graph(&ids, &links)
}

/// One seed: a random connected graph (1 to 12 nodes), a random schedule of every kind of fault
/// over 6 to 20 s, healed at the end or left in force.
pub fn random_fault_case(seed: u64) -> (Adjacency, FaultConfig) {
    let mut rng = SplitMix64::new(seed);
    let n = 1 + rng.below(12) as usize;
    let extra = match rng.below(4) {
        0 => 0,
        1 => n / 4,
        2 => n,
        _ => 3 * n,
    };
    let adjacency = random_graph(n, extra, rng.below(4) == 0, rng.next_u64());
    let spec = RandomSpec {
        duration_ms: 6_000 + rng.below(14_000),
        every_ms: 500 + rng.below(2_500),
        hold_ms: 200 + rng.below(4_000),
        actions: Action::ALL.to_vec(),
    };
    let schedule = faults::random_schedule(&adjacency, rng.next_u64(), &spec);
    let mut config = FaultConfig::new(seed, schedule);
    config.heal_at_end = rng.below(3) != 0;
    (adjacency, config)
}
