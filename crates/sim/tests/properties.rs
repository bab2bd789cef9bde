//! Property tests: random connected graphs (1–64 nodes), random ids over the whole u64 range,
//! random delivery seeds. Every run must satisfy every invariant of the issue.

mod common;

use labctl_sim::Delivery;
use proptest::prelude::*;

proptest! {
    // 384 cases by default; PROPTEST_CASES=N runs more (e.g. a long hunt in --release).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(384),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_run_elects_the_minimum_and_builds_a_spanning_tree(
        n in 1usize..=64,
        density in 0usize..=3,
        wide_ids in any::<bool>(),
        graph_seed in any::<u64>(),
        delivery_seed in any::<u64>(),
        sync in any::<bool>(),
    ) {
        // density picks sparse (a tree), light, medium or dense extra links.
        let extra = match density { 0 => 0, 1 => n / 4, 2 => n, _ => 4 * n };
        let adjacency = common::random_graph(n, extra, wide_ids, graph_seed);
        let delivery = if sync { Delivery::Sync } else { Delivery::Async };
        let run = common::run(&adjacency, delivery_seed, delivery);
        common::assert_valid(
            &adjacency,
            &run,
            delivery,
            &format!("n={n} extra={extra} graph_seed={graph_seed} delivery_seed={delivery_seed} {delivery:?}"),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Yo-Yo's messages are a function of the graph and the ids alone: each node waits for every
    /// in-edge, then every out-edge, and decides from what it received, never from arrival order.
    /// So any delivery order gives the same cost, phase by phase, and the same winner.
    #[test]
    fn election_costs_do_not_depend_on_timing(
        n in 1usize..=48,
        density in 0usize..=3,
        graph_seed in any::<u64>(),
        seeds in proptest::collection::vec(any::<u64>(), 3),
    ) {
        let extra = match density { 0 => 0, 1 => n / 4, 2 => n, _ => 4 * n };
        let adjacency = common::random_graph(n, extra, true, graph_seed);
        let reference = common::run(&adjacency, 0, Delivery::Sync).report;
        for seed in seeds {
            let other = common::run(&adjacency, seed, Delivery::Async).report;
            prop_assert_eq!(&other.election_phases, &reference.election_phases, "seed {}", seed);
            prop_assert_eq!(other.iterations, reference.iterations);
            prop_assert_eq!(other.leader, reference.leader);
        }
    }
}
