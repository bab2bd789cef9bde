//! Breadth-first searches over a topology: connectivity, eccentricity and diameter.
//!
//! The searches run over a compact copy of the adjacency (one flat array of neighbour indices),
//! which is several times faster than walking petgraph's linked edge lists on large graphs.

use std::collections::VecDeque;

use crate::{NodeId, Topology};

/// Neighbour lists in one array: the neighbours of node `i` are `targets[offsets[i]..offsets[i + 1]]`.
pub(crate) struct Adjacency {
    offsets: Vec<usize>,
    targets: Vec<u32>,
}

/// Marks a node the search has not reached.
const UNSEEN: u32 = u32::MAX;

impl Adjacency {
    /// The adjacency of a topology's graph, by node index.
    pub(crate) fn new(t: &Topology) -> Self {
        let n = t.graph.node_count();
        let mut degree = vec![0usize; n];
        for edge in t.graph.raw_edges() {
            degree[edge.source().index()] += 1;
            degree[edge.target().index()] += 1;
        }
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        for d in &degree {
            offsets.push(offsets.last().unwrap() + d);
        }
        let mut fill = offsets[..n].to_vec();
        let mut targets = vec![0u32; offsets[n]];
        for edge in t.graph.raw_edges() {
            let (a, b) = (edge.source().index(), edge.target().index());
            targets[fill[a]] = b as u32;
            fill[a] += 1;
            targets[fill[b]] = a as u32;
            fill[b] += 1;
        }
        Adjacency { offsets, targets }
    }

    /// The neighbours of node index `i`.
    pub(crate) fn neighbours(&self, i: usize) -> &[u32] {
        &self.targets[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Number of nodes.
    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Distances (in hops) from `start` to every node, `UNSEEN` where unreachable, reusing `dist`
    /// and `queue`; returns the largest distance reached.
    fn bfs(&self, start: usize, dist: &mut [u32], queue: &mut VecDeque<u32>) -> u32 {
        dist.fill(UNSEEN);
        queue.clear();
        dist[start] = 0;
        queue.push_back(start as u32);
        let mut far = 0;
        while let Some(i) = queue.pop_front() {
            let d = dist[i as usize];
            far = d;
            for &j in self.neighbours(i as usize) {
                if dist[j as usize] == UNSEEN {
                    dist[j as usize] = d + 1;
                    queue.push_back(j);
                }
            }
        }
        far
    }
}

/// `None` if the graph is connected; otherwise the smallest id, the smallest id it cannot reach,
/// and the number of connected components.
pub(crate) fn disconnected(t: &Topology) -> Option<(NodeId, NodeId, usize)> {
    let adjacency = Adjacency::new(t);
    let n = adjacency.len();
    if n == 0 {
        return None;
    }
    let ids: Vec<NodeId> = t.graph.node_weights().copied().collect();
    let start = (0..n).min_by_key(|&i| ids[i]).expect("n > 0");
    let mut dist = vec![UNSEEN; n];
    let mut queue = VecDeque::new();
    adjacency.bfs(start, &mut dist, &mut queue);
    let unreachable = (0..n)
        .filter(|&i| dist[i] == UNSEEN)
        .map(|i| ids[i])
        .min()?;
    // Count components: search from each node no earlier search reached, never clearing marks.
    let mut seen = vec![false; n];
    let mut count = 0;
    for root in 0..n {
        if seen[root] {
            continue;
        }
        count += 1;
        seen[root] = true;
        queue.clear();
        queue.push_back(root as u32);
        while let Some(i) = queue.pop_front() {
            for &j in adjacency.neighbours(i as usize) {
                if !seen[j as usize] {
                    seen[j as usize] = true;
                    queue.push_back(j);
                }
            }
        }
    }
    Some((ids[start], unreachable, count))
}

/// The eccentricity of node index `i` (largest distance to a reachable node).
pub(crate) fn eccentricity(adjacency: &Adjacency, i: usize) -> usize {
    let mut dist = vec![UNSEEN; adjacency.len()];
    adjacency.bfs(i, &mut dist, &mut VecDeque::new()) as usize
}

/// The largest eccentricity: one search from every node.
pub(crate) fn diameter(adjacency: &Adjacency) -> usize {
    let n = adjacency.len();
    let mut dist = vec![UNSEEN; n];
    let mut queue = VecDeque::with_capacity(n);
    (0..n)
        .map(|i| adjacency.bfs(i, &mut dist, &mut queue) as usize)
        .max()
        .unwrap_or(0)
}
