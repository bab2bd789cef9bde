//! Every file in `topologies/` loads, is named after its file, and has the graph it says it has.

use std::collections::BTreeMap;
use std::path::PathBuf;

use labctl_topology::Topology;

fn topologies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topologies")
}

fn load_all() -> BTreeMap<String, Topology> {
    let mut loaded = BTreeMap::new();
    for entry in std::fs::read_dir(topologies_dir()).expect("topologies/ exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let topology = Topology::from_path(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            topology.name,
            stem,
            "{} names a different lab",
            path.display()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# "),
            "{} must open with a comment saying what it shows",
            path.display()
        );
        loaded.insert(stem, topology);
    }
    loaded
}

#[test]
fn every_file_loads_with_its_expected_size() {
    let loaded = load_all();
    // (file stem, nodes, links, diameter or None when too slow to compute in a test)
    let expected: &[(&str, usize, usize, Option<usize>)] = &[
        ("ring6", 6, 6, Some(3)),
        ("line8", 8, 7, Some(7)),
        ("star7", 7, 6, Some(2)),
        ("grid3x3", 9, 12, Some(4)),
        ("torus4x4", 16, 32, Some(4)),
        ("tree15", 15, 14, Some(6)),
        ("complete6", 6, 15, Some(1)),
        ("hypercube4", 16, 32, Some(4)),
        ("random30", 30, 60, None),
        ("ring12-shuffled", 12, 12, Some(6)),
        ("grid4x4-shuffled", 16, 24, Some(6)),
        ("random50-shuffled", 50, 100, None),
        ("single", 1, 0, Some(0)),
        ("pair", 2, 1, Some(1)),
        ("star7-centre-max", 7, 6, Some(2)),
        ("bench-random100k", 100_000, 200_000, None),
    ];
    for &(stem, nodes, links, diameter) in expected {
        let t = loaded
            .get(stem)
            .unwrap_or_else(|| panic!("topologies/{stem}.toml is missing"));
        assert_eq!((t.node_count(), t.link_count()), (nodes, links), "{stem}");
        assert_eq!(
            t.ids(),
            (1..=nodes as u64).collect::<Vec<_>>(),
            "{stem}: ids are 1..=n"
        );
        if let Some(diameter) = diameter {
            assert_eq!(t.diameter(), diameter, "{stem}");
        }
    }
}

#[test]
fn shuffled_files_do_not_number_in_generator_order() {
    let loaded = load_all();
    for stem in [
        "ring12-shuffled",
        "grid4x4-shuffled",
        "random50-shuffled",
        "bench-random100k",
    ] {
        let order: Vec<u64> = loaded[stem].graph.node_weights().copied().collect();
        let sorted: Vec<u64> = (1..=order.len() as u64).collect();
        assert_ne!(order, sorted, "{stem} should have shuffled ids");
    }
}

#[test]
fn star_with_the_largest_centre() {
    let t = Topology::from_path(&topologies_dir().join("star7-centre-max.toml")).unwrap();
    let adjacency = t.adjacency();
    assert_eq!(adjacency[&7].len(), 6, "7 is the centre");
    assert!((1..=6).all(|leaf| adjacency[&leaf].iter().eq([7].iter())));
    assert_eq!(t.min_id(), 1);
    assert_eq!(t.eccentricity(1), Some(2));
}

/// `counts_from_path` gives every shipped file's size as loading it does, and a generated
/// table's size without generating it: a million-node table is counted at once, and a table too
/// large to build fails as loading it would.
#[test]
fn counts_match_the_loaded_graphs_and_come_without_generating() {
    for (stem, topology) in load_all() {
        let path = topologies_dir().join(format!("{stem}.toml"));
        assert_eq!(
            Topology::counts_from_path(&path).unwrap(),
            (topology.node_count(), topology.link_count()),
            "{stem}"
        );
        // Counted, then loaded: the topology loading it gives.
        let loaded = Topology::count_path(&path).unwrap().load().unwrap();
        assert_eq!(
            (&loaded.name, loaded.ids(), loaded.links(), loaded.timing),
            (
                &topology.name,
                topology.ids(),
                topology.links(),
                topology.timing
            ),
            "{stem}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let big = write(
        "big.toml",
        "name = \"big\"\n[generate]\nshape = \"complete\"\nn = 4472\n",
    );
    // (Building it would take seconds and gigabytes.)
    assert_eq!(
        Topology::counts_from_path(&big).unwrap(),
        (4472, 4472 * 4471 / 2)
    );
    for text in [
        "name = \"bad\"\n[generate]\nshape = \"complete\"\nn = 5000\n",
        "name = \"bad\"\n[generate]\nshape = \"random\"\nn = 10\ndegree = 30\n",
        "name = \"bad\"\n[generate]\nshape = \"ring\"\n",
        "name = \"bad\"\nnodes = [1, 2]\nlinks = [[1, 3]]\n",
    ] {
        let path = write("bad.toml", text);
        let loading = Topology::from_path(&path).unwrap_err().to_string();
        let counting = Topology::counts_from_path(&path).unwrap_err().to_string();
        assert_eq!(counting, loading, "{text}");
    }
}
