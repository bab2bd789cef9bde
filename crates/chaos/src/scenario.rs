//! Scenario files (SPEC §8): which lab, which workload, which faults, what to check.
//!
//! [`Scenario::parse`] reads the TOML and checks everything that needs no other file;
//! [`Scenario::check_against`] checks the steps against the lab's topology (a node it lacks, two
//! nodes without a link, a partition that is not one). Every error names the file and the line,
//! and nothing has started yet when it is given.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use labctl_core::plane::Durability;
use labctl_core::NodeId;
use labctl_fault::{Fault, InForce, Target};
use labctl_topology::Topology;
use serde::Deserialize;
use toml::Spanned;

/// The actions a fixed step may take (every fault verb of SPEC §7).
pub const ACTIONS: [&str; 10] = [
    "kill",
    "pause",
    "resume",
    "restart",
    "cut",
    "heal",
    "partition",
    "delay",
    "loss",
    "heal-all",
];

/// The actions random faults may draw.
pub const RANDOM_ACTIONS: [&str; 6] = ["kill", "pause", "cut", "partition", "delay", "loss"];

/// The longest workload a scenario may ask for.
pub const MAX_DURATION_S: f64 = 3600.0;
/// The most clients a workload may have.
pub const MAX_CLIENTS: u32 = 64;
/// The highest rate a workload may ask for, in operations per second.
pub const MAX_RATE: u32 = 2000;

/// A scenario, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Its name (the lab it starts is named after it).
    pub name: String,
    /// Where the lab comes from.
    pub lab: LabSource,
    /// `runtime`, when the file sets it: auto, process or docker.
    pub runtime: Option<String>,
    /// `durability`, when the file sets it.
    pub durability: Option<Durability>,
    /// How long the workload runs, in milliseconds.
    pub duration_ms: u64,
    /// The clients.
    pub workload: Workload,
    /// The fixed steps, in time order.
    pub steps: Vec<Step>,
    /// The random faults, if any.
    pub random: Option<Random>,
    /// What to check beyond the anomalies.
    pub check: Check,
    /// The file's text, kept for the run folder.
    pub text: String,
    /// Where it came from (its path), for errors.
    pub origin: String,
}

/// Where a scenario's lab comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum LabSource {
    /// Start one from this topology file (resolved against the scenario's folder).
    Topology(PathBuf),
    /// Use this running lab.
    Running(String),
}

/// `[workload]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Concurrent clients, each its own user.
    #[serde(default = "default_clients")]
    pub clients: u32,
    /// Operations per second, all clients together.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// Percent of operations that are writes.
    #[serde(default = "default_writes")]
    pub writes: u32,
}

fn default_clients() -> u32 {
    4
}
fn default_rate() -> u32 {
    40
}
fn default_writes() -> u32 {
    50
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: default_clients(),
            rate: default_rate(),
            writes: default_writes(),
        }
    }
}

/// `[check]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// After the final heal, how long the lab has to converge, in milliseconds.
    pub converge_within_ms: u64,
    /// Each writer loss → the next acknowledged write, in milliseconds (checked when set).
    pub failover_within_ms: Option<u64>,
}

/// The default `converge_within_s`.
pub const DEFAULT_CONVERGE_S: f64 = 10.0;

impl Default for Check {
    fn default() -> Self {
        Check {
            converge_within_ms: (DEFAULT_CONVERGE_S * 1000.0) as u64,
            failover_within_ms: None,
        }
    }
}

/// A node a step names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepTarget {
    /// This node.
    Id(NodeId),
    /// The quorum component's root, when the step is applied.
    Leader,
    /// The node of the previous step.
    Last,
}

impl fmt::Display for StepTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepTarget::Id(id) => write!(f, "{id}"),
            StepTarget::Leader => f.write_str("leader"),
            StepTarget::Last => f.write_str("last"),
        }
    }
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// kill, pause, resume or restart a node.
    Node {
        /// The verb.
        verb: NodeVerb,
        /// The node.
        node: StepTarget,
    },
    /// cut, heal, delay or loss on a link.
    Link {
        /// The verb.
        verb: LinkVerb,
        /// One end.
        a: StepTarget,
        /// The other end.
        b: StepTarget,
    },
    /// Cut every link between the groups.
    Partition {
        /// The groups, every node once.
        groups: Vec<Vec<NodeId>>,
    },
    /// A partition of one node against the rest.
    Isolate {
        /// The node.
        node: StepTarget,
    },
    /// Undo every fault in force.
    HealAll,
}

/// A node verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeVerb {
    /// SIGKILL, a container killed.
    Kill,
    /// SIGSTOP, a container paused.
    Pause,
    /// SIGCONT, unpaused.
    Resume,
    /// Started again on its own folder.
    Restart,
}

/// A link verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkVerb {
    /// Cut it.
    Cut,
    /// Undo every fault on it.
    Heal,
    /// Delay its frames by this many milliseconds.
    Delay(u64),
    /// Lose this percent of its frames, as TCP does.
    Loss(u32),
}

/// A fixed step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// When, in milliseconds after the workload starts.
    pub at_ms: u64,
    /// What.
    pub action: Action,
    /// Its `[[fault]]` line in the file.
    pub line: usize,
}

/// `[random]`: faults drawn from a seed, one at a time, each undone after `hold_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct Random {
    /// The seed.
    pub seed: u64,
    /// The actions to draw from (of [`RANDOM_ACTIONS`]).
    pub actions: Vec<String>,
    /// The mean time between faults, in milliseconds.
    pub every_ms: u64,
    /// How long each fault holds before it is undone, in milliseconds.
    pub hold_ms: u64,
}

/// Why a scenario was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ScenarioError {
    /// The file.
    pub origin: String,
    /// The line (from 1), when one is to blame.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Step {
    /// The node this step names, once resolved (what a later `last` means): the node of a node
    /// step or an isolation, end `a` of a link step.
    fn names(&self) -> Option<StepTarget> {
        match &self.action {
            Action::Node { node, .. } | Action::Isolate { node } => Some(*node),
            Action::Link { a, .. } => Some(*a),
            Action::Partition { .. } | Action::HealAll => None,
        }
    }

    /// Whether the step names `leader` (then the runner finds the quorum root first).
    pub fn names_leader(&self) -> bool {
        match &self.action {
            Action::Link { a, b, .. } => *a == StepTarget::Leader || *b == StepTarget::Leader,
            _ => self.names() == Some(StepTarget::Leader),
        }
    }

    /// The fault this step applies, given the quorum root now (`leader`), the node of the
    /// previous step (`last`) and every node of the lab (for an isolation). Also returns the
    /// node a following `last` names.
    pub fn resolve(
        &self,
        leader: Option<NodeId>,
        last: Option<NodeId>,
        nodes: &[NodeId],
    ) -> Result<(Fault, Option<NodeId>), String> {
        let one = |t: StepTarget| -> Result<NodeId, String> {
            match t {
                StepTarget::Id(id) => Ok(id),
                StepTarget::Leader => leader.ok_or_else(|| {
                    "no component holds a quorum, so there is no leader to name".to_string()
                }),
                StepTarget::Last => {
                    last.ok_or_else(|| "the previous step named no node".to_string())
                }
            }
        };
        let fault = match &self.action {
            Action::Node { verb, node } => {
                let node = Target::Id(one(*node)?);
                match verb {
                    NodeVerb::Kill => Fault::Kill { node },
                    NodeVerb::Pause => Fault::Pause { node },
                    NodeVerb::Resume => Fault::Resume { node },
                    NodeVerb::Restart => Fault::Restart { node },
                }
            }
            Action::Link { verb, a, b } => {
                let (a, b) = (Target::Id(one(*a)?), Target::Id(one(*b)?));
                match *verb {
                    LinkVerb::Cut => Fault::Cut { a, b },
                    LinkVerb::Heal => Fault::Heal { a, b },
                    LinkVerb::Delay(ms) => Fault::Delay { a, b, ms },
                    LinkVerb::Loss(percent) => Fault::Loss { a, b, percent },
                }
            }
            Action::Partition { groups } => Fault::Partition {
                groups: groups.clone(),
            },
            Action::Isolate { node } => {
                let alone = one(*node)?;
                Fault::Partition {
                    groups: vec![
                        vec![alone],
                        nodes.iter().copied().filter(|&n| n != alone).collect(),
                    ],
                }
            }
            Action::HealAll => Fault::HealAll,
        };
        let named = self.names().map(one).transpose()?;
        Ok((fault, named.or(last)))
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    topology: Option<Spanned<String>>,
    lab: Option<Spanned<String>>,
    runtime: Option<Spanned<String>>,
    durability: Option<Spanned<String>>,
    duration_s: Spanned<f64>,
    #[serde(default)]
    workload: Option<Spanned<Workload>>,
    #[serde(default)]
    fault: Vec<Spanned<RawStep>>,
    random: Option<Spanned<RawRandom>>,
    check: Option<Spanned<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at_s: f64,
    action: String,
    node: Option<RawTarget>,
    a: Option<RawTarget>,
    b: Option<RawTarget>,
    groups: Option<Vec<Vec<NodeId>>>,
    isolate: Option<RawTarget>,
    ms: Option<u64>,
    percent: Option<u32>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawTarget {
    Id(i64),
    Name(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRandom {
    seed: u64,
    actions: Vec<String>,
    every_s: f64,
    hold_s: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    converge_within_s: Option<f64>,
    failover_within_s: Option<f64>,
}

/// The line (from 1) where byte `offset` of `text` lies.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Seconds as whole milliseconds, refusing what is not a time.
fn millis(seconds: f64) -> Option<u64> {
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

impl Scenario {
    /// Read and check the scenario file at `path` (its topology too, when it names one).
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            origin: origin.clone(),
            line: None,
            message: format!("cannot read the scenario file: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let scenario = Scenario::parse(&text, &origin, base)?;
        if let LabSource::Topology(file) = &scenario.lab {
            let topology = Topology::from_path(file).map_err(|e| ScenarioError {
                origin: origin.clone(),
                line: text
                    .lines()
                    .position(|l| l.trim_start().starts_with("topology"))
                    .map(|i| i + 1),
                message: format!("topology {}: {e}", file.display()),
            })?;
            scenario.check_against(&topology, &origin)?;
        }
        Ok(scenario)
    }

    /// Parse and check a scenario's text; `origin` names it in errors, `base` is the folder a
    /// relative `topology` is resolved against.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Scenario, ScenarioError> {
        let error = |span: Option<Range<usize>>, message: String| ScenarioError {
            origin: origin.to_string(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            // toml's message repeats the line in a drawing; keep its first sentence.
            let message = e.message().trim().to_string();
            error(e.span(), message)
        })?;

        let name = raw.name.get_ref().clone();
        if !labctl_topology::valid_name(&name) {
            return Err(error(
                Some(raw.name.span()),
                format!(
                    "name {name:?} is not a valid lab name (the lab is named after the scenario): \
                     use [a-z0-9][a-z0-9-]*, at most 63 characters"
                ),
            ));
        }
        let lab = match (&raw.topology, &raw.lab) {
            (Some(file), None) => LabSource::Topology(base.join(file.get_ref())),
            (None, Some(lab)) => LabSource::Running(lab.get_ref().clone()),
            (Some(_), Some(lab)) => {
                return Err(error(
                    Some(lab.span()),
                    "a scenario names either a topology (a lab to start) or a lab (a running \
                     one), not both"
                        .into(),
                ))
            }
            (None, None) => {
                return Err(error(
                    None,
                    "the scenario names no lab: add `topology = \"../topologies/ring6.toml\"` \
                     (relative to this file) or `lab = \"NAME\"` for a running lab"
                        .into(),
                ))
            }
        };
        let runtime = match &raw.runtime {
            Some(r) if !["auto", "process", "docker"].contains(&r.get_ref().as_str()) => {
                return Err(error(
                    Some(r.span()),
                    format!(
                        "runtime {:?} is not one of auto, process, docker",
                        r.get_ref()
                    ),
                ))
            }
            r => r.as_ref().map(|r| r.get_ref().clone()),
        };
        let durability = match &raw.durability {
            Some(d) => Some(
                d.get_ref()
                    .parse::<Durability>()
                    .map_err(|e| error(Some(d.span()), e.to_string()))?,
            ),
            None => None,
        };
        let duration_s = *raw.duration_s.get_ref();
        let duration_ms = match millis(duration_s) {
            Some(ms) if ms > 0 && duration_s <= MAX_DURATION_S => ms,
            _ => {
                return Err(error(
                    Some(raw.duration_s.span()),
                    format!(
                        "duration_s = {duration_s} is not a workload time: give seconds above 0, \
                         at most {MAX_DURATION_S}"
                    ),
                ))
            }
        };
        let workload = match &raw.workload {
            Some(w) => {
                let value = *w.get_ref();
                let bad = if !(1..=MAX_CLIENTS).contains(&value.clients) {
                    Some(format!(
                        "clients = {} is not 1 to {MAX_CLIENTS}",
                        value.clients
                    ))
                } else if !(1..=MAX_RATE).contains(&value.rate) {
                    Some(format!(
                        "rate = {} is not 1 to {MAX_RATE} operations per second",
                        value.rate
                    ))
                } else if value.writes > 100 {
                    Some(format!(
                        "writes = {} is not a percentage (0 to 100)",
                        value.writes
                    ))
                } else {
                    None
                };
                if let Some(message) = bad {
                    return Err(error(Some(w.span()), format!("[workload] {message}")));
                }
                value
            }
            None => Workload::default(),
        };

        let mut steps = Vec::new();
        let mut previous_at = 0;
        let mut names_a_node = false;
        for raw_step in &raw.fault {
            let span = raw_step.span();
            let step = step(raw_step.get_ref(), duration_ms, names_a_node)
                .map_err(|m| error(Some(span.clone()), m))?;
            if step.at_ms < previous_at {
                return Err(error(
                    Some(span),
                    format!(
                        "this step at {} s comes before the previous one (at {} s): list the \
                         steps in time order",
                        step.at_ms as f64 / 1000.0,
                        previous_at as f64 / 1000.0
                    ),
                ));
            }
            previous_at = step.at_ms;
            names_a_node = step.names().is_some();
            steps.push(Step {
                line: line_of(text, span.start),
                ..step
            });
        }

        let random = match &raw.random {
            Some(r) => {
                Some(random(r.get_ref(), duration_ms).map_err(|m| error(Some(r.span()), m))?)
            }
            None => None,
        };
        let check = match &raw.check {
            Some(c) => {
                let value = c.get_ref();
                let converge = value.converge_within_s.unwrap_or(DEFAULT_CONVERGE_S);
                let converge_within_ms = match millis(converge) {
                    Some(ms) if ms > 0 && converge <= MAX_DURATION_S => ms,
                    _ => {
                        return Err(error(
                            Some(c.span()),
                            format!("[check] converge_within_s = {converge} is not a time above 0"),
                        ))
                    }
                };
                let failover_within_ms = match value.failover_within_s {
                    None => None,
                    Some(s) => match millis(s) {
                        Some(ms) if ms > 0 => Some(ms),
                        _ => {
                            return Err(error(
                                Some(c.span()),
                                format!("[check] failover_within_s = {s} is not a time above 0"),
                            ))
                        }
                    },
                };
                Check {
                    converge_within_ms,
                    failover_within_ms,
                }
            }
            None => Check::default(),
        };
        Ok(Scenario {
            name,
            lab,
            runtime,
            durability,
            duration_ms,
            workload,
            steps,
            random,
            check,
            text: text.to_string(),
            origin: origin.to_string(),
        })
    }

    /// Check the steps against the lab's topology: every node named exists, every link step
    /// names a link, every partition holds every node once. `origin` names the file in errors.
    pub fn check_against(&self, topology: &Topology, origin: &str) -> Result<(), ScenarioError> {
        let adjacency = topology.adjacency();
        let nodes = topology.ids();
        let error = |line: usize, message: String| ScenarioError {
            origin: origin.to_string(),
            line: Some(line),
            message,
        };
        for step in &self.steps {
            let ids = |t: StepTarget| match t {
                StepTarget::Id(id) => Some(id),
                _ => None,
            };
            let named: Vec<NodeId> = match &step.action {
                Action::Node { node, .. } | Action::Isolate { node } => {
                    ids(*node).into_iter().collect()
                }
                Action::Link { a, b, .. } => ids(*a).into_iter().chain(ids(*b)).collect(),
                Action::Partition { groups } => groups.iter().flatten().copied().collect(),
                Action::HealAll => Vec::new(),
            };
            if let Some(unknown) = named.iter().find(|id| !adjacency.contains_key(id)) {
                return Err(error(
                    step.line,
                    format!(
                        "node {unknown} is not in lab {} (its nodes: {})",
                        topology.name,
                        join(&nodes)
                    ),
                ));
            }
            // A fault with concrete ids is tried on a lab with nothing in force: what it says
            // about links and partitions is what `labctl fault` would say.
            let concrete = match &step.action {
                Action::Link { a, b, .. } => {
                    matches!((a, b), (StepTarget::Id(_), StepTarget::Id(_)))
                }
                Action::Partition { .. } => true,
                _ => false,
            };
            if concrete {
                let (fault, _) = step
                    .resolve(None, None, &nodes)
                    .map_err(|m| error(step.line, m))?;
                let fault = match fault {
                    // A heal needs something to heal: try the cut it would undo.
                    Fault::Heal { a, b } => Fault::Cut { a, b },
                    other => other,
                };
                InForce::default()
                    .apply(&fault, &adjacency, 0)
                    .map_err(|e| error(step.line, e.to_string()))?;
            }
        }
        if let Some(random) = &self.random {
            let links = topology.links().len();
            let wants_links = random
                .actions
                .iter()
                .any(|a| ["cut", "delay", "loss"].contains(&a.as_str()));
            if wants_links && links == 0
                || nodes.len() < 2 && random.actions.iter().any(|a| a == "partition")
            {
                return Err(ScenarioError {
                    origin: origin.to_string(),
                    line: None,
                    message: format!("[random] actions need links or two nodes; lab {} has {} nodes and {links} links", topology.name, nodes.len()),
                });
            }
        }
        Ok(())
    }
}

fn join(ids: &[NodeId]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `[[fault]]` table, checked on its own.
fn step(raw: &RawStep, duration_ms: u64, after_a_node: bool) -> Result<Step, String> {
    let at_ms = match millis(raw.at_s) {
        Some(ms) if ms <= duration_ms => ms,
        Some(_) => {
            return Err(format!(
                "a fault at_s = {} comes after duration_s = {}: faults happen while the \
                 workload runs (everything is healed at its end anyway)",
                raw.at_s,
                duration_ms as f64 / 1000.0
            ))
        }
        None => {
            return Err(format!(
                "at_s = {} is not a time (seconds, 0 or more)",
                raw.at_s
            ))
        }
    };
    let action = raw.action.as_str();
    let target = |field: &str, value: &Option<RawTarget>| -> Result<StepTarget, String> {
        match value {
            None => Err(format!("action {action:?} needs `{field}` (a node id, \"leader\" or \"last\")")),
            Some(RawTarget::Id(id)) if *id > 0 => Ok(StepTarget::Id(*id as NodeId)),
            Some(RawTarget::Id(id)) => Err(format!("{field} = {id} is not a node id (a positive whole number)")),
            Some(RawTarget::Name(name)) => match name.as_str() {
                "leader" => Ok(StepTarget::Leader),
                "last" if after_a_node => Ok(StepTarget::Last),
                "last" => Err(format!(
                    "{field} = \"last\" names the node of the previous step, and no previous step names one"
                )),
                other => Err(format!("{field} = {other:?} is not a node: give an id, \"leader\" or \"last\"")),
            },
        }
    };
    // Fields that belong to another action are refused, so a typo does not pass unseen.
    let given: Vec<(&str, bool)> = vec![
        ("node", raw.node.is_some()),
        ("a", raw.a.is_some()),
        ("b", raw.b.is_some()),
        ("groups", raw.groups.is_some()),
        ("isolate", raw.isolate.is_some()),
        ("ms", raw.ms.is_some()),
        ("percent", raw.percent.is_some()),
    ];
    let allowed: &[&str] = match action {
        "kill" | "pause" | "resume" | "restart" => &["node"],
        "cut" | "heal" => &["a", "b"],
        "delay" => &["a", "b", "ms"],
        "loss" => &["a", "b", "percent"],
        "partition" => &["groups", "isolate"],
        "heal-all" => &[],
        other => {
            return Err(format!(
                "unknown action {other:?}: use one of {}",
                ACTIONS.join(", ")
            ))
        }
    };
    if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
        return Err(format!(
            "action {action:?} takes no `{field}` (it takes {})",
            if allowed.is_empty() {
                "nothing else".to_string()
            } else {
                allowed.join(", ")
            }
        ));
    }
    let action = match action {
        "kill" | "pause" | "resume" | "restart" => Action::Node {
            verb: match action {
                "kill" => NodeVerb::Kill,
                "pause" => NodeVerb::Pause,
                "resume" => NodeVerb::Resume,
                _ => NodeVerb::Restart,
            },
            node: target("node", &raw.node)?,
        },
        "cut" | "heal" | "delay" | "loss" => {
            let verb = match action {
                "cut" => LinkVerb::Cut,
                "heal" => LinkVerb::Heal,
                "delay" => LinkVerb::Delay(raw.ms.ok_or("action \"delay\" needs `ms`")?),
                _ => LinkVerb::Loss(raw.percent.ok_or("action \"loss\" needs `percent`")?),
            };
            Action::Link {
                verb,
                a: target("a", &raw.a)?,
                b: target("b", &raw.b)?,
            }
        }
        "partition" => match (&raw.groups, &raw.isolate) {
            (Some(groups), None) => {
                let mut seen = BTreeSet::new();
                if let Some(twice) = groups.iter().flatten().find(|id| !seen.insert(**id)) {
                    return Err(format!("node {twice} is in two groups of the partition"));
                }
                Action::Partition {
                    groups: groups.clone(),
                }
            }
            (None, Some(_)) => Action::Isolate {
                node: target("isolate", &raw.isolate)?,
            },
            _ => {
                return Err(
                    "action \"partition\" takes either `groups = [[1, 2], [3, 4]]` or \
                            `isolate = \"leader\"` (one node against the rest)"
                        .into(),
                )
            }
        },
        _ => Action::HealAll,
    };
    Ok(Step {
        at_ms,
        action,
        line: 0,
    })
}

/// `[random]`, checked.
fn random(raw: &RawRandom, duration_ms: u64) -> Result<Random, String> {
    if raw.actions.is_empty() {
        return Err(format!(
            "[random] actions is empty: name some of {}",
            RANDOM_ACTIONS.join(", ")
        ));
    }
    if let Some(bad) = raw
        .actions
        .iter()
        .find(|a| !RANDOM_ACTIONS.contains(&a.as_str()))
    {
        return Err(format!(
            "[random] action {bad:?} cannot be drawn: use some of {}",
            RANDOM_ACTIONS.join(", ")
        ));
    }
    let every_ms = millis(raw.every_s).filter(|&ms| ms >= 100).ok_or_else(|| {
        format!(
            "[random] every_s = {} is not a time of at least 0.1 s",
            raw.every_s
        )
    })?;
    let hold_ms = millis(raw.hold_s).filter(|&ms| ms >= 100).ok_or_else(|| {
        format!(
            "[random] hold_s = {} is not a time of at least 0.1 s",
            raw.hold_s
        )
    })?;
    if hold_ms >= duration_ms {
        return Err(format!(
            "[random] hold_s = {} leaves no time for a fault within duration_s = {}",
            raw.hold_s,
            duration_ms as f64 / 1000.0
        ));
    }
    Ok(Random {
        seed: raw.seed,
        actions: raw.actions.clone(),
        every_ms,
        hold_ms,
    })
}

#[cfg(test)]
mod tests;
