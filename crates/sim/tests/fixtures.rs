//! Results pinned before the simulator's rewrite for scale (issue 14): on every shipped topology
//! and on seeded random graphs, under both delivery models and several seeds, the leader, the
//! tree, the roles and the message counts (setup and each Yo-Yo iteration, the tree) must stay
//! what they were. `fixtures/results.txt` holds one line per case, written by the simulator as
//! it was; a rewrite that changes any of them fails here, naming the case.
//!
//! To take the fixtures again (only for a deliberate change of the algorithms' behaviour):
//! `LABCTL_BLESS=1 cargo test -p labctl-sim --test fixtures`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use labctl_core::report::Adjacency;
use labctl_sim::{Delivery, Run};
use labctl_topology::Topology;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every case: (name, graph). The shipped topologies (but the 100,000-node benchmark, which
/// `cargo bench` runs) and 40 random graphs of 2–80 nodes, some with wide, shuffled ids.
fn cases() -> Vec<(String, Adjacency)> {
    let mut cases = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace().join("topologies"))
        .expect("the topologies folder")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for path in files {
        let topology = Topology::from_path(&path).expect("a shipped topology loads");
        if topology.node_count() > 1_000 {
            continue;
        }
        cases.push((topology.name.clone(), topology.adjacency()));
    }
    for k in 0..40u64 {
        let n = 2 + (k as usize * 7) % 79;
        let extra = (k as usize * 3) % (n + 1);
        cases.push((
            format!("random-{k}-n{n}-x{extra}"),
            common::random_graph(n, extra, k % 3 == 0, 1_000 + k),
        ));
    }
    cases
}

/// One line per run: everything the rewrite must keep.
fn line(case: &str, delivery: Delivery, seed: u64, run: &Run) -> String {
    let report = &run.report;
    let tree: BTreeMap<&String, String> = report
        .tree
        .iter()
        .map(|(id, parent)| (id, parent.map_or("-".into(), |p| p.to_string())))
        .collect();
    let roles: Vec<String> = report
        .roles
        .iter()
        .map(|(id, roles)| format!("{id}:{roles:?}"))
        .collect();
    format!(
        "{case} {delivery:?} seed={seed} leader={:?} iterations={} phases={:?} election={} \
         tree_messages={} delivered={} time={} tree={:?} roles={}",
        report.leader,
        report.iterations,
        report.election_phases,
        report.messages.election,
        report.messages.tree,
        run.delivered,
        run.time,
        tree,
        roles.join(","),
    )
}

fn all_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for (case, adjacency) in cases() {
        for delivery in [Delivery::Sync, Delivery::Async] {
            let seeds: &[u64] = match delivery {
                Delivery::Sync => &[0],
                Delivery::Async => &[0, 1, 2],
            };
            for &seed in seeds {
                let run = common::run(&adjacency, seed, delivery);
                lines.push(line(&case, delivery, seed, &run));
            }
        }
    }
    lines
}

#[test]
fn results_are_what_they_were_before_the_rewrite() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.txt");
    let now = all_lines();
    if std::env::var_os("LABCTL_BLESS").is_some() {
        std::fs::write(&path, now.join("\n") + "\n").expect("writing the fixtures");
        return;
    }
    let pinned = std::fs::read_to_string(&path).expect("tests/fixtures/results.txt");
    let pinned: Vec<&str> = pinned.lines().collect();
    assert_eq!(pinned.len(), now.len(), "the number of cases changed");
    let changed: Vec<String> = pinned
        .iter()
        .zip(&now)
        .filter(|(was, is)| *was != is)
        .map(|(was, is)| format!("was: {was}\nnow: {is}"))
        .collect();
    assert!(
        changed.is_empty(),
        "{} of {} runs changed:\n{}",
        changed.len(),
        now.len(),
        changed[..changed.len().min(5)].join("\n")
    );
}
