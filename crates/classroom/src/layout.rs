//! Where each node goes in a picture: a layout that suits the graph's shape, so a class
//! recognises its topology at a glance. Rings are drawn as circles, grids as grids, trees as
//! trees (root on top), and anything else by a force-directed layout from a fixed start (the same
//! graph gives the same picture every time).
//!
//! Positions are in a unit square, `[0, 1] × [0, 1]`; the picture scales them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use labctl_core::report::Adjacency;
use labctl_core::NodeId;

/// A node's position, in the unit square.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Across, from 0 (left) to 1 (right).
    pub x: f64,
    /// Down, from 0 (top) to 1 (bottom).
    pub y: f64,
}

/// The shape a layout was chosen for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One node, or none.
    Trivial,
    /// Every node of degree 2, one cycle: a circle.
    Ring,
    /// Rows and columns: a grid.
    Grid {
        /// Rows.
        rows: usize,
        /// Columns.
        columns: usize,
    },
    /// A path: a row.
    Line,
    /// No cycle: layered from the graph's centre.
    Tree,
    /// Anything else: force-directed.
    Force,
}

/// A layout: a position per node.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The shape it was chosen for.
    pub kind: Kind,
    /// Each node's position.
    pub at: BTreeMap<NodeId, Point>,
}

/// How many links a graph has.
fn link_count(adjacency: &Adjacency) -> usize {
    adjacency.values().map(BTreeSet::len).sum::<usize>() / 2
}

/// Hop distances from `from`.
fn distances(adjacency: &Adjacency, from: NodeId) -> BTreeMap<NodeId, usize> {
    let mut seen = BTreeMap::from([(from, 0)]);
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        let d = seen[&node];
        for &next in &adjacency[&node] {
            if let std::collections::btree_map::Entry::Vacant(e) = seen.entry(next) {
                e.insert(d + 1);
                queue.push_back(next);
            }
        }
    }
    seen
}

impl Layout {
    /// The layout for `adjacency` (a connected graph).
    pub fn of(adjacency: &Adjacency) -> Layout {
        let n = adjacency.len();
        let m = link_count(adjacency);
        if n <= 1 {
            let at = adjacency
                .keys()
                .map(|&id| (id, Point { x: 0.5, y: 0.5 }))
                .collect();
            return Layout {
                kind: Kind::Trivial,
                at,
            };
        }
        if n >= 3 && m == n && adjacency.values().all(|ns| ns.len() == 2) {
            return ring(adjacency);
        }
        if m + 1 == n && adjacency.values().all(|ns| ns.len() <= 2) {
            return line(adjacency);
        }
        if m + 1 == n {
            return tree(adjacency);
        }
        if let Some(layout) = grid(adjacency) {
            return layout;
        }
        force(adjacency)
    }
}

/// A circle, walking the cycle from the smallest id, clockwise from the top.
fn ring(adjacency: &Adjacency) -> Layout {
    let start = *adjacency.keys().next().expect("a node");
    let mut order = vec![start];
    let mut previous = start;
    let mut current = *adjacency[&start].iter().next().expect("a neighbour");
    while current != start {
        order.push(current);
        let next = *adjacency[&current]
            .iter()
            .find(|&&n| n != previous)
            .expect("a ring node has two neighbours");
        previous = current;
        current = next;
    }
    Layout {
        kind: Kind::Ring,
        at: on_circle(&order),
    }
}

/// `order` evenly on a circle, the first at the top, clockwise.
fn on_circle(order: &[NodeId]) -> BTreeMap<NodeId, Point> {
    let n = order.len() as f64;
    order
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let angle = std::f64::consts::TAU * i as f64 / n - std::f64::consts::FRAC_PI_2;
            (
                id,
                Point {
                    x: 0.5 + 0.45 * angle.cos(),
                    y: 0.5 + 0.45 * angle.sin(),
                },
            )
        })
        .collect()
}

/// The node farthest from `from` (the smallest id among the farthest) and its distances.
fn farthest(adjacency: &Adjacency, from: NodeId) -> (NodeId, BTreeMap<NodeId, usize>) {
    let d = distances(adjacency, from);
    let far = d
        .iter()
        .max_by_key(|&(&id, &dist)| (dist, std::cmp::Reverse(id)))
        .map(|(&id, _)| id)
        .expect("a node");
    (far, d)
}

/// A path in a row, from the end with the smaller id.
fn line(adjacency: &Adjacency) -> Layout {
    let ends: Vec<NodeId> = adjacency
        .iter()
        .filter(|(_, ns)| ns.len() == 1)
        .map(|(&id, _)| id)
        .collect();
    let d = distances(adjacency, ends[0]);
    let last = (adjacency.len() - 1).max(1) as f64;
    let at = d
        .iter()
        .map(|(&id, &i)| {
            (
                id,
                Point {
                    x: 0.05 + 0.9 * i as f64 / last,
                    y: 0.5,
                },
            )
        })
        .collect();
    Layout {
        kind: Kind::Line,
        at,
    }
}

/// Layers by depth from the tree's centre (the middle of a longest path); each leaf gets a
/// column of its own, a parent sits above the middle of its children.
fn tree(adjacency: &Adjacency) -> Layout {
    let first = *adjacency.keys().next().expect("a node");
    let (a, _) = farthest(adjacency, first);
    let (b, from_a) = farthest(adjacency, a);
    let from_b = distances(adjacency, b);
    let diameter = from_a[&b];
    let root = *from_a
        .keys()
        .filter(|id| from_a[id] + from_b[id] == diameter && from_a[id] == diameter / 2)
        .min()
        .expect("a longest path has a middle");
    let depth = distances(adjacency, root);
    let children = |node: NodeId| -> Vec<NodeId> {
        adjacency[&node]
            .iter()
            .copied()
            .filter(|c| depth[c] == depth[&node] + 1)
            .collect()
    };
    // Columns: leaves left to right in depth-first order.
    let mut column: BTreeMap<NodeId, f64> = BTreeMap::new();
    let mut next_leaf = 0.0;
    // An explicit stack (trees can be deep): (node, children placed yet).
    let mut stack = vec![(root, false)];
    while let Some((node, placed)) = stack.pop() {
        let kids = children(node);
        if kids.is_empty() {
            column.insert(node, next_leaf);
            next_leaf += 1.0;
        } else if placed {
            let sum: f64 = kids.iter().map(|k| column[k]).sum();
            column.insert(node, sum / kids.len() as f64);
        } else {
            stack.push((node, true));
            for &kid in kids.iter().rev() {
                stack.push((kid, false));
            }
        }
    }
    let width = (next_leaf - 1.0).max(1.0);
    let height = depth.values().copied().max().unwrap_or(0).max(1) as f64;
    let at = column
        .iter()
        .map(|(&id, &c)| {
            (
                id,
                Point {
                    x: 0.05 + 0.9 * c / width,
                    y: 0.05 + 0.9 * depth[&id] as f64 / height,
                },
            )
        })
        .collect();
    Layout {
        kind: Kind::Tree,
        at,
    }
}

/// Rows and columns, when the graph is an R × C grid (R, C ≥ 2): four corners of degree 2, the
/// border of degree 3, the inside of degree 4. A node's row and column follow from its distances
/// to two corners of one side.
fn grid(adjacency: &Adjacency) -> Option<Layout> {
    let corners: Vec<NodeId> = adjacency
        .iter()
        .filter(|(_, ns)| ns.len() == 2)
        .map(|(&id, _)| id)
        .collect();
    if corners.len() != 4 || adjacency.values().any(|ns| ns.len() > 4) {
        return None;
    }
    let from_a = distances(adjacency, corners[0]);
    let mut others: Vec<(usize, NodeId)> = corners[1..].iter().map(|c| (from_a[c], *c)).collect();
    others.sort_unstable();
    // From corner A, the corners along its two sides are C − 1 and R − 1 away, the opposite one
    // R + C − 2.
    let (columns, rows) = (others[0].0 + 1, others[1].0 + 1);
    if others[2].0 != rows + columns - 2 || rows * columns != adjacency.len() {
        return None;
    }
    if link_count(adjacency) != 2 * rows * columns - rows - columns {
        return None;
    }
    let b = others[0].1;
    let from_b = distances(adjacency, b);
    let mut at = BTreeMap::new();
    for (&id, &da) in &from_a {
        let db = from_b[&id];
        // da = r + c and db = r + (C − 1 − c).
        let twice_c = da + columns - 1;
        if twice_c < db || !(twice_c - db).is_multiple_of(2) {
            return None;
        }
        let c = (twice_c - db) / 2;
        let r = da.checked_sub(c)?;
        if r >= rows || c >= columns {
            return None;
        }
        let cell = |i: usize, of: usize| 0.05 + 0.9 * i as f64 / (of - 1) as f64;
        at.insert(
            id,
            Point {
                x: cell(c, columns),
                y: cell(r, rows),
            },
        );
    }
    // Every cell once, and every link between neighbouring cells: else it is not a grid.
    let cells: BTreeSet<(u64, u64)> = at
        .values()
        .map(|p| ((p.x * 1e6) as u64, (p.y * 1e6) as u64))
        .collect();
    if cells.len() != at.len() {
        return None;
    }
    Some(Layout {
        kind: Kind::Grid { rows, columns },
        at,
    })
}

/// Fruchterman–Reingold from a circle in id order: a fixed number of rounds, cooling, no
/// randomness, so the same graph always gives the same picture.
fn force(adjacency: &Adjacency) -> Layout {
    let ids: Vec<NodeId> = adjacency.keys().copied().collect();
    let index: BTreeMap<NodeId, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let n = ids.len();
    let start = on_circle(&ids);
    let mut pos: Vec<(f64, f64)> = ids.iter().map(|id| (start[id].x, start[id].y)).collect();
    let k = (1.0 / n as f64).sqrt();
    let rounds = 300;
    // Repulsion between all pairs is O(n²) a round: past a few hundred nodes a picture is
    // unreadable anyway, so big graphs keep fewer rounds.
    let rounds = if n > 400 { 30 } else { rounds };
    let mut heat = 0.1;
    for _ in 0..rounds {
        let mut shift = vec![(0.0f64, 0.0f64); n];
        for i in 0..n {
            for j in (i + 1)..n {
                let (dx, dy) = (pos[i].0 - pos[j].0, pos[i].1 - pos[j].1);
                let d = (dx * dx + dy * dy).sqrt().max(1e-6);
                let push = k * k / d;
                shift[i].0 += dx / d * push;
                shift[i].1 += dy / d * push;
                shift[j].0 -= dx / d * push;
                shift[j].1 -= dy / d * push;
            }
        }
        for (&a, bs) in adjacency {
            for &b in bs.iter().filter(|&&b| a < b) {
                let (i, j) = (index[&a], index[&b]);
                let (dx, dy) = (pos[i].0 - pos[j].0, pos[i].1 - pos[j].1);
                let d = (dx * dx + dy * dy).sqrt().max(1e-6);
                let pull = d * d / k;
                shift[i].0 -= dx / d * pull;
                shift[i].1 -= dy / d * pull;
                shift[j].0 += dx / d * pull;
                shift[j].1 += dy / d * pull;
            }
        }
        for (p, s) in pos.iter_mut().zip(&shift) {
            let length = (s.0 * s.0 + s.1 * s.1).sqrt().max(1e-9);
            let step = length.min(heat);
            p.0 += s.0 / length * step;
            p.1 += s.1 / length * step;
        }
        heat *= 0.98;
    }
    // Into the unit square, keeping the aspect.
    let (min_x, max_x) = pos.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (min_y, max_y) = pos.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let span = (max_x - min_x).max(max_y - min_y).max(1e-9);
    let at = ids
        .iter()
        .zip(&pos)
        .map(|(&id, p)| {
            (
                id,
                Point {
                    x: 0.05 + 0.9 * (p.0 - min_x) / span,
                    y: 0.05 + 0.9 * (p.1 - min_y) / span,
                },
            )
        })
        .collect();
    Layout {
        kind: Kind::Force,
        at,
    }
}

#[cfg(test)]
mod tests {
    use labctl_topology::Topology;

    use super::*;

    fn topology(name: &str) -> Adjacency {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../topologies")
            .join(format!("{name}.toml"));
        Topology::from_path(&path)
            .expect("a shipped topology")
            .adjacency()
    }

    fn distance(a: Point, b: Point) -> f64 {
        ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
    }

    /// Every node placed, inside the unit square, no two on top of each other.
    fn sane(name: &str, layout: &Layout, adjacency: &Adjacency) {
        assert_eq!(
            layout.at.keys().collect::<Vec<_>>(),
            adjacency.keys().collect::<Vec<_>>(),
            "{name}"
        );
        let points: Vec<Point> = layout.at.values().copied().collect();
        for (i, p) in points.iter().enumerate() {
            assert!(
                (0.0..=1.0).contains(&p.x) && (0.0..=1.0).contains(&p.y),
                "{name}: {p:?}"
            );
            for q in &points[i + 1..] {
                assert!(distance(*p, *q) > 0.01, "{name}: {p:?} and {q:?} overlap");
            }
        }
    }

    #[test]
    fn every_shipped_topology_gets_the_layout_of_its_shape() {
        let cases = [
            ("ring6", Kind::Ring),
            ("ring12-shuffled", Kind::Ring),
            (
                "grid3x3",
                Kind::Grid {
                    rows: 3,
                    columns: 3,
                },
            ),
            (
                "grid4x4-shuffled",
                Kind::Grid {
                    rows: 4,
                    columns: 4,
                },
            ),
            ("line8", Kind::Line),
            ("tree15", Kind::Tree),
            ("star7", Kind::Tree),
            ("star7-centre-max", Kind::Tree),
            ("kite8", Kind::Line), // 2 - 1 - 3 - … - 8 is a path
            ("complete6", Kind::Force),
            ("hypercube4", Kind::Force),
            ("torus4x4", Kind::Force),
            ("random30", Kind::Force),
            ("single", Kind::Trivial),
            ("pair", Kind::Line),
        ];
        for (name, kind) in cases {
            let adjacency = topology(name);
            let layout = Layout::of(&adjacency);
            assert_eq!(layout.kind, kind, "{name}");
            sane(name, &layout, &adjacency);
            assert_eq!(
                Layout::of(&adjacency),
                layout,
                "{name}: the same every time"
            );
        }
    }

    #[test]
    fn a_ring_is_a_circle_in_ring_order() {
        let adjacency = topology("ring12-shuffled");
        let layout = Layout::of(&adjacency);
        let centre = Point { x: 0.5, y: 0.5 };
        let step = distance(layout.at[&1], layout.at[adjacency[&1].first().unwrap()]);
        for (&a, bs) in &adjacency {
            assert!((distance(layout.at[&a], centre) - 0.45).abs() < 1e-9);
            for b in bs {
                // Neighbours sit next to each other on the circle.
                assert!((distance(layout.at[&a], layout.at[b]) - step).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn a_grid_links_neighbouring_cells_only() {
        let adjacency = topology("grid4x4-shuffled");
        let layout = Layout::of(&adjacency);
        let cell = 0.9 / 3.0;
        for (&a, bs) in &adjacency {
            for b in bs {
                assert!(
                    (distance(layout.at[&a], layout.at[b]) - cell).abs() < 1e-9,
                    "{a}–{b}"
                );
            }
        }
    }

    #[test]
    fn a_tree_hangs_from_its_centre() {
        let adjacency = topology("star7-centre-max");
        let layout = Layout::of(&adjacency);
        let centre = *adjacency.iter().find(|(_, ns)| ns.len() > 1).unwrap().0;
        let top = layout.at[&centre].y;
        assert!(layout.at.iter().all(|(&id, p)| id == centre || p.y > top));
        let tree = topology("tree15");
        let layout = Layout::of(&tree);
        // Every link joins two consecutive layers.
        for (&a, bs) in &tree {
            for b in bs {
                assert!((layout.at[&a].y - layout.at[b].y).abs() > 0.1, "{a}–{b}");
            }
        }
    }
}
