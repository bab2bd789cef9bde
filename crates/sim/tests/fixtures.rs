//! Results pinned before the simulator's rewrite for scale (issue 14): on every shipped topology
//! and on seeded random graphs, under both delivery models and several seeds, the leader, the
//! tree, the roles and the message counts (setup and each Yo-Yo iteration, the tree) must stay
//! what they were. `fixtures/results.txt` holds one line per case, written by the simulator as
//! it was; a rewrite that changes any of them fails here, naming the case.
//!
//! Under synchronous delivery every line must stay the same, word for word. Under asynchronous
//! delivery the counts must (leader, iterations, each phase's messages, the tree's, all
//! delivered), as the issue that asked for the rewrite says; the tree, the roles and the virtual
//! time follow the random delays, whose draws changed once on purpose: each link draws its own
//! (`link_delay` in the simulator), so that two threads can put messages on their links at once.
//! `fixtures/results-async.txt` pins those runs, word for word, from that change on.
//!
//! To take the fixtures again (only for a deliberate change of the algorithms' behaviour, or of
//! how the simulator draws its delays): `LABCTL_BLESS=1 cargo test -p labctl-sim --test fixtures`
//! writes `results-async.txt`; `LABCTL_BLESS=all` both files.

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

/// The part of a line that no delay can change: up to the delivered count, before the virtual
/// time, the tree and the roles.
fn counts(line: &str) -> &str {
    line.split(" time=").next().expect("a line")
}

/// The lines of `results` that differ from `now` (by `same`), as "was / now" pairs.
fn changed_lines(
    pinned: &[&str],
    now: &[String],
    same: impl Fn(&str, &str) -> bool,
) -> Vec<String> {
    pinned
        .iter()
        .zip(now)
        .filter(|(was, is)| !same(was, is))
        .map(|(was, is)| format!("was: {was}\nnow: {is}"))
        .collect()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn assert_none_changed(changed: &[String], of: usize, what: &str) {
    assert!(
        changed.is_empty(),
        "{} of {of} runs changed {what}:\n{}",
        changed.len(),
        changed[..changed.len().min(5)].join("\n")
    );
}

#[test]
fn results_are_what_they_were_before_the_rewrite() {
    let now = all_lines();
    let asynchronous: Vec<String> = now
        .iter()
        .filter(|l| l.contains(" Async "))
        .cloned()
        .collect();
    match std::env::var("LABCTL_BLESS").as_deref() {
        Ok("all") => {
            std::fs::write(fixture("results.txt"), now.join("\n") + "\n").expect("writing");
            std::fs::write(fixture("results-async.txt"), asynchronous.join("\n") + "\n")
                .expect("writing");
            return;
        }
        Ok(_) => {
            std::fs::write(fixture("results-async.txt"), asynchronous.join("\n") + "\n")
                .expect("writing");
            return;
        }
        Err(_) => {}
    }
    let pinned =
        std::fs::read_to_string(fixture("results.txt")).expect("tests/fixtures/results.txt");
    let pinned: Vec<&str> = pinned.lines().collect();
    assert_eq!(pinned.len(), now.len(), "the number of cases changed");
    let changed = changed_lines(&pinned, &now, |was, is| {
        if was.contains(" Async ") {
            counts(was) == counts(is)
        } else {
            was == is
        }
    });
    assert_none_changed(&changed, now.len(), "since before the rewrite");

    let pinned = std::fs::read_to_string(fixture("results-async.txt"))
        .expect("tests/fixtures/results-async.txt");
    let pinned: Vec<&str> = pinned.lines().collect();
    assert_eq!(
        pinned.len(),
        asynchronous.len(),
        "the number of async cases changed"
    );
    let changed = changed_lines(&pinned, &asynchronous, |was, is| was == is);
    assert_none_changed(&changed, asynchronous.len(), "under asynchronous delivery");
}

#[test]
fn a_line_s_counts_leave_out_what_the_delays_decide() {
    let line = "ring4 Async seed=1 leader=Some(1) iterations=1 phases=[8, 8] election=16 \
                tree_messages=8 delivered=24 time=61 tree={\"1\": \"-\"} roles=1:[Writer]";
    assert_eq!(
        counts(line),
        "ring4 Async seed=1 leader=Some(1) iterations=1 phases=[8, 8] election=16 \
         tree_messages=8 delivered=24"
    );
}
