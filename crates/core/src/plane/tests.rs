//! One test per rule of the data plane, over a few data planes with model stores, their trees set
//! by hand, messages carried one at a time (FIFO per link), store jobs done at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::model::{self, ModelStore};
use super::*;

/// Nodes of one lab, wired by hand.
struct Net {
    nodes: BTreeMap<NodeId, (DataPlane, ModelStore)>,
    queue: VecDeque<(NodeId, NodeId, PlaneMessage)>,
    /// Links that lose whatever is sent on them.
    cut: BTreeSet<(NodeId, NodeId)>,
    answers: Vec<(RequestId, Answer)>,
    notes: Vec<String>,
    now: Millis,
}

impl Net {
    /// `ids` with empty stores (or the given ones), `durability`, a lab of `ids.len()`.
    fn new(ids: &[NodeId], durability: Durability, stores: Vec<(NodeId, ModelStore)>) -> Net {
        let mut given: BTreeMap<NodeId, ModelStore> = stores.into_iter().collect();
        let nodes = ids
            .iter()
            .map(|&id| {
                let store = given.remove(&id).unwrap_or_default();
                let config = PlaneConfig {
                    id,
                    lab_size: ids.len() as u64,
                    durability,
                    first_request: 0,
                    shape: store.shape(),
                    applied: store.applied(),
                };
                (id, (DataPlane::new(config), store))
            })
            .collect();
        Net {
            nodes,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            answers: Vec::new(),
            notes: Vec::new(),
            now: 0,
        }
    }

    fn input(&mut self, id: NodeId, input: PlaneInput) {
        let mut work = VecDeque::from([input]);
        while let Some(input) = work.pop_front() {
            let (plane, store) = self.nodes.get_mut(&id).unwrap();
            let mut out = Vec::new();
            plane.handle(self.now, input, &mut out);
            for output in out {
                match output {
                    PlaneOutput::Send { to, message } => {
                        if !self.cut.contains(&(id, to)) {
                            self.queue.push_back((id, to, message));
                        }
                    }
                    PlaneOutput::Store(job) => work.push_back(store.run(job)),
                    PlaneOutput::Answer { id: rid, answer } => self.answers.push((rid, answer)),
                    PlaneOutput::Note(note) => self.notes.push(format!("{id}: {note}")),
                }
            }
        }
    }

    /// Deliver messages until none is left.
    fn run(&mut self) {
        let mut budget = 100_000;
        while let Some((from, to, message)) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "the data plane does not go quiet");
            self.input(to, PlaneInput::Message { from, message });
        }
    }

    /// `ticks` heartbeat periods pass.
    fn tick(&mut self, ticks: u32) {
        for _ in 0..ticks {
            self.now += 100;
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.input(id, PlaneInput::Tick);
            }
            self.run();
        }
    }

    /// Every node enters `epoch` on the tree given as (node, parent), the root's roles by the
    /// quorum rule.
    fn tree(&mut self, epoch: Epoch, parents: &[(NodeId, Option<NodeId>)]) {
        let lab = self.nodes.len() as u64;
        let parent_of: BTreeMap<NodeId, Option<NodeId>> = parents.iter().copied().collect();
        let size = |id: NodeId| -> u64 {
            // Nodes whose chain of parents reaches `id`.
            parent_of
                .keys()
                .filter(|&&n| {
                    let mut at = Some(n);
                    while let Some(x) = at {
                        if x == id {
                            return true;
                        }
                        at = parent_of[&x];
                    }
                    false
                })
                .count() as u64
        };
        let root = parents.iter().find(|(_, p)| p.is_none()).unwrap().0;
        let best = parent_of
            .keys()
            .map(|&n| Best {
                pos: self.nodes[&n].0.last(),
                node: n,
            })
            .max_by_key(|b| (b.pos, std::cmp::Reverse(b.node)));
        for &id in parent_of.keys() {
            self.input(id, PlaneInput::EpochStarted { epoch });
        }
        // Leaves first, as SHOUT+'s convergecast completes them.
        let mut order: Vec<NodeId> = parent_of.keys().copied().collect();
        order.sort_by_key(|&n| std::cmp::Reverse(depth(&parent_of, n)));
        for id in order {
            let children: BTreeMap<NodeId, u64> = parent_of
                .iter()
                .filter(|(_, p)| **p == Some(id))
                .map(|(&c, _)| (c, size(c)))
                .collect();
            let parent = parent_of[&id];
            let roles = crate::roles::roles(crate::roles::Place {
                is_root: parent.is_none(),
                parent_is_root: parent == Some(root),
                has_children: !children.is_empty(),
                quorum: 2 * size(root) > lab,
            });
            let tree = Tree {
                epoch,
                parent,
                children,
                roles,
                share: Share {
                    nodes: size(root),
                    lab,
                },
                best: if parent.is_none() { best } else { None },
            };
            self.input(id, PlaneInput::Tree(tree));
        }
        self.run();
    }

    /// A request at input node `at`; returns its id.
    fn request(&mut self, at: NodeId, need: Need, key: Option<&str>, body: &str) -> RequestId {
        let id = self.nodes.get_mut(&at).unwrap().0.next_request();
        self.input(
            at,
            PlaneInput::Request {
                id,
                need,
                key: key.map(str::to_string),
                body: body.to_string(),
            },
        );
        id
    }

    fn write(&mut self, at: NodeId, text: &str) -> RequestId {
        self.request(at, Need::Write, None, &model::write(text))
    }

    fn answer(&self, id: RequestId) -> Option<&Answer> {
        self.answers.iter().find(|(r, _)| *r == id).map(|(_, a)| a)
    }

    fn texts(&self, id: NodeId) -> Vec<String> {
        self.nodes[&id].1.texts().to_vec()
    }

    fn last(&self, id: NodeId) -> Pos {
        self.nodes[&id].0.last()
    }
}

fn depth(parents: &BTreeMap<NodeId, Option<NodeId>>, mut n: NodeId) -> usize {
    let mut d = 0;
    while let Some(p) = parents[&n] {
        n = p;
        d += 1;
    }
    d
}

/// A line 1 — 2 — 3 rooted at 1.
const LINE3: [(NodeId, Option<NodeId>); 3] = [(1, None), (2, Some(1)), (3, Some(2))];

fn served(answer: Option<&Answer>) -> Pos {
    match answer {
        Some(Answer::Served { pos, .. }) => *pos,
        other => panic!("not served: {other:?}"),
    }
}

#[test]
fn a_write_is_answered_once_a_majority_holds_it() {
    let mut net = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    net.tree(1, &LINE3);
    // Node 3 hears nothing from 2: 1 and 2 are a majority of 3.
    net.cut.insert((2, 3));
    let id = net.write(2, "hello");
    net.run();
    assert_eq!(
        served(net.answer(id)),
        Pos::new(1, 2),
        "after the epoch-start entry"
    );
    assert_eq!(net.texts(1), vec!["hello"]);
    assert_eq!(
        net.texts(2),
        vec!["hello"],
        "2, the input node, learns the commit from the answer it passes on"
    );
    net.tick(3);
    assert_eq!(net.texts(2), vec!["hello"]);
    assert!(net.texts(3).is_empty(), "3 never got the entry");
}

#[test]
fn a_write_held_by_a_minority_is_not_answered() {
    let mut net = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    net.tree(1, &LINE3);
    net.cut.insert((1, 2)); // the writer alone holds it
    let id = net.request(1, Need::Write, None, &model::write("alone"));
    net.tick(3);
    assert_eq!(net.answer(id), None, "1 of 3 is no majority");
    assert!(
        net.texts(1).is_empty(),
        "nothing is applied before it commits"
    );
}

#[test]
fn commit_needs_an_entry_of_the_current_epoch() {
    // Epoch 1's writer 1 got "old" to node 2 only, then lost its role. In epoch 2 it is writer
    // again: "old" is on a majority (1 and 2) yet commits only once epoch 2's start entry does.
    let mut net = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    net.tree(1, &LINE3);
    net.cut.insert((2, 1)); // no ack comes back
    net.write(1, "old");
    net.run();
    assert!(net.texts(1).is_empty());
    net.cut.clear();
    net.cut.insert((1, 2)); // the next epoch's start entry does not get through at first
    net.tree(2, &LINE3);
    assert_eq!(
        net.last(1),
        Pos::new(2, 3),
        "epoch 2 started with its own entry"
    );
    assert!(
        net.texts(1).is_empty(),
        "\"old\" is held by 1 and 2, a majority, but is epoch 1's: not committed by counting"
    );
    net.cut.clear();
    net.tick(3);
    assert_eq!(
        net.texts(1),
        vec!["old"],
        "committed with epoch 2's start entry"
    );
}

#[test]
fn a_new_writer_adopts_the_most_advanced_log() {
    let mut net = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    net.tree(1, &LINE3);
    let first = net.write(3, "first");
    net.run();
    served(net.answer(first));
    // "second" reaches 2 and 3 but the writer loses the acks: written, not answered.
    net.cut.insert((2, 1));
    net.write(1, "second");
    net.run();
    assert_eq!(net.last(3), net.last(1));
    // Epoch 2: node 1 is gone; 2 roots {2, 3} of a lab of 3 and must find "second" in 3's log.
    net.cut.clear();
    let mut two = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    for id in [2, 3] {
        two.nodes.insert(id, net.nodes.remove(&id).unwrap());
    }
    two.nodes.remove(&1);
    // 2 lost its tail (say, it restarted from an older copy): 3 holds the most advanced log.
    two.nodes.get_mut(&2).unwrap().1 = net_store_prefix(&two.nodes[&2].1, 2);
    let config = PlaneConfig {
        id: 2,
        lab_size: 3,
        durability: Durability::Majority,
        first_request: 100,
        shape: two.nodes[&2].1.shape(),
        applied: two.nodes[&2].1.applied(),
    };
    two.nodes.get_mut(&2).unwrap().0 = DataPlane::new(config);
    two.tree(2, &[(2, None), (3, Some(2))]);
    assert!(
        two.notes.iter().any(|n| n.contains("most advanced log")),
        "{:?}",
        two.notes
    );
    assert_eq!(
        two.texts(2),
        vec!["first", "second"],
        "nothing written was lost"
    );
    assert_eq!(two.last(2), Pos::new(2, 4), "then epoch 2's start entry");
}

/// A copy of `store` holding its log only up to `seq` (what a node that lost its tail has).
fn net_store_prefix(store: &ModelStore, seq: u64) -> ModelStore {
    let mut copy = ModelStore::new();
    let entries: Vec<WireEntry> = store
        .entries()
        .iter()
        .filter(|e| e.seq <= seq)
        .cloned()
        .collect();
    copy.run(StoreJob::Append { after: 0, entries });
    copy.run(StoreJob::Apply {
        up_to: store.applied().min(seq),
    });
    copy
}

#[test]
fn an_old_tail_is_discarded() {
    // Node 3 holds an entry of epoch 1 that no majority had: the writer of epoch 2 (node 1,
    // which never had it) replaces it.
    let mut net = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    net.tree(1, &LINE3);
    let id = net.write(1, "kept");
    net.run();
    served(net.answer(id));
    // Epoch 2 under writer 3 (a different tree): it appends "lost", which reaches nobody.
    net.cut.insert((3, 2));
    net.tree(2, &[(3, None), (2, Some(3)), (1, Some(2))]);
    net.write(3, "lost");
    net.run();
    let tail = net.last(3);
    assert_eq!(tail.epoch, 2);
    // Epoch 3 under writer 1, whose log is as advanced as 3's? No: 3's has epoch 2 entries. Node
    // 3 is cut off from the best-log report here: 1 and 2 elect without it.
    net.cut.clear();
    net.cut.insert((3, 2));
    net.cut.insert((2, 3));
    let mut three = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    three.nodes = std::mem::take(&mut net.nodes);
    three.tree(3, &[(1, None), (2, Some(1))]);
    let kept = three.write(2, "after");
    three.run();
    served(three.answer(kept));
    // Now 3 joins epoch 4's tree and gets the writer's log: its epoch-2 tail goes.
    three.tree(4, &LINE3);
    three.tick(20);
    assert!(
        three
            .notes
            .iter()
            .any(|n| n.starts_with("3: discarding entries")),
        "{:?}",
        three.notes
    );
    assert_eq!(
        three.texts(3),
        vec!["kept", "after"],
        "\"lost\" was never applied"
    );
    assert_eq!(three.last(3), three.last(1));
}

#[test]
fn an_entry_failing_log_matching_is_refused() {
    let mut net = Net::new(&[1, 2], Durability::Majority, vec![]);
    net.tree(1, &[(1, None), (2, Some(1))]);
    let before = net.last(2);
    let (plane, store) = net.nodes.get_mut(&2).unwrap();
    let mut out = Vec::new();
    let message = PlaneMessage::Append {
        epoch: 1,
        to: None,
        prev: Pos::new(1, 7), // 2 has nothing at 7
        entries: vec![WireEntry {
            epoch: 1,
            seq: 8,
            key: None,
            body: model::write("x"),
        }],
        commit: 8,
    };
    plane.handle(0, PlaneInput::Message { from: 1, message }, &mut out);
    assert!(
        matches!(
            &out[..],
            [PlaneOutput::Send {
                to: 1,
                message: PlaneMessage::Nack { from: 2, .. }
            }]
        ),
        "{out:?}"
    );
    assert_eq!(plane.last(), before, "nothing appended");
    assert!(store.texts().is_empty());
}

#[test]
fn a_retry_with_the_same_key_gets_the_first_answer() {
    let mut net = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    net.tree(1, &LINE3);
    let first = net.request(3, Need::Write, Some("alice/k1"), &model::write("hi"));
    let retry = net.request(3, Need::Write, Some("alice/k1"), &model::write("hi"));
    let other = net.request(3, Need::Write, Some("alice/k2"), &model::write("hi"));
    net.run();
    let body = |id| match net.answer(id) {
        Some(Answer::Served { body, .. }) => body.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(body(first), body(retry));
    served(net.answer(other));
    assert_eq!(
        net.texts(1),
        vec!["hi", "hi"],
        "the retry stored nothing; another key did"
    );
}

#[test]
fn a_503_is_never_followed_by_the_write() {
    // A minority's root refuses writes: nothing enters any log.
    let mut net = Net::new(&[1, 2, 3, 4, 5], Durability::Majority, vec![]);
    net.tree(
        1,
        &[
            (1, None),
            (2, Some(1)),
            (3, None),
            (4, Some(3)),
            (5, Some(4)),
        ],
    );
    let id = net.write(2, "refused");
    net.run();
    match net.answer(id) {
        Some(Answer::NotDone { reason }) => {
            assert!(
                reason.contains("holds 2 of 5 nodes; writes need 3"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    net.tick(30);
    for id in 1..=5 {
        assert!(
            net.nodes[&id]
                .1
                .entries()
                .iter()
                .all(|e| !e.body.contains("refused")),
            "node {id}"
        );
    }
    // A request at a node with no tree yet is not done either.
    let mut lone = Net::new(&[1], Durability::Majority, vec![]);
    let early = lone.write(1, "early");
    assert!(matches!(lone.answer(early), Some(Answer::NotDone { .. })));
    lone.tree(1, &[(1, None)]);
    assert!(lone.texts(1).is_empty());
}

#[test]
fn requests_held_at_an_epoch_change_are_answered_at_once() {
    let mut net = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    net.tree(1, &LINE3);
    net.cut.insert((3, 2)); // 3's request never gets anywhere, but it left 3
    let forwarded = net.write(3, "lost in transit");
    net.run();
    assert_eq!(net.answer(forwarded), None);
    net.input(3, PlaneInput::EpochStarted { epoch: 2 });
    assert!(
        matches!(net.answer(forwarded), Some(Answer::Unknown { reason }) if reason.contains("may yet be done"))
    );
    // During the election, a new request is not done and says why.
    let electing = net.write(3, "during the election");
    assert!(
        matches!(net.answer(electing), Some(Answer::NotDone { reason }) if reason.contains("electing"))
    );
}

#[test]
fn the_new_writer_answers_nothing_until_its_epoch_start_entry_commits() {
    let mut net = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    net.cut.insert((1, 2)); // the start entry cannot reach a majority
    net.tree(1, &LINE3);
    let read = net.request(1, Need::Read { min: Pos::START }, None, model::READ);
    let write = net.write(1, "waits");
    net.tick(2);
    assert_eq!(net.answer(read), None, "not even a read");
    assert_eq!(net.answer(write), None);
    net.cut.clear();
    net.tick(10);
    assert!(matches!(net.answer(read), Some(Answer::Served { .. })));
    assert_eq!(served(net.answer(write)).seq, 2);
}

#[test]
fn a_read_is_served_only_where_the_readers_last_write_is_applied() {
    let mut net = Net::new(&[1, 2, 3, 4], Durability::Majority, vec![]);
    // 1 writes; 2 is a persistence replica (child of the root with a child); 3 an input below it.
    net.tree(1, &[(1, None), (2, Some(1)), (3, Some(2)), (4, Some(1))]);
    let w = net.write(3, "mine");
    net.run();
    let pos = served(net.answer(w));
    // 2 and 3 learn the commit from the answer as it passes them, and apply the write.
    let read = net.request(3, Need::Read { min: pos }, None, model::READ);
    net.run();
    match net.answer(read) {
        Some(Answer::Served { body, pos: at }) => {
            assert!(body.contains("mine"), "{body}");
            assert!(at.seq >= pos.seq);
        }
        other => panic!("{other:?}"),
    }
    // A position from another history (an epoch this log never had at that seq) is not served:
    // the root answers it cannot.
    let stranger = net.request(
        3,
        Need::Read {
            min: Pos::new(9, pos.seq),
        },
        None,
        model::READ,
    );
    net.run();
    assert!(
        matches!(net.answer(stranger), Some(Answer::NotDone { reason }) if reason.contains("does not hold your last write")),
        "{:?}",
        net.answer(stranger)
    );
}

/// With `majority` every node holds and applies the committed log, so an input node serves a
/// read itself once its applied log holds the reader's last write; with `replicas` it does not
/// hold the log and passes every read up.
#[test]
fn with_majority_an_input_node_serves_the_reads_its_applied_log_holds() {
    for durability in [Durability::Majority, Durability::Replicas] {
        let mut net = Net::new(&[1, 2, 3, 4], durability, vec![]);
        // 1 writes; 2 is a persistence replica; 3 an input below it; 4 an input below 1.
        net.tree(1, &[(1, None), (2, Some(1)), (3, Some(2)), (4, Some(1))]);
        let w = net.write(3, "mine");
        net.run();
        let pos = served(net.answer(w));
        net.tick(3); // the commit reaches every node that holds the log
        assert_eq!(
            net.nodes[&3].0.serves_reads(),
            durability == Durability::Majority
        );
        assert!(
            net.nodes[&2].0.serves_reads(),
            "a persistence replica serves"
        );
        let read = net.request(3, Need::Read { min: pos }, None, model::READ);
        // Nothing is carried: a read served at 3 itself is answered without a message.
        let mut hops = 0;
        while let Some((from, to, message)) = net.queue.pop_front() {
            hops += 1;
            net.input(to, PlaneInput::Message { from, message });
        }
        match net.answer(read) {
            Some(Answer::Served { body, .. }) => assert!(body.contains("mine"), "{body}"),
            other => panic!("{durability:?}: {other:?}"),
        }
        match durability {
            Durability::Majority => assert_eq!(hops, 0, "served at the input node"),
            _ => assert!(
                hops >= 2,
                "passed up to the replica and back: {hops} messages"
            ),
        }
    }
}

/// A write's answer names a committed position: with `majority`, every node it passes on its
/// way down (the input node included) commits up to it at once, so the writer's client reads
/// its own write where it comes in, with no message, without waiting for the writer's next
/// beat. With `replicas` the input node holds no log and the read goes up as before.
#[test]
fn a_read_right_after_its_write_is_served_where_it_comes_in() {
    for durability in [Durability::Majority, Durability::Replicas] {
        let mut net = Net::new(&[1, 2, 3, 4, 5], durability, vec![]);
        // A line below the writer: 2 persistence, 3 forwarder, 4 the input node; 5 an input
        // below 1.
        net.tree(
            1,
            &[
                (1, None),
                (2, Some(1)),
                (3, Some(2)),
                (4, Some(3)),
                (5, Some(1)),
            ],
        );
        let w = net.write(4, "mine");
        net.run(); // no tick: nothing but the write's own messages
        let pos = served(net.answer(w));
        if durability == Durability::Majority {
            for id in [2, 3, 4] {
                assert_eq!(net.texts(id), vec!["mine"], "node {id} on the answer's way");
            }
        } else {
            // Only `majority` learns the commit from an answer: the replica 2 waits for the
            // writer's next message.
            assert!(net.texts(2).is_empty(), "{:?}", net.texts(2));
        }
        let read = net.request(4, Need::Read { min: pos }, None, model::READ);
        let hops = net.queue.len();
        net.run();
        match net.answer(read) {
            Some(Answer::Served { body, .. }) => assert!(body.contains("mine"), "{body}"),
            other => panic!("{durability:?}: {other:?}"),
        }
        match durability {
            Durability::Majority => assert_eq!(hops, 0, "served at the input node"),
            _ => assert!(hops > 0, "passed up to the replica"),
        }
    }
}

/// What happens to a parked read (see `a_read_waits_here_for_the_apply_of_its_readers_write`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    /// The store reports the apply: served here.
    Applied,
    /// The store fails the job: the read goes up the tree.
    StoreFails,
    /// No report for a whole tick: the read goes up the tree (not before).
    Silence,
    /// A new epoch: the read, which never left the node, is answered "not done".
    NewEpoch,
}

/// A read whose reader's last write is committed here but still being applied waits for that
/// apply (the store reports it within a fraction of a millisecond) instead of going up the
/// tree; if the store fails the apply or stays silent for a tick, the read goes up after all,
/// and a new epoch answers it like any request that never left the node.
#[test]
fn a_read_waits_here_for_the_apply_of_its_readers_write() {
    for then in [
        Then::Applied,
        Then::StoreFails,
        Then::Silence,
        Then::NewEpoch,
    ] {
        // Node 3 is the input node at the end of the line 1 - 2 - 3 (`majority`, a lab of 3).
        let mut three = Hand::new(3, 3, Durability::Majority, ModelStore::new());
        let share = Share { nodes: 3, lab: 3 };
        three.placed(1, Some(2), &[], vec![Role::Input], share);
        // The writer's epoch-start entry and the client's write come down the tree.
        let entries = vec![
            WireEntry {
                epoch: 1,
                seq: 1,
                key: None,
                body: String::new(),
            },
            WireEntry {
                epoch: 1,
                seq: 2,
                key: None,
                body: model::write("mine"),
            },
        ];
        three.receive(
            2,
            PlaneMessage::Append {
                epoch: 1,
                to: None,
                prev: Pos::START,
                entries,
                commit: 0,
            },
        );
        three.drain(); // stored and acknowledged
        let write = three.request(Need::Write, &model::write("mine"));
        let pos = Pos::new(1, 2);
        let answer = Answer::Served {
            body: "{}".into(),
            pos,
        };
        three.receive(
            2,
            PlaneMessage::Response {
                epoch: 1,
                id: write,
                answer,
            },
        );
        assert!(three.answers.iter().any(|(id, _)| *id == write));
        assert_eq!(three.reports.len(), 1, "the apply up to the write is asked");
        // The client's next read comes before the store reports the apply: it waits here.
        let sent_before = three.sent.len();
        let read = three.request(Need::Read { min: pos }, model::READ);
        assert_eq!(three.sent.len(), sent_before, "nothing goes up the tree");
        assert_eq!(three.reports.len(), 1, "no query before the apply is done");
        let went_up = |three: &Hand| {
            three.sent[sent_before..].iter().any(|(to, m)| {
                *to == 2 && matches!(m, PlaneMessage::Request { id, .. } if *id == read)
            })
        };
        let answer = |three: &Hand| {
            three
                .answers
                .iter()
                .find(|(id, _)| *id == read)
                .map(|(_, a)| a.clone())
        };
        match then {
            Then::Applied => {
                three.drain(); // applied, then the query
                assert!(!went_up(&three), "{:?}", three.sent);
                match answer(&three) {
                    Some(Answer::Served { body, pos: at }) => {
                        assert!(body.contains("mine"), "{body}");
                        assert!(at.seq >= pos.seq);
                    }
                    other => panic!("{other:?}"),
                }
            }
            Then::StoreFails => {
                three.reports.clear();
                three.input(PlaneInput::StoreFailed {
                    append: false,
                    restore: false,
                    reason: "disk full".into(),
                });
                assert!(went_up(&three), "{:?}", &three.sent[sent_before..]);
                assert_eq!(answer(&three), None);
            }
            Then::Silence => {
                three.reports.clear();
                three.input_at(TICK_MS / 2, PlaneInput::Tick);
                assert!(!went_up(&three), "a report may yet come within the tick");
                three.input_at(2 * TICK_MS, PlaneInput::Tick);
                assert!(went_up(&three), "{:?}", &three.sent[sent_before..]);
                assert_eq!(answer(&three), None);
            }
            Then::NewEpoch => {
                three.input(PlaneInput::EpochStarted { epoch: 2 });
                assert!(
                    matches!(answer(&three), Some(Answer::NotDone { .. })),
                    "{:?}",
                    answer(&three)
                );
                // The apply reported late serves nothing and sends nothing.
                three.drain();
                assert!(!went_up(&three));
                assert_eq!(
                    three.answers.iter().filter(|(id, _)| *id == read).count(),
                    1
                );
            }
        }
    }
}

/// A ready writer of a lab of three (children 2 and 3), its store's reports held.
fn ready_writer_of_three() -> Hand {
    let mut one = Hand::new(1, 3, Durability::Majority, ModelStore::new());
    let share = Share { nodes: 3, lab: 3 };
    one.placed(1, None, &[(2, 1), (3, 1)], vec![Role::Writer], share);
    one.drain(); // the epoch-start entry is durable here
    one.receive(
        2,
        PlaneMessage::Ack {
            epoch: 1,
            from: 2,
            seq: 1,
        },
    );
    one.drain(); // committed and applied: the writer is ready
    assert!(one.plane.ready_writer(), "{:#?}", one.notes);
    one.sent.clear();
    one
}

/// A writer whose store fails to append its own entry must never give that entry's position
/// to another one: its children may hold the first (it went down the tree with the append),
/// and log matching compares positions, so two entries at one (epoch, seq) would let a later
/// write be counted as held, and a client read another's write. The writer takes no more
/// writes in that epoch (a new election brings a writer whose log is whole); the write that
/// failed is answered "outcome unknown", as it may yet be kept.
#[test]
fn a_writer_whose_append_failed_never_reuses_the_position() {
    let mut one = ready_writer_of_three();
    let first = one.request(Need::Write, &model::write("first"));
    // The store fails that append (its report is replaced by the failure).
    one.reports.clear();
    one.input(PlaneInput::StoreFailed {
        append: true,
        restore: false,
        reason: "disk I/O error".into(),
    });
    let second = one.request(Need::Write, &model::write("second"));
    one.drain();
    // Every entry sent down the tree has one body per position.
    let mut bodies: BTreeMap<(Epoch, u64), String> = BTreeMap::new();
    for (_, message) in &one.sent {
        if let PlaneMessage::Append { entries, .. } = message {
            for e in entries {
                let body = bodies
                    .entry((e.epoch, e.seq))
                    .or_insert_with(|| e.body.clone());
                assert_eq!(*body, e.body, "two entries at ({}, {})", e.epoch, e.seq);
            }
        }
    }
    let answer = |id: RequestId| {
        one.answers
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, a)| a.clone())
    };
    assert!(
        matches!(answer(first), Some(Answer::Unknown { .. })),
        "{:?}",
        answer(first)
    );
    assert!(
        matches!(answer(second), Some(Answer::NotDone { ref reason }) if reason.contains("store")),
        "{:?}",
        answer(second)
    );
}

/// The entries of each `Append` sent to `child`, by their seqs.
fn appends_to(hand: &Hand, child: NodeId) -> Vec<Vec<u64>> {
    hand.sent
        .iter()
        .filter_map(|(to, m)| match m {
            PlaneMessage::Append { entries, .. } if *to == child => {
                Some(entries.iter().map(|e| e.seq).collect())
            }
            _ => None,
        })
        .collect()
}

/// Group commit: writes that come while the writer's log holds uncommitted entries go into
/// the log together once those commit, in one append and one `Append` per child; each is
/// answered only once it committed, with its own position.
#[test]
fn writes_that_come_before_the_last_commits_go_together_after_it() {
    let mut one = ready_writer_of_three();
    let a = one.request(Need::Write, &model::write("a"));
    assert_eq!(
        appends_to(&one, 2),
        vec![vec![2]],
        "alone, a write goes at once"
    );
    let b = one.request(Need::Write, &model::write("b"));
    let c = one.request(Need::Write, &model::write("c"));
    one.drain(); // a is durable at the writer: not yet at a majority of three
    assert_eq!(
        appends_to(&one, 2),
        vec![vec![2]],
        "nothing more goes before 2 commits"
    );
    let ack = |hand: &mut Hand, seq| {
        hand.receive(
            2,
            PlaneMessage::Ack {
                epoch: 1,
                from: 2,
                seq,
            },
        );
        hand.drain();
    };
    ack(&mut one, 2);
    assert_eq!(appends_to(&one, 2), vec![vec![2], vec![3, 4]]);
    assert_eq!(appends_to(&one, 3), vec![vec![2], vec![3, 4]]);
    let answered = |hand: &Hand, id: RequestId| hand.answers.iter().any(|(r, _)| *r == id);
    assert!(answered(&one, a));
    assert!(
        !answered(&one, b) && !answered(&one, c),
        "nothing answered before a majority holds it"
    );
    ack(&mut one, 4);
    one.assert_in_step();
    let seq = |id: RequestId| match one.answers.iter().find(|(r, _)| *r == id) {
        Some((_, Answer::Served { pos, .. })) => pos.seq,
        other => panic!("{other:?}: {:#?}", one.notes),
    };
    assert_eq!([seq(a), seq(b), seq(c)], [2, 3, 4]);
    assert_eq!(one.store.texts(), vec!["a", "b", "c"]);
}

/// A lab of one ships its log to no one: each write goes to the store at once, where the
/// store's own group commit takes every append queued while it syncs.
#[test]
fn a_writer_with_no_child_to_ship_to_batches_nothing() {
    let mut one = Hand::new(1, 1, Durability::Majority, ModelStore::new());
    let share = Share { nodes: 1, lab: 1 };
    one.placed(1, None, &[], vec![Role::Writer], share);
    one.drain();
    assert!(one.plane.ready_writer(), "{:#?}", one.notes);
    let a = one.request(Need::Write, &model::write("a"));
    let b = one.request(Need::Write, &model::write("b"));
    let appends = one
        .reports
        .iter()
        .filter(|r| matches!(r, PlaneInput::Stored { .. }))
        .count();
    assert_eq!(appends, 2, "both writes' appends asked before any report");
    one.drain();
    assert!([a, b]
        .iter()
        .all(|id| one.answers.iter().any(|(r, _)| r == id)));
    assert_eq!(one.store.texts(), vec!["a", "b"]);
}

/// A write waiting for the last entries to commit is in no log: an epoch change answers it "not done"
/// (503), while one that went into the log is "outcome unknown" (504); and a writer whose store
/// failed refuses those waiting.
#[test]
fn writes_waiting_for_the_last_commit_are_in_no_log() {
    let mut one = ready_writer_of_three();
    let sent = one.request(Need::Write, &model::write("sent"));
    let waiting = one.request(Need::Write, &model::write("waiting"));
    one.input(PlaneInput::EpochStarted { epoch: 2 });
    let answer = |hand: &Hand, id: RequestId| {
        hand.answers
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, a)| a.clone())
    };
    assert!(matches!(answer(&one, sent), Some(Answer::Unknown { .. })));
    assert!(matches!(
        answer(&one, waiting),
        Some(Answer::NotDone { .. })
    ));

    let mut one = ready_writer_of_three();
    let sent = one.request(Need::Write, &model::write("sent"));
    let waiting = one.request(Need::Write, &model::write("waiting"));
    one.reports.clear();
    one.input(PlaneInput::StoreFailed {
        append: true,
        restore: false,
        reason: "disk I/O error".into(),
    });
    assert!(matches!(answer(&one, sent), Some(Answer::Unknown { .. })));
    assert!(
        matches!(answer(&one, waiting), Some(Answer::NotDone { ref reason }) if reason.contains("could not store")),
        "{:?}",
        answer(&one, waiting)
    );
    assert_eq!(
        appends_to(&one, 2),
        vec![vec![2]],
        "the waiting write never went down"
    );
}

/// In a lab of one node a write's apply is asked for with its append, in the same turn (the
/// store can commit both at once); the write is answered only once the store reported both: the
/// append durable, then the apply. In a larger lab the apply waits for the commit.
#[test]
fn a_one_node_lab_asks_for_a_writes_append_and_apply_together() {
    for ids in [&[1][..], &[1, 2, 3][..]] {
        let mut net = Net::new(ids, Durability::Majority, vec![]);
        let parents: Vec<(NodeId, Option<NodeId>)> =
            ids.iter().map(|&id| (id, (id != 1).then_some(1))).collect();
        net.tree(1, &parents);
        let (plane, _) = net.nodes.get_mut(&1).unwrap();
        let id = plane.next_request();
        let mut out = Vec::new();
        plane.handle(
            0,
            PlaneInput::Request {
                id,
                need: Need::Write,
                key: None,
                body: model::write("x"),
            },
            &mut out,
        );
        let jobs: Vec<&StoreJob> = out
            .iter()
            .filter_map(|o| match o {
                PlaneOutput::Store(job) => Some(job),
                _ => None,
            })
            .collect();
        let answered = out.iter().any(|o| matches!(o, PlaneOutput::Answer { .. }));
        assert!(!answered, "nothing is answered before the store reports");
        match ids.len() {
            1 => assert!(
                matches!(
                    jobs[..],
                    [StoreJob::Append { .. }, StoreJob::Apply { up_to: 2 }]
                ),
                "{jobs:?}"
            ),
            _ => assert!(matches!(jobs[..], [StoreJob::Append { .. }]), "{jobs:?}"),
        }
        // The store carries the jobs out (the model store, in order); then the write is served,
        // once, at its entry.
        for output in out {
            match output {
                PlaneOutput::Store(job) => {
                    let report = net.nodes.get_mut(&1).unwrap().1.run(job);
                    net.input(1, report);
                }
                PlaneOutput::Send { to, message } => net.queue.push_back((1, to, message)),
                _ => {}
            }
        }
        net.run();
        assert_eq!(served(net.answer(id)).seq, 2, "{ids:?}");
        assert_eq!(net.texts(1), vec!["x"]);
    }
}

#[test]
fn with_replicas_durability_only_the_persistence_replicas_hold_the_log() {
    let mut net = Net::new(&[1, 2, 3, 4], Durability::Replicas, vec![]);
    net.tree(1, &[(1, None), (2, Some(1)), (3, Some(2)), (4, Some(1))]);
    let id = net.write(4, "x");
    net.run();
    served(net.answer(id));
    assert_eq!(
        net.texts(2),
        Vec::<String>::new(),
        "committed, not yet known at 2"
    );
    net.tick(3);
    assert_eq!(net.texts(2), vec!["x"]);
    assert!(net.nodes[&3].1.entries().is_empty(), "3 is no replica");
    assert!(
        net.nodes[&4].1.entries().is_empty(),
        "4 is a leaf child: input only"
    );
}

#[test]
fn with_replicas_a_writer_and_its_replica_lost_take_their_writes_with_them() {
    // SPEC §4: `replicas` may lose acknowledged writes. Line 1 — 2 — 3 — 4 — 5: "x" is
    // acknowledged once 1 and its replica 2 hold it.
    let line5 = [
        (1, None),
        (2, Some(1)),
        (3, Some(2)),
        (4, Some(3)),
        (5, Some(4)),
    ];
    let mut net = Net::new(&[1, 2, 3, 4, 5], Durability::Replicas, vec![]);
    net.tree(1, &line5);
    let x = net.write(5, "x");
    net.run();
    served(net.answer(x));
    net.tick(3);
    assert_eq!(net.texts(2), vec!["x"]);
    // 1 and 2 are cut off; 3, 4, 5 are a majority, and none of them holds "x".
    net.tree(2, &[(3, None), (4, Some(3)), (5, Some(4))]);
    let y = net.write(5, "y");
    net.run();
    served(net.answer(y));
    net.tick(3);
    // 1 and 2 come back. The most advanced log is the newer epoch's: 1, the writer again,
    // takes it whole, and 2 takes 1's state, since "x" is in no log of the majority.
    net.tree(3, &line5);
    net.tick(20);
    for id in [1, 2, 4] {
        assert_eq!(net.texts(id), vec!["y"], "node {id}: {:#?}", net.notes);
    }
    assert!(net.nodes[&1].0.ready_writer());
    assert!(
        net.notes
            .iter()
            .any(|n| n.starts_with("1: view change") && n.contains("may lose writes")),
        "{:#?}",
        net.notes
    );
}

#[test]
fn a_lost_announce_strands_no_node() {
    // Node 3's `Announce` is lost on a link cut for a moment (it is sent once per tree): the
    // writer knows no route to it. Its request still gets its answer (traffic up the tree
    // teaches the way back down), and so does its repair.
    let mut net = Net::new(&[1, 2, 3], Durability::Majority, vec![]);
    net.cut.insert((3, 2));
    net.tree(1, &LINE3);
    net.run();
    net.cut.clear();
    let id = net.write(3, "from 3");
    net.run();
    assert!(served(net.answer(id)).seq >= 2, "{:?}", net.notes);
    net.tick(20);
    assert_eq!(net.texts(3), vec!["from 3"]);
    assert_eq!(net.last(3), net.last(1));
    assert!(
        !net.notes.iter().any(|n| n.contains("no route")),
        "{:?}",
        net.notes
    );
}

/// One node driven by hand: its store runs each job when asked, as the simulator's does, and
/// holds the report until [`Hand::report`] delivers it, so a test chooses how the store's
/// reports and the messages interleave.
struct Hand {
    plane: DataPlane,
    store: ModelStore,
    reports: VecDeque<PlaneInput>,
    sent: Vec<(NodeId, PlaneMessage)>,
    answers: Vec<(RequestId, Answer)>,
    notes: Vec<String>,
}

impl Hand {
    fn new(id: NodeId, lab_size: u64, durability: Durability, store: ModelStore) -> Hand {
        let config = PlaneConfig {
            id,
            lab_size,
            durability,
            first_request: 0,
            shape: store.shape(),
            applied: store.applied(),
        };
        Hand {
            plane: DataPlane::new(config),
            store,
            reports: VecDeque::new(),
            sent: Vec::new(),
            answers: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn input(&mut self, input: PlaneInput) {
        self.input_at(0, input);
    }

    /// [`Hand::input`] at time `now` (the plane's clock only moves forward).
    fn input_at(&mut self, now: Millis, input: PlaneInput) {
        let mut out = Vec::new();
        self.plane.handle(now, input, &mut out);
        for output in out {
            match output {
                PlaneOutput::Send { to, message } => self.sent.push((to, message)),
                PlaneOutput::Store(job) => self.reports.push_back(self.store.run(job)),
                PlaneOutput::Answer { id, answer } => self.answers.push((id, answer)),
                PlaneOutput::Note(note) => self.notes.push(note),
            }
        }
    }

    fn receive(&mut self, from: NodeId, message: PlaneMessage) {
        self.input(PlaneInput::Message { from, message });
    }

    /// A request of this node's own HTTP layer; its id.
    fn request(&mut self, need: Need, body: &str) -> RequestId {
        let id = self.plane.next_request();
        self.input(PlaneInput::Request {
            id,
            need,
            key: None,
            body: body.to_string(),
        });
        id
    }

    /// Enter `epoch` and take this place in its tree (no best log reported).
    fn placed(
        &mut self,
        epoch: Epoch,
        parent: Option<NodeId>,
        children: &[(NodeId, u64)],
        roles: Vec<Role>,
        share: Share,
    ) {
        self.input(PlaneInput::EpochStarted { epoch });
        self.input(PlaneInput::Tree(Tree {
            epoch,
            parent,
            children: children.iter().copied().collect(),
            roles,
            share,
            best: None,
        }));
    }

    /// Deliver the store's oldest report.
    fn report(&mut self) {
        let report = self.reports.pop_front().expect("a report to deliver");
        self.input(report);
    }

    /// Deliver every report, and those they lead to.
    fn drain(&mut self) {
        while !self.reports.is_empty() {
            self.report();
        }
    }

    /// The plane and its store agree on the log.
    fn assert_in_step(&self) {
        assert_eq!(self.plane.shape(), &self.store.shape(), "{:#?}", self.notes);
    }
}

/// A store holding `texts` written in `epoch` after its epoch-start entry, all applied.
fn applied_store(epoch: Epoch, texts: &[&str]) -> ModelStore {
    let mut store = ModelStore::new();
    let bodies = std::iter::once(String::new()).chain(texts.iter().map(|t| model::write(t)));
    let entries: Vec<WireEntry> = bodies
        .enumerate()
        .map(|(i, body)| WireEntry {
            epoch,
            seq: i as u64 + 1,
            key: None,
            body,
        })
        .collect();
    let last = entries.len() as u64;
    store.run(StoreJob::Append { after: 0, entries });
    store.run(StoreJob::Apply { up_to: last });
    store
}

/// `store`'s applied state as a snapshot: its base and body.
fn snapshot_of(store: &mut ModelStore) -> (Pos, String) {
    match store.run(StoreJob::Snapshot {
        purpose: Purpose::Tail,
    }) {
        PlaneInput::Snapshotted { base, body, .. } => (base, body),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_second_copy_of_the_tail_snapshot_does_not_undo_the_view_change() {
    // kite8 after its partition heals, with `replicas` (SPEC §4): node 1, writer again in epoch
    // 3, holds epoch 1's log; node 4, writer of epoch 2 on the other side, holds the most
    // advanced one, which does not hold 1's applied entry: 1 takes 4's state whole, then its
    // tail, then appends its epoch-start entry. Node 4 answered the fetch twice (the fetch went
    // out twice), so a second copy of its snapshot comes in: before the first restore is
    // reported (order "live": the store slower than the network), or after it (order
    // "simulator"). Either way, the copy must not be restored over the epoch-start entry: the
    // plane would forget that entry while its store kept it, and wait forever for it to commit.
    let mut four = applied_store(2, &["y1", "y2", "y3", "y4"]);
    let (base, body) = snapshot_of(&mut four);
    assert_eq!(base, Pos::new(2, 5));
    let tail_snapshot = || PlaneMessage::TailSnapshot {
        epoch: 3,
        base,
        body: body.clone(),
    };
    let tail = PlaneMessage::Tail {
        epoch: 3,
        prev: base,
        entries: Vec::new(),
        more: false,
    };
    for live_order in [true, false] {
        let mut one = Hand::new(1, 8, Durability::Replicas, applied_store(1, &["x1", "x2"]));
        one.input(PlaneInput::EpochStarted { epoch: 3 });
        one.input(PlaneInput::Tree(Tree {
            epoch: 3,
            parent: None,
            // 2 a leaf (input), 3 the persistence replica with 4..8 below it.
            children: BTreeMap::from([(2, 1), (3, 6)]),
            roles: vec![Role::Writer],
            share: Share { nodes: 8, lab: 8 },
            best: Some(Best { pos: base, node: 4 }),
        }));
        assert!(
            one.sent
                .iter()
                .any(|(to, m)| *to == 3 && matches!(m, PlaneMessage::FetchLog { to: 4, .. })),
            "{:?}",
            one.sent
        );
        one.receive(3, tail_snapshot());
        if live_order {
            one.receive(3, tail_snapshot()); // the copy, while the first is restored
            one.report(); // restored: fetch the tail after the snapshot's base
        } else {
            one.report();
            one.receive(3, tail_snapshot()); // the copy, once the first is restored
        }
        one.receive(3, tail.clone());
        one.drain();
        let order = if live_order { "live" } else { "simulator" };
        assert_eq!(
            one.plane.last(),
            Pos::new(3, 6),
            "order {order}: the epoch-start entry follows 4's log: {:#?}",
            one.notes
        );
        one.assert_in_step();
        assert_eq!(
            one.notes
                .iter()
                .filter(|n| n.contains("epoch-start entry at 6"))
                .count(),
            1,
            "order {order}: {:#?}",
            one.notes
        );
        // The replica holds it: the epoch-start entry commits, and the writer is ready.
        one.receive(
            3,
            PlaneMessage::Ack {
                epoch: 3,
                from: 3,
                seq: 6,
            },
        );
        one.drain();
        assert!(one.plane.ready_writer(), "order {order}: {:#?}", one.notes);
        assert_eq!(one.store.texts(), four.texts(), "order {order}");
    }
}

#[test]
fn a_node_made_writer_while_it_restores_a_snapshot_starts_its_epoch_after_it() {
    // Node 2, a replica of epoch 1, was sent the writer's state (a repair) and its store is
    // restoring it when epoch 2 makes node 2 the writer. Its view change must wait for the
    // restore: the epoch-start entry goes after the restored log, not after the one the store
    // is replacing (the store would refuse to discard the applied entries, or the plane would
    // forget the entry when the restore is reported).
    let mut one = applied_store(1, &["a", "b"]);
    let (base, body) = snapshot_of(&mut one);
    let mut two = Hand::new(2, 3, Durability::Writer, ModelStore::new());
    two.placed(1, Some(1), &[], vec![Role::Persistence], Share::default());
    let snapshot = PlaneMessage::Snapshot {
        epoch: 1,
        to: 2,
        base,
        body,
    };
    two.receive(1, snapshot.clone());
    two.receive(1, snapshot); // a repair sent again: one restore at a time
    assert_eq!(two.reports.len(), 1, "one restore: {:#?}", two.notes);
    two.input(PlaneInput::EpochStarted { epoch: 2 });
    two.input(PlaneInput::Tree(Tree {
        epoch: 2,
        parent: None,
        children: BTreeMap::from([(3, 1)]),
        roles: vec![Role::Writer],
        share: Share { nodes: 2, lab: 3 },
        best: Some(Best {
            pos: Pos::START,
            node: 2,
        }),
    }));
    assert!(
        two.notes
            .iter()
            .any(|n| n.contains("waiting for the store")),
        "{:#?}",
        two.notes
    );
    two.drain();
    assert_eq!(two.plane.last(), Pos::new(2, 4), "{:#?}", two.notes);
    two.assert_in_step();
    assert!(two.plane.ready_writer(), "{:#?}", two.notes);
    assert_eq!(two.store.texts(), ["a", "b"]);
}
