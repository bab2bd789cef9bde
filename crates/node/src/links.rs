//! The node's links to its topology neighbours: handshake, ordered delivery, liveness.
//!
//! Pure bookkeeping, driven with an explicit `now`, so it is tested without sockets or clocks.
//!
//! - **Handshake.** A link is *up* once any frame from the neighbour has arrived: that proves the
//!   ZeroMQ connection exists and the neighbour's identity is routable from here.
//! - **Nothing is dropped.** Control frames for a link that is not up wait in that link's queue,
//!   numbered, and leave in order once it is (SPEC §8: the original silently dropped messages to
//!   peers not yet connected). A frame the transport could not route comes back and is queued again
//!   by its number, so the link stays FIFO.
//! - **Liveness.** A neighbour silent for longer than the suspicion timeout is *suspected*.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use labctl_core::NodeId;

/// One link's state.
#[derive(Debug)]
struct Link {
    /// Last time anything arrived from the neighbour.
    heard: Option<Instant>,
    /// Frames may be sent directly.
    up: bool,
    /// Suspected: silent for longer than the suspicion timeout.
    suspected: bool,
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
    suspicion: Duration,
}

impl Links {
    /// Links to `neighbors`, all down.
    pub fn new(neighbors: impl IntoIterator<Item = NodeId>, suspicion: Duration) -> Self {
        let links = neighbors
            .into_iter()
            .map(|id| {
                let link = Link {
                    heard: None,
                    up: false,
                    suspected: false,
                    next_seq: 1,
                    pending: BTreeMap::new(),
                };
                (id, link)
            })
            .collect();
        Links { links, suspicion }
    }

    /// Whether `peer` is a neighbour.
    pub fn contains(&self, peer: NodeId) -> bool {
        self.links.contains_key(&peer)
    }

    /// The neighbours.
    pub fn neighbors(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.links.keys().copied()
    }

    /// A frame arrived from `peer` at `now`. Returns the queued frames to send now, in order,
    /// if this brought the link up.
    pub fn heard(&mut self, peer: NodeId, now: Instant) -> Option<Vec<(u64, Vec<u8>)>> {
        let link = self.links.get_mut(&peer)?;
        link.heard = Some(now);
        link.suspected = false;
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

    /// Every link is up: the node may start its election.
    pub fn all_up(&self) -> bool {
        self.links.values().all(|l| l.up)
    }

    /// Links up so far.
    pub fn up_count(&self) -> usize {
        self.links.values().filter(|l| l.up).count()
    }

    /// Mark neighbours silent for longer than the suspicion timeout; return the newly suspected.
    pub fn suspect(&mut self, now: Instant) -> Vec<NodeId> {
        let mut newly = Vec::new();
        for (&id, link) in &mut self.links {
            let silent = match link.heard {
                Some(heard) => now.saturating_duration_since(heard) > self.suspicion,
                None => false, // never heard: still joining, not suspected
            };
            if silent && !link.suspected {
                link.suspected = true;
                newly.push(id);
            }
        }
        newly
    }

    /// Neighbours heard from and not suspected.
    pub fn alive(&self) -> BTreeSet<NodeId> {
        self.links
            .iter()
            .filter(|(_, l)| l.heard.is_some() && !l.suspected)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Control frames waiting, over all links.
    pub fn pending(&self) -> usize {
        self.links.values().map(|l| l.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> (Links, Instant) {
        (
            Links::new([2, 3], Duration::from_millis(1000)),
            Instant::now(),
        )
    }

    #[test]
    fn frames_for_a_link_not_up_wait_and_leave_in_order() {
        let (mut links, now) = links();
        assert_eq!(links.route(2, b"a".to_vec()), (Route::Queued, None));
        assert_eq!(links.route(2, b"b".to_vec()), (Route::Queued, None));
        assert_eq!(links.pending(), 2);
        let flushed = links.heard(2, now).unwrap();
        assert_eq!(flushed, vec![(1, b"a".to_vec()), (2, b"b".to_vec())]);
        assert_eq!(
            links.route(2, b"c".to_vec()),
            (Route::Send(3), Some(b"c".to_vec()))
        );
        assert!(
            links.heard(2, now).is_none(),
            "already up: nothing to flush"
        );
    }

    #[test]
    fn all_up_only_once_every_neighbour_was_heard() {
        let (mut links, now) = links();
        assert!(!links.all_up());
        links.heard(2, now);
        assert!(!links.all_up());
        links.heard(3, now);
        assert!(links.all_up());
    }

    #[test]
    fn unroutable_frames_return_to_their_place_in_line() {
        let (mut links, now) = links();
        links.heard(2, now);
        let (_, a) = links.route(2, b"a".to_vec());
        let (_, b) = links.route(2, b"b".to_vec());
        // The transport bounces both; meanwhile the core produced a third frame.
        links.unroutable(2, 1, a.unwrap());
        assert_eq!(links.route(2, b"c".to_vec()), (Route::Queued, None));
        links.unroutable(2, 2, b.unwrap());
        let flushed = links.heard(2, now).unwrap();
        let order: Vec<_> = flushed.into_iter().map(|(_, f)| f).collect();
        assert_eq!(order, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn silence_longer_than_the_timeout_is_suspected_once() {
        let (mut links, now) = links();
        links.heard(2, now);
        links.heard(3, now);
        let later = now + Duration::from_millis(1500);
        links.heard(3, later);
        assert_eq!(links.suspect(later), vec![2]);
        assert_eq!(links.suspect(later), Vec::<NodeId>::new(), "reported once");
        assert_eq!(links.alive(), BTreeSet::from([3]));
        links.heard(2, later);
        assert_eq!(
            links.alive(),
            BTreeSet::from([2, 3]),
            "heard again: alive again"
        );
    }

    #[test]
    fn a_neighbour_never_heard_is_joining_not_suspected() {
        let (mut links, now) = links();
        assert!(links.suspect(now + Duration::from_secs(60)).is_empty());
        assert!(links.alive().is_empty());
    }
}
