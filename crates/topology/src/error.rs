//! What can be wrong with a topology, and where.

use std::fmt;

use crate::generate::SHAPE_LIST;
use crate::NodeId;

/// A topology that could not be read, parsed or generated.
///
/// Displays as `origin[:line[:column]]: message`, e.g.
/// `ring6.toml:3:12: duplicate node id 4: each id in `nodes` must appear once`.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: {kind}", Position(*.line, *.column))]
pub struct TopologyError {
    /// The file the topology came from (or the name given to [`crate::Topology::generate`]).
    pub origin: String,
    /// 1-based line of the offending text, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the offending text, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl TopologyError {
    /// An error with no known position.
    pub(crate) fn at_origin(origin: &str, kind: ErrorKind) -> Self {
        TopologyError {
            origin: origin.to_string(),
            line: None,
            column: None,
            kind,
        }
    }
}

/// Formats `:line:column`, `:line` or nothing.
struct Position(Option<usize>, Option<usize>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, ":{line}:{column}"),
            (Some(line), None) => write!(f, ":{line}"),
            _ => Ok(()),
        }
    }
}

/// The valid name pattern, for messages.
const NAME_RULE: &str =
    "a name is 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or a digit";

/// Each way a topology can be wrong; the message names the offending value and what would be valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("cannot read the topology file: {error}")]
    Unreadable {
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("invalid TOML: {message}")]
    Syntax {
        /// The TOML parser's message, on one line.
        message: String,
    },
    /// A key holds a value of the wrong type.
    #[error("`{key}` has the wrong type: {message}; `{key}` is {expected}")]
    WrongType {
        /// The key, e.g. `links` or `generate.rows`.
        key: String,
        /// The deserializer's message.
        message: String,
        /// What the key holds.
        expected: &'static str,
    },
    /// A key that the format does not have.
    #[error("unknown key `{key}` {table}: valid keys are {valid}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// `at the top level` or `in [generate]`.
        table: &'static str,
        /// The keys that table accepts.
        valid: &'static str,
    },
    /// There is no `name`.
    #[error("missing `name`: every topology file needs one, like name = \"ring6\" ({NAME_RULE})")]
    MissingName,
    /// The `name` does not match `[a-z0-9][a-z0-9-]*` or is longer than 63 characters.
    #[error("invalid name {name:?}: {NAME_RULE}")]
    InvalidName {
        /// The name as written.
        name: String,
    },
    /// Neither `nodes` (with `links`) nor `[generate]` is present.
    #[error("no graph: give `nodes` and `links`, or a `[generate]` table")]
    MissingGraph,
    /// Both `nodes`/`links` and `[generate]` are present.
    #[error("`nodes`/`links` and `[generate]` are exclusive: keep one of them")]
    BothForms,
    /// `links` is present without `nodes`.
    #[error("`links` without `nodes`: list the node ids in `nodes = [...]`")]
    LinksWithoutNodes,
    /// `nodes` lists more than one node but there is no `links`.
    #[error(
        "`nodes` lists {nodes} nodes but there is no `links`: only a one-node lab may omit `links`"
    )]
    MissingLinks {
        /// How many nodes are listed.
        nodes: usize,
    },
    /// `nodes = []`.
    #[error("`nodes` is empty: a lab has at least one node, like nodes = [1]")]
    EmptyNodes,
    /// A node id that is 0, negative or too large.
    #[error("invalid node id {value}: ids are positive integers 1..=9223372036854775807")]
    InvalidId {
        /// The id as written.
        value: String,
    },
    /// The same id twice in `nodes`.
    #[error("duplicate node id {id}: each id in `nodes` must appear once")]
    DuplicateId {
        /// The repeated id.
        id: NodeId,
    },
    /// A link that is not exactly two ids.
    #[error("a link has {len} ids: each link is a pair of node ids, like [1, 2]")]
    LinkNotPair {
        /// How many ids the link has.
        len: usize,
    },
    /// A link from a node to itself.
    #[error("self-loop [{id}, {id}]: a link joins two different nodes")]
    SelfLoop {
        /// The node linked to itself.
        id: NodeId,
    },
    /// The same undirected link twice (also `[2, 1]` after `[1, 2]`).
    #[error(
        "duplicate link [{}, {}]: [{}, {}] already links them; links are undirected, list each once",
        .written.0, .written.1, .first.0, .first.1
    )]
    DuplicateLink {
        /// The repeated link as written.
        written: (NodeId, NodeId),
        /// The earlier link as written.
        first: (NodeId, NodeId),
    },
    /// A link naming an id that is not in `nodes` (this includes 0 and negative ids).
    #[error("link names node {id}, which is not in `nodes`: links may only join listed nodes")]
    UnknownNode {
        /// The id as written.
        id: String,
    },
    /// The links do not connect every node.
    #[error(
        "the graph is disconnected ({components} components): node {unreachable} cannot be reached \
         from node {from}; every node must be reachable from every other"
    )]
    Disconnected {
        /// The smallest id, where the search starts.
        from: NodeId,
        /// The smallest id the search does not reach.
        unreachable: NodeId,
        /// The number of connected components.
        components: usize,
    },
    /// `[generate]` without `shape`.
    #[error("`[generate]` needs `shape`: one of {}", SHAPE_LIST.as_str())]
    MissingShape,
    /// A `shape` that is not one of the generators.
    #[error("unknown shape {shape:?}: valid shapes are {}", SHAPE_LIST.as_str())]
    UnknownShape {
        /// The shape as written.
        shape: String,
    },
    /// A size key that the chosen shape does not take, e.g. `rows` with a ring.
    #[error("`{key}` does not apply to shape {shape}: {shape} takes {takes}")]
    KeyNotForShape {
        /// The key as written.
        key: &'static str,
        /// The chosen shape.
        shape: &'static str,
        /// The keys the shape takes.
        takes: &'static str,
    },
    /// A size key that the chosen shape needs is missing.
    #[error("shape {shape} needs `{key}`: {shape} takes {takes}")]
    MissingKey {
        /// The missing key.
        key: &'static str,
        /// The chosen shape.
        shape: &'static str,
        /// The keys the shape takes.
        takes: &'static str,
    },
    /// A size or seed outside its valid range.
    #[error("`{key}` = {value} is out of range: {valid}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// The valid range, e.g. `ring takes n >= 3`.
        valid: &'static str,
    },
    /// A random graph's `degree` asks for too few links to connect `n` nodes, or more than exist.
    #[error(
        "`degree` = {degree} is out of range for random with n = {n}: the link count round(n*degree/2) \
         must be between n-1 = {min_links} and n(n-1)/2 = {max_links}, i.e. degree from about \
         {min_degree:.3} to {max_degree}"
    )]
    DegreeOutOfRange {
        /// The number of nodes.
        n: usize,
        /// The requested average degree.
        degree: f64,
        /// The fewest links a connected graph on `n` nodes has.
        min_links: u64,
        /// The most links a simple graph on `n` nodes has.
        max_links: u64,
        /// The smallest average degree that gives `min_links`.
        min_degree: f64,
        /// The largest average degree, `n - 1`.
        max_degree: u64,
    },
    /// An `ids` order other than sequential, shuffle or reverse.
    #[error("unknown ids order {ids:?}: valid orders are sequential, shuffle, reverse")]
    UnknownIdOrder {
        /// The order as written.
        ids: String,
    },
    /// The graph would exceed the size guard.
    #[error(
        "the graph would have {} nodes and {} links: at most {} nodes and {} links are supported",
        Count(*.nodes), Count(*.links), crate::MAX_NODES, crate::MAX_LINKS
    )]
    TooLarge {
        /// The computed number of nodes (`u64::MAX` if even larger).
        nodes: u64,
        /// The computed number of links (`u64::MAX` if even larger).
        links: u64,
    },
}

/// Formats a saturated count as "more than 10^19" instead of a misleading number.
struct Count(u64);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == u64::MAX {
            write!(f, "more than 10^19")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_origin_line_column_message() {
        let err = TopologyError {
            origin: "ring6.toml".into(),
            line: Some(3),
            column: Some(12),
            kind: ErrorKind::DuplicateId { id: 4 },
        };
        assert_eq!(
            err.to_string(),
            "ring6.toml:3:12: duplicate node id 4: each id in `nodes` must appear once"
        );
        let err = TopologyError::at_origin("x.toml", ErrorKind::MissingName);
        assert!(
            err.to_string().starts_with("x.toml: missing `name`"),
            "{err}"
        );
        let err = TopologyError {
            line: Some(2),
            ..TopologyError::at_origin("x.toml", ErrorKind::EmptyNodes)
        };
        assert!(err.to_string().starts_with("x.toml:2: "), "{err}");
    }

    #[test]
    fn too_large_says_when_it_saturated() {
        let kind = ErrorKind::TooLarge {
            nodes: u64::MAX,
            links: 5,
        };
        assert!(kind
            .to_string()
            .contains("more than 10^19 nodes and 5 links"));
    }
}
