//! Unit tests: the shapes, the id orders, determinism, every error, and the renderings.

use std::collections::BTreeSet;

use super::*;

fn gen(shape: Shape) -> Topology {
    gen_with(shape, IdOrder::Sequential, 0)
}

fn gen_with(shape: Shape, ids: IdOrder, seed: u64) -> Topology {
    Topology::generate("t", &Generate { shape, ids, seed }).unwrap()
}

fn degrees(t: &Topology) -> BTreeMap<NodeId, usize> {
    t.adjacency()
        .into_iter()
        .map(|(id, n)| (id, n.len()))
        .collect()
}

/// Connected, no self-loops, no duplicate links, ids exactly 1..=n.
fn assert_simple_connected(t: &Topology) {
    let links = t.links();
    assert!(links.iter().all(|(a, b)| a < b), "self-loop in {links:?}");
    let distinct: BTreeSet<_> = links.iter().collect();
    assert_eq!(distinct.len(), t.link_count(), "duplicate link");
    assert_eq!(components::disconnected(t), None, "disconnected");
    assert_eq!(t.ids(), (1..=t.node_count() as NodeId).collect::<Vec<_>>());
}

#[test]
fn ring_is_a_cycle() {
    let t = gen(Shape::Ring { n: 6 });
    assert_eq!(t.links(), [(1, 2), (1, 6), (2, 3), (3, 4), (4, 5), (5, 6)]);
    assert!(degrees(&t).values().all(|&d| d == 2));
    assert_eq!(t.diameter(), 3);
    assert_eq!(gen(Shape::Ring { n: 7 }).diameter(), 3);
    let big = gen(Shape::Ring { n: 1000 });
    assert_eq!((big.node_count(), big.link_count()), (1000, 1000));
    assert!(degrees(&big).values().all(|&d| d == 2));
    assert_simple_connected(&big);
}

#[test]
fn line_is_a_path() {
    let t = gen(Shape::Line { n: 8 });
    assert_eq!((t.node_count(), t.link_count()), (8, 7));
    assert_eq!(t.links(), (1..8).map(|i| (i, i + 1)).collect::<Vec<_>>());
    assert_eq!(t.diameter(), 7);
    assert_eq!(t.eccentricity(1), Some(7));
    assert_eq!(t.eccentricity(4), Some(4));
    assert_eq!(t.eccentricity(99), None);
    let one = gen(Shape::Line { n: 1 });
    assert_eq!(
        (one.node_count(), one.link_count(), one.diameter()),
        (1, 0, 0)
    );
}

#[test]
fn star_centre_is_node_one() {
    let t = gen(Shape::Star { n: 7 });
    assert_eq!((t.node_count(), t.link_count()), (7, 6));
    let d = degrees(&t);
    assert_eq!(d[&1], 6);
    assert!((2..=7).all(|id| d[&id] == 1));
    assert_eq!(t.diameter(), 2);
    assert_eq!(t.eccentricity(1), Some(1));
}

#[test]
fn complete_links_every_pair() {
    for n in 1..=12 {
        let t = gen(Shape::Complete { n });
        assert_eq!(t.link_count(), n * (n - 1) / 2);
        assert!(degrees(&t).values().all(|&d| d == n - 1));
        assert_simple_connected(&t);
    }
    assert_eq!(gen(Shape::Complete { n: 6 }).diameter(), 1);
}

#[test]
fn grid_has_four_neighbours_inside() {
    let t = gen(Shape::Grid { rows: 3, cols: 4 });
    assert_eq!((t.node_count(), t.link_count()), (12, 3 * 3 + 4 * 2));
    let d = degrees(&t);
    // Row-major: corners 1, 4, 9, 12; node 6 is inside; node 2 is on the top edge.
    for corner in [1, 4, 9, 12] {
        assert_eq!(d[&corner], 2, "corner {corner}");
    }
    assert_eq!(d[&2], 3);
    assert_eq!(d[&6], 4);
    assert!(t.links().contains(&(1, 5)) && t.links().contains(&(4, 8)));
    assert!(!t.links().contains(&(4, 5)), "rows must not wrap");
    assert_eq!(t.diameter(), 2 + 3);
    let single = gen(Shape::Grid { rows: 1, cols: 1 });
    assert_eq!((single.node_count(), single.link_count()), (1, 0));
    assert_simple_connected(&gen(Shape::Grid { rows: 1, cols: 9 }));
}

#[test]
fn torus_is_four_regular() {
    for (rows, cols) in [(3, 3), (4, 4), (3, 7), (10, 5)] {
        let t = gen(Shape::Torus { rows, cols });
        assert_eq!(
            (t.node_count(), t.link_count()),
            (rows * cols, 2 * rows * cols)
        );
        assert!(degrees(&t).values().all(|&d| d == 4));
        assert_simple_connected(&t);
        assert_eq!(t.diameter(), rows / 2 + cols / 2);
    }
}

#[test]
fn tree_sizes_follow_the_formula() {
    for depth in 0..=6 {
        for fanout in 1..=4usize {
            let t = gen(Shape::Tree { depth, fanout });
            let n = if fanout == 1 {
                depth + 1
            } else {
                (fanout.pow(depth as u32 + 1) - 1) / (fanout - 1)
            };
            assert_eq!(t.node_count(), n, "depth {depth} fanout {fanout}");
            assert_eq!(t.link_count(), n - 1);
            assert_simple_connected(&t);
            assert_eq!(
                t.eccentricity(1),
                Some(depth),
                "the root reaches every leaf in depth hops"
            );
        }
    }
    let t = gen(Shape::Tree {
        depth: 3,
        fanout: 2,
    });
    assert_eq!(t.node_count(), 15);
    let d = degrees(&t);
    assert_eq!(d[&1], 2);
    assert!((2..=7).all(|id| d[&id] == 3));
    assert!((8..=15).all(|id| d[&id] == 1));
    assert!(t.links().contains(&(2, 4)) && t.links().contains(&(7, 15)));
}

#[test]
fn hypercube_has_degree_dim() {
    for dim in 0..=8usize {
        let t = gen(Shape::Hypercube { dim });
        assert_eq!(t.node_count(), 1 << dim);
        assert_eq!(t.link_count(), dim * (1 << dim) / 2);
        assert!(degrees(&t).values().all(|&d| d == dim));
        assert_simple_connected(&t);
        assert_eq!(t.diameter(), dim);
    }
}

#[test]
fn random_graphs_are_connected_and_exact() {
    for seed in 0..200 {
        for (n, degree) in [
            (50, 2.0),
            (30, 4.0),
            (12, 9.5),
            (8, 7.0),
            (2, 1.0),
            (1, 0.0),
        ] {
            let t = gen_with(Shape::Random { n, degree }, IdOrder::Shuffle, seed);
            let m = (n as f64 * degree / 2.0).round() as usize;
            assert_eq!((t.node_count(), t.link_count()), (n, m), "seed {seed}");
            assert_simple_connected(&t);
        }
    }
}

#[test]
fn random_tree_only_and_complete_extremes() {
    // degree 2(n-1)/n gives exactly a spanning tree; degree n-1 the complete graph.
    let tree = gen_with(
        Shape::Random {
            n: 40,
            degree: 1.95,
        },
        IdOrder::Sequential,
        3,
    );
    assert_eq!(tree.link_count(), 39);
    assert_simple_connected(&tree);
    let full = gen_with(
        Shape::Random {
            n: 40,
            degree: 39.0,
        },
        IdOrder::Sequential,
        3,
    );
    assert_eq!(full.link_count(), 40 * 39 / 2);
    assert_simple_connected(&full);
}

#[test]
fn large_random_graph_uses_the_hash_set_path() {
    let t = gen_with(
        Shape::Random {
            n: 10_000,
            degree: 4.0,
        },
        IdOrder::Shuffle,
        1,
    );
    assert_eq!((t.node_count(), t.link_count()), (10_000, 20_000));
    assert_simple_connected(&t);
}

#[test]
fn id_orders() {
    let ring = |ids| gen_with(Shape::Ring { n: 12 }, ids, 7);
    let weights = |t: &Topology| t.graph.node_weights().copied().collect::<Vec<_>>();
    assert_eq!(
        weights(&ring(IdOrder::Sequential)),
        (1..=12).collect::<Vec<_>>()
    );
    assert_eq!(
        weights(&ring(IdOrder::Reverse)),
        (1..=12).rev().collect::<Vec<_>>()
    );
    let shuffled = ring(IdOrder::Shuffle);
    let order = weights(&shuffled);
    assert_ne!(order, (1..=12).collect::<Vec<_>>());
    assert_eq!(
        shuffled.ids(),
        (1..=12).collect::<Vec<_>>(),
        "a permutation of 1..=n"
    );
    assert!(degrees(&shuffled).values().all(|&d| d == 2));
    // The shuffle is part of the file format: pin it so it never changes silently.
    assert_eq!(order, [2, 11, 12, 6, 1, 5, 4, 3, 8, 10, 9, 7]);
    // Changing the ids never changes which generator indices are linked.
    let sequential = ring(IdOrder::Sequential);
    assert_eq!(
        shuffled
            .graph
            .raw_edges()
            .iter()
            .map(|e| (e.source(), e.target()))
            .collect::<Vec<_>>(),
        sequential
            .graph
            .raw_edges()
            .iter()
            .map(|e| (e.source(), e.target()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn same_seed_same_graph_different_seed_different_graph() {
    let random = |seed| {
        gen_with(
            Shape::Random {
                n: 100,
                degree: 4.0,
            },
            IdOrder::Shuffle,
            seed,
        )
    };
    let fingerprint = |t: &Topology| {
        let weights: Vec<NodeId> = t.graph.node_weights().copied().collect();
        let edges: Vec<(usize, usize)> = t
            .graph
            .raw_edges()
            .iter()
            .map(|e| (e.source().index(), e.target().index()))
            .collect();
        (weights, edges)
    };
    assert_eq!(fingerprint(&random(5)), fingerprint(&random(5)));
    assert_ne!(random(5).links(), random(6).links());
    // Pin a small graph so the generator can never change silently.
    let small = gen_with(Shape::Random { n: 8, degree: 3.0 }, IdOrder::Sequential, 42);
    assert_eq!(
        small.links(),
        [
            (1, 2),
            (1, 5),
            (1, 6),
            (1, 7),
            (2, 3),
            (2, 4),
            (2, 6),
            (2, 8),
            (3, 8),
            (4, 6),
            (5, 7),
            (7, 8)
        ]
    );
}

#[test]
fn generate_from_code_checks_the_name_and_sizes() {
    let spec = Generate {
        shape: Shape::Ring { n: 5 },
        ids: IdOrder::Sequential,
        seed: 0,
    };
    let err = Topology::generate("Bad Name", &spec).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::InvalidName { .. }));
    let spec = Generate {
        shape: Shape::Ring { n: 2 },
        ..spec
    };
    let err = Topology::generate("ring2", &spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ring2: `n` = 2 is out of range: ring takes n >= 3"
    );
}

#[test]
fn names() {
    for good in ["a", "ring6", "0", "star7-centre-max", &"a".repeat(63)] {
        assert!(valid_name(good), "{good}");
    }
    for bad in ["", "-a", "Ring", "a_b", "a b", "é", &"a".repeat(64)] {
        assert!(!valid_name(bad), "{bad}");
    }
}

#[test]
fn explicit_file_keeps_ids_and_links() {
    let t = Topology::from_toml(
        "# a comment\nname = \"tri\"\nnodes = [30, 10, 20]\nlinks = [[10, 20], [30, 20], [30, 10]]\n",
        "tri.toml",
    )
    .unwrap();
    assert_eq!(t.name, "tri");
    assert_eq!(t.ids(), [10, 20, 30]);
    assert_eq!(t.min_id(), 10);
    assert_eq!(t.links(), [(10, 20), (10, 30), (20, 30)]);
    assert_eq!(
        t.graph[petgraph::graph::NodeIndex::new(0)],
        30,
        "indices follow `nodes`"
    );
    let single = Topology::from_toml("name = \"one\"\nnodes = [5]\n", "one.toml").unwrap();
    assert_eq!(
        (single.node_count(), single.link_count(), single.min_id()),
        (1, 0, 5)
    );
    let single =
        Topology::from_toml("name = \"one\"\nnodes = [5]\nlinks = []\n", "one.toml").unwrap();
    assert_eq!(single.diameter(), 0);
}

#[test]
fn generate_table_defaults_and_integer_degree() {
    let text = "name = \"r\"\n[generate]\nshape = \"random\"\nn = 20\ndegree = 3\n";
    let a = Topology::from_toml(text, "r.toml").unwrap();
    assert_eq!(a.link_count(), 30);
    let b = Topology::generate(
        "r",
        &Generate {
            shape: Shape::Random { n: 20, degree: 3.0 },
            ids: IdOrder::Sequential,
            seed: 0,
        },
    )
    .unwrap();
    assert_eq!(
        a.links(),
        b.links(),
        "seed defaults to 0 and ids to sequential"
    );
    let fractional =
        "name = \"r\"\n[generate]\nshape = \"random\"\nn = 20\ndegree = 2.5\nseed = 9\n";
    assert_eq!(
        Topology::from_toml(fractional, "r.toml")
            .unwrap()
            .link_count(),
        25
    );
}

/// The variant's name, from its Debug form.
fn variant(kind: &ErrorKind) -> String {
    let debug = format!("{kind:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap()
        .to_string()
}

/// A 1-based (line, column).
type Position = (usize, usize);

#[test]
fn every_error_kind_with_positions() {
    const G: &str = "name = \"g\"\n[generate]\n";
    let generated = |rest: &str| format!("{G}{rest}");
    // (text, variant, (line, column) where the test pins it)
    let cases: Vec<(String, &str, Option<Position>)> = vec![
        (
            "name = \"r\"\nnodes = [1,\n".into(),
            "Syntax",
            Some((2, 12)),
        ),
        (
            "name = \"r\"\nname = \"s\"\n".into(),
            "Syntax",
            Some((2, 1)),
        ),
        ("name = 5\nnodes = [1]\n".into(), "WrongType", Some((1, 8))),
        (
            "name = \"r\"\nnodes = [1.5]\n".into(),
            "WrongType",
            Some((2, 10)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2]\nlinks = [1, 2]\n".into(),
            "WrongType",
            Some((3, 10)),
        ),
        (
            "name = \"r\"\ngenerate = 5\n".into(),
            "WrongType",
            Some((2, 12)),
        ),
        (
            generated("shape = \"ring\"\nn = \"six\"\n"),
            "WrongType",
            Some((4, 5)),
        ),
        (
            "name = \"r\"\nnodes = [1]\n[lab]\nstep = 1\n".into(),
            "UnknownKey",
            Some((4, 1)),
        ),
        (
            "name = \"r\"\nnode = [1]\n".into(),
            "UnknownKey",
            Some((2, 1)),
        ),
        (
            generated("shape = \"ring\"\nn = 4\nsize = 3\n"),
            "UnknownKey",
            Some((5, 1)),
        ),
        ("nodes = [1]\n".into(), "MissingName", None),
        (
            "name = \"Ring6\"\nnodes = [1]\n".into(),
            "InvalidName",
            Some((1, 8)),
        ),
        (
            format!("name = \"{}\"\nnodes = [1]\n", "a".repeat(64)),
            "InvalidName",
            Some((1, 8)),
        ),
        ("name = \"r\"\n".into(), "MissingGraph", None),
        (
            "name = \"r\"\nnodes = [1]\n[generate]\nshape = \"ring\"\nn = 3\n".into(),
            "BothForms",
            Some((3, 2)),
        ),
        (
            "name = \"r\"\nlinks = [[1, 2]]\n".into(),
            "LinksWithoutNodes",
            Some((2, 9)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2]\n".into(),
            "MissingLinks",
            Some((2, 9)),
        ),
        (
            "name = \"r\"\nnodes = []\nlinks = []\n".into(),
            "EmptyNodes",
            Some((2, 9)),
        ),
        (
            "name = \"r\"\nnodes = [1, 0]\nlinks = [[1, 0]]\n".into(),
            "InvalidId",
            Some((2, 13)),
        ),
        (
            "name = \"r\"\nnodes = [-3]\n".into(),
            "InvalidId",
            Some((2, 10)),
        ),
        (
            // Past i64: said at the id in `nodes`, not as a type error at the first link.
            "name = \"r\"\nnodes = [1, 18446744073709551615]\nlinks = [[1, 18446744073709551615]]\n"
                .into(),
            "InvalidId",
            Some((2, 13)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2, 1]\nlinks = [[1, 2]]\n".into(),
            "DuplicateId",
            Some((2, 16)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2]\nlinks = [[1, 2, 1]]\n".into(),
            "LinkNotPair",
            Some((3, 10)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2]\nlinks = [[1]]\n".into(),
            "LinkNotPair",
            Some((3, 10)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2]\nlinks = [[1, 2], [2, 2]]\n".into(),
            "SelfLoop",
            Some((3, 18)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2]\nlinks = [[1, 2],\n  [2, 1]]\n".into(),
            "DuplicateLink",
            Some((4, 3)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2]\nlinks = [[1, 2], [1, 2]]\n".into(),
            "DuplicateLink",
            Some((3, 18)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2]\nlinks = [[1, 9]]\n".into(),
            "UnknownNode",
            Some((3, 14)),
        ),
        (
            "name = \"r\"\nnodes = [1, 2]\nlinks = [[-1, 2]]\n".into(),
            "UnknownNode",
            Some((3, 11)),
        ),
        (
            "name = \"r\"\nnodes = [4, 1, 2, 3]\nlinks = [[1, 2], [3, 4]]\n".into(),
            "Disconnected",
            Some((2, 19)),
        ),
        (generated("n = 4\n"), "MissingShape", Some((2, 2))),
        (
            generated("shape = \"hexagon\"\nn = 6\n"),
            "UnknownShape",
            Some((3, 9)),
        ),
        (
            generated("shape = \"ring\"\nn = 6\nrows = 2\n"),
            "KeyNotForShape",
            Some((5, 8)),
        ),
        (
            generated("shape = \"random\"\nn = 6\ndegree = 2\ndim = 2\n"),
            "KeyNotForShape",
            Some((6, 7)),
        ),
        (
            generated("shape = \"grid\"\nrows = 3\n"),
            "MissingKey",
            Some((3, 9)),
        ),
        (
            generated("shape = \"random\"\nn = 3\n"),
            "MissingKey",
            Some((3, 9)),
        ),
        (
            generated("shape = \"ring\"\nn = 2\n"),
            "OutOfRange",
            Some((4, 5)),
        ),
        (
            generated("shape = \"ring\"\nn = -1\n"),
            "OutOfRange",
            Some((4, 5)),
        ),
        (
            generated("shape = \"line\"\nn = 0\n"),
            "OutOfRange",
            Some((4, 5)),
        ),
        (
            generated("shape = \"grid\"\nrows = 2\ncols = 0\n"),
            "OutOfRange",
            Some((5, 8)),
        ),
        (
            generated("shape = \"torus\"\nrows = 2\ncols = 3\n"),
            "OutOfRange",
            Some((4, 8)),
        ),
        (
            generated("shape = \"tree\"\ndepth = -1\nfanout = 2\n"),
            "OutOfRange",
            Some((4, 9)),
        ),
        (
            generated("shape = \"tree\"\ndepth = 2\nfanout = 0\n"),
            "OutOfRange",
            Some((5, 10)),
        ),
        (
            generated("shape = \"hypercube\"\ndim = 21\n"),
            "OutOfRange",
            Some((4, 7)),
        ),
        (
            generated("shape = \"ring\"\nn = 5\nseed = -1\n"),
            "OutOfRange",
            Some((5, 8)),
        ),
        (
            generated("shape = \"random\"\nn = 10\ndegree = 1\n"),
            "DegreeOutOfRange",
            Some((5, 10)),
        ),
        (
            generated("shape = \"random\"\nn = 10\ndegree = 9.2\n"),
            "DegreeOutOfRange",
            Some((5, 10)),
        ),
        (
            generated("shape = \"random\"\nn = 1\ndegree = 4\n"),
            "DegreeOutOfRange",
            Some((5, 10)),
        ),
        (
            generated("shape = \"random\"\nn = 5\ndegree = nan\n"),
            "DegreeOutOfRange",
            Some((5, 10)),
        ),
        (
            generated("shape = \"random\"\nn = 5\ndegree = -2\n"),
            "DegreeOutOfRange",
            Some((5, 10)),
        ),
        (
            generated("shape = \"ring\"\nn = 5\nids = \"random\"\n"),
            "UnknownIdOrder",
            Some((5, 7)),
        ),
        (
            generated("shape = \"complete\"\nn = 5000\n"),
            "TooLarge",
            Some((3, 9)),
        ),
        (
            generated("shape = \"grid\"\nrows = 1001\ncols = 1000\n"),
            "TooLarge",
            Some((3, 9)),
        ),
        (
            generated("shape = \"hypercube\"\ndim = 20\n"),
            "TooLarge",
            Some((3, 9)),
        ),
        (
            generated("shape = \"tree\"\ndepth = 200\nfanout = 10\n"),
            "TooLarge",
            Some((3, 9)),
        ),
        (
            generated("shape = \"tree\"\ndepth = 9000000000\nfanout = 1\n"),
            "TooLarge",
            Some((3, 9)),
        ),
        (
            generated("shape = \"random\"\nn = 2000000\ndegree = 4\n"),
            "TooLarge",
            Some((3, 9)),
        ),
        (
            generated("shape = \"random\"\nn = 1000000\ndegree = 21\n"),
            "TooLarge",
            Some((3, 9)),
        ),
    ];
    for (text, want, position) in &cases {
        let err = match Topology::from_toml(text, "case.toml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(err) => err,
        };
        assert_eq!(variant(&err.kind), *want, "{err}\n--- for:\n{text}");
        assert_eq!(err.origin, "case.toml");
        let got = err.line.zip(err.column);
        if let Some(position) = position {
            assert_eq!(got, Some(*position), "{err}\n--- for:\n{text}");
        } else {
            assert_eq!(got, None, "{err}");
        }
        // origin[:line[:column]]: message, on one line.
        let prefix = match got {
            Some((line, column)) => format!("case.toml:{line}:{column}: "),
            None => "case.toml: ".to_string(),
        };
        let shown = err.to_string();
        assert!(shown.starts_with(&prefix), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
    }
}

#[test]
fn messages_name_the_value_and_what_is_valid() {
    let err = |text: &str| Topology::from_toml(text, "m.toml").unwrap_err().to_string();
    assert_eq!(
        err("name = \"ring6\"\nnodes = [1, 2, 3,\n  5, 4, 4]\n"),
        "m.toml:3:9: duplicate node id 4: each id in `nodes` must appear once"
    );
    assert_eq!(
        err("name = \"r\"\nnodes = [1, 0]\n"),
        "m.toml:2:13: invalid node id 0: ids are positive integers 1..=9223372036854775807"
    );
    assert_eq!(
        err("name = \"r\"\nnodes = [1]\n[lab]\nstep = 1\n"),
        "m.toml:4:1: unknown key `step` in [lab]: valid keys are durability"
    );
    assert_eq!(
        err("name = \"r\"\n[generate]\nshape = \"ring\"\nrows = 3\n"),
        "m.toml:4:8: `rows` does not apply to shape ring: ring takes n"
    );
    assert_eq!(
        err("name = \"r\"\n[generate]\nshape = \"hex\"\n"),
        "m.toml:3:9: unknown shape \"hex\": valid shapes are ring, line, star, complete, grid, torus, \
         tree, hypercube, random"
    );
    assert_eq!(
        err("name = \"r\"\nnodes = [1, 2, 3, 4, 5]\nlinks = [[1, 2], [3, 4]]\n"),
        "m.toml:2:16: the graph is disconnected (3 components): node 3 cannot be reached from node 1; \
         every node must be reachable from every other"
    );
    assert_eq!(
        err("name = \"r\"\nnodes = [1, 2]\nlinks = [[1, 2], [2, 1]]\n"),
        "m.toml:3:18: duplicate link [2, 1]: [1, 2] already links them; links are undirected, list each once"
    );
    assert!(
        err("name = \"r\"\n[generate]\nshape = \"random\"\nn = 10\ndegree = 1\n")
            .contains("between n-1 = 9 and n(n-1)/2 = 45, i.e. degree from about 1.800 to 9")
    );
    assert!(
        err("name = \"r\"\n[generate]\nshape = \"complete\"\nn = 5000\n")
            .contains("12497500 links: at most 1000000 nodes and 10000000 links")
    );
    assert!(
        err("name = \"r\"\n[generate]\nshape = \"tree\"\ndepth = 200\nfanout = 10\n")
            .contains("more than 10^19 nodes")
    );
}

#[test]
fn unreadable_file_names_the_path_and_os_error() {
    let path = std::path::Path::new("/nonexistent/dir/ring6.toml");
    let err = Topology::from_path(path).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Unreadable { .. }));
    let shown = err.to_string();
    assert!(
        shown.starts_with("/nonexistent/dir/ring6.toml: cannot read"),
        "{shown}"
    );
    assert!(shown.contains("No such file or directory"), "{shown}");
}

#[test]
fn ascii_lists_each_node_with_its_neighbours() {
    let ring = gen(Shape::Ring { n: 6 });
    assert_eq!(
        render::ascii(&Topology {
            name: "ring6".into(),
            ..ring
        }),
        "ring6: 6 nodes, 6 links, degree 2..2, diameter 3\n\
         \x20 1 ── 2, 6\n  2 ── 1, 3\n  3 ── 2, 4\n  4 ── 3, 5\n  5 ── 4, 6\n  6 ── 1, 5\n"
    );
    let star = gen(Shape::Star { n: 12 });
    let text = render::ascii(&star);
    assert!(
        text.starts_with("t: 12 nodes, 11 links, degree 1..11, diameter 2\n"),
        "{text}"
    );
    assert!(
        text.contains("\n   1 ── 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12\n"),
        "{text}"
    );
    assert!(text.contains("\n  12 ── 1\n"), "{text}");
    let one = gen(Shape::Line { n: 1 });
    assert_eq!(
        render::ascii(&one),
        "t: 1 node, 0 links, degree 0..0, diameter 0\n  1 ── (no links)\n"
    );
}

#[test]
fn ascii_cuts_long_listings() {
    let t = gen(Shape::Star { n: 1000 });
    let text = render::ascii(&t);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 200 + 1);
    assert_eq!(lines[201], "  … 800 more nodes");
    assert!(lines[1].ends_with(", 33, … (967 more)"), "{}", lines[1]);
    assert_eq!(lines[200], "  200 ── 1");
}

#[test]
fn dot_is_sorted_graphviz() {
    let t = Topology::from_toml(
        "name = \"tri\"\nnodes = [3, 1, 2]\nlinks = [[3, 2], [2, 1], [1, 3]]\n",
        "tri.toml",
    )
    .unwrap();
    assert_eq!(
        render::dot(&t),
        "graph \"tri\" {\n  1 -- 2;\n  1 -- 3;\n  2 -- 3;\n}\n"
    );
    let one = Topology::from_toml("name = \"one\"\nnodes = [7]\n", "one.toml").unwrap();
    assert_eq!(render::dot(&one), "graph \"one\" {\n  7;\n}\n");
}

#[test]
fn timing_defaults_when_the_table_is_absent() {
    let t = Topology::from_toml("name = \"a\"\nnodes = [1]\n", "a.toml").unwrap();
    assert_eq!(t.timing, Timing::default());
    assert_eq!((t.timing.heartbeat_ms, t.timing.suspicion_ms), (100, 1000));
}

#[test]
fn timing_table_sets_heartbeat_and_suspicion() {
    let text = "name = \"a\"\nnodes = [1]\n[timing]\nheartbeat_ms = 50\nsuspicion_ms = 400\n";
    let t = Topology::from_toml(text, "a.toml").unwrap();
    assert_eq!((t.timing.heartbeat_ms, t.timing.suspicion_ms), (50, 400));
    // A slow heartbeat alone raises the suspicion timeout to two heartbeats.
    let text = "name = \"a\"\nnodes = [1]\n[timing]\nheartbeat_ms = 800\n";
    let t = Topology::from_toml(text, "a.toml").unwrap();
    assert_eq!((t.timing.heartbeat_ms, t.timing.suspicion_ms), (800, 1600));
}

#[test]
fn timing_errors_name_the_key_and_the_valid_range() {
    let cases = [
        ("[timing]\nheartbeat_ms = 5\n", "heartbeat_ms", 4, 16),
        (
            "[timing]\nheartbeat_ms = 100\nsuspicion_ms = 150\n",
            "suspicion_ms",
            5,
            16,
        ),
        ("[timing]\nbeat = 100\n", "beat", 4, 1),
        ("[timing]\nheartbeat_ms = \"fast\"\n", "heartbeat_ms", 4, 16),
    ];
    for (table, key, line, column) in cases {
        let text = format!("name = \"a\"\nnodes = [1]\n{table}");
        let err = Topology::from_toml(&text, "a.toml").unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains(key), "{shown}");
        assert_eq!(
            (err.line, err.column),
            (Some(line), Some(column)),
            "{shown}"
        );
    }
}

#[test]
fn the_lab_table_sets_the_durability() {
    let t = Topology::from_toml("name = \"a\"\nnodes = [1]\n", "a.toml").unwrap();
    assert_eq!(t.durability, None, "absent: labctl up decides");
    for (word, durability) in [
        ("majority", crate::Durability::Majority),
        ("replicas", crate::Durability::Replicas),
        ("writer", crate::Durability::Writer),
    ] {
        let text = format!("name = \"a\"\nnodes = [1]\n[lab]\ndurability = \"{word}\"\n");
        let t = Topology::from_toml(&text, "a.toml").unwrap();
        assert_eq!(t.durability, Some(durability));
    }
    let err = Topology::from_toml(
        "name = \"a\"\nnodes = [1]\n[lab]\ndurability = \"quorum\"\n",
        "a.toml",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "a.toml:4:14: `durability` = \"quorum\" is out of range: durability takes majority (the default), replicas or writer"
    );
}

#[test]
fn a_refused_random_generator_says_its_real_size() {
    let text = "name = \"g\"\n[generate]\nshape = \"random\"\nn = 2000000\ndegree = 4\n";
    let err = Topology::from_toml(text, "case.toml").unwrap_err();
    assert!(
        err.to_string()
            .contains("would have 2000000 nodes and 4000000 links"),
        "{err}"
    );
}
