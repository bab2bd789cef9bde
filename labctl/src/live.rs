//! A running lab, read from its nodes' admin APIs, judged by the same report as the simulator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use labctl_core::plane::Durability;
use labctl_core::report::Adjacency;
use labctl_core::{Counters, NodeId, Phase, Report, Role, Status};
use labctl_fault::{InForce, LinkFilter};
use labctl_proto::node::node_admin_client::NodeAdminClient;
use labctl_proto::node::{LinkFilters, NodeStatus, StatusRequest, TraceEvent};
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use crate::lab::{LabDir, Record};
use crate::poll::{poll_until, TimedOut};
use crate::runtime::ProcState;

/// How often to ask the nodes while waiting for convergence.
const POLL: Duration = Duration::from_millis(50);
/// How long one status call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Where one node listens and what state it is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    /// `host:port` of the ZeroMQ control socket.
    pub control: Option<String>,
    /// `host:port` of the admin API.
    pub admin: String,
    /// The process id.
    pub pid: u32,
    /// `running` (its process runs and its admin API answers), `paused` (frozen), `down` (its
    /// process is gone) or `unreachable` (it runs but does not answer).
    pub state: String,
    /// `host:port` of the chat's HTTP service, while the node is an input node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// The last replication-log entry the node's database holds.
    #[serde(default)]
    pub applied: u64,
}

/// A live lab's report: SPEC §7 plus the nameserver and every node's addresses, the lab's
/// components and the faults in force (SPEC §6).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveReport {
    /// The report shared with the simulator (with `components`).
    #[serde(flatten)]
    pub report: Report,
    /// The nameserver's HTTP URL, reachable from this host.
    pub nameserver: String,
    /// Each node's addresses and state.
    pub addresses: BTreeMap<String, NodeAddress>,
    /// The faults in force: each one fault object (SPEC §7) with `since_ms`.
    #[serde(default)]
    pub faults: Vec<serde_json::Value>,
    /// When a write counts as done in this lab (`majority`, `replicas` or `writer`), as `up`
    /// started its nodes.
    #[serde(default)]
    pub durability: Durability,
    /// The bootstrap's and the nameserver's state: `running`, `paused` or `down`.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
    /// The lab's folder (logs, state).
    pub folder: String,
}

impl LiveReport {
    /// Every input node serves the chat's HTTP service.
    pub fn serving(&self) -> bool {
        self.report.roles.iter().all(|(id, roles)| {
            !roles.contains(&Role::Input)
                || self.addresses.get(id).is_some_and(|a| a.http.is_some())
        })
    }
}

/// Clients for every node of a lab, kept across polls.
pub struct Nodes {
    clients: BTreeMap<NodeId, NodeAdminClient<Channel>>,
}

impl Nodes {
    /// Clients for the record's nodes (connecting lazily).
    pub fn new(record: &Record) -> Result<Nodes> {
        let mut clients = BTreeMap::new();
        for (&id, process) in &record.nodes {
            if process.grpc.is_empty() {
                continue; // started, never became ready
            }
            let channel = Endpoint::from_shared(format!("http://{}", process.grpc))?
                .connect_timeout(Duration::from_millis(500))
                .timeout(CALL_TIMEOUT)
                .connect_lazy();
            clients.insert(id, NodeAdminClient::new(channel));
        }
        Ok(Nodes { clients })
    }

    /// The same clients without node `id`'s (a node known to be dead: a dead container's address
    /// does not even refuse a connection, so asking it costs a connect timeout).
    pub fn without(mut self, id: NodeId) -> Nodes {
        self.clients.remove(&id);
        self
    }

    /// Every node's status, asked concurrently; a node that does not answer maps to its error.
    pub async fn statuses(&self) -> BTreeMap<NodeId, Result<NodeStatus, String>> {
        let calls = self.clients.iter().map(|(&id, client)| {
            let mut client = client.clone();
            async move {
                let answer = client
                    .status(StatusRequest {})
                    .await
                    .map(|r| r.into_inner())
                    .map_err(|s| s.message().to_string());
                (id, answer)
            }
        });
        futures_join_all(calls).await.into_iter().collect()
    }
}

impl Nodes {
    /// Follow every node's trace, calling `seen` with each event: its record first, then what
    /// happens (the dashboard asks for a report then). A node that stops is asked again every
    /// half second, its record again first (a restarted node's events before the reconnection
    /// are not lost). The tasks end with the runtime.
    pub fn follow(&self, seen: Arc<dyn Fn(&TraceEvent) + Send + Sync>) {
        for client in self.clients.values() {
            let mut client = client.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let request = labctl_proto::node::TraceRequest {
                        recorded: true,
                        recorded_only: false,
                    };
                    if let Ok(stream) = client.trace(request).await {
                        let mut stream = stream.into_inner();
                        while let Ok(Some(event)) = stream.message().await {
                            seen(&event);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
    }
}

/// Every line a lab's nodes recorded of their last epochs (SPEC §9), merged in wall-clock order,
/// with `t` in milliseconds from the first; and the nodes that did not answer, with why.
pub struct Recorded {
    /// The merged trace.
    pub lines: Vec<labctl_core::event::TraceLine>,
    /// Nodes whose record is missing.
    pub missing: BTreeMap<NodeId, String>,
}

impl Nodes {
    /// Every node's recorded trace, asked concurrently.
    pub async fn recorded(&self) -> Recorded {
        use labctl_core::event::TraceLine;
        use labctl_proto::node::TraceRequest;
        let calls = self.clients.iter().map(|(&id, client)| {
            let mut client = client.clone();
            async move {
                let mut lines = Vec::new();
                let request = TraceRequest {
                    recorded: true,
                    recorded_only: true,
                };
                let result = async {
                    let mut stream = client
                        .trace(request)
                        .await
                        .map_err(|s| s.message().to_string())?
                        .into_inner();
                    while let Some(event) = stream
                        .message()
                        .await
                        .map_err(|s| s.message().to_string())?
                    {
                        let line: TraceLine = serde_json::from_str(&event.json).map_err(|e| {
                            format!("an unreadable trace line ({e}): {}", event.json)
                        })?;
                        lines.push((event.unix_ms, line));
                    }
                    Ok::<_, String>(())
                }
                .await;
                (id, result.map(|()| lines))
            }
        });
        let mut all = Vec::new();
        let mut missing = BTreeMap::new();
        for (id, answer) in futures_join_all(calls).await {
            match answer {
                Ok(lines) => all.extend(lines),
                Err(e) => {
                    missing.insert(id, e);
                }
            }
        }
        // Each node's lines are in order already; a stable sort keeps that order within a
        // millisecond.
        all.sort_by_key(|(unix_ms, _)| *unix_ms);
        let first = all.first().map_or(0, |(unix_ms, _)| *unix_ms);
        let lines = all
            .into_iter()
            .map(|(unix_ms, mut line)| {
                line.t = unix_ms - first;
                line
            })
            .collect();
        Recorded { lines, missing }
    }
}

/// Await every future concurrently, in this task (a small join_all, to avoid a dependency for
/// it). Not spawned: when the caller is dropped (a dashboard closing, the runtime shutting down)
/// the calls are dropped with it, where spawned ones were cancelled and their handles panicked.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (future, slot) in pending.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|value| value.expect("every future finished"))
        .collect()
}

/// The protocol core's view of a node, from its admin API's answer. None while it is joining.
pub fn core_status(s: &NodeStatus) -> Option<Status> {
    let election: Phase =
        serde_json::from_value(serde_json::Value::String(s.election.clone())).ok()?;
    let roles = s
        .roles
        .iter()
        .filter_map(|r| serde_json::from_value::<Role>(serde_json::Value::String(r.clone())).ok())
        .collect();
    let c = s.counters.clone().unwrap_or_default();
    Some(Status {
        id: s.id,
        epoch: s.epoch,
        election,
        leader: s.leader,
        parent: s.parent,
        depth: s.depth,
        children: s.children.clone(),
        subtree: s.subtree,
        roles,
        counters: Counters {
            setup: c.setup,
            yo_down: c.yo_down,
            yo_up: c.yo_up,
            q: c.q,
            yes: c.yes,
            iterations: c.iterations,
            out_degrees: c.out_degrees.iter().map(|&d| d as usize).collect(),
            dropped: c.dropped,
        },
        members: s.members.clone(),
        suspected: s.suspected.clone(),
        pending: s.pending,
    })
}

/// Build the live report from one round of answers, the processes' states and the faults in
/// force. A component is the topology minus the nodes down or paused (by a fault, or by
/// themselves) and the links the faults cut (SPEC §6).
#[allow(clippy::too_many_arguments)]
pub fn report(
    lab: &LabDir,
    record: &Record,
    runtime: &str,
    adjacency: &Adjacency,
    answers: &BTreeMap<NodeId, Result<NodeStatus, String>>,
    states: &BTreeMap<String, ProcState>,
    faults: &InForce,
    elapsed: Duration,
) -> LiveReport {
    let statuses: BTreeMap<NodeId, Status> = answers
        .iter()
        .filter_map(|(&id, a)| a.as_ref().ok().and_then(core_status).map(|s| (id, s)))
        .collect();
    let state_of = |label: &str| states.get(label).copied().unwrap_or(ProcState::Down);
    let mut live = faults.live_adjacency(adjacency);
    let gone: Vec<NodeId> = adjacency
        .keys()
        .copied()
        .filter(|&id| state_of(&format!("node {id}")) != ProcState::Running)
        .collect();
    for id in &gone {
        live.remove(id);
    }
    for neighbors in live.values_mut() {
        for id in &gone {
            neighbors.remove(id);
        }
    }
    let report = Report::build_live(
        &record.name,
        runtime,
        adjacency,
        &live,
        &statuses,
        elapsed.as_millis() as u64,
    );
    let addresses = record
        .nodes
        .iter()
        .map(|(&id, p)| {
            let state = match (state_of(&format!("node {id}")), answers.get(&id)) {
                (ProcState::Down, _) => "down",
                (ProcState::Paused, _) => "paused",
                (ProcState::Running, Some(Ok(_))) => "running",
                (ProcState::Running, _) => "unreachable",
            };
            let status = answers.get(&id).and_then(|a| a.as_ref().ok());
            let address = NodeAddress {
                control: p.control.clone(),
                admin: p.grpc.clone(),
                pid: p.pid,
                state: state.to_string(),
                http: status
                    .map(|s| s.http_address.clone())
                    .filter(|h| !h.is_empty()),
                applied: status.map_or(0, |s| s.applied),
            };
            (id.to_string(), address)
        })
        .collect();
    let services = ["bootstrap", "nameserver"]
        .into_iter()
        .map(|label| (label.to_string(), state_of(label).as_str().to_string()))
        .collect();
    LiveReport {
        report,
        faults: crate::fault::listed(faults),
        services,
        nameserver: record
            .nameserver
            .as_ref()
            .and_then(|n| n.http.as_ref())
            .map(|h| format!("http://{h}"))
            .unwrap_or_default(),
        addresses,
        durability: record.durability,
        folder: lab.path.display().to_string(),
    }
}

/// Progress bars for joining, the election and the tree, drawn only on a terminal.
pub struct Progress {
    bars: Vec<ProgressBar>,
    _multi: MultiProgress,
}

impl Progress {
    /// Bars for `n` nodes; hidden unless `visible`.
    pub fn new(n: u64, visible: bool) -> Progress {
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
        let bars = ["started", "joined", "elected", "in tree"]
            .into_iter()
            .map(|name| {
                let bar = multi.add(ProgressBar::new(n));
                bar.set_style(style.clone());
                bar.set_prefix(name);
                bar
            })
            .collect();
        Progress {
            bars,
            _multi: multi,
        }
    }

    /// Nodes started (processes listening).
    pub fn started(&self, count: u64) {
        self.bars[0].set_position(count);
    }

    /// Update from one round of answers.
    pub fn observe(&self, answers: &BTreeMap<NodeId, Result<NodeStatus, String>>) {
        let ok = || answers.values().filter_map(|a| a.as_ref().ok());
        self.bars[1].set_position(ok().filter(|s| s.election != "joining").count() as u64);
        self.bars[2].set_position(ok().filter(|s| s.leader.is_some()).count() as u64);
        self.bars[3].set_position(ok().filter(|s| !s.roles.is_empty()).count() as u64);
    }

    /// Remove the bars.
    pub fn finish(&self) {
        for bar in &self.bars {
            bar.finish_and_clear();
        }
    }
}

/// Replace node `id`'s fault filter over its admin API.
pub async fn set_filters(
    record: &Record,
    id: NodeId,
    filters: &BTreeMap<NodeId, LinkFilter>,
) -> Result<()> {
    let process = record
        .nodes
        .get(&id)
        .with_context(|| format!("no node {id} on record"))?;
    let channel = Endpoint::from_shared(format!("http://{}", process.grpc))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(CALL_TIMEOUT);
    let client = NodeAdminClient::new(
        channel
            .connect()
            .await
            .with_context(|| format!("connecting to node {id}'s admin API at {}", process.grpc))?,
    );
    let request = LinkFilters {
        filters: labctl_node::admin::proto_filters(filters),
    };
    // A node just started again is still joining its lab for a moment: ask again until it runs.
    let what = format!("node {id} running, to take its link filter");
    poll_until(&what, POLL, crate::runtime::START_TIMEOUT, || {
        let (mut client, request) = (client.clone(), request.clone());
        async move {
            match client.set_link_filters(request).await {
                Ok(_) => Ok(Some(())),
                Err(s) if s.code() == tonic::Code::Unavailable => Ok(None),
                Err(s) => anyhow::bail!("node {id} refused its link filter: {}", s.message()),
            }
        }
    })
    .await
}

/// Poll the nodes until the lab converges or `timeout` passes; returns the last report.
pub async fn wait_converged(
    lab: &LabDir,
    record: &Record,
    runtime: &dyn crate::runtime::Runtime,
    adjacency: &Adjacency,
    started: Instant,
    timeout: Duration,
    progress: &Progress,
) -> Result<LiveReport> {
    let nodes = Nodes::new(record)?;
    let last = std::cell::RefCell::new(None);
    let converged = poll_until(
        &format!("lab {} converged", lab.name),
        POLL,
        timeout,
        || async {
            let answers = nodes.statuses().await;
            progress.observe(&answers);
            let states = runtime.states(lab, record).await;
            let report = report(
                lab,
                record,
                runtime.kind(),
                adjacency,
                &answers,
                &states,
                &InForce::default(),
                started.elapsed(),
            );
            // Done once the tree has converged and every input node serves the chat.
            if report.report.converged && report.serving() {
                return Ok(Some(report));
            }
            *last.borrow_mut() = Some(report);
            Ok(None)
        },
    )
    .await;
    match converged {
        // Out of time: the last report says how far it got.
        Err(error) if error.is::<TimedOut>() => last.into_inner().ok_or(error),
        converged => converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_runs_at_once_and_answers_in_its_place() {
        // The first call waits for the last to speak: awaited one after another they would
        // never finish (the timeout fails the test).
        let (tell, heard) = tokio::sync::oneshot::channel::<u32>();
        let first = Box::pin(async move { heard.await.expect("the last call speaks") + 1 });
        let middle = Box::pin(async { 20 });
        let last = Box::pin(async move {
            tell.send(9).expect("the first call listens");
            30
        });
        let calls: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send>>> =
            vec![first, middle, last];
        let answers = tokio::time::timeout(Duration::from_secs(5), futures_join_all(calls))
            .await
            .expect("the calls ran at once");
        assert_eq!(answers, vec![10, 20, 30]);
    }
}
