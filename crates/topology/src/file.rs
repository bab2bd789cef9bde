//! Reading a topology file (SPEC §2): TOML text to a checked [`Topology`].
//!
//! Three passes over one parse: the TOML is parsed once into a span-carrying table; the keys are
//! checked against the format (so an unknown key gets a typed error naming the valid keys); the
//! table is then deserialized into the structs below, whose `Spanned` fields give the byte range
//! of every value, so each rule can point at the offending text.

use std::collections::HashMap;
use std::ops::Range;

use petgraph::graph::{NodeIndex, UnGraph};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{ErrorKind, TopologyError};
use crate::generate::{size_keys, Generate, IdOrder, Invalid, ShapeKind, Sizes, SHAPE_LIST};
use crate::{components, valid_name, NodeId, Timing, Topology, MAX_LINKS, MAX_NODES};

/// The top-level keys; keep in step with [`Document`].
const TOP_KEYS: &[&str] = &["name", "nodes", "links", "generate", "timing", "lab"];
/// [`TOP_KEYS`] for messages.
const TOP_KEYS_TEXT: &str = "name, nodes, links, generate, timing, lab";
/// The `[timing]` keys; keep in step with [`TimingTable`].
const TIMING_KEYS: &[&str] = &["heartbeat_ms", "suspicion_ms"];
/// [`TIMING_KEYS`] for messages.
const TIMING_KEYS_TEXT: &str = "heartbeat_ms, suspicion_ms";
/// The `[lab]` keys; keep in step with [`LabTable`].
const LAB_KEYS: &[&str] = &["durability"];
/// [`LAB_KEYS`] for messages.
const LAB_KEYS_TEXT: &str = "durability";
/// The `[generate]` keys; keep in step with [`GenerateTable`].
const GENERATE_KEYS: &[&str] = &[
    "shape", "n", "rows", "cols", "depth", "fanout", "dim", "degree", "ids", "seed",
];
/// [`GENERATE_KEYS`] for messages.
const GENERATE_KEYS_TEXT: &str = "shape, n, rows, cols, depth, fanout, dim, degree, ids, seed";

/// `nodes`: each id with its position. Read wider than an id may be, so that an id out of range
/// is reported where it is written, in words, not as a type error wherever the parser met it
/// first.
type Nodes = Spanned<Vec<Spanned<i128>>>;
/// `links`: each link, and each id in it, with its position.
type Links = Spanned<Vec<Spanned<Vec<Spanned<i128>>>>>;

/// A whole topology file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a topology table")]
struct Document {
    name: Option<Spanned<String>>,
    nodes: Option<Nodes>,
    links: Option<Links>,
    generate: Option<Spanned<GenerateTable>>,
    timing: Option<Spanned<TimingTable>>,
    lab: Option<Spanned<LabTable>>,
}

/// The optional `[lab]` table: how the live lab runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [lab] table")]
struct LabTable {
    durability: Option<Spanned<String>>,
}

/// The optional `[timing]` table: the live lab's failure-detector timings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [timing] table")]
struct TimingTable {
    heartbeat_ms: Option<Spanned<i64>>,
    suspicion_ms: Option<Spanned<i64>>,
}

/// The `[generate]` table as written; every size is optional here and checked against the shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [generate] table")]
struct GenerateTable {
    shape: Option<Spanned<String>>,
    n: Option<Spanned<i64>>,
    rows: Option<Spanned<i64>>,
    cols: Option<Spanned<i64>>,
    depth: Option<Spanned<i64>>,
    fanout: Option<Spanned<i64>>,
    dim: Option<Spanned<i64>>,
    degree: Option<Spanned<f64>>,
    ids: Option<Spanned<String>>,
    seed: Option<Spanned<i64>>,
}

impl GenerateTable {
    /// The byte range of a size key's value, if present.
    fn size_span(&self, key: &str) -> Option<Range<usize>> {
        let int = |v: &Option<Spanned<i64>>| v.as_ref().map(Spanned::span);
        match key {
            "n" => int(&self.n),
            "rows" => int(&self.rows),
            "cols" => int(&self.cols),
            "depth" => int(&self.depth),
            "fanout" => int(&self.fanout),
            "dim" => int(&self.dim),
            "degree" => self.degree.as_ref().map(Spanned::span),
            _ => None,
        }
    }

    /// The value of an integer size key, with its span.
    fn int(&self, key: &str) -> Option<&Spanned<i64>> {
        match key {
            "n" => self.n.as_ref(),
            "rows" => self.rows.as_ref(),
            "cols" => self.cols.as_ref(),
            "depth" => self.depth.as_ref(),
            "fanout" => self.fanout.as_ref(),
            "dim" => self.dim.as_ref(),
            _ => None,
        }
    }
}

/// What `generate.shape` holds, for type errors.
static SHAPE_EXPECTED: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("a string: one of {}", SHAPE_LIST.as_str()));

/// What each key holds, for type errors.
fn expected(key: &str) -> &'static str {
    match key {
        "name" => "a string like \"ring6\"",
        "nodes" => "an array of positive integers like [1, 2, 3]",
        "links" => "an array of id pairs like [[1, 2], [2, 3]]",
        "generate" => "a table: [generate] with shape = \"...\" and its sizes",
        "generate.shape" => SHAPE_EXPECTED.as_str(),
        "generate.degree" => "a number like 4 or 3.5",
        "generate.ids" => "a string: sequential, shuffle or reverse",
        "generate.seed" => "an integer 0..=9223372036854775807",
        "timing" => "a table: [timing] with heartbeat_ms and suspicion_ms",
        "timing.heartbeat_ms" | "timing.suspicion_ms" => "a whole number of milliseconds",
        "lab" => "a table: [lab] with durability = \"majority\"",
        "lab.durability" => "a string: majority, replicas or writer",
        _ => "a non-negative integer",
    }
}

/// Errors carrying positions in one text.
struct Source<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Source<'_> {
    /// An error at a byte range (only its start matters), or at no position.
    fn error(&self, kind: ErrorKind, span: Option<Range<usize>>) -> TopologyError {
        let (line, column) = match span {
            Some(span) => {
                let (line, column) = line_column(self.text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        TopologyError {
            origin: self.origin.to_string(),
            line,
            column,
            kind,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Makes a TOML message one line: its lines joined with "; ".
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A file's graph: built, or (for a `[generate]` table asked only for its size) counted.
enum Graph {
    Built(Topology),
    Counted { nodes: usize, links: usize },
}

/// Parses and checks a topology file's text.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Topology, TopologyError> {
    match parse_graph(text, origin, false)? {
        Graph::Built(topology) => Ok(topology),
        Graph::Counted { .. } => unreachable!("asked to build"),
    }
}

/// Checks a topology file's text as [`parse`] does and returns its node and link counts, without
/// generating a `[generate]` table's graph; a written-out graph, built to be counted, comes too.
pub(crate) fn counts(
    text: &str,
    origin: &str,
) -> Result<(usize, usize, Option<Topology>), TopologyError> {
    Ok(match parse_graph(text, origin, true)? {
        Graph::Built(topology) => (topology.node_count(), topology.link_count(), Some(topology)),
        Graph::Counted { nodes, links } => (nodes, links, None),
    })
}

fn parse_graph(text: &str, origin: &str, count_only: bool) -> Result<Graph, TopologyError> {
    let src = Source { text, origin };
    let table = DeTable::parse(text).map_err(|e| {
        src.error(
            ErrorKind::Syntax {
                message: one_line(e.message()),
            },
            e.span(),
        )
    })?;
    let values = check_keys(&src, table.get_ref())?;
    let doc = Document::deserialize(toml::Deserializer::from(table))
        .map_err(|e| deserialize_error(&src, &e, &values))?;

    let name = match &doc.name {
        None => return Err(src.error(ErrorKind::MissingName, None)),
        Some(name) if !valid_name(name.get_ref()) => {
            return Err(src.error(
                ErrorKind::InvalidName {
                    name: name.get_ref().clone(),
                },
                Some(name.span()),
            ))
        }
        Some(name) => name.get_ref().clone(),
    };
    let timing = timing(&src, doc.timing.as_ref().map(Spanned::get_ref))?;
    let topology = match (&doc.nodes, &doc.links, &doc.generate) {
        (Some(_), _, Some(generate)) | (_, Some(_), Some(generate)) => {
            let at = key_span(&values, "generate").or(Some(generate.span()));
            Err(src.error(ErrorKind::BothForms, at))
        }
        (None, None, None) => Err(src.error(ErrorKind::MissingGraph, None)),
        (None, Some(links), None) => {
            Err(src.error(ErrorKind::LinksWithoutNodes, Some(links.span())))
        }
        (Some(nodes), links, None) => explicit(&src, name, nodes, links.as_ref()).map(Graph::Built),
        (None, None, Some(generate)) => {
            let at = key_span(&values, "generate").or(Some(generate.span()));
            generated(&src, name, generate.get_ref(), at, count_only)
        }
    }?;
    let durability = match doc
        .lab
        .as_ref()
        .and_then(|l| l.get_ref().durability.as_ref())
    {
        None => None,
        Some(value) => Some(value.get_ref().parse().map_err(|_| {
            let kind = ErrorKind::OutOfRange {
                key: "durability",
                value: format!("{:?}", value.get_ref()),
                valid: "durability takes majority (the default), replicas or writer",
            };
            src.error(kind, Some(value.span()))
        })?),
    };
    Ok(match topology {
        Graph::Built(topology) => Graph::Built(Topology {
            timing,
            durability,
            ..topology
        }),
        counted => counted,
    })
}

/// Reads `[timing]`, with the defaults for what it leaves out, and checks the values make sense:
/// heartbeats between 10 ms and 60 s, and a suspicion timeout of at least two heartbeats.
fn timing(src: &Source<'_>, table: Option<&TimingTable>) -> Result<Timing, TopologyError> {
    let mut timing = Timing::default();
    let Some(table) = table else {
        return Ok(timing);
    };
    if let Some(value) = &table.heartbeat_ms {
        let ms = *value.get_ref();
        if !(10..=60_000).contains(&ms) {
            let kind = ErrorKind::OutOfRange {
                key: "heartbeat_ms",
                value: ms.to_string(),
                valid: "heartbeat_ms takes 10..=60000 milliseconds",
            };
            return Err(src.error(kind, Some(value.span())));
        }
        timing.heartbeat_ms = ms as u64;
        // Keep the default ratio when only the heartbeat is given.
        timing.suspicion_ms = timing.suspicion_ms.max(2 * timing.heartbeat_ms);
    }
    if let Some(value) = &table.suspicion_ms {
        let ms = *value.get_ref();
        if ms < 2 * timing.heartbeat_ms as i64 || ms > 600_000 {
            let kind = ErrorKind::OutOfRange {
                key: "suspicion_ms",
                value: ms.to_string(),
                valid: "suspicion_ms takes at least two heartbeats (2 × heartbeat_ms) and at most 600000",
            };
            return Err(src.error(kind, Some(value.span())));
        }
        timing.suspicion_ms = ms as u64;
    }
    Ok(timing)
}

/// The keys found in the document: (`key` or `generate.key`, the key's span, the value's span).
type KeySpans = Vec<(String, Range<usize>, Range<usize>)>;

/// Rejects unknown keys, the first one in the file first; returns every key with its key and value spans.
fn check_keys(src: &Source<'_>, table: &DeTable<'_>) -> Result<KeySpans, TopologyError> {
    let mut found: KeySpans = Vec::new();
    let mut unknown: Vec<(Range<usize>, String, &'static str, &'static str)> = Vec::new();
    for (key, value) in table.iter() {
        let name = key.get_ref().to_string();
        if !TOP_KEYS.contains(&name.as_str()) {
            unknown.push((key.span(), name.clone(), "at the top level", TOP_KEYS_TEXT));
        }
        if let (true, DeValue::Table(inner)) = (name == "generate", value.get_ref()) {
            for (key, value) in inner.iter() {
                let inner_name = key.get_ref().to_string();
                if !GENERATE_KEYS.contains(&inner_name.as_str()) {
                    unknown.push((
                        key.span(),
                        inner_name.clone(),
                        "in [generate]",
                        GENERATE_KEYS_TEXT,
                    ));
                }
                found.push((format!("generate.{inner_name}"), key.span(), value.span()));
            }
        }
        if let (true, DeValue::Table(inner)) = (name == "lab", value.get_ref()) {
            for (key, value) in inner.iter() {
                let inner_name = key.get_ref().to_string();
                if !LAB_KEYS.contains(&inner_name.as_str()) {
                    unknown.push((key.span(), inner_name.clone(), "in [lab]", LAB_KEYS_TEXT));
                }
                found.push((format!("lab.{inner_name}"), key.span(), value.span()));
            }
        }
        if let (true, DeValue::Table(inner)) = (name == "timing", value.get_ref()) {
            for (key, value) in inner.iter() {
                let inner_name = key.get_ref().to_string();
                if !TIMING_KEYS.contains(&inner_name.as_str()) {
                    unknown.push((
                        key.span(),
                        inner_name.clone(),
                        "in [timing]",
                        TIMING_KEYS_TEXT,
                    ));
                }
                found.push((format!("timing.{inner_name}"), key.span(), value.span()));
            }
        }
        found.push((name, key.span(), value.span()));
    }
    match unknown.into_iter().min_by_key(|(span, ..)| span.start) {
        Some((span, key, table, valid)) => {
            Err(src.error(ErrorKind::UnknownKey { key, table, valid }, Some(span)))
        }
        None => Ok(found),
    }
}

/// The span of a key (not its value), if present.
fn key_span(keys: &KeySpans, key: &str) -> Option<Range<usize>> {
    keys.iter()
        .find(|(name, ..)| name == key)
        .map(|(_, span, _)| span.clone())
}

/// A deserialization (type) error, attributed to the innermost key whose value contains it.
fn deserialize_error(src: &Source<'_>, err: &toml::de::Error, keys: &KeySpans) -> TopologyError {
    let message = one_line(err.message());
    let span = err.span();
    let owner = span.as_ref().and_then(|span| {
        keys.iter()
            .filter(|(_, _, value)| value.start <= span.start && span.end <= value.end)
            .min_by_key(|(_, _, value)| value.len())
    });
    let kind = match owner {
        Some((key, ..)) => ErrorKind::WrongType {
            key: key.clone(),
            message,
            expected: expected(key),
        },
        None => ErrorKind::Syntax { message },
    };
    src.error(kind, span)
}

/// The `nodes`/`links` form.
fn explicit(
    src: &Source<'_>,
    name: String,
    nodes: &Nodes,
    links: Option<&Links>,
) -> Result<Topology, TopologyError> {
    let list = nodes.get_ref();
    if list.is_empty() {
        return Err(src.error(ErrorKind::EmptyNodes, Some(nodes.span())));
    }
    let link_count = links.map_or(0, |l| l.get_ref().len());
    if list.len() > MAX_NODES || link_count > MAX_LINKS {
        let kind = ErrorKind::TooLarge {
            nodes: list.len() as u64,
            links: link_count as u64,
        };
        return Err(src.error(kind, None));
    }
    let mut graph = UnGraph::with_capacity(list.len(), link_count);
    let mut index: HashMap<NodeId, NodeIndex> = HashMap::with_capacity(list.len());
    for id in list {
        let value = *id.get_ref();
        if value <= 0 || value > i128::from(i64::MAX) {
            let kind = ErrorKind::InvalidId {
                value: value.to_string(),
            };
            return Err(src.error(kind, Some(id.span())));
        }
        let node = value as NodeId;
        if index.contains_key(&node) {
            return Err(src.error(ErrorKind::DuplicateId { id: node }, Some(id.span())));
        }
        index.insert(node, graph.add_node(node));
    }
    match links {
        None if list.len() > 1 => {
            let kind = ErrorKind::MissingLinks { nodes: list.len() };
            return Err(src.error(kind, Some(nodes.span())));
        }
        None => {}
        Some(links) => {
            let mut seen: HashMap<(NodeId, NodeId), (NodeId, NodeId)> = HashMap::new();
            for link in links.get_ref() {
                let ends = link.get_ref();
                if ends.len() != 2 {
                    let kind = ErrorKind::LinkNotPair { len: ends.len() };
                    return Err(src.error(kind, Some(link.span())));
                }
                let mut at = [NodeIndex::end(); 2];
                for (slot, end) in at.iter_mut().zip(ends) {
                    let value = *end.get_ref();
                    *slot = match u64::try_from(value).ok().and_then(|id| index.get(&id)) {
                        Some(&i) => i,
                        None => {
                            let kind = ErrorKind::UnknownNode {
                                id: value.to_string(),
                            };
                            return Err(src.error(kind, Some(end.span())));
                        }
                    };
                }
                let (a, b) = (graph[at[0]], graph[at[1]]);
                if a == b {
                    return Err(src.error(ErrorKind::SelfLoop { id: a }, Some(link.span())));
                }
                if let Some(&first) = seen.get(&(a.min(b), a.max(b))) {
                    let kind = ErrorKind::DuplicateLink {
                        written: (a, b),
                        first,
                    };
                    return Err(src.error(kind, Some(link.span())));
                }
                seen.insert((a.min(b), a.max(b)), (a, b));
                graph.add_edge(at[0], at[1], ());
            }
        }
    }
    let topology = Topology {
        name,
        graph,
        timing: Timing::default(),
        durability: None,
    };
    if let Some((from, unreachable, components)) = components::disconnected(&topology) {
        let span = list
            .iter()
            .find(|id| *id.get_ref() as NodeId == unreachable)
            .map(Spanned::span);
        let kind = ErrorKind::Disconnected {
            from,
            unreachable,
            components,
        };
        return Err(src.error(kind, span));
    }
    Ok(topology)
}

/// The `[generate]` form; `table_at` is where the table starts.
fn generated(
    src: &Source<'_>,
    name: String,
    table: &GenerateTable,
    table_at: Option<Range<usize>>,
    count_only: bool,
) -> Result<Graph, TopologyError> {
    let shape_value = table
        .shape
        .as_ref()
        .ok_or_else(|| src.error(ErrorKind::MissingShape, table_at))?;
    let shape_span = Some(shape_value.span());
    let Some(shape) = ShapeKind::named(shape_value.get_ref()) else {
        let kind = ErrorKind::UnknownShape {
            shape: shape_value.get_ref().clone(),
        };
        return Err(src.error(kind, shape_span));
    };

    // Keys that the shape does not take, the first in the file first.
    let mut stray: Vec<(&'static str, Range<usize>)> = size_keys()
        .filter(|key| !shape.takes(key))
        .filter_map(|key| table.size_span(key).map(|span| (key, span)))
        .collect();
    stray.sort_by_key(|(_, span)| span.start);
    if let Some((key, span)) = stray.into_iter().next() {
        let kind = ErrorKind::KeyNotForShape {
            key,
            shape: shape.name,
            takes: shape.takes,
        };
        return Err(src.error(kind, Some(span)));
    }
    if let Some(param) = shape
        .params
        .iter()
        .find(|param| table.size_span(param.key).is_none())
    {
        let kind = ErrorKind::MissingKey {
            key: param.key,
            shape: shape.name,
            takes: shape.takes,
        };
        return Err(src.error(kind, shape_span));
    }

    // Integer sizes: negative values fail here, the rest in `Shape::check`.
    // An error about one key points at its value, else at the shape.
    let span_of = |key: Option<&'static str>| {
        key.and_then(|key| table.size_span(key))
            .or(shape_span.clone())
    };
    let shape_spec = shape
        .make(&mut TableSizes(table))
        .map_err(|invalid| src.error(invalid.kind, span_of(invalid.key)))?;

    let ids = match &table.ids {
        None => IdOrder::default(),
        Some(ids) => IdOrder::from_name(ids.get_ref()).ok_or_else(|| {
            let kind = ErrorKind::UnknownIdOrder {
                ids: ids.get_ref().clone(),
            };
            src.error(kind, Some(ids.span()))
        })?,
    };
    let seed = match &table.seed {
        None => 0,
        Some(seed) => u64::try_from(*seed.get_ref()).map_err(|_| {
            let kind = ErrorKind::OutOfRange {
                key: "seed",
                value: seed.get_ref().to_string(),
                valid: "seed is an integer 0..=9223372036854775807",
            };
            src.error(kind, Some(seed.span()))
        })?,
    };

    let spec = Generate {
        shape: shape_spec,
        ids,
        seed,
    };
    let invalid = |invalid: Invalid| src.error(invalid.kind, span_of(invalid.key));
    if count_only {
        let (nodes, links) = spec.shape.check().map_err(invalid)?;
        return Ok(Graph::Counted { nodes, links });
    }
    Topology::build(name, &spec)
        .map(Graph::Built)
        .map_err(invalid)
}

/// A `[generate]` table's sizes, for [`ShapeKind::make`]; the shape's keys are known present.
struct TableSizes<'a>(&'a GenerateTable);

impl Sizes for TableSizes<'_> {
    fn int(&mut self, shape: &'static ShapeKind, key: &'static str) -> Result<usize, Invalid> {
        let missing = || Invalid {
            kind: ErrorKind::MissingKey {
                key,
                shape: shape.name,
                takes: shape.takes,
            },
            key: None,
        };
        let value = self.0.int(key).ok_or_else(missing)?;
        usize::try_from(*value.get_ref()).map_err(|_| Invalid {
            kind: ErrorKind::OutOfRange {
                key,
                value: value.get_ref().to_string(),
                valid: shape.valid(key).unwrap_or("a whole number >= 0"),
            },
            key: Some(key),
        })
    }

    fn degree(&mut self, shape: &'static ShapeKind) -> Result<f64, Invalid> {
        let value = self.0.degree.as_ref().ok_or(Invalid {
            kind: ErrorKind::MissingKey {
                key: "degree",
                shape: shape.name,
                takes: shape.takes,
            },
            key: None,
        })?;
        Ok(*value.get_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let text = "ab\ncdé\nfg";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 1), (1, 2));
        assert_eq!(line_column(text, 3), (2, 1));
        // 'é' is two bytes: the 'f' on line 3 is at byte 8.
        assert_eq!(line_column(text, 8), (3, 1));
        assert_eq!(line_column(text, 7), (2, 4));
        assert_eq!(line_column(text, 99), (3, 3));
    }

    #[test]
    fn one_line_joins_lines() {
        assert_eq!(one_line("a\n  b\n\nc\n"), "a; b; c");
    }
}
