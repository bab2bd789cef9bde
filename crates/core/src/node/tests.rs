//! One test per rule of the node: plain epochs first, then re-election on live nodes, each driven
//! by hand with explicit times.

use std::collections::VecDeque;

use super::*;
use crate::message::Vote;

fn sends(out: &[Output]) -> Vec<(NodeId, Body)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, message } => Some((*to, message.body.clone())),
            _ => None,
        })
        .collect()
}

fn epochs_sent(out: &[Output]) -> Vec<Epoch> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { message, .. } => Some(message.epoch),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn started_epochs(out: &[Output]) -> Vec<Epoch> {
    events(out)
        .into_iter()
        .filter_map(|e| match e {
            Event::EpochStarted { epoch } => Some(epoch),
            _ => None,
        })
        .collect()
}

fn receive(node: &mut Node, from: NodeId, epoch: Epoch, body: Body) -> Vec<Output> {
    feed(
        node,
        0,
        Input::Receive {
            from,
            message: Message { epoch, body },
        },
    )
}

fn feed(node: &mut Node, now: Millis, input: Input) -> Vec<Output> {
    let mut out = Vec::new();
    node.handle(now, input, &mut out);
    out
}

const TIMING: Timing = Timing {
    heartbeat_ms: 100,
    suspicion_ms: 1000,
};

/// A live node of a lab of `lab_size`, restarted from `persisted`.
fn live(id: NodeId, neighbors: &[NodeId], lab_size: u64, persisted: Epoch) -> Node {
    let config = LiveConfig {
        timing: TIMING,
        lab_size,
        incarnation: 1,
        persisted_epoch: persisted,
    };
    Node::live(id, neighbors.iter().copied(), config, 0)
}

/// Hear from every neighbour in `from` at `now`.
fn hear(node: &mut Node, now: Millis, from: &[NodeId]) -> Vec<Output> {
    let mut out = Vec::new();
    for &n in from {
        node.handle(now, Input::Heard { from: n }, &mut out);
    }
    out
}

fn message(node: &mut Node, now: Millis, from: NodeId, epoch: Epoch, body: Body) -> Vec<Output> {
    feed(
        node,
        now,
        Input::Receive {
            from,
            message: Message { epoch, body },
        },
    )
}

// ---------------------------------------------------------------- plain nodes (`labctl sim`)

#[test]
fn one_node_is_writer_and_input_at_once() {
    let mut node = Node::new(4, []);
    let out = feed(&mut node, 0, Input::Start { epoch: 1 });
    let status = node.status();
    assert_eq!(status.leader, Some(4));
    assert_eq!(status.subtree, Some(1));
    assert_eq!(status.roles, vec![Role::Writer, Role::Input]);
    assert!(sends(&out).is_empty());
}

#[test]
fn a_newer_epoch_joins_that_election() {
    let mut node = Node::new(2, [1]);
    feed(&mut node, 0, Input::Start { epoch: 1 });
    let out = receive(&mut node, 1, 3, Body::Setup { id: 1 });
    assert_eq!(node.status().epoch, 3);
    assert_eq!(
        sends(&out),
        vec![(1, Body::Setup { id: 2 })],
        "setup again, for epoch 3"
    );
    assert_eq!(node.status().counters.setup, 1, "counters are per epoch");
}

#[test]
fn an_older_epoch_is_ignored() {
    let mut node = Node::new(2, [1]);
    feed(&mut node, 0, Input::Start { epoch: 2 });
    let before = node.status();
    let out = receive(&mut node, 1, 1, Body::Setup { id: 1 });
    assert!(sends(&out).is_empty());
    assert!(matches!(
        &out[..],
        [Output::Event(Event::Dropped { from: 1, .. })]
    ));
    assert_eq!(node.status().election, before.election);
    assert_eq!(node.status().counters.dropped, 1);
}

#[test]
fn a_stranger_is_ignored() {
    let mut node = Node::new(2, [1]);
    let out = receive(&mut node, 9, 1, Body::Setup { id: 9 });
    assert!(sends(&out).is_empty());
    assert_eq!(
        node.status().epoch,
        0,
        "a stranger cannot start an election"
    );
}

/// Carry every message between `nodes` (FIFO per link, one at a time) until none is left.
fn drain(nodes: &mut [Node], first: Vec<(usize, Vec<Output>)>) {
    // A node not in `nodes` is down: what is sent to it is lost.
    let index = |id: NodeId, nodes: &[Node]| nodes.iter().position(|n| n.id() == id);
    let mut queue: VecDeque<(usize, NodeId, Message)> = VecDeque::new();
    let enqueue = |from: NodeId, out: Vec<Output>, nodes: &[Node], queue: &mut VecDeque<_>| {
        for o in out {
            if let Output::Send { to, message } = o {
                if let Some(to) = index(to, nodes) {
                    queue.push_back((to, from, message));
                }
            }
        }
    };
    for (i, out) in first {
        let id = nodes[i].id();
        enqueue(id, out, nodes, &mut queue);
    }
    while let Some((to, from, message)) = queue.pop_front() {
        let out = feed(&mut nodes[to], 0, Input::Receive { from, message });
        let id = nodes[to].id();
        enqueue(id, out, nodes, &mut queue);
    }
}

#[test]
fn two_nodes_elect_the_smaller_and_build_the_tree() {
    let mut nodes = [Node::new(1, [2]), Node::new(2, [1])];
    let first = (0..2)
        .map(|i| (i, feed(&mut nodes[i], 0, Input::Start { epoch: 1 })))
        .collect();
    drain(&mut nodes, first);
    let (one, two) = (nodes[0].status(), nodes[1].status());
    assert_eq!(one.election, Phase::Leader);
    assert_eq!((one.leader, two.leader), (Some(1), Some(1)));
    assert_eq!(two.parent, Some(1));
    assert_eq!(one.roles, vec![Role::Writer]);
    assert_eq!(two.roles, vec![Role::Input]);
    // Setup 2, one iteration of 2, SHOUT+ 2: every count exact.
    assert_eq!(one.counters.election() + two.counters.election(), 4);
    assert_eq!(one.counters.tree() + two.counters.tree(), 2);
}

#[test]
fn the_root_learns_the_most_advanced_log_of_its_tree() {
    // A line 1 - 2 - 3: node 3, farthest from the root, holds the most advanced log.
    let mut nodes = [Node::new(1, [2]), Node::new(2, [1, 3]), Node::new(3, [2])];
    for (node, pos) in nodes
        .iter_mut()
        .zip([Pos::new(2, 7), Pos::new(2, 9), Pos::new(3, 4)])
    {
        node.set_log_position(pos);
    }
    let first = (0..3)
        .map(|i| (i, feed(&mut nodes[i], 0, Input::Start { epoch: 4 })))
        .collect();
    drain(&mut nodes, first);
    let best = nodes[0].best_log().expect("the root's tree is complete");
    assert_eq!(
        (best.node, best.pos),
        (3, Pos::new(3, 4)),
        "a newer epoch beats a longer log"
    );
    // A node with no log reports none: the convergecast is unchanged for a bare election.
    let mut bare = [Node::new(1, [2]), Node::new(2, [1])];
    let first = (0..2)
        .map(|i| (i, feed(&mut bare[i], 0, Input::Start { epoch: 1 })))
        .collect();
    drain(&mut bare, first);
    assert_eq!(bare[0].best_log(), None);
}

// ---------------------------------------------------------------- live nodes: re-election

#[test]
fn a_live_node_starts_once_it_has_heard_every_neighbour() {
    let mut node = live(2, &[1, 3], 3, 0);
    let out = hear(&mut node, 5, &[1]);
    assert!(started_epochs(&out).is_empty(), "3 not heard yet");
    let out = hear(&mut node, 6, &[3]);
    assert_eq!(started_epochs(&out), vec![1]);
    assert_eq!(
        sends(&out),
        vec![(1, Body::Setup { id: 2 }), (3, Body::Setup { id: 2 })]
    );
}

#[test]
fn a_live_node_whose_neighbour_never_answers_starts_without_it_after_the_grace() {
    let mut node = live(2, &[1, 3], 3, 0);
    hear(&mut node, 5, &[1]);
    let grace = TIMING.join_grace_ms();
    hear(&mut node, grace - 100, &[1]);
    let out = feed(&mut node, grace, Input::Tick);
    assert_eq!(started_epochs(&out), vec![1]);
    assert_eq!(
        sends(&out),
        vec![(1, Body::Setup { id: 2 })],
        "3 is suspected"
    );
}

#[test]
fn an_epoch_is_durable_before_anything_is_sent_in_it() {
    let mut node = live(2, &[1, 3], 3, 0);
    let out = hear(&mut node, 0, &[1, 3]);
    let persist = out
        .iter()
        .position(|o| *o == Output::Persist { epoch: 1 })
        .expect("epoch 1 persisted");
    let first_send = out
        .iter()
        .position(|o| matches!(o, Output::Send { .. }))
        .expect("setups sent");
    assert!(persist < first_send, "{out:?}");
    // Joining a newer epoch persists it first too.
    let out = message(&mut node, 10, 1, 4, Body::Setup { id: 1 });
    let persist = out
        .iter()
        .position(|o| *o == Output::Persist { epoch: 4 })
        .unwrap();
    assert!(out[..persist]
        .iter()
        .all(|o| !matches!(o, Output::Send { .. })));
}

#[test]
fn suspicion_starts_an_epoch() {
    let mut node = live(2, &[1, 3], 3, 0);
    hear(&mut node, 0, &[1, 3]);
    message(&mut node, 1, 1, 1, Body::Setup { id: 1 });
    message(&mut node, 1, 3, 1, Body::Setup { id: 3 });
    assert_eq!(node.status().members, vec![1, 3]);
    // 3 keeps talking; 1 falls silent.
    for t in (100..=1000).step_by(100) {
        hear(&mut node, t, &[3]);
    }
    // 1 was last heard at 1 ms: suspected once silent for more than 1000 ms.
    let out = feed(&mut node, 1001, Input::Tick);
    assert!(events(&out).is_empty(), "{out:?}");
    let out = feed(&mut node, 1002, Input::Tick);
    assert!(events(&out).contains(&Event::Suspected { neighbor: 1 }));
    assert!(
        started_epochs(&out).is_empty(),
        "a burst of failures settles first"
    );
    let out = feed(&mut node, 1002 + TIMING.settle_ms(), Input::Tick);
    assert_eq!(started_epochs(&out), vec![2]);
    assert_eq!(
        sends(&out),
        vec![(3, Body::Setup { id: 2 })],
        "the suspected link is not invited"
    );
    assert_eq!(node.status().suspected, vec![1]);
}

#[test]
fn a_newer_epoch_is_joined() {
    let mut node = live(2, &[1, 3], 3, 0);
    hear(&mut node, 0, &[1, 3]);
    let out = message(&mut node, 5, 3, 6, Body::Setup { id: 3 });
    assert_eq!(started_epochs(&out), vec![6]);
    assert_eq!(epochs_sent(&out), vec![6, 6]);
    assert_eq!(node.epoch(), 6);
    message(&mut node, 6, 1, 6, Body::Setup { id: 1 });
    // And the next epoch this node starts itself goes above it.
    for t in (100..=1000).step_by(100) {
        hear(&mut node, t, &[3]);
    }
    // 1, last heard at 6 ms, is suspected at 1007; the new epoch starts one settle time later.
    feed(&mut node, 1007, Input::Tick);
    let out = feed(&mut node, 1007 + TIMING.settle_ms(), Input::Tick);
    assert_eq!(started_epochs(&out), vec![7]);
}

#[test]
fn a_silent_neighbour_is_left_out() {
    // 3 is alive (it heartbeats) but sits in another epoch: its setup never comes.
    let mut node = live(5, &[2, 9], 3, 0);
    hear(&mut node, 0, &[2, 9]);
    message(&mut node, 1, 2, 1, Body::Setup { id: 2 });
    for t in (100..=900).step_by(100) {
        hear(&mut node, t, &[2, 9]);
    }
    assert_eq!(node.status().election, Phase::Setup, "waiting for 9");
    let out = feed(&mut node, TIMING.setup_timeout_ms(), Input::Tick);
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::LeftOut { neighbor: 9, .. })));
    // The election goes on without 9: 5 is a sink under 2.
    assert_eq!(node.status().members, vec![2]);
    assert_eq!(node.status().election, Phase::Collecting);
    // 9 is alive all the same: after its hold, a new epoch takes it in.
    let out = feed(
        &mut node,
        TIMING.setup_timeout_ms() + TIMING.settle_ms(),
        Input::Tick,
    );
    assert_eq!(started_epochs(&out), vec![2]);
    assert_eq!(
        sends(&out),
        vec![(2, Body::Setup { id: 5 }), (9, Body::Setup { id: 5 })]
    );
}

#[test]
fn a_neighbour_that_fails_during_setup_is_left_out_without_a_new_epoch() {
    let mut node = live(5, &[2, 9], 3, 0);
    hear(&mut node, 0, &[2, 9]);
    message(&mut node, 1, 2, 1, Body::Setup { id: 2 });
    // 2 keeps talking, 9 dies before its setup went out.
    for t in (100..=900).step_by(100) {
        hear(&mut node, t, &[2]);
    }
    let out = feed(&mut node, 1001, Input::Tick);
    let seen = events(&out);
    assert!(seen.contains(&Event::Suspected { neighbor: 9 }));
    assert!(seen
        .iter()
        .any(|e| matches!(e, Event::LeftOut { neighbor: 9, .. })));
    assert!(
        !seen.iter().any(|e| matches!(e, Event::EpochWanted { .. })),
        "it never took part: nothing to redo"
    );
    assert_eq!(node.status().election, Phase::Collecting);
}

#[test]
fn a_message_on_a_link_outside_the_election_wants_another_epoch() {
    let mut node = live(5, &[2, 9], 3, 0);
    hear(&mut node, 0, &[2, 9]);
    message(&mut node, 1, 2, 1, Body::Setup { id: 2 });
    // The node ticks every heartbeat (a second without a tick would mean it was frozen).
    for t in (100..TIMING.setup_timeout_ms()).step_by(100) {
        feed(&mut node, t, Input::Tick);
    }
    feed(&mut node, TIMING.setup_timeout_ms(), Input::Tick); // 9 left out
    let start = TIMING.setup_timeout_ms() + 1;
    let out = message(&mut node, start, 9, 1, Body::Setup { id: 9 });
    let seen = events(&out);
    assert!(seen
        .iter()
        .any(|e| matches!(e, Event::Dropped { from: 9, .. })));
    assert!(seen.iter().any(|e| matches!(e, Event::EpochWanted { .. })));
}

/// A live node whose neighbours answer it at once while they are alive, stepped through time.
/// The node has the smallest id: the neighbours answer its setup with theirs, its YO- value with
/// YES and a prune, its Q with a Yes, so each of its elections ends with it as the root.
struct Stepper {
    node: Node,
    now: Millis,
    /// (time, epoch, links taken in) of every epoch the node started.
    epochs: Vec<(Millis, Epoch, Vec<NodeId>)>,
}

impl Stepper {
    fn new(node: Node) -> Self {
        Stepper {
            node,
            now: 0,
            epochs: Vec::new(),
        }
    }

    /// `dt` ms later, hear from `alive` (who also answer whatever they are sent).
    fn step(&mut self, dt: Millis, alive: &[NodeId]) {
        self.now += dt;
        let mut out = hear(&mut self.node, self.now, alive);
        out.extend(feed(&mut self.node, self.now, Input::Tick));
        let mut queue: VecDeque<Output> = out.into();
        while let Some(output) = queue.pop_front() {
            let (to, message) = match output {
                Output::Event(Event::EpochStarted { epoch }) => {
                    let members = self.node.status().members;
                    self.epochs.push((self.now, epoch, members));
                    continue;
                }
                Output::Send { to, message } if alive.contains(&to) => (to, message),
                _ => continue,
            };
            let reply = match message.body {
                Body::Setup { .. } => Body::Setup { id: to },
                Body::YoDown { iteration, .. } => Body::YoUp {
                    iteration,
                    vote: Vote::Yes,
                    prune: true,
                },
                Body::Q { .. } => Body::Yes {
                    size: 1,
                    best: None,
                },
                _ => continue,
            };
            queue.extend(message_now(
                &mut self.node,
                self.now,
                to,
                message.epoch,
                reply,
            ));
        }
    }
}

fn message_now(
    node: &mut Node,
    now: Millis,
    from: NodeId,
    epoch: Epoch,
    body: Body,
) -> Vec<Output> {
    message(node, now, from, epoch, body)
}

#[test]
fn a_flapping_link_backs_off() {
    // Node 1's link to 3 fails and comes back over and over; its link to 2 is steady. Each time
    // the link comes back, the wait before the epoch that takes it in doubles.
    let mut s = Stepper::new(live(1, &[2, 3], 3, 0));
    s.step(0, &[2, 3]);
    let mut waits = Vec::new();
    for _ in 0..5 {
        // Down: only 2 heard for 1.2 s (3 is suspected, and an epoch goes on without it).
        for _ in 0..12 {
            s.step(100, &[2]);
        }
        let before = s.epochs.len();
        // Up again: 3 is heard every 10 ms; time the epoch that takes it in.
        let back = s.now + 10;
        for _ in 0..300 {
            s.step(10, &[2, 3]);
            if s.epochs.len() > before {
                break;
            }
        }
        let (at, _, members) = s.epochs.last().unwrap().clone();
        assert_eq!(members, vec![2, 3], "{:?}", s.epochs);
        waits.push(at - back);
    }
    assert_eq!(waits, vec![100, 200, 400, 800, 1600]);
}

#[test]
fn a_flapping_link_that_fails_again_while_held_costs_no_epoch() {
    let mut s = Stepper::new(live(1, &[2, 3], 3, 0));
    s.step(0, &[2, 3]);
    // 3 answers for 50 ms at a time, then falls silent for 1.2 s, again and again.
    let flap = |s: &mut Stepper| {
        for _ in 0..12 {
            s.step(100, &[2]);
        }
        for _ in 0..5 {
            s.step(10, &[2, 3]);
        }
    };
    // While the penalty builds up (holds of 100, 200, 400, 800 ms end before the link is
    // suspected again), a few epochs take the link in.
    for _ in 0..5 {
        flap(&mut s);
    }
    let building = s.epochs.len();
    assert!(building <= 8, "{:?}", s.epochs);
    // Now its hold outlasts its short lives: the link stays out and costs nothing.
    for _ in 0..4 {
        flap(&mut s);
    }
    assert_eq!(s.epochs.len(), building, "{:?}", s.epochs);
}

#[test]
fn lost_messages_reset_the_link() {
    let mut node = live(2, &[1, 3], 3, 0);
    let beat = |sent| Beat {
        incarnation: 9,
        sent,
    };
    feed(
        &mut node,
        0,
        Input::Heartbeat {
            from: 1,
            beat: beat(0),
        },
    );
    hear(&mut node, 0, &[3]);
    message(&mut node, 1, 1, 1, Body::Setup { id: 1 });
    let out = feed(
        &mut node,
        100,
        Input::Heartbeat {
            from: 1,
            beat: beat(1),
        },
    );
    assert!(events(&out).is_empty(), "1 sent 1, 1 arrived");
    let out = feed(
        &mut node,
        200,
        Input::Heartbeat {
            from: 1,
            beat: beat(3),
        },
    );
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::LinkReset { neighbor: 1, .. })));
    hear(&mut node, 250, &[3]);
    let out = feed(&mut node, 200 + TIMING.settle_ms(), Input::Tick);
    assert_eq!(started_epochs(&out), vec![2]);
}

#[test]
fn a_node_that_was_frozen_does_not_blame_its_neighbours() {
    let mut node = live(2, &[1, 3], 3, 0);
    hear(&mut node, 0, &[1, 3]);
    // Paused for 5 s: the next input is the first the node handles.
    let out = feed(&mut node, 5000, Input::Tick);
    let seen = events(&out);
    assert!(seen.contains(&Event::Stalled { ms: 5000 }));
    assert!(!seen.iter().any(|e| matches!(e, Event::Suspected { .. })));
    assert!(started_epochs(&out).is_empty());
}

#[test]
fn a_minority_root_takes_leader() {
    // Alone in a lab of 3: the root of a one-node tree without a quorum.
    let mut alone = live(4, &[], 3, 0);
    feed(&mut alone, 0, Input::Tick);
    assert_eq!(alone.status().roles, vec![Role::Leader, Role::Input]);
    // Alone in a lab of 1: a quorum of one.
    let mut solo = live(4, &[], 1, 0);
    feed(&mut solo, 0, Input::Tick);
    assert_eq!(solo.status().roles, vec![Role::Writer, Role::Input]);
}

#[test]
fn the_root_of_a_majority_takes_writer() {
    // Two of a lab of 3, 3 never came up: 1 and 2 elect 1, whose tree spans 2 > 3/2.
    let roots = |lab_size| {
        let mut nodes = [live(1, &[2, 3], lab_size, 0), live(2, &[1], lab_size, 0)];
        let first = vec![
            (0, hear(&mut nodes[0], 0, &[2])),
            (1, hear(&mut nodes[1], 0, &[1])),
        ];
        // 2 starts epoch 1, 1 joins it and waits for 3's setup…
        drain(&mut nodes, first);
        assert_eq!(nodes[0].status().election, Phase::Setup);
        // …until the setup timeout leaves 3 out (both tick every heartbeat meanwhile).
        for t in (100..TIMING.setup_timeout_ms()).step_by(100) {
            for node in &mut nodes {
                feed(node, t, Input::Tick);
            }
        }
        let t = TIMING.setup_timeout_ms();
        let next = vec![
            (0, feed(&mut nodes[0], t, Input::Tick)),
            (1, feed(&mut nodes[1], t, Input::Tick)),
        ];
        drain(&mut nodes, next);
        (nodes[0].status().roles, nodes[1].status().roles)
    };
    assert_eq!(roots(3), (vec![Role::Writer], vec![Role::Input]));
    assert_eq!(
        roots(4),
        (vec![Role::Leader], vec![Role::Input]),
        "2 of 4 is no majority"
    );
}

#[test]
fn a_restarted_node_starts_above_its_persisted_epoch() {
    let mut node = live(2, &[1, 3], 3, 7);
    assert_eq!(node.epoch(), 7);
    // Its neighbours still speak epoch 7, which this incarnation knows nothing of.
    let out = message(
        &mut node,
        0,
        1,
        7,
        Body::YoDown {
            iteration: 1,
            value: 1,
        },
    );
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::Dropped { from: 1, .. })));
    let out = hear(&mut node, 1, &[3]);
    assert_eq!(started_epochs(&out), vec![8]);
    assert!(out.contains(&Output::Persist { epoch: 8 }));
    assert_eq!(epochs_sent(&out), vec![8, 8]);
}

#[test]
fn a_restarted_node_joins_a_newer_epoch_at_once() {
    let mut node = live(2, &[1, 3], 3, 7);
    let out = message(&mut node, 0, 1, 9, Body::Setup { id: 1 });
    assert_eq!(started_epochs(&out), vec![9]);
}

#[test]
fn votes_of_a_live_election_are_the_plain_ones() {
    // A live node runs the very same Yo-Yo: 5 between 2 and 9 forwards 2 and answers YES up.
    let mut node = live(5, &[2, 9], 3, 0);
    hear(&mut node, 0, &[2, 9]);
    message(&mut node, 1, 2, 1, Body::Setup { id: 2 });
    message(&mut node, 1, 9, 1, Body::Setup { id: 9 });
    let out = message(
        &mut node,
        2,
        2,
        1,
        Body::YoDown {
            iteration: 1,
            value: 2,
        },
    );
    assert_eq!(
        sends(&out),
        vec![(
            9,
            Body::YoDown {
                iteration: 1,
                value: 2
            }
        )]
    );
    let out = message(
        &mut node,
        3,
        9,
        1,
        Body::YoUp {
            iteration: 1,
            vote: Vote::Yes,
            prune: true,
        },
    );
    assert_eq!(
        sends(&out),
        vec![(
            2,
            Body::YoUp {
                iteration: 1,
                vote: Vote::Yes,
                prune: true
            }
        )]
    );
}

#[test]
fn a_live_node_always_asks_to_be_woken() {
    let mut node = live(2, &[1, 3], 3, 0);
    let out = feed(&mut node, 0, Input::Tick);
    let beats = out
        .iter()
        .filter(|o| matches!(o, Output::Heartbeat { .. }))
        .count();
    assert_eq!(beats, 2, "the first heartbeats go at once");
    assert_eq!(out.last(), Some(&Output::Wake { at: 100 }));
    let out = feed(&mut node, 50, Input::Tick);
    assert!(out.iter().all(|o| !matches!(o, Output::Heartbeat { .. })));
    assert_eq!(out.last(), Some(&Output::Wake { at: 100 }));
}

#[test]
fn an_election_that_never_ends_is_given_up_by_the_watchdog() {
    // 9's setup comes, then nothing: 5 waits for a YO- value that never arrives.
    let mut node = live(5, &[2, 9], 3, 0);
    hear(&mut node, 0, &[2, 9]);
    message(&mut node, 1, 2, 1, Body::Setup { id: 2 });
    message(&mut node, 1, 9, 1, Body::Setup { id: 9 });
    let mut started = Vec::new();
    for t in (100..=16_000).step_by(100) {
        let out = hear(&mut node, t, &[2, 9]);
        for epoch in started_epochs(&out) {
            started.push((t, epoch));
            // Both answer the new epoch's setup; again no YO- value follows.
            message(&mut node, t, 2, epoch, Body::Setup { id: 2 });
            message(&mut node, t, 9, epoch, Body::Setup { id: 9 });
        }
    }
    // Given up after 5 s, then after 10 s more: the watchdog doubles.
    assert_eq!(started, vec![(5000, 2), (15_000, 3)]);
}

#[test]
fn a_live_link_outside_the_election_is_taken_in_after_its_hold() {
    // 9 never spoke before the setup timeout (so it was left out, not held); then it does.
    let mut node = live(5, &[2, 9], 3, 0);
    hear(&mut node, 0, &[2]);
    message(&mut node, 1, 2, 1, Body::Setup { id: 2 });
    for t in (100..=900).step_by(100) {
        hear(&mut node, t, &[2]);
    }
    // It joined epoch 1 with 2's setup at 1 ms: the setup timeout ends at 1001.
    hear(&mut node, 1001, &[2]);
    assert_eq!(node.status().members, vec![2], "9 left out");
    let out = hear(&mut node, 1100, &[2, 9]);
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, Event::LinkReset { neighbor: 9, .. })));
    let out = feed(&mut node, 1100 + TIMING.settle_ms(), Input::Tick);
    assert_eq!(started_epochs(&out), vec![2]);
    assert_eq!(node.status().members, vec![2, 9]);
}
