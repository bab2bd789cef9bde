//! Property: every random graph the generator accepts is a connected simple graph with exactly
//! round(n * degree / 2) links, and the same seed always gives the same graph.

use std::collections::{BTreeSet, VecDeque};

use labctl_topology::{Generate, IdOrder, Shape, Topology};
use proptest::prelude::*;

/// Number of nodes reachable from the smallest id.
fn reachable(t: &Topology) -> usize {
    let adjacency = t.adjacency();
    let mut seen = BTreeSet::from([t.min_id()]);
    let mut queue = VecDeque::from([t.min_id()]);
    while let Some(id) = queue.pop_front() {
        for &next in &adjacency[&id] {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    seen.len()
}

/// (n, degree) with degree anywhere from a spanning tree to the complete graph.
fn size() -> impl Strategy<Value = (usize, f64)> {
    (1usize..120).prop_flat_map(|n| {
        let low = 2.0 * (n as f64 - 1.0) / n as f64;
        let high = n as f64 - 1.0;
        (Just(n), low..=high)
    })
}

proptest! {
    #[test]
    fn random_graphs_are_connected_simple_and_exact(
        (n, degree) in size(),
        seed in any::<u64>(),
        shuffle in any::<bool>(),
    ) {
        let ids = if shuffle { IdOrder::Shuffle } else { IdOrder::Sequential };
        let spec = Generate { shape: Shape::Random { n, degree }, ids, seed };
        let t = Topology::generate("p", &spec).unwrap();
        let m = (n as f64 * degree / 2.0).round() as usize;
        prop_assert_eq!(t.node_count(), n);
        prop_assert_eq!(t.link_count(), m);
        let links = t.links();
        prop_assert!(links.iter().all(|(a, b)| a < b), "self-loop");
        prop_assert_eq!(links.iter().collect::<BTreeSet<_>>().len(), m, "duplicate link");
        prop_assert_eq!(t.ids(), (1..=n as u64).collect::<Vec<_>>());
        prop_assert_eq!(reachable(&t), n, "disconnected");
        let again = Topology::generate("p", &spec).unwrap();
        prop_assert_eq!(again.links(), links);
    }
}
