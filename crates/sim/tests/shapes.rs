//! Table tests: every shipped topology and the tricky shapes, under both delivery models, plus
//! determinism of the simulator itself.

mod common;

use std::path::PathBuf;

use labctl_sim::{Config, Delivery, Simulation};
use labctl_topology::Topology;

const SEEDS: [u64; 4] = [0, 1, 7, 0xdead_beef];

fn topologies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topologies")
}

fn check_all_deliveries(topology: &Topology) {
    let adjacency = topology.adjacency();
    let run = common::run(&adjacency, 0, Delivery::Sync);
    common::assert_valid(&adjacency, &run, Delivery::Sync, &topology.name);
    for seed in SEEDS {
        let run = common::run(&adjacency, seed, Delivery::Async);
        let what = format!("{} async seed {seed}", topology.name);
        common::assert_valid(&adjacency, &run, Delivery::Async, &what);
    }
}

#[test]
fn every_shipped_topology_elects_builds_and_assigns_roles() {
    let mut checked = 0;
    for entry in std::fs::read_dir(topologies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let topology = Topology::from_path(&path).unwrap();
        if topology.node_count() > 10_000 {
            continue; // the 100k benchmark graph has its own benchmark
        }
        check_all_deliveries(&topology);
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} topologies found");
}

#[test]
fn one_node_is_writer_and_input() {
    let adjacency = common::graph(&[42], &[]);
    let run = common::run(&adjacency, 0, Delivery::Sync);
    common::assert_valid(&adjacency, &run, Delivery::Sync, "one node");
    assert_eq!(run.report.iterations, 0);
    assert_eq!(run.report.messages.election + run.report.messages.tree, 0);
    assert_eq!(
        run.report.roles["42"],
        vec![labctl_core::Role::Writer, labctl_core::Role::Input]
    );
}

#[test]
fn two_nodes_take_one_iteration() {
    let adjacency = common::graph(&[9, 3], &[(9, 3)]);
    for delivery in [Delivery::Sync, Delivery::Async] {
        let run = common::run(&adjacency, 5, delivery);
        common::assert_valid(&adjacency, &run, delivery, "two nodes");
        assert_eq!(run.report.iterations, 1);
        assert_eq!(
            run.report.messages.election, 4,
            "setup 2 + one iteration of 2"
        );
    }
}

#[test]
fn star_whose_centre_has_the_largest_id() {
    // The centre is every leaf's only neighbour and the one sink: all leaves are sources.
    let leaves: Vec<u64> = (1..=8).collect();
    let links: Vec<(u64, u64)> = leaves.iter().map(|&l| (100, l)).collect();
    let mut nodes = leaves.clone();
    nodes.push(100);
    let adjacency = common::graph(&nodes, &links);
    for seed in SEEDS {
        let run = common::run(&adjacency, seed, Delivery::Async);
        common::assert_valid(&adjacency, &run, Delivery::Async, "star, centre max");
    }
}

#[test]
fn sources_sharing_sinks_with_several_others() {
    // Complete bipartite K(4,3): sources 1..4 each reach every sink 10, 11, 12; every sink hears
    // four different values and must pick the minimum, every source but 1 must lose.
    let sources = [1, 2, 3, 4];
    let sinks = [10, 11, 12];
    let links: Vec<(u64, u64)> = sources
        .iter()
        .flat_map(|&s| sinks.iter().map(move |&t| (s, t)))
        .collect();
    let nodes: Vec<u64> = sources.iter().chain(&sinks).copied().collect();
    let adjacency = common::graph(&nodes, &links);
    for seed in SEEDS {
        for delivery in [Delivery::Sync, Delivery::Async] {
            let run = common::run(&adjacency, seed, delivery);
            common::assert_valid(&adjacency, &run, delivery, "K(4,3)");
        }
    }
}

#[test]
fn same_value_reaching_a_node_twice_is_pruned() {
    // A diamond 1→{2,3}→4: node 4 gets value 1 from both 2 and 3, keeps one link, prunes the
    // other, and then, left with one in-neighbour, prunes itself.
    let adjacency = common::graph(&[1, 2, 3, 4], &[(1, 2), (1, 3), (2, 4), (3, 4)]);
    let config = Config {
        seed: 0,
        delivery: Delivery::Sync,
        trace: true,
    };
    let run = Simulation::run_graph("diamond", &adjacency, &config).unwrap();
    common::assert_valid(&adjacency, &run, Delivery::Sync, "diamond");
    let prunes = run
        .trace
        .iter()
        .filter(|l| {
            l.node == 4
                && matches!(
                    l.what,
                    labctl_sim::TraceEntry::Node(labctl_core::Event::PruneRequested { .. })
                )
        })
        .count();
    assert_eq!(prunes, 2, "node 4 prunes the duplicate, then itself");
}

#[test]
fn same_seed_same_run_bit_for_bit() {
    let topology = Topology::from_path(&topologies_dir().join("random30.toml")).unwrap();
    let config = Config {
        seed: 11,
        delivery: Delivery::Async,
        trace: true,
    };
    let a = Simulation::run(&topology, &config).unwrap();
    let b = Simulation::run(&topology, &config).unwrap();
    let json = |run: &labctl_sim::Run| serde_json::to_string(&run.trace).unwrap();
    assert_eq!(json(&a), json(&b));
    assert_eq!(a.time, b.time);

    let other = Simulation::run(&topology, &Config { seed: 12, ..config }).unwrap();
    assert_ne!(json(&a), json(&other), "another seed, other delays");
}

#[test]
fn trace_records_every_send_and_receive() {
    let topology = Topology::from_path(&topologies_dir().join("ring6.toml")).unwrap();
    let config = Config {
        seed: 3,
        delivery: Delivery::Async,
        trace: true,
    };
    let run = Simulation::run(&topology, &config).unwrap();
    let count = |event: &str| {
        run.trace
            .iter()
            .filter(|l| serde_json::to_value(l).unwrap()["event"] == event)
            .count() as u64
    };
    let total = run.report.messages.election + run.report.messages.tree;
    assert_eq!(count("send"), total);
    assert_eq!(count("receive"), total);
    assert_eq!(count("elected"), 1);
    assert_eq!(count("roles"), 6);
}
