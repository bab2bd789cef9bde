//! A graph as compressed sparse rows: the nodes by dense index (in id order), each node's
//! neighbours as indices, side by side in one array.
//!
//! The report's checks and the simulator walk a million-node graph on this form: a node's
//! neighbours are one slice, found by its index, where an [`Adjacency`](crate::report::Adjacency)
//! (a B-tree of B-trees) costs a handful of cache misses per lookup and a heap block per node.

use std::collections::BTreeMap;

use crate::report::Adjacency;
use crate::NodeId;

/// An undirected graph in compressed sparse rows (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    /// Every node's id, sorted: node `i` is `ids[i]`.
    ids: Vec<NodeId>,
    /// Node `i`'s neighbours are `neighbors[row[i]..row[i + 1]]`.
    row: Vec<u32>,
    /// The neighbours' indices, each row sorted (so by id too).
    neighbors: Vec<u32>,
}

impl Default for Graph {
    /// The graph of no nodes.
    fn default() -> Graph {
        Graph {
            ids: Vec::new(),
            row: vec![0],
            neighbors: Vec::new(),
        }
    }
}

impl Graph {
    /// The graph of `ids` (any order, no repeats) and undirected `links` between them given as
    /// places in `ids` (each link once, either way round). A topology's nodes come this way.
    /// Panics on a repeated id, a link given twice or a link from a node to itself: a simple
    /// graph is the caller's to give (a topology is checked to be one when it loads).
    pub fn from_numbered(
        ids: Vec<NodeId>,
        links: impl Iterator<Item = (usize, usize)> + Clone,
    ) -> Graph {
        // Each place's rank in id order: the node's index.
        let mut order: Vec<u32> = (0..count(ids.len())).collect();
        order.sort_unstable_by_key(|&k| ids[k as usize]);
        let mut rank = vec![0u32; ids.len()];
        for (r, &k) in order.iter().enumerate() {
            rank[k as usize] = count(r);
        }
        let ids: Vec<NodeId> = order.iter().map(|&k| ids[k as usize]).collect();
        drop(order);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "repeated node ids");
        // Count each node's degree, then place each link's two ends (a counting sort).
        let mut row = vec![0u32; ids.len() + 1];
        for (a, b) in links.clone() {
            row[rank[a] as usize + 1] += 1;
            row[rank[b] as usize + 1] += 1;
        }
        let mut total = 0usize;
        for i in 0..ids.len() {
            total += row[i + 1] as usize;
            row[i + 1] = count(total);
        }
        let mut neighbors = vec![0u32; row[ids.len()] as usize];
        let mut next: Vec<u32> = row[..ids.len()].to_vec();
        for (a, b) in links {
            let (a, b) = (rank[a], rank[b]);
            neighbors[next[a as usize] as usize] = b;
            next[a as usize] += 1;
            neighbors[next[b as usize] as usize] = a;
            next[b as usize] += 1;
        }
        for i in 0..ids.len() {
            let own = &mut neighbors[row[i] as usize..row[i + 1] as usize];
            own.sort_unstable();
            assert!(
                own.windows(2).all(|w| w[0] < w[1]) && own.binary_search(&count(i)).is_err(),
                "node {} has a link given twice, or to itself",
                ids[i]
            );
        }
        Graph {
            ids,
            row,
            neighbors,
        }
    }

    /// The graph of an adjacency map (each link listed at both ends).
    pub fn from_adjacency(adjacency: &Adjacency) -> Graph {
        let ids: Vec<NodeId> = adjacency.keys().copied().collect();
        let mut row = Vec::with_capacity(ids.len() + 1);
        let mut neighbors = Vec::new();
        for links in adjacency.values() {
            row.push(count(neighbors.len()));
            neighbors.extend(links.iter().map(|n| {
                let i = ids.binary_search(n).expect("a neighbour is a node");
                count(i)
            }));
        }
        row.push(count(neighbors.len()));
        Graph {
            ids,
            row,
            neighbors,
        }
    }

    /// The graph from its parts: `ids` sorted, `row` of `ids.len() + 1` bounds, `neighbors` by
    /// index, each row sorted. Panics if they do not fit together.
    pub fn from_rows(ids: Vec<NodeId>, row: Vec<u32>, neighbors: Vec<u32>) -> Graph {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids sorted, no repeats"
        );
        assert_eq!(row.len(), ids.len() + 1, "one row per node");
        assert!(
            row[0] == 0 && row.windows(2).all(|w| w[0] <= w[1]),
            "rows in order"
        );
        assert_eq!(row.last().copied(), Some(count(neighbors.len())));
        for i in 0..ids.len() {
            let own = &neighbors[row[i] as usize..row[i + 1] as usize];
            assert!(
                own.windows(2).all(|w| w[0] < w[1])
                    && own.iter().all(|&n| (n as usize) < ids.len()),
                "node {}'s row is not its sorted neighbours",
                ids[i]
            );
        }
        Graph {
            ids,
            row,
            neighbors,
        }
    }

    /// Its parts: the ids, the rows' bounds and the neighbours (see [`Graph::from_rows`]).
    pub fn into_rows(self) -> (Vec<NodeId>, Vec<u32>, Vec<u32>) {
        (self.ids, self.row, self.neighbors)
    }

    /// The adjacency map of the same graph.
    pub fn adjacency(&self) -> Adjacency {
        (0..self.len())
            .map(|i| (self.ids[i], self.neighbor_ids(i).collect()))
            .collect::<BTreeMap<_, _>>()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// No nodes.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of (undirected) links.
    pub fn links(&self) -> usize {
        self.neighbors.len() / 2
    }

    /// Every node's id, sorted: node `i` is `ids()[i]`.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// Node `i`'s neighbours, by index, sorted.
    pub fn neighbors(&self, i: usize) -> &[u32] {
        &self.neighbors[self.row[i] as usize..self.row[i + 1] as usize]
    }

    /// Node `i`'s neighbours' ids, sorted.
    pub fn neighbor_ids(&self, i: usize) -> impl Iterator<Item = NodeId> + '_ {
        self.neighbors(i).iter().map(|&n| self.ids[n as usize])
    }

    /// The connected parts, as lists of indices (each sorted), ordered by their smallest.
    pub fn components(&self) -> Vec<Vec<u32>> {
        let mut seen = vec![false; self.len()];
        let mut parts = Vec::new();
        for start in 0..self.len() {
            if seen[start] {
                continue;
            }
            seen[start] = true;
            let mut part = vec![count(start)];
            let mut next = 0;
            while let Some(&n) = part.get(next) {
                next += 1;
                for &m in self.neighbors(n as usize) {
                    if !seen[m as usize] {
                        seen[m as usize] = true;
                        part.push(m);
                    }
                }
            }
            part.sort_unstable();
            parts.push(part);
        }
        parts
    }
}

/// An index or a count as the rows keep it.
fn count(k: usize) -> u32 {
    u32::try_from(k).expect("fewer than 2³² nodes and directed links")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ring(n: u64) -> Adjacency {
        (1..=n)
            .map(|i| {
                let prev = if i == 1 { n } else { i - 1 };
                let next = if i == n { 1 } else { i + 1 };
                (i * 10, BTreeSet::from([prev * 10, next * 10]))
            })
            .collect()
    }

    #[test]
    fn links_and_adjacency_make_the_same_graph_and_give_the_adjacency_back() {
        let adjacency = ring(7);
        let from_map = Graph::from_adjacency(&adjacency);
        // The ids in another order, each link once (given the other way round), by place.
        let ids: Vec<NodeId> = adjacency.keys().rev().copied().collect();
        let place = |id: NodeId| ids.iter().position(|&i| i == id).unwrap();
        let links: Vec<(usize, usize)> = adjacency
            .iter()
            .flat_map(|(&a, ns)| ns.iter().filter(move |&&b| a < b).map(move |&b| (b, a)))
            .map(|(a, b)| (place(a), place(b)))
            .collect();
        let numbered = Graph::from_numbered(ids.clone(), links.into_iter());
        assert_eq!(from_map, numbered);
        assert_eq!(from_map.adjacency(), adjacency);
        assert_eq!((from_map.len(), from_map.links()), (7, 7));
        assert_eq!(from_map.ids()[2], 30);
        assert_eq!(from_map.neighbors(0), [1, 6]);
        assert_eq!(from_map.neighbor_ids(0).collect::<Vec<_>>(), [20, 70]);
        let (ids, row, neighbors) = from_map.clone().into_rows();
        assert_eq!(Graph::from_rows(ids, row, neighbors), from_map);
    }

    #[test]
    fn the_empty_graph_has_its_one_bound() {
        let empty = Graph::default();
        assert_eq!((empty.len(), empty.links()), (0, 0));
        assert!(empty.components().is_empty());
        let (ids, row, neighbors) = empty.clone().into_rows();
        assert_eq!(Graph::from_rows(ids, row, neighbors), empty);
        assert_eq!(Graph::from_adjacency(&Adjacency::new()), empty);
    }

    #[test]
    #[should_panic(expected = "given twice, or to itself")]
    fn a_link_given_twice_is_refused() {
        Graph::from_numbered(vec![1, 2], [(0, 1), (1, 0)].into_iter());
    }

    #[test]
    #[should_panic(expected = "given twice, or to itself")]
    fn a_link_to_itself_is_refused() {
        Graph::from_numbered(vec![1, 2], [(0, 0)].into_iter());
    }

    #[test]
    fn components_are_found_in_order_of_their_smallest_node() {
        let mut adjacency = ring(4);
        adjacency.insert(5, BTreeSet::new());
        adjacency.insert(100, BTreeSet::from([200]));
        adjacency.insert(200, BTreeSet::from([100]));
        let graph = Graph::from_adjacency(&adjacency);
        let parts: Vec<Vec<NodeId>> = graph
            .components()
            .iter()
            .map(|p| p.iter().map(|&i| graph.ids()[i as usize]).collect())
            .collect();
        assert_eq!(parts, vec![vec![5], vec![10, 20, 30, 40], vec![100, 200]]);
    }
}
