//! Pictures of a topology: Graphviz DOT, and an adjacency listing for a terminal.

use std::fmt::Write;

use crate::components::{self, Adjacency};
use crate::Topology;

/// The listing shows at most this many nodes.
const ASCII_MAX_NODES: usize = 200;
/// Each listed node shows at most this many neighbours.
const ASCII_MAX_NEIGHBOURS: usize = 32;
/// The listing computes the diameter only when a search from every node costs at most this many
/// steps (n × (n + 2m)); about a second in a debug build.
const ASCII_DIAMETER_WORK: u128 = 200_000_000;

/// Graphviz DOT: `graph "ring6" {` then one `  a -- b;` line per link (sorted), and a `  a;` line for
/// a node without links.
pub fn dot(t: &Topology) -> String {
    let mut out = String::new();
    let name = t.name.replace('\\', "\\\\").replace('"', "\\\"");
    let _ = writeln!(out, "graph \"{name}\" {{");
    let mut lonely: Vec<u64> = t
        .graph
        .node_indices()
        .filter(|&i| t.graph.neighbors(i).next().is_none())
        .map(|i| t.graph[i])
        .collect();
    lonely.sort_unstable();
    for id in lonely {
        let _ = writeln!(out, "  {id};");
    }
    for (a, b) in t.links() {
        let _ = writeln!(out, "  {a} -- {b};");
    }
    out.push_str("}\n");
    out
}

/// An adjacency listing: a header line
/// `ring6: 6 nodes, 6 links, degree 2..2, diameter 3`, then one line per node in id order,
/// `  1 ── 2, 6`. Past 200 nodes the listing stops with `  … 9800 more nodes`; past 32 neighbours
/// a line stops with `… (N more)`; on graphs where a search from every node would be slow the
/// header says the diameter was not computed.
pub fn ascii(t: &Topology) -> String {
    let adjacency = Adjacency::new(t);
    let (n, m) = (t.node_count(), t.link_count());
    let ids: Vec<u64> = t.graph.node_weights().copied().collect();
    let degrees = (0..n).map(|i| adjacency.neighbours(i).len());
    let (low, high) = (
        degrees.clone().min().unwrap_or(0),
        degrees.max().unwrap_or(0),
    );
    let diameter = if (n as u128) * (n as u128 + 2 * m as u128) <= ASCII_DIAMETER_WORK {
        components::diameter(&adjacency).to_string()
    } else {
        "not computed (large graph)".to_string()
    };
    let plural = |count: usize, word: &str| {
        if count == 1 {
            format!("1 {word}")
        } else {
            format!("{count} {word}s")
        }
    };
    let mut out = format!(
        "{}: {}, {}, degree {low}..{high}, diameter {diameter}\n",
        t.name,
        plural(n, "node"),
        plural(m, "link")
    );
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by_key(|&i| ids[i]);
    order.truncate(ASCII_MAX_NODES);
    let width = order.last().map_or(1, |&i| ids[i].to_string().len());
    for &i in &order {
        let mut neighbours: Vec<u64> = adjacency
            .neighbours(i)
            .iter()
            .map(|&j| ids[j as usize])
            .collect();
        neighbours.sort_unstable();
        let mut shown: Vec<String> = neighbours
            .iter()
            .take(ASCII_MAX_NEIGHBOURS)
            .map(u64::to_string)
            .collect();
        if neighbours.len() > ASCII_MAX_NEIGHBOURS {
            shown.push(format!(
                "… ({} more)",
                neighbours.len() - ASCII_MAX_NEIGHBOURS
            ));
        }
        if shown.is_empty() {
            shown.push("(no links)".to_string());
        }
        let _ = writeln!(out, "  {:>width$} ── {}", ids[i], shown.join(", "));
    }
    if n > ASCII_MAX_NODES {
        let _ = writeln!(out, "  … {} more nodes", n - ASCII_MAX_NODES);
    }
    out
}
