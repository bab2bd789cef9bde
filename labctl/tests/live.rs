//! End-to-end tests of live labs (SPEC §7): `labctl up`, `status`, `down` and `ls` with the
//! process runtime, running the real binary and its real daemons on loopback ports.
//!
//! Every test owns a private `LABCTL_HOME` (a temporary folder) and a guard that, even when the
//! test fails, runs `labctl down --all` there and SIGKILLs any daemon of that home still alive, so
//! tests never share state and leave no process behind. The `--json` reports are read back into
//! `labctl_core::Report` plus the live fields, and every expectation (the smallest id, the
//! neighbours, the roles of SPEC §3.4, the message counts of SPEC §3.2–3.3) is computed here from
//! the topology file, never copied from the program's own output.

mod common;
// Shared with the other live tests; the Docker helpers are not used here.
#[allow(dead_code)]
mod live_util;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;

use common::{check_election_and_tree, load, parse_one_line, topology_file, SimReport};
use labctl_core::{Report, Role};
use labctl_topology::Topology;
use live_util::{sigkill, Home, LiveReport};

// --- expectations, computed from the topology --------------------------------------------------

/// The port of a `127.0.0.1:PORT` address; panics on any other shape.
fn loopback_port(address: &str, context: &str) -> u16 {
    address
        .strip_prefix("127.0.0.1:")
        .and_then(|port| port.parse().ok())
        .filter(|&port| port != 0)
        .unwrap_or_else(|| panic!("{context}: {address:?} is not 127.0.0.1:PORT"))
}

/// Every port a live report names: the nameserver's and each node's control and admin ports.
fn ports(live: &LiveReport) -> Vec<u16> {
    let mut ports = vec![loopback_port(
        live.nameserver.trim_start_matches("http://"),
        "nameserver",
    )];
    for (id, address) in &live.addresses {
        ports.push(loopback_port(&address.admin, &format!("node {id} admin")));
        if let Some(control) = &address.control {
            ports.push(loopback_port(control, &format!("node {id} control")));
        }
    }
    ports
}

/// Checks the election, tree, roles and costs of any report (live or simulated) of a lab that
/// has held exactly one election, on `topology`, against figures computed from the file.
fn check_one_election(report: &Report, topology: &Topology, context: &str) {
    check_election_and_tree(report, topology, context);
    assert_eq!(report.epoch, Some(1), "{context}: one election, epoch 1");
}

/// Checks a live report (from `up` or `status`) of lab `name` on `topology`.
fn check_live_report(home: &Home, live: &LiveReport, topology: &Topology, name: &str) {
    let context = format!("lab {name} ({})", topology.name);
    let report = &live.report;
    assert_eq!(report.lab, name, "{context}: lab name");
    assert_eq!(report.runtime, "process", "{context}: runtime");
    check_one_election(report, topology, &context);

    // Live fields: the nameserver, every node's addresses and state, the folder.
    assert!(
        live.nameserver.starts_with("http://127.0.0.1:"),
        "{context}: nameserver URL {:?}",
        live.nameserver
    );
    let ids: Vec<String> = topology.ids().iter().map(|id| id.to_string()).collect();
    assert_eq!(
        live.addresses.keys().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        "{context}: one address entry per node"
    );
    for (id, address) in &live.addresses {
        assert_eq!(
            address.state, "running",
            "{context}: node {id}: {address:?}"
        );
        assert!(address.pid > 0, "{context}: node {id} has a pid");
        assert!(
            home.is_daemon(address.pid),
            "{context}: node {id}'s pid {} is not a live `labctl daemon` of this lab",
            address.pid
        );
        assert!(
            address.control.is_some(),
            "{context}: node {id} has a control address"
        );
    }
    let ports = ports(live);
    let distinct: BTreeSet<u16> = ports.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ports.len(),
        "{context}: every socket has its own port: {ports:?}"
    );
    let pids: BTreeSet<u32> = live.addresses.values().map(|a| a.pid).collect();
    assert_eq!(pids.len(), ids.len(), "{context}: one process per node");
    assert_eq!(live.folder, home.lab_folder(name), "{context}: folder");
    assert!(
        live.folder.join("lab.json").is_file(),
        "{context}: {} has no lab.json",
        live.folder.display()
    );
}

/// `status` agrees with `up`: same lab, epoch, leader, tree, roles, messages, processes.
fn check_status_agrees(up: &LiveReport, status: &LiveReport, context: &str) {
    let (a, b) = (&up.report, &status.report);
    assert_eq!(
        (&a.lab, &a.runtime, a.nodes, a.links),
        (&b.lab, &b.runtime, b.nodes, b.links),
        "{context}: status names the same lab"
    );
    assert_eq!(a.epoch, b.epoch, "{context}: epoch");
    assert_eq!(a.leader, b.leader, "{context}: leader");
    assert_eq!(a.tree, b.tree, "{context}: tree");
    assert_eq!(a.depth, b.depth, "{context}: depth");
    assert_eq!(a.roles, b.roles, "{context}: roles");
    assert_eq!(a.messages, b.messages, "{context}: messages");
    assert_eq!(a.iterations, b.iterations, "{context}: iterations");
    assert_eq!(
        a.election_phases, b.election_phases,
        "{context}: election phases"
    );
    assert_eq!(a.bounds, b.bounds, "{context}: bounds");
    assert!(b.converged, "{context}: status says converged");
    assert_eq!(up.nameserver, status.nameserver, "{context}: nameserver");
    // The same nodes at the same addresses (how far each has applied the log moves on).
    let placed = |report: &LiveReport| {
        let mut addresses = report.addresses.clone();
        addresses.values_mut().for_each(|a| a.applied = 0);
        addresses
    };
    assert_eq!(placed(up), placed(status), "{context}: addresses");
    assert_eq!(up.folder, status.folder, "{context}: folder");
}

/// `labctl sim FILE --json` agrees with the live lab where the algorithms leave no choice.
fn check_matches_sim(home: &Home, file: &Path, topology: &Topology, live: &LiveReport) {
    let context = format!("{} live vs sim", file.display());
    let run = home
        .labctl(&[OsStr::new("sim"), file.as_os_str(), OsStr::new("--json")])
        .expect_code(0);
    let sim: SimReport = parse_one_line(&run);
    assert_eq!(sim.report.runtime, "sim", "{context}");
    check_one_election(&sim.report, topology, &format!("{context} (sim)"));

    let (live, sim) = (&live.report, &sim.report);
    let two_m = 2 * topology.link_count() as u64;
    assert_eq!(live.leader, sim.leader, "{context}: leader");
    assert_eq!(
        (live.election_phases[0], sim.election_phases[0]),
        (two_m, two_m),
        "{context}: Yo-Yo setup sends 2m in both"
    );
    assert_eq!(
        (live.messages.tree, sim.messages.tree),
        (two_m, two_m),
        "{context}: SHOUT+ sends 2m in both"
    );
    assert_eq!(live.bounds, sim.bounds, "{context}: same bounds");
    // Yo-Yo's messages depend only on the graph and the ids, never on timing: every node waits
    // for all its in-edges (YO-) and all its out-edges (-YO), and what it sends is a function of
    // what it received. So the live election costs exactly what the simulator predicts, phase by
    // phase.
    assert_eq!(
        live.election_phases, sim.election_phases,
        "{context}: per-phase election costs"
    );
    assert_eq!(
        live.messages.election, sim.messages.election,
        "{context}: election messages"
    );
    assert_eq!(live.iterations, sim.iterations, "{context}: iterations");
}

/// `labctl down NAME` stops every process of the lab (nodes, bootstrap, nameserver), removes its
/// folder, and `ls` no longer lists it.
fn check_down(home: &Home, live: &LiveReport, name: &str) {
    let context = format!("down {name}");
    let mut pids: BTreeSet<u32> = live.node_pids().into_values().collect();
    pids.extend(home.recorded_pids().into_values());
    assert_eq!(
        pids.len(),
        live.addresses.len() + 2,
        "{context}: the record names every node, the bootstrap and the nameserver"
    );
    let run = home.labctl(&["down", name]).expect_code(0);
    assert!(
        run.stdout.contains(name),
        "{context}: stdout should name the lab: {:?}",
        run.stdout
    );
    // `down` returns once they have stopped: no polling needed.
    let alive: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| home.is_daemon(p))
        .collect();
    assert!(alive.is_empty(), "{context}: still running: {alive:?}");
    assert!(
        !live.folder.exists(),
        "{context}: {} still exists",
        live.folder.display()
    );
    assert!(
        home.ls().iter().all(|line| line.name != name),
        "{context}: ls still lists it"
    );
    assert_eq!(
        home.daemons(),
        BTreeSet::new(),
        "{context}: daemons of this test still running"
    );
}

/// The whole life of one lab on a shipped topology: `up` converges and reports what the file
/// implies, `status` agrees, the simulator agrees, `down` leaves nothing.
fn live_lab(file_name: &str) -> LiveReport {
    let home = Home::new();
    let file = topology_file(file_name);
    let topology = load(&file);
    let up = home.up(&file, &[]);
    check_live_report(&home, &up, &topology, &topology.name);

    let status = home.status(&topology.name);
    check_live_report(&home, &status, &topology, &topology.name);
    check_status_agrees(&up, &status, &format!("{file_name}: status after up"));

    check_matches_sim(&home, &file, &topology, &up);
    check_down(&home, &up, &topology.name);
    up
}

// --- 1–4. up, status, sim and down on shipped topologies ---------------------------------------

#[test]
fn ring6_lab_converges_agrees_with_status_and_sim_and_goes_down() {
    live_lab("ring6.toml");
}

#[test]
fn star7_lab_converges_agrees_with_status_and_sim_and_goes_down() {
    live_lab("star7.toml");
}

#[test]
fn grid3x3_lab_converges_agrees_with_status_and_sim_and_goes_down() {
    live_lab("grid3x3.toml");
}

#[test]
fn ring12_shuffled_lab_elects_the_smallest_id_wherever_it_sits() {
    live_lab("ring12-shuffled.toml");
}

#[test]
fn random30_lab_converges_agrees_with_status_and_sim_and_goes_down() {
    live_lab("random30.toml");
}

#[test]
fn single_node_lab_is_writer_and_input_and_sends_nothing() {
    let up = live_lab("single.toml");
    let report = &up.report;
    let id = load(&topology_file("single.toml")).min_id();
    assert_eq!(report.leader, Some(id));
    assert_eq!(
        report.roles.get(&id.to_string()),
        Some(&vec![Role::Writer, Role::Input]),
        "a one-node lab's leader is writer and input, in that order"
    );
    assert_eq!(
        (report.messages.election, report.messages.tree),
        (0, 0),
        "no neighbours, no messages"
    );
    assert_eq!(report.iterations, 0);
    assert_eq!(report.depth, 0);
}

#[test]
fn repeated_up_and_down_always_starts_and_leaves_nothing() {
    // Starting daemons must not depend on luck: every `up` of a valid file converges, and every
    // `down` leaves no process behind.
    let home = Home::new();
    let file = topology_file("single.toml");
    let topology = load(&file);
    for round in 0..10 {
        let up = home.up(&file, &[]);
        check_live_report(&home, &up, &topology, "single");
        check_down(&home, &up, "single");
        assert!(
            home.daemons().is_empty(),
            "round {round}: daemons left after down"
        );
    }
}

// --- 5. two labs side by side ------------------------------------------------------------------

#[test]
fn two_labs_of_one_topology_run_side_by_side_on_their_own_ports() {
    let home = Home::new();
    let file = topology_file("ring6.toml");
    let topology = load(&file);
    let first = home.up(&file, &[]);
    let second = home.up(&file, &["--name", "ring6b"]);
    check_live_report(&home, &first, &topology, "ring6");
    check_live_report(&home, &second, &topology, "ring6b");

    let (a, b): (BTreeSet<u16>, BTreeSet<u16>) = (
        ports(&first).into_iter().collect(),
        ports(&second).into_iter().collect(),
    );
    assert!(
        a.is_disjoint(&b),
        "the two labs share ports: {:?}",
        a.intersection(&b).collect::<Vec<_>>()
    );
    let pids = |live: &LiveReport| -> BTreeSet<u32> { live.node_pids().into_values().collect() };
    assert!(
        pids(&first).is_disjoint(&pids(&second)),
        "the two labs share processes"
    );

    let ls = home.ls();
    let names: Vec<&str> = ls.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["ring6", "ring6b"], "ls lists both labs: {ls:?}");
    for line in &ls {
        assert_eq!(line.runtime, "process", "{line:?}");
        assert_eq!(line.state, "running", "{line:?}");
        assert_eq!(line.nodes, topology.node_count(), "{line:?}");
        assert_eq!(
            (line.processes, line.running),
            (topology.node_count() + 2, topology.node_count() + 2),
            "every node plus the bootstrap and the nameserver runs: {line:?}"
        );
        assert_eq!(line.folder, home.lab_folder(&line.name), "{line:?}");
    }
    assert_eq!(
        home.daemons().len(),
        2 * (topology.node_count() + 2),
        "both labs' daemons run"
    );

    // With two labs, a command must be told which one.
    home.labctl(&["status", "--json"])
        .expect_error(&["ring6", "ring6b"]);
    let status = home.status("ring6b");
    check_status_agrees(&second, &status, "status ring6b");

    let run = home.labctl(&["down", "--all"]).expect_code(0);
    assert!(
        run.stdout.contains("ring6b") && run.stdout.lines().count() == 2,
        "down --all names both labs: {:?}",
        run.stdout
    );
    assert!(!first.folder.exists() && !second.folder.exists());
    assert_eq!(home.ls(), Vec::new(), "ls lists nothing after down --all");
    assert_eq!(
        home.daemons(),
        BTreeSet::new(),
        "no daemon survives down --all"
    );
}

// --- 6. up on a running lab --------------------------------------------------------------------

#[test]
fn up_refuses_a_lab_that_is_already_running_and_leaves_it_alone() {
    let home = Home::new();
    let file = topology_file("ring6.toml");
    let topology = load(&file);
    let first = home.up(&file, &[]);
    let daemons = home.daemons();
    assert_eq!(daemons.len(), topology.node_count() + 2);

    let message = home
        .labctl(&[OsStr::new("up"), file.as_os_str(), OsStr::new("--json")])
        .expect_error(&["already running", "labctl down ring6"]);
    assert!(
        message.contains("--name"),
        "the message should suggest --name: {message:?}"
    );

    assert_eq!(
        home.daemons(),
        daemons,
        "the refused up started or stopped processes"
    );
    let status = home.status("ring6");
    check_live_report(&home, &status, &topology, "ring6");
    check_status_agrees(&first, &status, "status after a refused up");
    check_down(&home, &first, "ring6");
}

// --- 7. a lab whose processes died -------------------------------------------------------------

#[test]
fn a_lab_whose_processes_died_is_reported_stopped_and_still_removable() {
    let home = Home::new();
    let file = topology_file("ring6.toml");
    let topology = load(&file);
    let up = home.up(&file, &[]);

    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(up.folder.join("lab.json")).expect("lab.json is readable"),
    )
    .expect("lab.json is JSON");
    let mut pids: BTreeSet<u32> = up.node_pids().into_values().collect();
    for service in ["bootstrap", "nameserver"] {
        let pid = record[service]["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("lab.json has {service}.pid: {record}"));
        pids.insert(u32::try_from(pid).expect("a pid"));
    }
    assert_eq!(pids.len(), topology.node_count() + 2);
    for &pid in &pids {
        assert!(home.is_daemon(pid), "pid {pid} should be a running daemon");
        sigkill(pid);
    }
    let left = home.wait_gone(&pids);
    assert!(left.is_empty(), "SIGKILLed daemons still alive: {left:?}");

    let ls = home.ls();
    assert_eq!(ls.len(), 1, "{ls:?}");
    assert_eq!(ls[0].name, "ring6");
    assert_eq!(ls[0].state, "stopped", "{ls:?}");
    assert_eq!(
        (ls[0].processes, ls[0].running),
        (topology.node_count() + 2, 0),
        "{ls:?}"
    );

    // `status` still reports, and says the lab is down: exit 1 (ran, did not converge).
    let run = home.labctl(&["status", "ring6", "--json"]).expect_code(1);
    let status: LiveReport = parse_one_line(&run);
    assert!(!status.report.converged, "a dead lab is not converged");
    for (id, address) in &status.addresses {
        assert_eq!(address.state, "down", "node {id}: {address:?}");
    }

    // Starting it again is refused until it is removed.
    home.labctl(&[OsStr::new("up"), file.as_os_str()])
        .expect_error(&["ring6", "labctl down ring6"]);
    assert_eq!(
        home.daemons(),
        BTreeSet::new(),
        "the refused up started nothing"
    );

    home.labctl(&["down", "ring6"]).expect_code(0);
    assert!(!up.folder.exists(), "{} still exists", up.folder.display());
    assert_eq!(home.ls(), Vec::new());
}

// --- 8. commands on labs that do not exist -----------------------------------------------------

#[test]
fn status_and_down_without_a_lab_are_errors() {
    let home = Home::new();
    for args in [&["status"][..], &["status", "--json"], &["down"]] {
        home.labctl(args).expect_error(&["no lab", "labctl up"]);
    }
    home.labctl(&["down", "nosuchlab"])
        .expect_error(&["nosuchlab", "labctl ls"]);
    home.labctl(&["status", "nosuchlab", "--json"])
        .expect_error(&["nosuchlab", "labctl ls"]);
    // Nothing to list, and removing every lab of none is not an error.
    assert_eq!(home.ls(), Vec::new());
    let run = home.labctl(&["down", "--all"]).expect_code(0);
    assert_eq!(run.stderr, "");
    assert!(
        !home.path().join("labs").join("nosuchlab").exists(),
        "asking about a lab must not create it"
    );
}

// --- 9. bad input to up ------------------------------------------------------------------------

#[test]
fn up_on_bad_input_fails_before_creating_anything() {
    let home = Home::new();
    let files = tempfile::tempdir().expect("a temporary folder");
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).expect("writing a topology file");
        path
    };
    let disconnected = write(
        "disconnected.toml",
        "name = \"split\"\nnodes = [1, 2, 3, 4]\nlinks = [[1, 2], [3, 4]]\n",
    );
    let syntax = write("syntax.toml", "name = \"broken\"\nnodes = [1, 2,, 3]\n");
    let unknown = write(
        "unknown.toml",
        "name = \"odd\"\nnodes = [1, 2]\nlinks = [[1, 2]]\ncolour = \"red\"\n",
    );
    let missing = files.path().join("missing.toml");
    for file in [&disconnected, &syntax, &unknown, &missing] {
        let shown = file.display().to_string();
        home.labctl(&[OsStr::new("up"), file.as_os_str(), OsStr::new("--json")])
            .expect_error(&[&shown]);
    }
    // A valid file under an invalid lab name.
    let ring6 = topology_file("ring6.toml");
    home.labctl(&[
        OsStr::new("up"),
        ring6.as_os_str(),
        OsStr::new("--name"),
        OsStr::new("Not_Valid"),
    ])
    .expect_error(&["Not_Valid", "[a-z0-9][a-z0-9-]*"]);

    let labs = home.path().join("labs");
    let created: Vec<_> = std::fs::read_dir(&labs)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        created.is_empty(),
        "bad input created lab folders: {created:?}"
    );
    assert_eq!(home.ls(), Vec::new());
    assert_eq!(home.daemons(), BTreeSet::new(), "bad input started daemons");
}

/// `labctl graph NAME --format svg` draws a running lab: every node and link, the live spanning
/// tree's n − 1 edges in bold, and every node coloured by the role the lab reports.
#[test]
fn graph_of_a_running_lab_draws_its_live_tree_and_roles() {
    let home = Home::new();
    let file = topology_file("grid3x3.toml");
    let topology = load(&file);
    let live = home.up(&file, &[]);
    let svg = home
        .labctl(&["graph", "grid3x3", "--format", "svg"])
        .expect_success()
        .stdout;
    assert_eq!(
        svg.matches(r#"<line class="link"#).count(),
        topology.link_count()
    );
    assert_eq!(
        svg.matches("link tree").count(),
        topology.node_count() - 1,
        "the spanning tree's edges are drawn bold"
    );
    for (id, roles) in &live.report.roles {
        let class = format!(r#"class="node {}""#, roles[0]);
        assert!(svg.contains(&class), "node {id} drawn as {class}");
    }
    assert_eq!(
        svg.matches(r#"class="node writer""#).count(),
        1,
        "one writer"
    );
}

// --- durability: the flag, then the topology file's `[lab] durability`, then majority ----------

/// The `--durability` the daemon of node `id` runs with, from its command line.
fn node_durability(live: &LiveReport, id: &str) -> String {
    let pid = live.addresses[id].pid;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the node's command line");
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = args
        .iter()
        .position(|a| a == "--durability")
        .unwrap_or_else(|| panic!("node {id} runs without --durability: {args:?}"));
    args[at + 1].clone()
}

/// What `up` recorded for restarts (`lab.json`'s `durability`).
fn recorded_durability(home: &Home, name: &str) -> String {
    let record = std::fs::read_to_string(home.lab_folder(name).join("lab.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    record["durability"]
        .as_str()
        .expect("a durability")
        .to_string()
}

#[test]
fn durability_comes_from_the_flag_then_the_lab_table_then_defaults_to_majority() {
    let home = Home::new();
    let folder = tempfile::tempdir().unwrap();
    let with_table = folder.path().join("pair.toml");
    std::fs::write(
        &with_table,
        "name = \"pair\"\nnodes = [1, 2]\nlinks = [[1, 2]]\n[lab]\ndurability = \"replicas\"\n",
    )
    .unwrap();
    let cases: [(&Path, &[&str], &str, &str); 3] = [
        (&topology_file("single.toml"), &[], "single", "majority"),
        (&with_table, &["--name", "table"], "table", "replicas"),
        (
            &with_table,
            &["--name", "flag", "--durability", "writer"],
            "flag",
            "writer",
        ),
    ];
    for (file, args, name, want) in cases {
        let up = home.up(file, args);
        assert_eq!(recorded_durability(&home, name), want, "{name}");
        assert_eq!(up.durability, want, "{name}: up --json");
        assert_eq!(home.status(name).durability, want, "{name}: status --json");
        for id in up.addresses.keys() {
            assert_eq!(node_durability(&up, id), want, "{name}: node {id}");
        }
    }
    // A value the file may not hold is refused with its place, and nothing starts.
    std::fs::write(
        &with_table,
        "name = \"pair\"\nnodes = [1, 2]\nlinks = [[1, 2]]\n[lab]\ndurability = \"quorum\"\n",
    )
    .unwrap();
    let before = home.daemons();
    let error = home
        .labctl(&[
            OsStr::new("up"),
            with_table.as_os_str(),
            OsStr::new("--name"),
            OsStr::new("bad"),
        ])
        .expect_error(&["durability"]);
    assert!(error.contains("majority"), "{error}");
    assert_eq!(home.daemons(), before, "nothing started");
}

#[test]
fn a_lab_far_beyond_the_machine_is_refused_before_anything_starts() {
    let home = Home::new();
    let file = topology_file("bench-random100k.toml");
    let refused = home
        .labctl(&[
            OsStr::new("up"),
            file.as_os_str(),
            OsStr::new("--runtime"),
            OsStr::new("process"),
        ])
        .expect_error(&[
            "would not fit this machine",
            "a lab of 100000 nodes",
            "MiB available",
            "The largest lab that fits is about",
            "--force",
        ]);
    // The largest lab named is a lab this machine can start: more than the tests' 60 nodes.
    let largest: u64 = refused
        .split("fits is about ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{refused}"));
    assert!((60..100_000).contains(&largest), "{refused}");
    assert!(
        !home.lab_folder("bench-random100k").exists(),
        "nothing was created"
    );
    assert!(home.daemons().is_empty(), "nothing was started");
}
