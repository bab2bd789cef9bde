//! The pictures of an election's steps: the topology as [`Layout`] places it, each node filled by
//! its part (source, internal, sink, pruned, leader) or its roles, each link drawn as what it is
//! in that step (an edge with its direction, the value that went down it, the answer that came
//! up, pruned, a tree edge). SVG, drawn by labctl itself, self-contained.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use labctl_core::report::Adjacency;
use labctl_core::roles::Role;
use labctl_core::NodeId;

use crate::layout::Layout;
use crate::story::{Election, Part};

/// How a node looks in a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Look {
    /// Before or outside the election's iterations.
    Plain,
    /// Its Yo-Yo part.
    Part(Part),
    /// In the tree, with its roles.
    Roles(Vec<Role>),
}

/// How a link looks in a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Its ends, smaller id first.
    pub a: NodeId,
    /// The other end.
    pub b: NodeId,
    /// Its direction, `(from, to)`, when it is an edge of the election graph.
    pub arrow: Option<(NodeId, NodeId)>,
    /// What it carried this step ("3" went down, "YES", "NO, prune").
    pub label: Option<String>,
    /// Out of the election graph.
    pub pruned: bool,
    /// A tree edge (after SHOUT+).
    pub tree: bool,
}

/// One step's picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    /// What the step shows, in a line.
    pub title: String,
    /// Every node's look.
    pub nodes: BTreeMap<NodeId, Look>,
    /// Every link of the topology.
    pub links: Vec<Link>,
}

fn links_of(adjacency: &Adjacency) -> Vec<(NodeId, NodeId)> {
    adjacency
        .iter()
        .flat_map(|(&a, bs)| bs.iter().filter(move |&&b| a < b).map(move |&b| (a, b)))
        .collect()
}

fn plain(a: NodeId, b: NodeId) -> Link {
    Link {
        a,
        b,
        arrow: None,
        label: None,
        pruned: false,
        tree: false,
    }
}

impl Election {
    /// The pictures of this election's steps on a lab of `adjacency`: setup, then per Yo-Yo
    /// iteration the values going down and the answers coming up, then the tree and roles.
    pub fn pictures(&self, adjacency: &Adjacency) -> Vec<Picture> {
        let all = links_of(adjacency);
        let look_all = |look: Look| -> BTreeMap<NodeId, Look> {
            adjacency.keys().map(|&id| (id, look.clone())).collect()
        };
        let mut pictures = vec![Picture {
            title: format!(
                "Epoch {}: setup. Every node sends its id on every link ({} messages); each link \
                 points from the smaller id to the larger",
                self.epoch, self.setup
            ),
            nodes: look_all(Look::Plain),
            links: all
                .iter()
                .map(|&(a, b)| Link {
                    arrow: Some((a, b)),
                    ..plain(a, b)
                })
                .collect(),
        }];
        let mut pruned_links: BTreeSet<(NodeId, NodeId)> = BTreeSet::new();
        for it in &self.iterations {
            let mut nodes = look_all(Look::Plain);
            for (&id, &part) in &it.parts {
                nodes.insert(id, Look::Part(part));
            }
            let down: BTreeMap<(NodeId, NodeId), &crate::story::Down> = it
                .down
                .iter()
                .map(|d| ((d.from.min(d.to), d.from.max(d.to)), d))
                .collect();
            let up: BTreeMap<(NodeId, NodeId), &crate::story::Up> = it
                .up
                .iter()
                .map(|u| ((u.from.min(u.to), u.from.max(u.to)), u))
                .collect();
            let edge = |a: NodeId, b: NodeId, label: Option<String>| {
                let key = (a, b);
                Link {
                    arrow: down.get(&key).map(|d| (d.from, d.to)),
                    label,
                    pruned: pruned_links.contains(&key),
                    ..plain(a, b)
                }
            };
            pictures.push(Picture {
                title: format!(
                    "Iteration {}, YO-: each source sends its id down its out-edges; each node \
                     passes the smallest value it received down its own",
                    it.number
                ),
                nodes: nodes.clone(),
                links: all
                    .iter()
                    .map(|&(a, b)| edge(a, b, down.get(&(a, b)).map(|d| d.value.to_string())))
                    .collect(),
            });
            pictures.push(Picture {
                title: format!(
                    "Iteration {}, -YO: answers come back up, YES to the smallest value, NO to the \
                     others (a NO reverses its edge); prunes delete edges ({} messages this \
                     iteration)",
                    it.number, it.messages
                ),
                nodes,
                links: all
                    .iter()
                    .map(|&(a, b)| {
                        edge(
                            a,
                            b,
                            up.get(&(a, b)).map(|u| {
                                let vote = if u.yes { "YES" } else { "NO" };
                                if u.prune {
                                    format!("{vote}, prune")
                                } else {
                                    vote.to_string()
                                }
                            }),
                        )
                    })
                    .collect(),
            });
            pruned_links.extend(up.iter().filter(|(_, u)| u.prune).map(|(k, _)| *k));
        }
        if let Some(shout) = &self.shout {
            let tree: BTreeSet<(NodeId, NodeId)> = shout
                .parents
                .iter()
                .filter_map(|(&c, p)| p.map(|p| (c.min(p), c.max(p))))
                .collect();
            let mut nodes = look_all(Look::Plain);
            for id in shout.parents.keys() {
                let roles = self.roles.get(id).cloned().unwrap_or_default();
                nodes.insert(*id, Look::Roles(roles));
            }
            if let Some(leader) = self.leader {
                if !matches!(nodes.get(&leader), Some(Look::Roles(r)) if !r.is_empty()) {
                    nodes.insert(leader, Look::Part(Part::Leader));
                }
            }
            pictures.push(Picture {
                title: format!(
                    "SHOUT+: leader {} asks its neighbours \"will you be my child?\" (Q); each node \
                     joins under the first Q it gets and answers Yes once its own subtree is \
                     complete ({} Q, {} Yes). Then every node takes its roles",
                    shout.leader, shout.q, shout.yes
                ),
                nodes,
                links: all
                    .iter()
                    .map(|&(a, b)| {
                        let child_parent = shout
                            .parents
                            .get(&b)
                            .copied()
                            .flatten()
                            .filter(|&p| p == a)
                            .map(|p| (p, b))
                            .or_else(|| {
                                shout.parents.get(&a).copied().flatten().filter(|&p| p == b).map(|p| (p, a))
                            });
                        Link {
                            arrow: child_parent,
                            tree: tree.contains(&(a, b)),
                            ..plain(a, b)
                        }
                    })
                    .collect(),
            });
        }
        pictures
    }
}

/// `text` made safe inside XML or HTML text and attribute values (the pictures, the replay page,
/// the dashboard).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The colour and legend word of a look.
fn fill(look: &Look) -> (&'static str, String) {
    match look {
        Look::Plain => ("#f4f4f4", String::new()),
        Look::Part(Part::Source) => ("#2e7d32", "source".into()),
        Look::Part(Part::Internal) => ("#fbc02d", "internal".into()),
        Look::Part(Part::Sink) => ("#1565c0", "sink".into()),
        Look::Part(Part::Pruned) => ("#bdbdbd", "pruned".into()),
        Look::Part(Part::Leader) => ("#c62828", "leader".into()),
        Look::Roles(roles) => {
            let words: Vec<String> = roles.iter().map(Role::to_string).collect();
            let colour = if roles.contains(&Role::Writer) || roles.contains(&Role::Leader) {
                "#c62828"
            } else if roles.contains(&Role::Persistence) {
                "#6a1b9a"
            } else if roles.contains(&Role::Input) {
                "#00838f"
            } else {
                "#757575"
            };
            (colour, words.join(", "))
        }
    }
}

/// `picture` as an SVG document of `width` × `width` pixels, laid out by `layout`. Every node is
/// a `<g class="node" data-node="ID">`, every link a `<g class="link" data-link="A-B">`.
pub fn svg(picture: &Picture, layout: &Layout, width: u32) -> String {
    svg_named(picture, layout, width, "step")
}

/// [`svg`], its ids (the arrowhead's) prefixed with `name`: pictures that share one HTML page
/// need ids of their own (a reference to an id in a hidden picture draws nothing).
pub fn svg_named(picture: &Picture, layout: &Layout, width: u32, name: &str) -> String {
    let w = f64::from(width);
    let n = picture.nodes.len().max(1) as f64;
    let radius = (w / (n.sqrt() * 5.0)).clamp(7.0, 22.0);
    let at = |id: &NodeId| {
        let p = layout
            .at
            .get(id)
            .copied()
            .unwrap_or(crate::layout::Point { x: 0.5, y: 0.5 });
        (p.x * w, p.y * w)
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {width}" width="{width}" height="{width}" font-family="sans-serif"><title>{}</title><defs><marker id="{name}-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#424242"/></marker></defs>"##,
        escape(&picture.title)
    );
    for link in &picture.links {
        let ((x1, y1), (x2, y2)) = match link.arrow {
            Some((from, to)) => (at(&from), at(&to)),
            None => (at(&link.a), at(&link.b)),
        };
        // Stop at the circles' edges, so arrowheads show.
        let (dx, dy) = (x2 - x1, y2 - y1);
        let d = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (sx, sy) = (x1 + dx / d * radius, y1 + dy / d * radius);
        let (ex, ey) = (x2 - dx / d * (radius + 2.0), y2 - dy / d * (radius + 2.0));
        let (stroke, dash, thick) = if link.pruned {
            ("#bdbdbd", r#" stroke-dasharray="4 4""#, 1.5)
        } else if link.tree {
            ("#c62828", "", 3.5)
        } else {
            ("#424242", "", 1.5)
        };
        let marker = if link.arrow.is_some() && !link.pruned {
            format!(r#" marker-end="url(#{name}-arrow)""#)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            r#"<g class="link" data-link="{}-{}"><line x1="{sx:.1}" y1="{sy:.1}" x2="{ex:.1}" y2="{ey:.1}" stroke="{stroke}" stroke-width="{thick}"{dash}{marker}/>"#,
            link.a, link.b
        );
        if let Some(label) = &link.label {
            let (mx, my) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
            let _ = write!(
                out,
                r##"<text x="{mx:.1}" y="{my:.1}" font-size="{:.0}" text-anchor="middle" dominant-baseline="central" fill="#000" stroke="#fff" stroke-width="3" paint-order="stroke">{}</text>"##,
                (radius * 0.8).max(9.0),
                escape(label)
            );
        }
        out.push_str("</g>");
    }
    for (id, look) in &picture.nodes {
        let (x, y) = at(id);
        let (colour, word) = fill(look);
        let text_colour =
            if matches!(look, Look::Plain) || colour == "#fbc02d" || colour == "#bdbdbd" {
                "#000"
            } else {
                "#fff"
            };
        let _ = write!(
            out,
            r##"<g class="node" data-node="{id}" data-look="{}"><circle cx="{x:.1}" cy="{y:.1}" r="{radius:.1}" fill="{colour}" stroke="#212121"/><text x="{x:.1}" y="{y:.1}" font-size="{:.0}" text-anchor="middle" dominant-baseline="central" fill="{text_colour}">{id}</text>"##,
            escape(&word),
            (radius * 0.9).max(9.0)
        );
        if !word.is_empty() {
            let _ = write!(out, "<title>node {id}: {}</title>", escape(&word));
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use labctl_sim::{Config, Delivery, Simulation};
    use labctl_topology::Topology;

    use super::*;
    use crate::story::Story;

    #[test]
    fn every_step_of_every_shipped_topology_draws_every_node_and_link() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
        for name in [
            "ring6",
            "grid3x3",
            "tree15",
            "random30",
            "complete6",
            "single",
            "pair",
        ] {
            let topology = Topology::from_path(&dir.join(format!("{name}.toml"))).unwrap();
            let adjacency = topology.adjacency();
            let run = Simulation::run(
                &topology,
                &Config {
                    seed: 3,
                    delivery: Delivery::Async,
                    trace: true,
                },
            )
            .unwrap();
            let story = Story::of(&run.trace, &adjacency);
            let layout = Layout::of(&adjacency);
            let pictures = story.elections[0].pictures(&adjacency);
            // Setup, two per iteration, the tree (none in a one-node lab).
            let tree = usize::from(story.elections[0].shout.is_some());
            assert_eq!(
                pictures.len(),
                1 + 2 * run.report.iterations as usize + tree,
                "{name}"
            );
            for picture in &pictures {
                let text = svg(picture, &layout, 480);
                let doc =
                    roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                let nodes: BTreeSet<u64> = doc
                    .descendants()
                    .filter_map(|n| n.attribute("data-node"))
                    .map(|v| v.parse().unwrap())
                    .collect();
                assert_eq!(nodes, adjacency.keys().copied().collect(), "{name}");
                let links: BTreeSet<String> = doc
                    .descendants()
                    .filter_map(|n| n.attribute("data-link"))
                    .map(str::to_string)
                    .collect();
                let want: BTreeSet<String> = links_of(&adjacency)
                    .iter()
                    .map(|(a, b)| format!("{a}-{b}"))
                    .collect();
                assert_eq!(links, want, "{name}: {}", picture.title);
            }
            // The tree step marks exactly the report's tree edges.
            if let Some(last) = pictures.last().filter(|_| tree == 1) {
                let marked = last.links.iter().filter(|l| l.tree).count();
                assert_eq!(marked, adjacency.len() - 1, "{name}");
            }
        }
    }

    #[test]
    fn a_first_iteration_shows_sources_values_and_answers() {
        let topology = Topology::from_toml(
            "name = \"r\"\nnodes = [1, 2, 3, 4]\nlinks = [[1, 3], [3, 2], [2, 4], [4, 1]]\n",
            "r.toml",
        )
        .unwrap();
        let adjacency = topology.adjacency();
        let run = Simulation::run(
            &topology,
            &Config {
                seed: 0,
                delivery: Delivery::Sync,
                trace: true,
            },
        )
        .unwrap();
        let story = Story::of(&run.trace, &adjacency);
        let pictures = story.elections[0].pictures(&adjacency);
        let down = &pictures[1];
        // 1 and 2 are the sources (smaller than both neighbours); 3 and 4 the sinks.
        assert_eq!(down.nodes[&1], Look::Part(Part::Source));
        assert_eq!(down.nodes[&2], Look::Part(Part::Source));
        assert_eq!(down.nodes[&3], Look::Part(Part::Sink));
        let l13 = down.links.iter().find(|l| (l.a, l.b) == (1, 3)).unwrap();
        assert_eq!((l13.arrow, l13.label.as_deref()), (Some((1, 3)), Some("1")));
        let up = &pictures[2];
        // Sink 3 saw 1 and 2: YES to 1, NO to 2.
        let l13 = up.links.iter().find(|l| (l.a, l.b) == (1, 3)).unwrap();
        assert!(l13.label.as_deref().unwrap().starts_with("YES"), "{l13:?}");
        let l23 = up.links.iter().find(|l| (l.a, l.b) == (2, 3)).unwrap();
        assert!(l23.label.as_deref().unwrap().starts_with("NO"), "{l23:?}");
        let text = svg(up, &Layout::of(&adjacency), 300);
        assert!(text.contains("YES") && text.contains("NO"));
    }
}
