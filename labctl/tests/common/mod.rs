//! Helpers shared by the `labctl` integration tests (`cli.rs` and `live.rs`): running the real
//! binary and reading its JSON back into types, finding the shipped topologies, and checking a
//! report (SPEC §7) against the topology it ran on.
//!
//! Every expectation is computed here from the topology file itself (the smallest id, the
//! neighbours, the roles of SPEC §3.4, the message counts and bounds of SPEC §3.2–3.3), never
//! copied from the program's own output.

// Each test binary uses only part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use labctl_core::{Report, Role};
use labctl_topology::{NodeId, Topology};
use serde::de::DeserializeOwned;
use serde::Deserialize;

// --- running the binary ------------------------------------------------------------------------

/// The binary under test, built by cargo for the integration tests.
pub const LABCTL: &str = env!("CARGO_BIN_EXE_labctl");

/// The longest any one `labctl` command may take before the test gives up on it (`up` waits up
/// to its own 30 s default for convergence; this is only a backstop against a hang).
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(90);

/// How often to look again while polling a condition.
pub const POLL: Duration = Duration::from_millis(10);

/// A finished run of the binary, with its output decoded.
#[derive(Debug)]
pub struct Run {
    /// The command line, for assertion messages.
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Insists on exit code `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "{} exited {:?}\nstdout: {}\nstderr: {}",
            self.command,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Insists on exit code 0 and a silent stderr.
    pub fn expect_success(self) -> Run {
        let run = self.expect_code(0);
        assert_eq!(run.stderr, "", "{}: stderr should be silent", run.command);
        run
    }

    /// Insists on exit code 2, nothing on stdout, and one line `labctl: …` on stderr mentioning
    /// each of `mentions`; returns that line.
    pub fn expect_error(self, mentions: &[&str]) -> String {
        let run = self.expect_code(2);
        assert_eq!(run.stdout, "", "{}: stdout must stay empty", run.command);
        assert!(
            run.stderr.starts_with("labctl: ")
                && run.stderr.ends_with('\n')
                && run.stderr.lines().count() == 1,
            "{}: stderr should be one line `labctl: …`: {:?}",
            run.command,
            run.stderr
        );
        for mention in mentions {
            assert!(
                run.stderr.contains(mention),
                "{}: stderr should mention {mention:?}: {:?}",
                run.command,
                run.stderr
            );
        }
        run.stderr
    }
}

/// The command line, for assertion messages.
pub fn command_line<S: AsRef<OsStr>>(args: &[S]) -> String {
    let args: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    format!("labctl {}", args.join(" "))
}

/// Runs `labctl args` and waits for it (up to [`COMMAND_DEADLINE`]), with `LABCTL_HOME` set to
/// `home` when given. A command that cannot start, hangs, or writes anything but UTF-8 is an
/// `Err`, not a panic (a cleanup must not panic while a failing test unwinds).
pub fn try_labctl<S: AsRef<OsStr>>(args: &[S], home: Option<&Path>) -> Result<Run, String> {
    try_labctl_with(args, home, &[])
}

/// [`try_labctl`] with further environment variables.
pub fn try_labctl_with<S: AsRef<OsStr>>(
    args: &[S],
    home: Option<&Path>,
    env: &[(String, String)],
) -> Result<Run, String> {
    let command = command_line(args);
    let mut child = Command::new(LABCTL);
    child
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(home) = home {
        child.env("LABCTL_HOME", home);
    }
    if let Some(image) = LAB_IMAGE.get() {
        child.env("LABCTL_IMAGE", image);
    }
    let mut child = child
        .spawn()
        .map_err(|e| format!("{command}: cannot start: {e}"))?;
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = wait_with_deadline(&mut child).map_err(|e| format!("{command}: {e}"))?;
    let text = |stream: &str, h: JoinHandle<Vec<u8>>| {
        String::from_utf8(h.join().unwrap_or_default())
            .map_err(|e| format!("{command}: {stream} is not UTF-8: {e}"))
    };
    Ok(Run {
        code: status.code(),
        stdout: text("stdout", stdout)?,
        stderr: text("stderr", stderr)?,
        command,
    })
}

/// The lab image [`lab_image`] built, handed to every later `labctl` as `LABCTL_IMAGE`.
static LAB_IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// An image build strips and hashes this labctl and builds in seconds; a backstop, with room for
/// another labctl holding the build lock.
const IMAGE_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// Builds (or reuses) the Docker runtime's image once per test process with `labctl image
/// build`, and from then on hands its tag to every `labctl` this module runs as `LABCTL_IMAGE`,
/// so no `up` builds (or waits for) an image inside the 90-second command deadline. Returns the
/// tag.
pub fn lab_image() -> &'static str {
    LAB_IMAGE.get_or_init(|| {
        let mut child = Command::new(LABCTL)
            .args(["image", "build"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running labctl image build");
        let deadline = Instant::now() + IMAGE_DEADLINE;
        while child.try_wait().expect("waiting for labctl").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("labctl image build took more than {IMAGE_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let output = child.wait_with_output().expect("labctl's output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "labctl image build failed: {}\n{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
        let tag = stdout.trim().to_string();
        assert!(
            tag.starts_with("labctl:"),
            "labctl image build printed {tag:?}"
        );
        tag
    })
}

/// Runs `labctl args` in the test's own environment and waits for it; panics if it cannot
/// start, hangs or writes anything but UTF-8.
pub fn labctl<S: AsRef<OsStr>>(args: &[S]) -> Run {
    try_labctl(args, None).unwrap_or_else(|e| panic!("{e}"))
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn wait_with_deadline(child: &mut Child) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + COMMAND_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("did not finish within {COMMAND_DEADLINE:?}"));
        }
        std::thread::sleep(POLL);
    }
}

/// Reads `run`'s stdout as exactly one line of JSON.
pub fn parse_one_line<T: DeserializeOwned>(run: &Run) -> T {
    assert_eq!(
        run.stdout.lines().count(),
        1,
        "{}: --json prints one object on one line: {:?}",
        run.command,
        run.stdout
    );
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: the output does not read back: {e}\n{}",
            run.command, run.stdout
        )
    })
}

/// What `labctl sim --json` prints: the SPEC §7 report plus what only a simulation knows.
#[derive(Debug, Deserialize)]
pub struct SimReport {
    #[serde(flatten)]
    pub report: Report,
    pub seed: u64,
    pub delivery: String,
    pub virtual_time: u64,
    pub delivered: u64,
}

// --- the shipped topologies --------------------------------------------------------------------

/// The shipped `topologies/` directory.
pub fn topologies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies")
}

/// A shipped topology file.
pub fn topology_file(name: &str) -> PathBuf {
    topologies_dir().join(name)
}

/// A topology file, parsed independently of the binary.
pub fn load(file: &Path) -> Topology {
    Topology::from_path(file).unwrap_or_else(|e| panic!("{} should parse: {e}", file.display()))
}

// --- expectations, computed from the topology --------------------------------------------------

/// The report's tree with numeric keys.
pub fn parents(report: &Report) -> BTreeMap<NodeId, Option<NodeId>> {
    report
        .tree
        .iter()
        .map(|(id, parent)| (id.parse().expect("tree keys are ids"), *parent))
        .collect()
}

/// The roles SPEC §3.4 gives each node of a tree (parent pointers, the root's null).
pub fn expected_roles(tree: &BTreeMap<NodeId, Option<NodeId>>) -> BTreeMap<NodeId, BTreeSet<Role>> {
    let root = tree
        .iter()
        .find(|(_, parent)| parent.is_none())
        .map(|(id, _)| *id);
    let with_children: BTreeSet<NodeId> = tree.values().flatten().copied().collect();
    tree.iter()
        .map(|(&id, &parent)| {
            let has_children = with_children.contains(&id);
            let roles = match (parent, has_children) {
                (None, true) => vec![Role::Writer],
                (None, false) => vec![Role::Writer, Role::Input],
                (Some(_), false) => vec![Role::Input],
                (Some(p), true) if Some(p) == root => vec![Role::Persistence],
                (Some(_), true) => vec![Role::Forwarder],
            };
            (id, roles.into_iter().collect())
        })
        .collect()
}

/// The report's roles as sets, insisting that no node repeats a role.
pub fn role_sets(report: &Report, context: &str) -> BTreeMap<NodeId, BTreeSet<Role>> {
    report
        .roles
        .iter()
        .map(|(id, roles)| {
            let set: BTreeSet<Role> = roles.iter().copied().collect();
            assert_eq!(
                set.len(),
                roles.len(),
                "{context}: node {id} repeats a role"
            );
            (id.parse().expect("role keys are ids"), set)
        })
        .collect()
}

/// Each node's distance from the root, following parent pointers; panics on a cycle or a pointer
/// to a node outside the tree.
pub fn depths(tree: &BTreeMap<NodeId, Option<NodeId>>, context: &str) -> BTreeMap<NodeId, u32> {
    tree.keys()
        .map(|&start| {
            let (mut at, mut hops) = (start, 0u32);
            while let Some(parent) = tree[&at] {
                assert!(
                    tree.contains_key(&parent),
                    "{context}: node {at}'s parent {parent} is not in the tree"
                );
                at = parent;
                hops += 1;
                assert!(
                    hops as usize <= tree.len(),
                    "{context}: following parents from {start} never reaches the root"
                );
            }
            (start, hops)
        })
        .collect()
}

/// ⌈log₂ n⌉, for n ≥ 1.
pub fn ceil_log2(n: u64) -> u64 {
    let mut k = 0;
    while (1u64 << k) < n {
        k += 1;
    }
    k
}

/// The named invariants every report checks (SPEC §7).
pub const CHECK_NAMES: [&str; 8] = [
    "one_epoch",
    "one_leader",
    "spanning_tree",
    "roles",
    "setup_cost",
    "tree_cost",
    "election_bound",
    "iteration_bound",
];

/// Checks the election, tree, roles and costs of any report (live or simulated) of a converged
/// run on `topology`, against figures computed here: the smallest id leads, the tree spans the
/// topology along its links, the roles follow SPEC §3.4, the costs and bounds follow SPEC
/// §3.2–3.3, and every named invariant was checked and held. What depends on the runtime (its
/// name, the lab's name, the exact epoch, timing) is the caller's to check.
pub fn check_election_and_tree(report: &Report, topology: &Topology, context: &str) {
    let ids = topology.ids();
    let smallest = topology.min_id();
    let adjacency = topology.adjacency();
    let n = ids.len() as u64;
    let two_m = 2 * topology.link_count() as u64;

    assert_eq!(
        (report.nodes, report.links),
        (topology.node_count(), topology.link_count()),
        "{context}: nodes, links"
    );
    assert!(
        report.epoch >= Some(1),
        "{context}: epoch {:?}",
        report.epoch
    );
    assert!(report.converged, "{context}: not converged: {report:#?}");
    assert_eq!(
        report.leader,
        Some(smallest),
        "{context}: the leader is the smallest id"
    );

    // The tree: every node, one root (the leader), parents are neighbours, no cycles.
    let tree = parents(report);
    assert_eq!(
        tree.keys().copied().collect::<Vec<_>>(),
        ids,
        "{context}: the tree has exactly the topology's nodes"
    );
    let roots: Vec<NodeId> = tree
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        roots,
        [smallest],
        "{context}: exactly the leader has no parent"
    );
    for (id, parent) in &tree {
        if let Some(parent) = parent {
            assert!(
                adjacency[id].contains(parent),
                "{context}: node {id}'s parent {parent} is not a neighbour in the file"
            );
        }
    }
    let depth = depths(&tree, context).into_values().max().unwrap_or(0);
    assert_eq!(
        report.depth, depth,
        "{context}: depth is the deepest node's"
    );

    // Roles (SPEC §3.4), computed here from the tree alone.
    assert_eq!(
        role_sets(report, context),
        expected_roles(&tree),
        "{context}: roles follow SPEC §3.4"
    );

    // Costs (SPEC §3.2–3.3) and bounds.
    let k = ceil_log2(n);
    assert_eq!(report.messages.tree, two_m, "{context}: SHOUT+ sends 2m");
    assert_eq!(report.bounds.tree, two_m, "{context}: tree bound");
    assert_eq!(
        report.bounds.election,
        two_m * (k + 2),
        "{context}: election bound 2m(⌈log₂ n⌉+2)"
    );
    assert_eq!(
        u64::from(report.bounds.iterations),
        k + 1,
        "{context}: iteration bound ⌈log₂ n⌉+1"
    );
    assert!(
        report.messages.election <= report.bounds.election,
        "{context}: {} election messages, bound {}",
        report.messages.election,
        report.bounds.election
    );
    assert!(
        report.iterations <= report.bounds.iterations,
        "{context}: {} iterations, bound {}",
        report.iterations,
        report.bounds.iterations
    );
    let phases = &report.election_phases;
    assert_eq!(
        phases.len(),
        report.iterations as usize + 1,
        "{context}: setup plus one phase per iteration: {phases:?}"
    );
    assert_eq!(phases[0], two_m, "{context}: setup sends 2m: {phases:?}");
    assert_eq!(
        phases.iter().sum::<u64>(),
        report.messages.election,
        "{context}: the phases add up to the election's messages: {phases:?}"
    );
    assert!(
        phases[1..].windows(2).all(|w| w[0] >= w[1]) && phases[1..].iter().all(|p| p % 2 == 0),
        "{context}: each iteration costs 2 × live edges, which only shrink: {phases:?}"
    );

    // Every named invariant was checked and held.
    let names: BTreeSet<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    for name in CHECK_NAMES {
        assert!(
            names.contains(name),
            "{context}: check {name} missing: {names:?}"
        );
    }
    let failed: Vec<_> = report.failed_checks().collect();
    assert!(failed.is_empty(), "{context}: failed checks {failed:?}");
}

// --- the headless browser ----------------------------------------------------------------------

/// `chromium` on `PATH`, or a failure saying how to get it: this test is never skipped.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "no `chromium` on PATH: this test drives a real headless browser, Debian's \
                 chromium. Install it with `apt-get install chromium` (as root; `.ci/run` does \
                 this on CI). The test is never skipped."
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `target/test-artifacts/` of the workspace, created if need be.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Debian's chromium, headless, on the profile folder `profile`, in a `width`×`height` window,
/// with no first-run or background traffic; `extra` flags after those (e.g. to turn the network
/// off).
pub fn headless_chromium(
    profile: &Path,
    (width, height): (u32, u32),
    extra: &[&str],
) -> headless_chrome::Browser {
    let mut args = vec![
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-proxy-server",
    ];
    args.extend(extra);
    let options = headless_chrome::LaunchOptions::default_builder()
        .path(Some(chromium()))
        .user_data_dir(Some(profile.to_path_buf()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((width, height)))
        .args(args.iter().map(OsStr::new).collect())
        .build()
        .unwrap();
    headless_chrome::Browser::new(options).expect("headless chromium starts")
}

/// A base port `p` with `p..=p + count` free on every interface (the export publishes the
/// nameserver at `p` and node k at `p + k`, in host mode on every interface).
pub fn free_ports(count: u16) -> u16 {
    (0..40u16)
        .map(|k| 18000 + k * 97)
        .find(|&base| {
            (base..=base + count).all(|port| std::net::TcpListener::bind(("0.0.0.0", port)).is_ok())
        })
        .expect("no run of free ports from 18000 up")
}

/// A random session key: 32 bytes as 64 hex digits.
pub fn random_secret() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
