//! The data plane's workload and its checker, for the simulator's fault mode (SPEC §4–§6).
//!
//! A few clients write unique texts (each write carrying its text as its `Idempotency-Key`) and
//! read everything back, each through a random running node, the way the chat's users go through
//! the nameserver to any input node. A client keeps its **read position**, the position of its
//! last acknowledged write, as the chat's signed session does. It retries a write whose outcome is
//! unknown (504, a node killed under it, no answer in time) with the same key, and gives up on a
//! write refused (503) outright.
//!
//! What the checker holds the lab to, as operations happen and once the lab has healed:
//! - `stale_read`: a read never misses one of its client's own acknowledged writes;
//! - `refused_write_appeared`: a write answered 503 (and never attempted otherwise) is never seen;
//! - `stored_twice`: no text is ever applied twice, retries or not;
//! - `two_writers_acknowledged`: two different writes are never acknowledged at one position
//!   (two writers of one epoch would do that);
//! - `acked_write_lost` (durability `majority`): every acknowledged write is in the final state;
//! - `replicas_diverge` (durability `majority`): once healed, every node applied the same log.
//!
//! With `replicas` or `writer` durability an acknowledged write may be lost (SPEC §4): the
//! checker then counts the lost writes ([`DataStats::lost`]) instead of failing the run.

use std::collections::{BTreeMap, BTreeSet};

use labctl_core::log::Pos;
use labctl_core::plane::RequestId;
use labctl_core::plane::{model, Answer, Durability, Need};
use labctl_core::{Millis, NodeId};
use labctl_topology::rng::SplitMix64;
use serde::{Deserialize, Serialize};

/// The workload's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataConfig {
    /// When a write counts as done.
    pub durability: Durability,
    /// How many clients.
    pub clients: usize,
    /// The mean time between one client's operations, in ms.
    pub gap_ms: Millis,
    /// The share of writes, in percent (the rest are reads).
    pub write_percent: u64,
    /// How many times a write whose outcome is unknown is tried again.
    pub retries: u32,
    /// How long a client waits for an answer before it counts the outcome unknown, in ms.
    pub timeout_ms: Millis,
    /// With no faults scheduled, how long the clients go on, in ms (with faults: until the
    /// last one).
    pub duration_ms: Millis,
    /// When the clients begin, in ms (a lab is used once it is up).
    pub start_ms: Millis,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            durability: Durability::Majority,
            clients: 3,
            gap_ms: 150,
            write_percent: 70,
            retries: 4,
            timeout_ms: 6_000,
            duration_ms: 5_000,
            start_ms: 1_000,
        }
    }
}

/// What the workload saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataStats {
    /// Writes acknowledged.
    pub acked: u64,
    /// Writes refused (503) and never stored.
    pub refused: u64,
    /// Writes whose outcome stayed unknown after every retry.
    pub unknown: u64,
    /// Attempts answered 504 or lost with their node (each retried, or counted unknown).
    pub timeouts: u64,
    /// Reads answered.
    pub reads: u64,
    /// Reads refused or unanswered.
    pub reads_failed: u64,
    /// Acknowledged writes missing from the final state (only ever with `replicas` or `writer`).
    pub lost: Vec<String>,
    /// Entries the writer applied by the end (texts).
    pub texts: u64,
    /// When the last write was acknowledged, in ms (0: none was).
    pub last_acked_ms: Millis,
}

/// A rule the checker found broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name.
    pub rule: &'static str,
    /// What was seen.
    pub detail: String,
}

/// One operation of a client, across its attempts.
#[derive(Clone, Debug)]
struct Op {
    /// The text, for a write.
    write: Option<String>,
    attempts: u32,
    /// An earlier attempt may have been done (504, or lost): a later 503 proves nothing.
    maybe_done: bool,
    /// The attempt in flight: its node and request.
    inflight: Option<(NodeId, RequestId)>,
    /// Numbers the attempts, so a stale timeout is ignored.
    serial: u64,
}

#[derive(Clone, Debug, Default)]
struct Client {
    acked: Vec<String>,
    /// The read position: the newest acknowledged write's.
    pos: Pos,
    /// The text of the write at the read position (the newest by position, which need not be
    /// the last acknowledged: an old writer cut off may acknowledge a write at an older
    /// position after a newer writer did).
    at_pos: Option<String>,
    op: Option<Op>,
    serial: u64,
    written: u64,
}

/// What a client wants to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The client.
    pub client: usize,
    /// What the request needs.
    pub need: Need,
    /// Its idempotency key.
    pub key: Option<String>,
    /// The operation (the model store's body).
    pub body: String,
    /// The attempt's number, for its timeout.
    pub serial: u64,
}

/// What the simulator should schedule next for a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Its next operation (or a retry) at this time.
    At(Millis),
    /// Nothing: the client is done.
    Done,
}

/// The clients and the checker.
#[derive(Clone, Debug)]
pub struct Workload {
    config: DataConfig,
    clients: Vec<Client>,
    /// Request in flight → its client.
    inflight: BTreeMap<(NodeId, RequestId), usize>,
    /// Texts refused outright: never to be seen.
    refused: BTreeSet<String>,
    /// Acknowledged position → the text acknowledged there.
    acked_at: BTreeMap<Pos, String>,
    /// No new operations from here on (retries may still go, until `retry_until`).
    stop_at: Option<Millis>,
    stats: DataStats,
    violation: Option<Violation>,
}

impl Workload {
    /// `config.clients` idle clients.
    pub fn new(config: DataConfig) -> Self {
        Workload {
            clients: vec![Client::default(); config.clients],
            config,
            inflight: BTreeMap::new(),
            refused: BTreeSet::new(),
            acked_at: BTreeMap::new(),
            stop_at: None,
            stats: DataStats::default(),
            violation: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DataConfig {
        &self.config
    }

    /// How many clients.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// No new operations after `at` (what is under way finishes).
    pub fn stop(&mut self, at: Millis) {
        self.stop_at.get_or_insert(at);
    }

    /// Whether the workload is over at `now`: stopped, and no operation under way.
    pub fn over(&self, now: Millis) -> bool {
        self.stop_at.is_some_and(|stop| now >= stop) && self.clients.iter().all(|c| c.op.is_none())
    }

    /// The first broken rule, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// The counts so far.
    pub fn stats(&self) -> &DataStats {
        &self.stats
    }

    /// A random gap before a client's next operation.
    pub fn gap(&self, rng: &mut SplitMix64) -> Millis {
        let gap = self.config.gap_ms.max(2);
        gap / 2 + rng.below(gap + 1)
    }

    /// Client `c`'s next attempt, at `now`: a retry, or a new operation (none after the stop).
    pub fn attempt(&mut self, c: usize, now: Millis, rng: &mut SplitMix64) -> Option<Attempt> {
        let client = &mut self.clients[c];
        if client.op.as_ref().is_some_and(|op| op.inflight.is_some()) {
            return None; // one operation at a time
        }
        if client.op.is_none() {
            if self.stop_at.is_some_and(|stop| now >= stop) {
                return None;
            }
            let write = rng.below(100) < self.config.write_percent;
            client.written += u64::from(write);
            client.op = Some(Op {
                write: write.then(|| format!("c{c}-{}", client.written)),
                attempts: 0,
                maybe_done: false,
                inflight: None,
                serial: 0,
            });
        }
        client.serial += 1;
        let serial = client.serial;
        let pos = client.pos;
        let op = client.op.as_mut().expect("an operation");
        op.attempts += 1;
        op.serial = serial;
        Some(match &op.write {
            Some(text) => Attempt {
                client: c,
                need: Need::Write,
                key: Some(text.clone()),
                body: model::write(text),
                serial,
            },
            None => Attempt {
                client: c,
                need: Need::Read { min: pos },
                key: None,
                body: model::READ.to_string(),
                serial,
            },
        })
    }

    /// The attempt went to `node` as request `id`.
    pub fn sent(&mut self, c: usize, node: NodeId, id: RequestId) {
        if let Some(op) = self.clients[c].op.as_mut() {
            op.inflight = Some((node, id));
            self.inflight.insert((node, id), c);
        }
    }

    /// The attempt found no running node to go to: try again later.
    pub fn no_node(&mut self, c: usize, now: Millis, rng: &mut SplitMix64) -> Next {
        if let Some(op) = self.clients[c].op.as_mut() {
            op.attempts = op.attempts.saturating_sub(1);
        }
        Next::At(now + self.gap(rng))
    }

    /// Node `node` answered request `id`. Returns when its client goes next, if it was one.
    pub fn answered(
        &mut self,
        node: NodeId,
        id: RequestId,
        answer: &Answer,
        now: Millis,
        rng: &mut SplitMix64,
    ) -> Option<(usize, Next)> {
        let c = self.inflight.remove(&(node, id))?;
        let op = self.clients[c].op.as_mut()?;
        op.inflight = None;
        let next = match (op.write.clone(), answer) {
            (Some(text), Answer::Served { body, pos }) => {
                self.write_acked(c, text, body, *pos);
                self.stats.last_acked_ms = now;
                self.finish(c, now, rng)
            }
            (Some(text), Answer::NotDone { .. }) if !op.maybe_done => {
                // Refused, and no earlier attempt may have gone through: never to be seen.
                self.stats.refused += 1;
                self.refused.insert(text);
                self.finish(c, now, rng)
            }
            (Some(_), _) => self.unknown(c, now, rng),
            (None, Answer::Served { body, .. }) => {
                self.read(c, node, body);
                self.finish(c, now, rng)
            }
            (None, _) => {
                self.stats.reads_failed += 1;
                self.finish(c, now, rng)
            }
        };
        Some((c, next))
    }

    /// The attempt `serial` of client `c` got no answer in time.
    pub fn timed_out(
        &mut self,
        c: usize,
        serial: u64,
        now: Millis,
        rng: &mut SplitMix64,
    ) -> Option<Next> {
        let op = self.clients[c].op.as_mut()?;
        if op.serial != serial {
            return None;
        }
        let key = op.inflight.take()?;
        self.inflight.remove(&key);
        Some(self.lost_attempt(c, now, rng))
    }

    /// Node `node` died: every attempt in flight there has an unknown outcome.
    pub fn node_lost(
        &mut self,
        node: NodeId,
        now: Millis,
        rng: &mut SplitMix64,
    ) -> Vec<(usize, Next)> {
        let gone: Vec<((NodeId, RequestId), usize)> = self
            .inflight
            .range((node, RequestId { origin: 0, n: 0 })..)
            .take_while(|((n, _), _)| *n == node)
            .map(|(k, c)| (*k, *c))
            .collect();
        let mut next = Vec::new();
        for (key, c) in gone {
            self.inflight.remove(&key);
            if let Some(op) = self.clients[c].op.as_mut() {
                op.inflight = None;
            }
            next.push((c, self.lost_attempt(c, now, rng)));
        }
        next
    }

    fn lost_attempt(&mut self, c: usize, now: Millis, rng: &mut SplitMix64) -> Next {
        let is_write = self.clients[c]
            .op
            .as_ref()
            .is_some_and(|op| op.write.is_some());
        if is_write {
            self.unknown(c, now, rng)
        } else {
            self.stats.reads_failed += 1;
            self.finish(c, now, rng)
        }
    }

    /// A write's attempt ended with its outcome unknown: retry with the same key, or give up.
    fn unknown(&mut self, c: usize, now: Millis, rng: &mut SplitMix64) -> Next {
        self.stats.timeouts += 1;
        let retries = self.config.retries;
        let op = self.clients[c].op.as_mut().expect("an operation");
        op.maybe_done = true;
        if op.attempts <= retries {
            return Next::At(now + self.gap(rng).max(200));
        }
        self.stats.unknown += 1;
        self.finish(c, now, rng)
    }

    fn finish(&mut self, c: usize, now: Millis, rng: &mut SplitMix64) -> Next {
        self.clients[c].op = None;
        if self.stop_at.is_some_and(|stop| now >= stop) {
            return Next::Done;
        }
        Next::At(now + self.gap(rng))
    }

    fn write_acked(&mut self, c: usize, text: String, body: &str, pos: Pos) {
        let answered: Option<model::Wrote> = serde_json::from_str(body).ok();
        if answered.as_ref().map(|w| w.wrote.as_str()) != Some(text.as_str()) {
            return self.violate(
                "wrong_answer",
                format!("the write of {text:?} was answered {body}"),
            );
        }
        if let Some(other) = self.acked_at.get(&pos) {
            if *other != text {
                return self.violate(
                    "two_writers_acknowledged",
                    format!("{other:?} and {text:?} were both acknowledged at {pos}"),
                );
            }
        }
        self.acked_at.insert(pos, text.clone());
        self.stats.acked += 1;
        let client = &mut self.clients[c];
        client.acked.push(text.clone());
        if pos > client.pos || client.at_pos.is_none() {
            client.pos = client.pos.max(pos);
            client.at_pos = Some(text);
        }
    }

    fn read(&mut self, c: usize, node: NodeId, body: &str) {
        self.stats.reads += 1;
        let Ok(texts) = serde_json::from_str::<Vec<String>>(body) else {
            return self.violate("wrong_answer", format!("a read was answered {body}"));
        };
        // With `majority` a read holds every write of its client; with the other modes earlier
        // writes may have been lost (SPEC §4), but never the one at the read position: a node
        // serves a read only if its log holds that very entry.
        let client = &self.clients[c];
        let owed = match self.config.durability {
            Durability::Majority => &client.acked[..],
            Durability::Replicas | Durability::Writer => client.at_pos.as_slice(),
        };
        if let Some(missing) = owed.iter().find(|t| !texts.contains(t)).cloned() {
            return self.violate(
                "stale_read",
                format!(
                    "client {c} read {} texts at node {node} without its own acknowledged \
                     {missing:?} (read position {})",
                    texts.len(),
                    self.clients[c].pos
                ),
            );
        }
        self.check_state("a read", &texts);
    }

    /// A state (a read's answer, a node's final texts) holds no refused write and nothing twice.
    pub fn check_state(&mut self, what: &str, texts: &[String]) {
        if let Some(bad) = texts.iter().find(|t| self.refused.contains(*t)) {
            let detail = format!("{what} holds {bad:?}, refused with 503");
            return self.violate("refused_write_appeared", detail);
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = texts.iter().find(|t| !seen.insert(*t)) {
            let detail = format!("{what} holds {twice:?} twice");
            self.violate("stored_twice", detail);
        }
    }

    /// The end, once the lab healed and its data settled: `writer` is the writer's applied
    /// state, `nodes` every node's.
    pub fn check_final(&mut self, writer: &[String], nodes: &BTreeMap<NodeId, Vec<String>>) {
        self.stats.texts = writer.len() as u64;
        let acked: Vec<String> = self
            .clients
            .iter()
            .flat_map(|c| c.acked.iter().cloned())
            .collect();
        let lost: Vec<String> = acked.into_iter().filter(|t| !writer.contains(t)).collect();
        for (id, texts) in nodes {
            self.check_state(&format!("node {id}'s final state"), texts);
        }
        if self.config.durability != Durability::Majority {
            self.stats.lost = lost;
            return;
        }
        if let Some(first) = lost.first() {
            let detail = format!(
                "{} acknowledged write(s) missing from the writer's final state, first {first:?}",
                lost.len()
            );
            self.stats.lost = lost;
            return self.violate("acked_write_lost", detail);
        }
        if let Some((id, texts)) = nodes.iter().find(|(_, t)| t.as_slice() != writer) {
            self.violate(
                "replicas_diverge",
                format!(
                    "node {id} applied {} texts, the writer {}",
                    texts.len(),
                    writer.len()
                ),
            );
        }
    }

    fn violate(&mut self, rule: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { rule, detail });
        }
    }
}
