//! Lab topologies: which nodes a lab has, their election ids, and who links to whom.
//!
//! A topology file (SPEC §2) is TOML with a `name` and either the graph written out,
//!
//! ```toml
//! name = "ring6"                          # [a-z0-9][a-z0-9-]*, at most 63 characters
//! nodes = [1, 2, 3, 4, 5, 6]              # distinct positive integers: the election ids
//! links = [[1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 1]]   # undirected, each once
//! ```
//!
//! or a `[generate]` table naming a shape and its sizes (`shape = "grid"`, `rows = 4`, `cols = 4`),
//! how ids are assigned (`ids = "sequential" | "shuffle" | "reverse"`) and a `seed`; see
//! [`Generate`] and [`Shape`]. The graph must be connected and simple. Every mistake is a
//! [`TopologyError`] that names the file, line and column, the offending value and what is valid.
//!
//! ```
//! use labctl_topology::{Generate, IdOrder, Shape, Topology};
//!
//! let ring = Topology::from_toml(
//!     "name = \"ring3\"\nnodes = [3, 1, 2]\nlinks = [[1, 2], [2, 3], [3, 1]]\n",
//!     "ring3.toml",
//! )?;
//! assert_eq!(ring.ids(), [1, 2, 3]);
//! assert_eq!(ring.diameter(), 1);
//!
//! let grid = Topology::generate(
//!     "grid3x3",
//!     &Generate { shape: Shape::Grid { rows: 3, cols: 3 }, ids: IdOrder::Shuffle, seed: 7 },
//! )?;
//! assert_eq!((grid.node_count(), grid.link_count()), (9, 12));
//! print!("{}", labctl_topology::render::ascii(&grid));
//!
//! let err = Topology::from_toml("name = \"x\"\nnodes = [1, 1]\n", "x.toml").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "x.toml:2:13: duplicate node id 1: each id in `nodes` must appear once"
//! );
//! # Ok::<(), labctl_topology::TopologyError>(())
//! ```

#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use petgraph::graph::UnGraph;

mod components;
mod error;
mod file;
mod generate;
pub mod render;
pub mod rng;

pub use error::{ErrorKind, TopologyError};
pub use generate::{Generate, IdOrder, Shape};

/// A node's election id: a positive integer, unique in its lab.
pub type NodeId = u64;

/// The most nodes a topology may have.
pub const MAX_NODES: usize = 1_000_000;
/// The most links a topology may have.
pub const MAX_LINKS: usize = 10_000_000;

/// A topology file counted before its graph is built ([`Topology::count_path`]).
#[derive(Debug)]
pub struct Counted {
    /// Its node count.
    pub nodes: usize,
    /// Its link count.
    pub links: usize,
    /// The topology, when counting had to build it (a written-out graph).
    built: Option<Topology>,
    text: String,
    origin: String,
}

impl Counted {
    /// The topology: the one already built, or the `[generate]` table's graph generated now.
    pub fn load(self) -> Result<Topology, TopologyError> {
        match self.built {
            Some(topology) => Ok(topology),
            None => file::parse(&self.text, &self.origin),
        }
    }
}

/// A lab's topology: its name and an undirected, connected, simple graph whose node weights are the
/// election ids.
///
/// The constructors guarantee those properties; code that builds or edits `graph` directly must keep
/// them (the queries assume at least one node).
#[derive(Debug, Clone)]
pub struct Topology {
    /// The lab's name, `[a-z0-9][a-z0-9-]*`.
    pub name: String,
    /// The graph; node weights are the ids. Node indices follow the file's `nodes` order, or the
    /// generator's order.
    pub graph: UnGraph<NodeId, ()>,
    /// The live lab's failure-detector timings (`[timing]`, optional).
    pub timing: Timing,
    /// When a write counts as done (`[lab] durability`, optional: `labctl up` then takes its
    /// `--durability`, by default `majority`).
    pub durability: Option<Durability>,
}

/// `[lab] durability`: when a write counts as done (SPEC §4).
pub use labctl_core::plane::Durability;

/// The `[timing]` table: how often nodes send heartbeats and when a silent neighbour is suspected
/// (the protocol core's own settings, so one type carries them from the file to the nodes).
pub use labctl_core::Timing;

/// Whether `name` is a valid lab name: `[a-z0-9][a-z0-9-]*`, at most 63 characters (it names
/// folders and, later, containers).
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && ok(&bytes[0])
        && bytes.iter().all(|b| ok(b) || *b == b'-')
}

impl Topology {
    /// Reads and checks a topology file; error messages name the file as `path` was given.
    pub fn from_path(path: &Path) -> Result<Topology, TopologyError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| TopologyError::at_origin(&origin, ErrorKind::Unreadable { error }))?;
        Self::from_toml(&text, &origin)
    }

    /// Parses and checks a topology file's text; `origin` (a file name) starts every error message.
    pub fn from_toml(text: &str, origin: &str) -> Result<Topology, TopologyError> {
        file::parse(text, origin)
    }

    /// A topology file read and checked as [`Topology::from_path`] checks it, its graph counted
    /// but a `[generate]` table's not generated yet: what a run will cost, known at once, then
    /// [`Counted::load`] to build it (without reading or parsing the file again when it wrote its
    /// graph out).
    pub fn count_path(path: &Path) -> Result<Counted, TopologyError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| TopologyError::at_origin(&origin, ErrorKind::Unreadable { error }))?;
        let (nodes, links, built) = file::counts(&text, &origin)?;
        Ok(Counted {
            nodes,
            links,
            built,
            text,
            origin,
        })
    }

    /// The node and link counts of a topology file ([`Topology::count_path`]).
    pub fn counts_from_path(path: &Path) -> Result<(usize, usize), TopologyError> {
        Topology::count_path(path).map(|c| (c.nodes, c.links))
    }

    /// Builds a generated topology from code, as a `[generate]` table would; errors start with `name`.
    pub fn generate(name: &str, spec: &Generate) -> Result<Topology, TopologyError> {
        if !valid_name(name) {
            let kind = ErrorKind::InvalidName {
                name: name.to_string(),
            };
            return Err(TopologyError::at_origin(name, kind));
        }
        Self::build(name.to_string(), spec)
            .map_err(|invalid| TopologyError::at_origin(name, invalid.kind))
    }

    /// The node and link counts [`Topology::generate`] would give, checked the same way, without
    /// generating the graph.
    pub fn generated_counts(name: &str, spec: &Generate) -> Result<(usize, usize), TopologyError> {
        spec.shape
            .check()
            .map_err(|invalid| TopologyError::at_origin(name, invalid.kind))
    }

    /// Generates the graph (the name is already checked).
    pub(crate) fn build(name: String, spec: &Generate) -> Result<Topology, generate::Invalid> {
        let (ids, links) = spec.build()?;
        let mut graph = UnGraph::with_capacity(ids.len(), links.len());
        for id in ids {
            graph.add_node(id);
        }
        graph.extend_with_edges(links);
        Ok(Topology {
            name,
            graph,
            timing: Timing::default(),
            durability: None,
        })
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Number of links.
    pub fn link_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// The ids, ascending.
    pub fn ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.graph.node_weights().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The links as id pairs `(a, b)` with `a < b`, sorted.
    pub fn links(&self) -> Vec<(NodeId, NodeId)> {
        let mut links: Vec<(NodeId, NodeId)> = self
            .graph
            .raw_edges()
            .iter()
            .map(|e| {
                let (a, b) = (self.graph[e.source()], self.graph[e.target()]);
                (a.min(b), a.max(b))
            })
            .collect();
        links.sort_unstable();
        links
    }

    /// Each id's neighbours.
    pub fn adjacency(&self) -> BTreeMap<NodeId, BTreeSet<NodeId>> {
        let mut map: BTreeMap<NodeId, BTreeSet<NodeId>> = self
            .graph
            .node_weights()
            .map(|&id| (id, BTreeSet::new()))
            .collect();
        for e in self.graph.raw_edges() {
            let (a, b) = (self.graph[e.source()], self.graph[e.target()]);
            map.entry(a).or_default().insert(b);
            map.entry(b).or_default().insert(a);
        }
        map
    }

    /// The graph in compressed sparse rows, as the simulator and the report walk it (no map of
    /// sets: a million nodes' graph is built in a few hundred milliseconds).
    pub fn rows(&self) -> labctl_core::Graph {
        let ids = self.graph.node_weights().copied().collect();
        let links = self
            .graph
            .raw_edges()
            .iter()
            .map(|e| (e.source().index(), e.target().index()));
        labctl_core::Graph::from_numbered(ids, links)
    }

    /// The largest number of hops from `id` to any node (one breadth-first search); `None` if `id`
    /// is not in the topology.
    pub fn eccentricity(&self, id: NodeId) -> Option<usize> {
        let index = self.graph.node_indices().find(|&i| self.graph[i] == id)?;
        let adjacency = components::Adjacency::new(self);
        Some(components::eccentricity(&adjacency, index.index()))
    }

    /// The largest eccentricity: the most hops any message needs.
    ///
    /// Exact, by a breadth-first search from every node: O(n · (n + m)) time. That is instant up to a
    /// few thousand nodes but hours on the largest graphs (100,000 nodes of degree 4 is about 3·10^10
    /// steps), so callers should avoid it on huge topologies.
    pub fn diameter(&self) -> usize {
        components::diameter(&components::Adjacency::new(self))
    }

    /// The smallest id: the leader every election must choose.
    ///
    /// # Panics
    /// If the graph has no nodes (the constructors never build one).
    pub fn min_id(&self) -> NodeId {
        self.graph
            .node_weights()
            .copied()
            .min()
            .expect("a topology has at least one node")
    }
}

#[cfg(test)]
mod tests;
