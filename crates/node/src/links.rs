//! The node's links to its topology neighbours: handshake and ordered delivery.
//!
//! Pure bookkeeping, tested without sockets. (Liveness, suspicion and re-election are the
//! protocol core's: `labctl_core::liveness`.)
//!
//! - **Handshake.** A link is *up* once any frame from the neighbour has arrived: that proves the
//!   ZeroMQ connection exists and the neighbour's identity is routable from here.
//! - **Nothing is dropped.** Control frames for a link that is not up wait in that link's queue,
//!   numbered, and leave in order once it is (SPEC §8: the original silently dropped messages to
//!   peers not yet connected). A frame the transport could not route comes back and is queued again
//!   by its number, so the link stays FIFO.

use std::collections::BTreeMap;

use labctl_core::NodeId;

/// One link's state.
#[derive(Debug)]
struct Link {
    /// Frames may be sent directly.
    up: bool,
    /// Number of the next control frame on this link.
    next_seq: u64,
    /// Control frames waiting for the link, by number.
    pending: BTreeMap<u64, Vec<u8>>,
}

/// What to do with one outgoing control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Hand it to the transport now, with this number.
    Send(u64),
    /// Queued until the link is up.
    Queued,
}

/// Every link of one node.
#[derive(Debug)]
pub struct Links {
    links: BTreeMap<NodeId, Link>,
}

impl Links {
    /// Links to `neighbors`, all down.
    pub fn new(neighbors: impl IntoIterator<Item = NodeId>) -> Self {
        let links = neighbors
            .into_iter()
            .map(|id| {
                let link = Link {
                    up: false,
                    next_seq: 1,
                    pending: BTreeMap::new(),
                };
                (id, link)
            })
            .collect();
        Links { links }
    }

    /// Whether `peer` is a neighbour.
    pub fn contains(&self, peer: NodeId) -> bool {
        self.links.contains_key(&peer)
    }

    /// The neighbours.
    pub fn neighbors(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.links.keys().copied()
    }

    /// A frame arrived from `peer`. Returns the queued frames to send now, in order, if this
    /// brought the link up.
    pub fn heard(&mut self, peer: NodeId) -> Option<Vec<(u64, Vec<u8>)>> {
        let link = self.links.get_mut(&peer)?;
        if link.up {
            return None;
        }
        link.up = true;
        Some(std::mem::take(&mut link.pending).into_iter().collect())
    }

    /// Number an outgoing control frame for `peer`, and say whether it can go now.
    pub fn route(&mut self, peer: NodeId, frame: Vec<u8>) -> (Route, Option<Vec<u8>>) {
        let link = self
            .links
            .get_mut(&peer)
            .expect("the core only sends to neighbours");
        let seq = link.next_seq;
        link.next_seq += 1;
        if link.up {
            (Route::Send(seq), Some(frame))
        } else {
            link.pending.insert(seq, frame);
            (Route::Queued, None)
        }
    }

    /// The transport could not deliver frame `seq` to `peer`: the link is down until the neighbour
    /// is heard from again, and the frame waits in its place.
    pub fn unroutable(&mut self, peer: NodeId, seq: u64, frame: Vec<u8>) {
        if let Some(link) = self.links.get_mut(&peer) {
            link.up = false;
            link.pending.insert(seq, frame);
        }
    }

    /// Links up so far.
    pub fn up_count(&self) -> usize {
        self.links.values().filter(|l| l.up).count()
    }

    /// Election (control) frames waiting for the link to `peer`, not on the wire yet: a
    /// heartbeat counts what went before it, so these are not counted yet.
    pub fn pending_on(&self, peer: NodeId) -> u64 {
        self.links.get(&peer).map_or(0, |l| {
            l.pending
                .values()
                .filter(|f| crate::frame::Frame::is_control(f))
                .count() as u64
        })
    }

    /// Control frames waiting, over all links.
    pub fn pending(&self) -> usize {
        self.links.values().map(|l| l.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_for_a_link_not_up_wait_and_leave_in_order() {
        let mut links = Links::new([2, 3]);
        assert_eq!(links.route(2, b"a".to_vec()), (Route::Queued, None));
        assert_eq!(links.route(2, b"b".to_vec()), (Route::Queued, None));
        assert_eq!(links.pending(), 2);
        assert_eq!(links.pending_on(2), 0, "neither is an election frame");
        let flushed = links.heard(2).unwrap();
        assert_eq!(flushed, vec![(1, b"a".to_vec()), (2, b"b".to_vec())]);
        assert_eq!(
            links.route(2, b"c".to_vec()),
            (Route::Send(3), Some(b"c".to_vec()))
        );
        assert!(links.heard(2).is_none(), "already up: nothing to flush");
    }

    #[test]
    fn heartbeats_count_only_the_election_frames_still_waiting() {
        use crate::frame::Frame;
        use labctl_core::{Body, Message};
        let mut links = Links::new([2]);
        let control = Frame::Control {
            message: Message {
                epoch: 1,
                body: Body::Setup { id: 1 },
            },
        };
        links.route(2, control.encode());
        links.route(2, br#"{"frame":"data","message":{}}"#.to_vec());
        links.route(2, control.encode());
        assert_eq!(links.pending_on(2), 2);
        links.heard(2);
        assert_eq!(links.pending_on(2), 0, "all gone out");
    }

    #[test]
    fn links_come_up_as_their_neighbours_are_heard() {
        let mut links = Links::new([2, 3]);
        assert_eq!(links.up_count(), 0);
        links.heard(2);
        assert_eq!(links.up_count(), 1);
        links.heard(3);
        assert_eq!(links.up_count(), 2);
        assert!(links.heard(9).is_none(), "a stranger is no link");
    }

    #[test]
    fn unroutable_frames_return_to_their_place_in_line() {
        let mut links = Links::new([2, 3]);
        links.heard(2);
        let (_, a) = links.route(2, b"a".to_vec());
        let (_, b) = links.route(2, b"b".to_vec());
        // The transport bounces both; meanwhile the core produced a third frame.
        links.unroutable(2, 1, a.unwrap());
        assert_eq!(links.route(2, b"c".to_vec()), (Route::Queued, None));
        links.unroutable(2, 2, b.unwrap());
        let flushed = links.heard(2).unwrap();
        let order: Vec<_> = flushed.into_iter().map(|(_, f)| f).collect();
        assert_eq!(order, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }
}
