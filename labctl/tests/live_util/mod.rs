//! Helpers for the live-lab tests only: running `labctl` against a private `LABCTL_HOME`, the live
//! reports (`up`, `status`, `ls`) as types, and a guard that leaves no daemon behind, even when a
//! test fails. What `cli.rs` shares (running the binary, reading JSON back, checking a report
//! against its topology) is in `common`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use labctl_core::{Report, Role};
use labctl_topology::NodeId;
use serde::Deserialize;
use tempfile::TempDir;

use crate::common::{self, parse_one_line, Run, POLL};

/// How long a killed process may take to disappear.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// One node's entry in a live report's `addresses`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Address {
    pub control: Option<String>,
    pub admin: String,
    pub pid: u32,
    pub state: String,
    /// The chat's HTTP address, while the node is an input node.
    #[serde(default)]
    pub http: Option<String>,
    /// The last replication-log entry the node's database holds.
    #[serde(default)]
    pub applied: u64,
}

/// What `labctl up --json` and `labctl status --json` print: the SPEC §7 report plus what only a
/// live lab knows.
#[derive(Clone, Debug, Deserialize)]
pub struct LiveReport {
    #[serde(flatten)]
    pub report: Report,
    pub nameserver: String,
    pub addresses: BTreeMap<String, Address>,
    /// The faults in force: fault objects with `since_ms`.
    #[serde(default)]
    pub faults: Vec<serde_json::Value>,
    /// The bootstrap's and nameserver's states.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
    /// The lab's durability: `majority`, `replicas` or `writer`.
    pub durability: String,
    pub folder: PathBuf,
}

impl LiveReport {
    /// Every node's pid, by id.
    pub fn node_pids(&self) -> BTreeMap<NodeId, u32> {
        self.addresses
            .iter()
            .map(|(id, a)| (id.parse().expect("address keys are ids"), a.pid))
            .collect()
    }
}

/// One line of `labctl ls --json`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LsLine {
    pub name: String,
    pub runtime: String,
    pub nodes: usize,
    pub processes: usize,
    pub running: usize,
    pub state: String,
    pub folder: PathBuf,
}

/// A private `LABCTL_HOME` for one test, and the guard that cleans up after it.
///
/// Every command a test runs goes through [`Home::labctl`], which sets `LABCTL_HOME` to this
/// folder, so tests never share labs or touch a real user's. On drop (a passing test, or a
/// panicking one) it runs `labctl down --all`, then SIGKILLs whatever daemon of this home is
/// still alive: the pids it was told of, the pids in any `lab.json` left behind, and any process
/// whose command line is `labctl daemon …` naming a path under this home.
pub struct Home {
    dir: TempDir,
    pids: std::cell::RefCell<BTreeSet<u32>>,
    /// The `--runtime` that [`Home::up`] passes unless told another.
    runtime: &'static str,
    /// Environment variables every command gets.
    env: Vec<(String, String)>,
}

impl Home {
    /// A home whose labs run as local processes (`--runtime process`).
    pub fn new() -> Home {
        Home::with_runtime("process")
    }

    /// A home whose labs run with `--runtime runtime` unless `up` is told otherwise.
    pub fn with_runtime(runtime: &'static str) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("labctl-live-")
            .tempdir()
            .expect("a temporary LABCTL_HOME");
        Home {
            dir,
            pids: Default::default(),
            runtime,
            env: Vec::new(),
        }
    }

    /// This home, with `key=value` in every command's environment.
    pub fn with_env(mut self, key: &str, value: &str) -> Home {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The folder `LABCTL_HOME` points at.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where a lab named `name` keeps its state.
    pub fn lab_folder(&self, name: &str) -> PathBuf {
        self.path().join("labs").join(name)
    }

    /// Remembers pids to SIGKILL should `down --all` leave them running.
    pub fn remember(&self, pids: impl IntoIterator<Item = u32>) {
        self.pids.borrow_mut().extend(pids);
    }

    /// Runs `labctl args` with this `LABCTL_HOME` and waits for it (up to a backstop deadline).
    pub fn labctl<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.try_labctl(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Home::labctl`], but a command that cannot start or hangs is an `Err`, not a panic
    /// (the cleanup must not panic while a failing test unwinds).
    fn try_labctl<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Run, String> {
        common::try_labctl_with(args, Some(self.path()), &self.env)
    }

    /// `labctl up FILE --json --runtime <this home's>` plus `extra`: exit 0, silent stderr, one JSON line read back. The
    /// pids it reports (and the bootstrap's and nameserver's) are remembered for the cleanup.
    pub fn up(&self, file: &Path, extra: &[&str]) -> LiveReport {
        let mut args = vec![OsStr::new("up"), file.as_os_str(), OsStr::new("--json")];
        if !extra.contains(&"--runtime") {
            args.extend([OsStr::new("--runtime"), OsStr::new(self.runtime)]);
        }
        args.extend(extra.iter().map(OsStr::new));
        let run = self.labctl(&args);
        // Learn what started before judging the run, so a failing `up` is still cleaned up.
        let recorded: BTreeSet<u32> = self.recorded_pids().into_values().collect();
        self.remember(recorded.iter().copied());
        if run.code != Some(0) {
            let unrecorded: BTreeSet<u32> = self.daemons().difference(&recorded).copied().collect();
            self.remember(unrecorded.iter().copied());
            panic!(
                "{} exited {:?}\nstdout: {}\nstderr: {}\ndaemons running that no lab.json \
                 names (so `labctl down` cannot stop them): {unrecorded:?}",
                run.command, run.code, run.stdout, run.stderr
            );
        }
        let report = parse_one_line::<LiveReport>(&run.expect_success());
        self.remember(report.node_pids().into_values());
        report
    }

    /// `labctl status [NAME] --json`: exit 0, silent stderr, one JSON line read back.
    pub fn status(&self, name: &str) -> LiveReport {
        parse_one_line(&self.labctl(&["status", name, "--json"]).expect_success())
    }

    /// `labctl ls --json`, read back line by line.
    pub fn ls(&self) -> Vec<LsLine> {
        let run = self.labctl(&["ls", "--json"]).expect_success();
        run.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: {line:?} does not read back: {e}", run.command))
            })
            .collect()
    }

    /// The pids of every `lab.json` under this home, by label (`bootstrap`, `nameserver`,
    /// `node 3`).
    pub fn recorded_pids(&self) -> BTreeMap<String, u32> {
        let mut pids = BTreeMap::new();
        let Ok(labs) = std::fs::read_dir(self.path().join("labs")) else {
            return pids;
        };
        for lab in labs.flatten() {
            let Ok(text) = std::fs::read_to_string(lab.path().join("lab.json")) else {
                continue;
            };
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let name = lab.file_name().to_string_lossy().into_owned();
            for service in ["bootstrap", "nameserver"] {
                if let Some(pid) = record[service]["pid"].as_u64() {
                    pids.insert(format!("{name} {service}"), pid as u32);
                }
            }
            if let Some(nodes) = record["nodes"].as_object() {
                for (id, node) in nodes {
                    if let Some(pid) = node["pid"].as_u64() {
                        pids.insert(format!("{name} node {id}"), pid as u32);
                    }
                }
            }
        }
        pids
    }

    /// Whether `pid` is a live (not zombie) `labctl daemon` started under this home.
    pub fn is_daemon(&self, pid: u32) -> bool {
        if !is_alive(pid) {
            return false;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let home = self.path().to_string_lossy();
        args.iter().any(|a| a == "daemon") && args.iter().any(|a| a.contains(home.as_ref()))
    }

    /// Every live `labctl daemon` of this home, found by scanning `/proc`.
    pub fn daemons(&self) -> BTreeSet<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return BTreeSet::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| self.is_daemon(pid))
            .collect()
    }

    /// Polls until none of `pids` is a live daemon of this home; returns those still alive at
    /// the deadline.
    pub fn wait_gone(&self, pids: &BTreeSet<u32>) -> BTreeSet<u32> {
        let deadline = Instant::now() + EXIT_DEADLINE;
        loop {
            let left: BTreeSet<u32> = pids
                .iter()
                .copied()
                .filter(|&p| self.is_daemon(p))
                .collect();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let down = self.try_labctl(&["down", "--all"]);
        let mut pids = self.pids.borrow().clone();
        pids.extend(self.recorded_pids().into_values());
        pids.extend(self.daemons());
        let left: BTreeSet<u32> = pids.into_iter().filter(|&p| self.is_daemon(p)).collect();
        if left.is_empty() {
            return;
        }
        let down = match down {
            Ok(run) => format!(
                "`{}` exited {:?} ({})",
                run.command,
                run.code,
                run.stderr.trim()
            ),
            Err(e) => e,
        };
        eprintln!(
            "cleanup of {}: {down}; SIGKILLing daemons {left:?}",
            self.path().display()
        );
        for &pid in &left {
            sigkill(pid);
        }
        let still = self.wait_gone(&left);
        if !still.is_empty() {
            eprintln!("cleanup: daemons {still:?} survived SIGKILL");
        }
    }
}

/// Sends SIGKILL to `pid`.
pub fn sigkill(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill(2) only sends a signal; no memory is shared with the callee.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Whether a process `pid` exists and is not a zombie (`/proc/<pid>/stat` state Z or X).
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name: "pid (comm) S …".
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// What the Docker engine holds labelled `labctl.lab=<lab>`, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Labelled {
    pub containers: BTreeSet<String>,
    pub networks: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
}

impl Labelled {
    /// Nothing at all.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// Asks the Docker engine what it holds labelled with `lab` (panics if no engine answers).
pub async fn labelled_in_engine(lab: &str) -> Labelled {
    use bollard::query_parameters::{
        ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    };
    let docker = bollard::Docker::connect_with_defaults()
        .expect("a Docker engine")
        .negotiate_version()
        .await
        .expect("the Docker engine answers");
    let filter =
        std::collections::HashMap::from([("label".to_string(), vec![format!("labctl.lab={lab}")])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filter)
                .build(),
        ))
        .await
        .expect("listing containers")
        .into_iter()
        .filter_map(|c| Some(c.names?.first()?.trim_start_matches('/').to_string()))
        .collect();
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filter).build(),
        ))
        .await
        .expect("listing networks")
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&filter).build(),
        ))
        .await
        .expect("listing volumes")
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    Labelled {
        containers,
        networks,
        volumes,
    }
}

/// [`labelled_in_engine`] from a test that has no async runtime of its own.
pub fn labelled_in_engine_now(lab: &str) -> Labelled {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(labelled_in_engine(lab))
}

// --- faults: settling into the expected components ----------------------------------------------

/// How long a lab may take to settle after a fault: detection (1 s), a hold, the election.
pub const SETTLE: Duration = Duration::from_secs(20);

/// `labctl fault ARGS --lab LAB`: exit 0; its output.
pub fn fault_on(home: &Home, lab: &str, args: &[&str]) -> String {
    let mut all = vec!["fault"];
    all.extend(args);
    all.extend(["--lab", lab]);
    home.labctl(&all).expect_success().stdout
}

/// `labctl status LAB --json` (exit 0 when converged, 1 while not), read back.
pub fn status_of(home: &Home, lab: &str) -> LiveReport {
    let run = home.labctl(&["status", lab, "--json"]);
    assert!(
        matches!(run.code, Some(0) | Some(1)),
        "{}: {:?} {}",
        run.command,
        run.code,
        run.stderr
    );
    parse_one_line(&run)
}

/// A component as (nodes, root, quorum).
pub type Part = (Vec<NodeId>, Option<NodeId>, bool);

pub fn parts(report: &LiveReport) -> Vec<Part> {
    report
        .report
        .components
        .iter()
        .map(|c| (c.nodes.clone(), c.leader, c.quorum))
        .collect()
}

/// Poll `status` until the lab has settled into exactly `expected` components (converged, every
/// live link in the election, no retry pending) and every input node serves the chat (its HTTP
/// service starts a moment after it takes the role); panics with the last report after
/// [`SETTLE`].
pub fn settle_lab(home: &Home, lab: &str, expected: &[Part]) -> LiveReport {
    let deadline = Instant::now() + SETTLE;
    loop {
        let report = status_of(home, lab);
        let serving = inputs(&report)
            .iter()
            .all(|id| report.addresses[&id.to_string()].http.is_some());
        let settled = report.report.components.iter().all(|c| c.settled);
        if report.report.converged && settled && parts(&report) == expected && serving {
            check_roles(&report);
            return report;
        }
        if Instant::now() > deadline {
            panic!(
                "not settled into {expected:?} within {SETTLE:?}: components {:?}, checks {:?}",
                parts(&report),
                report.report.failed_checks().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every live node holds the roles SPEC §3.4 gives its place in its component's tree: the root
/// `writer` only with a quorum, `leader` otherwise.
pub fn check_roles(report: &LiveReport) {
    let tree: BTreeMap<NodeId, Option<NodeId>> = common::parents(&report.report);
    let quorum: BTreeMap<NodeId, bool> = report
        .report
        .components
        .iter()
        .flat_map(|c| c.nodes.iter().map(move |&n| (n, c.quorum)))
        .collect();
    for (&id, &parent) in &tree {
        let children = tree.values().filter(|p| **p == Some(id)).count();
        let expected = match (parent, children) {
            (None, 0) if quorum[&id] => vec![Role::Writer, Role::Input],
            (None, 0) => vec![Role::Leader, Role::Input],
            (None, _) if quorum[&id] => vec![Role::Writer],
            (None, _) => vec![Role::Leader],
            (Some(_), 0) => vec![Role::Input],
            (Some(p), _) if tree[&p].is_none() => vec![Role::Persistence],
            _ => vec![Role::Forwarder],
        };
        assert_eq!(
            report.report.roles[&id.to_string()],
            expected,
            "roles of {id}"
        );
    }
}

/// The input nodes of a converged report: each can reach its component's root.
pub fn inputs(report: &LiveReport) -> BTreeSet<NodeId> {
    report
        .report
        .roles
        .iter()
        .filter(|(_, roles)| roles.contains(&Role::Input))
        .map(|(id, _)| id.parse().unwrap())
        .collect()
}
