//! End-to-end tests of the `labctl` binary: each test runs the real executable, in a temporary
//! directory when it needs files of its own, and reads `--json` and `--trace` output back into
//! types, so the report (SPEC §7) and the topology errors (SPEC §2) are tested like an API.
//!
//! Every expectation is computed here from the topology file itself (smallest id, neighbours,
//! eccentricity, the roles of SPEC §3.4), never copied from the program's own output.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    check_election_and_tree, command_line, labctl, load, parents, parse_one_line, topologies_dir,
    topology_file, SimReport, LABCTL,
};
use labctl_core::Role;
use labctl_topology::{NodeId, Topology};
use serde_json::Value;

/// A shipped topology too large for a debug-build simulation (100,000 nodes).
const TOO_BIG: &str = "bench-random100k.toml";

/// Runs `labctl` and insists on exit code 0 and a silent stderr; returns stdout.
fn labctl_ok<S: AsRef<OsStr>>(args: &[S]) -> String {
    labctl(args).expect_success().stdout
}

/// Every shipped topology file, sorted; `TOO_BIG` only when asked for.
fn shipped(include_too_big: bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(topologies_dir())
        .expect("topologies/ is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension() == Some(OsStr::new("toml")))
        .filter(|path| include_too_big || path.file_name() != Some(OsStr::new(TOO_BIG)))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the shipped topologies, found {files:?}"
    );
    files
}

/// `labctl sim FILE --json` plus `extra`, read back into a report.
fn sim_json(file: &Path, extra: &[&str]) -> SimReport {
    let mut args = vec![OsStr::new("sim"), file.as_os_str(), OsStr::new("--json")];
    args.extend(extra.iter().map(OsStr::new));
    parse_one_line(&labctl(&args).expect_success())
}

/// Checks one `sim --json` report against the topology it ran on: what any report must show
/// ([`check_election_and_tree`]), plus what only a simulation knows.
fn check_report(file: &Path, topology: &Topology, sim: &SimReport, delivery: &str, seed: u64) {
    let context = format!("{} (--delivery {delivery} --seed {seed})", file.display());
    let report = &sim.report;

    assert_eq!(report.runtime, "sim", "{context}");
    assert_eq!(report.lab, topology.name, "{context}");
    assert_eq!(sim.delivery, delivery, "{context}: delivery echoed");
    assert_eq!(sim.seed, seed, "{context}: seed echoed");
    check_election_and_tree(report, topology, &context);

    if delivery == "sync" {
        // Unit delays make SHOUT's tree breadth-first: as deep as the leader's eccentricity.
        let eccentricity = topology
            .eccentricity(topology.min_id())
            .expect("the leader is a node");
        assert_eq!(
            report.depth as usize, eccentricity,
            "{context}: a sync tree is breadth-first"
        );
    }
    assert_eq!(
        sim.delivered,
        report.messages.election + report.messages.tree,
        "{context}: every message sent was delivered"
    );
    if topology.link_count() > 0 {
        assert!(sim.virtual_time > 0, "{context}: time passed");
    }
}

// --- 1. sim --json on every shipped topology -------------------------------------------------

#[test]
fn sim_sync_on_every_shipped_topology_elects_the_minimum_and_builds_a_bfs_tree() {
    for file in shipped(false) {
        let topology = load(&file);
        let sim = sim_json(&file, &["--delivery", "sync"]);
        check_report(&file, &topology, &sim, "sync", 0);
    }
}

#[test]
fn sim_async_on_every_shipped_topology_elects_the_minimum_and_builds_a_spanning_tree() {
    for file in shipped(false) {
        let topology = load(&file);
        let sim = sim_json(&file, &["--delivery", "async", "--seed", "3"]);
        check_report(&file, &topology, &sim, "async", 3);
    }
}

#[test]
fn sim_defaults_to_sync_delivery_and_seed_zero() {
    let file = topology_file("grid4x4-shuffled.toml");
    let sim = sim_json(&file, &[]);
    check_report(&file, &load(&file), &sim, "sync", 0);
}

#[test]
fn sim_elects_the_smallest_id_when_it_is_not_one() {
    // Ids far from 1..n, the smallest (17) neither first in the file nor a hub.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("odd-ids.toml");
    std::fs::write(
        &file,
        "name = \"odd-ids\"\n\
         nodes = [40, 93, 17, 25, 61, 88, 30]\n\
         links = [[40, 93], [93, 17], [17, 25], [25, 61], [61, 88], [88, 30], [30, 40], [40, 61]]\n",
    )
    .unwrap();
    let topology = load(&file);
    for (delivery, seed) in [("sync", 0), ("async", 3), ("async", 11)] {
        let seed_text = seed.to_string();
        let sim = sim_json(&file, &["--delivery", delivery, "--seed", &seed_text]);
        assert_eq!(sim.report.leader, Some(17));
        check_report(&file, &topology, &sim, delivery, seed);
    }
}

// --- 2. determinism -----------------------------------------------------------------------------

#[test]
fn same_seed_same_trace_different_seed_different_trace() {
    let file = topology_file("random30.toml");
    // Without --json the trace is stdout and the summary stderr: both must repeat exactly.
    let trace = |seed: &str| {
        let run = labctl(&[
            OsStr::new("sim"),
            file.as_os_str(),
            OsStr::new("--delivery"),
            OsStr::new("async"),
            OsStr::new("--seed"),
            OsStr::new(seed),
            OsStr::new("--trace"),
        ])
        .expect_code(0);
        (run.stdout, run.stderr)
    };
    let first = trace("3");
    assert!(
        first.0.lines().count() > 100,
        "a random30 trace has many lines"
    );
    let again = trace("3");
    assert!(
        first.0 == again.0,
        "the same seed gave two different traces"
    );
    assert!(
        first.1 == again.1,
        "the same seed gave two different summaries"
    );
    assert!(
        first.0 != trace("4").0,
        "seeds 3 and 4 gave the same async trace"
    );
}

#[test]
fn sync_traces_are_reproducible_too() {
    let file = topology_file("torus4x4.toml");
    let args = [
        OsStr::new("sim"),
        file.as_os_str(),
        OsStr::new("--trace"),
        OsStr::new("--json"),
    ];
    let first = labctl_ok(&args);
    let second = labctl_ok(&args);
    // Only the wall-clock field of the final report may differ.
    let strip = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|line| {
                let mut value: Value = serde_json::from_str(line).unwrap();
                if let Some(object) = value.as_object_mut() {
                    object.remove("elapsed_ms");
                }
                value
            })
            .collect()
    };
    assert_eq!(strip(&first), strip(&second));
}

// --- 3. --trace --json -----------------------------------------------------------------------

/// Runs `sim --trace --json` and checks the trace against the report that ends it.
fn check_trace(file: &Path, extra: &[&str]) {
    let context = format!("{} {}", file.display(), extra.join(" "));
    let mut args = vec![
        OsStr::new("sim"),
        file.as_os_str(),
        OsStr::new("--trace"),
        OsStr::new("--json"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let stdout = labctl_ok(&args);
    let mut lines: Vec<&str> = stdout.lines().collect();
    let last = lines.pop().expect("at least the report");
    let sim: SimReport = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{context}: the last line is not the report: {e}\n{last}"));
    let report = &sim.report;
    let tree = parents(report);

    let events: Vec<Value> = lines
        .iter()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{context}: not JSON: {e}\n{line}"))
        })
        .collect();
    let field = |event: &Value, key: &str| -> u64 {
        event[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{context}: no numeric `{key}` in {event}"))
    };
    let kind = |event: &Value| -> String {
        event["event"]
            .as_str()
            .unwrap_or_else(|| panic!("{context}: no `event` in {event}"))
            .to_string()
    };

    let mut sends = 0u64;
    let mut receives = 0u64;
    let mut elected = Vec::new();
    let mut joined: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    let mut last_roles: BTreeMap<NodeId, Vec<Role>> = BTreeMap::new();
    // Messages on the wire per directed link, to check FIFO delivery.
    let mut in_flight: HashMap<(NodeId, NodeId), VecDeque<Value>> = HashMap::new();
    let mut time = 0;
    for event in &events {
        let t = field(event, "t");
        assert!(t >= time, "{context}: time went back to {t} at {event}");
        time = t;
        let node = field(event, "node");
        assert!(
            tree.contains_key(&node),
            "{context}: unknown node in {event}"
        );
        match kind(event).as_str() {
            "send" => {
                sends += 1;
                in_flight
                    .entry((node, field(event, "to")))
                    .or_default()
                    .push_back(event["message"].clone());
            }
            "receive" => {
                receives += 1;
                let from = field(event, "from");
                let sent = in_flight
                    .get_mut(&(from, node))
                    .and_then(VecDeque::pop_front)
                    .unwrap_or_else(|| panic!("{context}: received what was never sent: {event}"));
                assert_eq!(
                    sent, event["message"],
                    "{context}: link {from}→{node} delivered out of order"
                );
            }
            "elected" => elected.push(node),
            "joined" => {
                let parent = field(event, "parent");
                assert_eq!(
                    field(event, "leader"),
                    report.leader.expect("a leader"),
                    "{context}: {event}"
                );
                assert!(
                    joined.insert(node, parent).is_none(),
                    "{context}: node {node} joined twice"
                );
            }
            "roles" => {
                let roles = serde_json::from_value(event["roles"].clone())
                    .unwrap_or_else(|e| panic!("{context}: bad roles in {event}: {e}"));
                last_roles.insert(node, roles);
            }
            _ => {}
        }
    }

    let total = report.messages.election + report.messages.tree;
    assert_eq!(
        sends, total,
        "{context}: send lines vs messages in the report"
    );
    assert_eq!(
        receives, total,
        "{context}: receive lines vs messages in the report"
    );
    assert!(
        in_flight.values().all(VecDeque::is_empty),
        "{context}: messages sent but never received"
    );
    assert_eq!(
        elected,
        [report.leader.expect("a leader")],
        "{context}: exactly one `elected` event, at the leader"
    );
    assert_eq!(
        time, sim.virtual_time,
        "{context}: the trace ends when the run went quiet"
    );
    let tree_edges: BTreeMap<NodeId, NodeId> = tree
        .iter()
        .filter_map(|(id, parent)| parent.map(|p| (*id, p)))
        .collect();
    assert_eq!(
        joined, tree_edges,
        "{context}: `joined` events give the tree"
    );
    assert_eq!(
        last_roles,
        tree.keys()
            .map(|id| (*id, report.roles[&id.to_string()].clone()))
            .collect::<BTreeMap<_, _>>(),
        "{context}: each node's last `roles` event is its reported roles"
    );
}

#[test]
fn trace_json_matches_the_report_on_every_shipped_topology() {
    for file in shipped(false) {
        check_trace(&file, &["--delivery", "sync"]);
        check_trace(&file, &["--delivery", "async", "--seed", "5"]);
    }
}

#[test]
fn trace_without_json_keeps_stdout_pure_and_summarises_on_stderr() {
    let file = topology_file("ring6.toml");
    let run = labctl(&[OsStr::new("sim"), file.as_os_str(), OsStr::new("--trace")]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(!run.stdout.is_empty());
    for line in run.stdout.lines() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert!(
            value.get("event").is_some(),
            "a trace line has an event: {line}"
        );
    }
    assert!(
        run.stderr.contains("Leader: 1"),
        "the summary goes to stderr: {}",
        run.stderr
    );
}

// --- 4. human output ------------------------------------------------------------------------

#[test]
fn human_output_shows_leader_tree_and_roles() {
    let file = topology_file("ring6.toml");
    let text = labctl_ok(&[OsStr::new("sim"), file.as_os_str()]);
    assert!(text.contains("Leader: 1"), "{text}");
    assert!(
        text.lines().any(|line| line.contains("└──")),
        "no tree drawing:\n{text}"
    );
    // Every node is drawn in the tree.
    for id in 1..=6 {
        assert!(
            text.lines().any(|line| line
                .trim_start_matches([' ', '│', '├', '└', '─'])
                .starts_with(&format!("{id}  "))),
            "node {id} is not in the tree drawing:\n{text}"
        );
    }
    // The roles table lists each role with the nodes the report gives it.
    let report = sim_json(&file, &[]).report;
    let table = text
        .split("Roles:")
        .nth(1)
        .unwrap_or_else(|| panic!("no roles table:\n{text}"));
    for role in [
        Role::Writer,
        Role::Persistence,
        Role::Forwarder,
        Role::Input,
    ] {
        let mut holders: Vec<NodeId> = report
            .roles
            .iter()
            .filter(|(_, roles)| roles.contains(&role))
            .map(|(id, _)| id.parse().unwrap())
            .collect();
        holders.sort_unstable();
        let listed = holders
            .iter()
            .map(NodeId::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let row = table
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{role} ")))
            .unwrap_or_else(|| panic!("no `{role}` row in the roles table:\n{text}"));
        assert!(
            row.contains(&listed) && row.contains(&format!("({})", holders.len())),
            "`{role}` row should list {listed}: {row}"
        );
    }
}

// --- 5. invalid topology files --------------------------------------------------------------

/// Writes `text` to `file_name` in a temporary directory, then checks that `validate`, `sim`
/// (plain and `--json --trace`) and `graph` all refuse it: exit 2, nothing on stdout, one line
/// `labctl: FILE[:LINE:COL]: …` on stderr mentioning each of `mentions`.
fn assert_rejected(
    file_name: &str,
    text: Option<&str>,
    at: Option<(usize, usize)>,
    mentions: &[&str],
) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(file_name);
    if let Some(text) = text {
        std::fs::write(&file, text).unwrap();
    }
    let prefix = match at {
        Some((line, column)) => format!("labctl: {}:{line}:{column}: ", file.display()),
        None => format!("labctl: {}: ", file.display()),
    };
    let commands: [&[&OsStr]; 4] = [
        &[OsStr::new("validate"), file.as_os_str()],
        &[OsStr::new("sim"), file.as_os_str()],
        &[
            OsStr::new("sim"),
            file.as_os_str(),
            OsStr::new("--json"),
            OsStr::new("--trace"),
        ],
        &[OsStr::new("graph"), file.as_os_str()],
    ];
    for args in commands {
        // Exit 2, nothing on stdout, one line `labctl: …` mentioning each of `mentions`…
        let line = labctl(args).expect_error(mentions);
        // …that names the file, and the place in it when there is one.
        assert!(
            line.starts_with(&prefix),
            "{}: stderr should start with {prefix:?}: {line:?}",
            command_line(args)
        );
    }
}

#[test]
fn rejects_toml_syntax_error() {
    assert_rejected(
        "syntax.toml",
        Some("name = \"syntax\"\nnodes = [1, 2,, 3]\nlinks = [[1, 2], [2, 3]]\n"),
        Some((2, 15)),
        &["invalid TOML", "comma"],
    );
}

#[test]
fn rejects_missing_name() {
    assert_rejected(
        "noname.toml",
        Some("nodes = [1, 2]\nlinks = [[1, 2]]\n"),
        None,
        &["missing `name`", "name = \"ring6\""],
    );
}

#[test]
fn rejects_bad_name() {
    assert_rejected(
        "badname.toml",
        Some("# a comment first\nname = \"Ring6\"\nnodes = [1]\nlinks = []\n"),
        Some((2, 8)),
        &["\"Ring6\"", "a-z, 0-9 and '-'"],
    );
}

#[test]
fn rejects_unknown_key() {
    assert_rejected(
        "unknown.toml",
        Some("name = \"unknown\"\nnodes = [1, 2]\nlinks = [[1, 2]]\n  colour = \"red\"\n"),
        Some((4, 3)),
        &["`colour`", "valid keys are name, nodes, links, generate"],
    );
}

#[test]
fn rejects_duplicate_id() {
    assert_rejected(
        "dupid.toml",
        Some("name = \"dupid\"\nnodes = [1, 2, 3, 2]\nlinks = [[1, 2], [2, 3]]\n"),
        Some((2, 19)),
        &["duplicate node id 2", "must appear once"],
    );
}

#[test]
fn rejects_id_zero() {
    assert_rejected(
        "zero.toml",
        Some("name = \"zero\"\nnodes = [1, 0]\nlinks = [[1, 0]]\n"),
        Some((2, 13)),
        &["invalid node id 0", "positive integers"],
    );
}

#[test]
fn rejects_negative_id() {
    assert_rejected(
        "negative.toml",
        Some("name = \"negative\"\nnodes = [-3, 1]\nlinks = [[-3, 1]]\n"),
        Some((2, 10)),
        &["invalid node id -3", "positive integers"],
    );
}

#[test]
fn rejects_self_loop() {
    assert_rejected(
        "selfloop.toml",
        Some("name = \"selfloop\"\nnodes = [1, 2]\nlinks = [[1, 2], [2, 2]]\n"),
        Some((3, 18)),
        &["self-loop [2, 2]", "two different nodes"],
    );
}

#[test]
fn rejects_duplicate_link_in_either_direction() {
    assert_rejected(
        "duplink.toml",
        Some("name = \"duplink\"\nnodes = [1, 2, 3]\nlinks = [\n  [1, 2],\n  [2, 3],\n  [2, 1],\n]\n"),
        Some((6, 3)),
        &["duplicate link [2, 1]", "[1, 2] already links them"],
    );
}

#[test]
fn rejects_link_to_unknown_node() {
    assert_rejected(
        "unknode.toml",
        Some("name = \"unknode\"\nnodes = [1, 2]\nlinks = [[1, 2], [2, 9]]\n"),
        Some((3, 22)),
        &["node 9", "not in `nodes`"],
    );
}

#[test]
fn rejects_link_with_three_ids() {
    assert_rejected(
        "three.toml",
        Some("name = \"three\"\nnodes = [1, 2, 3]\nlinks = [[1, 2], [1, 2, 3]]\n"),
        Some((3, 18)),
        &["3 ids", "a pair of node ids"],
    );
}

#[test]
fn rejects_disconnected_graph() {
    assert_rejected(
        "disconnected.toml",
        Some("name = \"disconnected\"\nnodes = [1, 2, 3, 4]\nlinks = [[1, 2], [3, 4]]\n"),
        // Points at the first node the search from node 1 does not reach.
        Some((2, 16)),
        &["disconnected", "node 3 cannot be reached from node 1"],
    );
}

#[test]
fn rejects_both_explicit_graph_and_generate() {
    assert_rejected(
        "both.toml",
        Some("name = \"both\"\nnodes = [1, 2]\nlinks = [[1, 2]]\n\n[generate]\nshape = \"ring\"\nn = 4\n"),
        Some((5, 2)),
        &["`nodes`/`links` and `[generate]` are exclusive"],
    );
}

#[test]
fn rejects_unknown_shape() {
    assert_rejected(
        "shape.toml",
        Some("name = \"shape\"\n\n[generate]\nshape = \"pentagon\"\nn = 5\n"),
        Some((4, 9)),
        &["\"pentagon\"", "valid shapes are ring, line, star"],
    );
}

#[test]
fn rejects_key_not_for_shape() {
    assert_rejected(
        "rows.toml",
        Some("name = \"rows\"\n\n[generate]\nshape = \"ring\"\nn = 5\nrows = 2\n"),
        Some((6, 8)),
        &["`rows`", "ring takes n"],
    );
}

#[test]
fn rejects_torus_too_small() {
    assert_rejected(
        "torus.toml",
        Some("name = \"torus\"\n\n[generate]\nshape = \"torus\"\ncols = 4\nrows = 2\n"),
        Some((6, 8)),
        &["`rows` = 2", "rows >= 3"],
    );
}

#[test]
fn rejects_random_degree_too_small() {
    assert_rejected(
        "degree.toml",
        Some("name = \"degree\"\n\n[generate]\nshape = \"random\"\nn = 10\ndegree = 1\n"),
        Some((6, 10)),
        &["`degree` = 1", "n = 10", "n-1 = 9"],
    );
}

#[test]
fn rejects_missing_file() {
    assert_rejected("missing.toml", None, None, &["cannot read"]);
}

// --- 6. validate ----------------------------------------------------------------------------

#[test]
fn validate_accepts_every_shipped_topology_at_once() {
    let files = shipped(true);
    let mut args = vec![OsStr::new("validate")];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let stdout = labctl_ok(&args);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), files.len(), "one line per file:\n{stdout}");
    for (line, file) in lines.iter().zip(&files) {
        let topology = load(file);
        assert!(
            line.starts_with(&format!("{}: ok", file.display())),
            "{line}"
        );
        assert!(
            line.contains(&format!("lab {}", topology.name)),
            "the line names the lab: {line}"
        );
    }
}

#[test]
fn validate_fails_when_any_file_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"bad\"\nnodes = [1, 1]\nlinks = []\n").unwrap();
    let good = topology_file("ring6.toml");
    let run = labctl(&[OsStr::new("validate"), good.as_os_str(), bad.as_os_str()]);
    assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
    assert!(
        run.stderr
            .starts_with(&format!("labctl: {}:2:13: ", bad.display()))
            && run.stderr.lines().count() == 1,
        "{:?}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("bad.toml"),
        "the bad file is not reported ok: {}",
        run.stdout
    );
}

// --- 7. graph -------------------------------------------------------------------------------

#[test]
fn graph_dot_has_one_edge_line_per_link() {
    for file in shipped(false) {
        let topology = load(&file);
        let dot = labctl_ok(&[
            OsStr::new("graph"),
            file.as_os_str(),
            OsStr::new("--format"),
            OsStr::new("dot"),
        ]);
        assert!(dot.starts_with("graph "), "{}: {dot}", file.display());
        let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -- ")).collect();
        assert_eq!(
            edges.len(),
            topology.link_count(),
            "{}: {dot}",
            file.display()
        );
        // And they are the topology's links.
        let mut pairs: Vec<(NodeId, NodeId)> = edges
            .iter()
            .map(|line| {
                let ids: Vec<NodeId> = line
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap())
                    .collect();
                assert_eq!(ids.len(), 2, "{}: {line}", file.display());
                (ids[0].min(ids[1]), ids[0].max(ids[1]))
            })
            .collect();
        pairs.sort_unstable();
        assert_eq!(pairs, topology.links(), "{}", file.display());
    }
}

#[test]
fn graph_ascii_mentions_every_node() {
    for file in shipped(false) {
        let topology = load(&file);
        let text = labctl_ok(&[OsStr::new("graph"), file.as_os_str()]);
        let numbers: BTreeSet<NodeId> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        for id in topology.ids() {
            assert!(
                numbers.contains(&id),
                "{}: node {id} missing:\n{text}",
                file.display()
            );
        }
    }
}

// --- 8. command line ------------------------------------------------------------------------

#[test]
fn help_mentions_delivery() {
    let top = labctl_ok(&["--help"]);
    assert!(
        top.contains("sim") && top.contains("validate") && top.contains("graph"),
        "{top}"
    );
    let sim = labctl_ok(&["sim", "--help"]);
    assert!(sim.contains("--delivery"), "{sim}");
    assert!(sim.contains("--seed") && sim.contains("--trace"), "{sim}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let run = labctl(&["frobnicate"]);
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("frobnicate"), "{}", run.stderr);
}

#[test]
fn bad_delivery_value_is_a_usage_error() {
    let file = topology_file("ring6.toml");
    let run = labctl(&[
        OsStr::new("sim"),
        file.as_os_str(),
        OsStr::new("--delivery"),
        OsStr::new("sometimes"),
    ]);
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("sometimes"), "{}", run.stderr);
}

// --- 9. broken pipe -------------------------------------------------------------------------

#[test]
fn closed_stdout_exits_quietly() {
    let file = topology_file("random50-shuffled.toml");
    let mut child = Command::new(LABCTL)
        .args([OsStr::new("sim"), file.as_os_str(), OsStr::new("--trace")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("labctl starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"event\""), "{first}");
    // The trace is far larger than a pipe's buffer, so labctl is still writing when we hang up.
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "", "no panic and no summary after the reader left");
}

#[test]
fn graph_svg_draws_every_node_and_link() {
    let file = common::topology_file("grid3x3.toml");
    let topology = common::load(&file);
    let run = common::labctl(&[
        std::ffi::OsStr::new("graph"),
        file.as_os_str(),
        std::ffi::OsStr::new("--format"),
        std::ffi::OsStr::new("svg"),
    ]);
    let svg = run.expect_success().stdout;
    assert!(
        svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    assert_eq!(
        svg.matches(r#"<circle class="node""#).count(),
        topology.node_count()
    );
    assert_eq!(
        svg.matches(r#"<line class="link""#).count(),
        topology.link_count()
    );
    assert_eq!(
        svg.matches("link tree").count(),
        0,
        "a file has no live tree"
    );
    for id in topology.ids() {
        assert!(
            svg.contains(&format!(">{id}</text>")),
            "node {id} is labelled"
        );
    }
}

#[test]
fn graph_of_an_unknown_name_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let run = common::try_labctl(&["graph", "no-such-lab"], Some(home.path())).unwrap();
    run.expect_error(&["no lab named", "no-such-lab"]);
}

// --- 7. the simulator's fault mode ------------------------------------------------------------

/// `labctl sim FILE --faults ARGS… --json`: exit 0, one JSON object.
fn sim_faults_json(file: &Path, args: &[&str]) -> Value {
    let mut all = vec![OsStr::new("sim"), file.as_os_str(), OsStr::new("--json")];
    all.extend(args.iter().map(OsStr::new));
    let run = labctl(&all).expect_success();
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[test]
fn sim_with_random_faults_settles_and_replays_from_its_seed() {
    let file = topology_file("ring6.toml");
    let args = ["--faults", "random", "--seed", "11", "--duration-s", "10"];
    let first = sim_faults_json(&file, &args);
    assert_eq!(first["verdict"], "settled");
    assert_eq!(first["converged"], true);
    assert_eq!(first["seed"], 11);
    assert!(first["schedule"].as_array().unwrap().len() >= 3, "{first}");
    // Healed at the end: the whole lab is one component again, rooted at 1, which writes.
    assert_eq!(first["components"].as_array().unwrap().len(), 1);
    assert_eq!(first["leader"], 1);
    assert_eq!(first["roles"]["1"], serde_json::json!(["writer"]));
    // The same seed replays the same run.
    let again = sim_faults_json(&file, &args);
    for key in [
        "schedule",
        "epochs_started",
        "delivered",
        "virtual_time_ms",
        "tree",
    ] {
        assert_eq!(first[key], again[key], "{key}");
    }
}

#[test]
fn sim_with_a_schedule_file_leaves_its_faults_in_force_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("split.toml");
    std::fs::write(
        &schedule,
        "heal_at_end = false\n\n[[fault]]\nat_s = 3\naction = \"kill\"\nnode = \"leader\"\n\n\
         [[fault]]\nat_s = 5.5\naction = \"partition\"\ngroups = [[2, 3], [1, 4, 5, 6]]\n",
    )
    .unwrap();
    let file = topology_file("ring6.toml");
    let report = sim_faults_json(&file, &["--faults", schedule.to_str().unwrap()]);
    assert_eq!(
        report["schedule"][0],
        serde_json::json!({"at_ms": 3000, "action": "kill", "node": 1, "refused": null}),
        "`leader` resolved to the writer of the moment"
    );
    // Node 1 is down, the rest split 2|3: neither side holds 4 of 6.
    let parts: Vec<Value> = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| serde_json::json!([c["nodes"], c["leader"], c["quorum"]]))
        .collect();
    assert_eq!(
        parts,
        vec![
            serde_json::json!([[2, 3], 2, false]),
            serde_json::json!([[4, 5, 6], 4, false])
        ]
    );
    assert_eq!(
        report["leader"],
        Value::Null,
        "no quorum, no leader at the top"
    );
    assert_eq!(report["roles"]["2"], serde_json::json!(["leader"]));
}

#[test]
fn sim_with_a_bad_schedule_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let file = topology_file("ring6.toml");
    let cases = [
        ("[[fault]]\naction = \"kill\"\nnode = 2\n", "needs its time"),
        ("[[fault]]\nat_s = 1\naction = \"explode\"\n", "fault 1"),
        ("speed = 3\n", "unknown key \"speed\""),
    ];
    for (text, mentions) in cases {
        let schedule = dir.path().join("bad.toml");
        std::fs::write(&schedule, text).unwrap();
        labctl(&[
            OsStr::new("sim"),
            file.as_os_str(),
            OsStr::new("--faults"),
            schedule.as_os_str(),
        ])
        .expect_error(&[mentions]);
    }
    // A fault that does not fit is refused in the run, not fatal to it.
    std::fs::write(
        dir.path().join("odd.toml"),
        "[[fault]]\nat_s = 2\naction = \"cut\"\na = 1\nb = 4\n",
    )
    .unwrap();
    let report = sim_faults_json(
        &file,
        &["--faults", dir.path().join("odd.toml").to_str().unwrap()],
    );
    assert!(
        report["schedule"][0]["refused"]
            .as_str()
            .unwrap()
            .contains("share no link"),
        "{report}"
    );
}

#[test]
fn sim_sweeps_seeds_and_each_seed_replays_alone() {
    let file = topology_file("ring6.toml");
    let sweep = sim_faults_json(
        &file,
        &[
            "--faults",
            "random",
            "--seeds",
            "10..=13",
            "--duration-s",
            "8",
        ],
    );
    assert_eq!(sweep["verdict"], "all settled", "{sweep}");
    assert_eq!(sweep["seeds"], serde_json::json!({"start": 10, "end": 14}));
    let summary = &sweep["summary"];
    assert_eq!(summary["seeds"], 4);
    assert_eq!(summary["failed"], serde_json::json!([]));
    assert!(summary["seeds_per_second"].as_f64().unwrap() > 0.0);
    // The sweep's seeds are the single runs of `--seed N`: their counts add up.
    let (mut epochs, mut delivered) = (0, 0);
    for seed in 10..14 {
        let seed = seed.to_string();
        let one = sim_faults_json(
            &file,
            &["--faults", "random", "--seed", &seed, "--duration-s", "8"],
        );
        assert_eq!(one["verdict"], "settled");
        epochs += one["epochs_started"].as_u64().unwrap();
        delivered += one["delivered"].as_u64().unwrap();
    }
    assert_eq!(summary["epochs_started"], epochs);
    assert_eq!(summary["delivered"], delivered);

    // The text form ends with the summary line.
    let text = labctl(&[
        OsStr::new("sim"),
        file.as_os_str(),
        OsStr::new("--faults"),
        OsStr::new("random"),
        OsStr::new("--seeds"),
        OsStr::new("0..3"),
        OsStr::new("--jobs"),
        OsStr::new("1"),
    ])
    .expect_success();
    let last = text
        .stdout
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.starts_with("3 seeds in ") && last.contains("seeds/s on 1 threads): 0 failed"),
        "{}",
        text.stdout
    );
}

#[test]
fn sim_seeds_that_make_no_sweep_are_refused() {
    let file = topology_file("ring6.toml");
    let sim = |args: &[&str]| {
        let mut all = vec![OsStr::new("sim"), file.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        labctl(&all)
    };
    // Usage errors (clap's): exit code 2, a message that names the problem.
    for (args, mentions) in [
        (
            &["--faults", "random", "--seeds", "5..5"][..],
            "holds no seed",
        ),
        (&["--faults", "random", "--seeds", "five"][..], "A..B"),
        (&["--seeds", "0..4"][..], "--faults"),
        (
            &["--faults", "random", "--seeds", "0..4", "--seed", "3"][..],
            "--seed",
        ),
    ] {
        let run = sim(args).expect_code(2);
        assert!(run.stderr.contains(mentions), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "");
    }
    // --seeds sweeps random schedules only.
    sim(&["--faults", "my.toml", "--seeds", "0..4"]).expect_error(&["--faults random"]);
}

// --- 8. the simulator's memory estimate -------------------------------------------------------

#[test]
fn sim_refuses_a_run_that_would_not_fit_before_building_anything() {
    let dir = tempfile::tempdir().unwrap();
    let million = dir.path().join("million.toml");
    std::fs::write(
        &million,
        "name = \"million\"\n[generate]\nshape = \"random\"\nn = 1000000\ndegree = 20\n",
    )
    .unwrap();
    let line = labctl(&[
        OsStr::new("sim"),
        million.as_os_str(),
        OsStr::new("--max-memory"),
        OsStr::new("256MiB"),
    ])
    .expect_error(&[
        "1000000 nodes, 10000000 links",
        "GiB of memory",
        "256 MiB",
        "--force",
    ]);
    // The figure is the estimate's, in GiB.
    let need: f64 = line
        .split("needs about ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line}"));
    assert!(need > 1.0, "{line}");
    // Within the limit, or forced, the same run goes ahead.
    let ring = topology_file("ring6.toml");
    let sim = |extra: &[&str]| {
        let mut args = vec![OsStr::new("sim"), ring.as_os_str(), OsStr::new("--json")];
        args.extend(extra.iter().map(OsStr::new));
        labctl(&args)
    };
    sim(&["--max-memory", "1KiB"]).expect_error(&["needs about", "1 KiB"]);
    let forced = sim(&["--max-memory", "1KiB", "--force"]).expect_success();
    assert!(forced.stdout.contains("\"leader\":1"), "{}", forced.stdout);
    sim(&["--max-memory", "lots"]).expect_code(2);
}

#[test]
fn sim_accepts_every_shipped_topology_within_a_gibibyte() {
    // The 100,000-node one is too slow for a debug build; the estimate's own test covers it.
    for file in shipped(false) {
        let mut args = vec![OsStr::new("sim"), file.as_os_str(), OsStr::new("--json")];
        args.extend(["--max-memory", "1GiB"].map(OsStr::new));
        labctl(&args).expect_success();
    }
}

// --- 9. the growth table ----------------------------------------------------------------------

#[test]
fn sim_scale_prints_each_size_against_its_bounds_and_draws_it() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("growth.svg");
    let run = labctl(&[
        OsStr::new("sim"),
        OsStr::new("--scale"),
        OsStr::new("--sizes"),
        OsStr::new("1k,200"),
        OsStr::new("--json"),
        OsStr::new("--svg"),
        svg.as_os_str(),
    ])
    .expect_success();
    let table: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let rows = table["rows"].as_array().unwrap();
    let sizes: Vec<u64> = rows.iter().map(|r| r["n"].as_u64().unwrap()).collect();
    assert_eq!(sizes, vec![200, 1000], "sorted by size");
    for row in rows {
        let (n, m) = (row["n"].as_u64().unwrap(), row["m"].as_u64().unwrap());
        assert_eq!(m, 2 * n, "average degree 4");
        let log = common::ceil_log2(n);
        assert_eq!(row["iteration_bound"], log + 1);
        assert_eq!(row["message_bound"], 2 * m * (log + 2));
        assert!(row["iterations"].as_u64().unwrap() <= log + 1, "{row}");
        assert!(
            row["messages"].as_u64().unwrap() <= 2 * m * (log + 2),
            "{row}"
        );
        assert_eq!(row["tree_messages"], 2 * m, "SHOUT+ costs exactly 2m");
        assert_eq!(row["checks_passed"], true);
        // The same graph and seed through `labctl sim FILE`: the same election.
        let file = dir.path().join(format!("scale-{n}.toml"));
        std::fs::write(
            &file,
            format!(
                "# the growth table's graph\nname = \"scale-{n}\"\n[generate]\nshape = \"random\"\n\
                 n = {n}\ndegree = 4\nids = \"shuffle\"\nseed = 1\n"
            ),
        )
        .unwrap();
        let one = sim_json(&file, &["--delivery", "async", "--seed", "1"]);
        assert_eq!(row["iterations"], one.report.iterations, "n = {n}");
        assert_eq!(row["messages"], one.report.messages.election, "n = {n}");
    }
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.trim_end().ends_with("</svg>"));
    assert_eq!(picture.matches("class=\"panel\"").count(), 4);
    assert_eq!(picture.matches("class=\"measured\"").count(), 2 * 4);

    // Sizes that make no graph are refused with the reason.
    let bad = labctl(&["sim", "--scale", "--sizes", "5"]).expect_code(2);
    assert!(bad.stderr.contains("at least 10"), "{}", bad.stderr);
    labctl(&["sim", "--scale", "--sizes", "20", "--degree", "30"])
        .expect_error(&["--sizes 20 with --degree 30"]);
}
