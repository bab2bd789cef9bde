//! Links between neighbours over ZeroMQ, behind a small trait so the protocol never touches ZeroMQ.
//!
//! Each node has **one ROUTER socket** whose routing identity is `node-<id>`, bound to its control
//! port. Of two neighbours, the one with the smaller id connects to the other; ROUTER↔ROUTER
//! connections carry both directions, so each pair of neighbours has exactly one connection.
//!
//! `ROUTER_MANDATORY` is on: a send to an identity with no connection fails (EHOSTUNREACH) instead
//! of vanishing, and the frame comes back to the driver as [`Inbound::Unroutable`] to be queued.
//! Once a send to a peer has failed, every later send to it is bounced too, until the driver says
//! [`Transport::resume`]: that keeps each link FIFO even across a reconnection.
//!
//! A ZeroMQ socket must have a single owner: the driver's task owns it. Sends go straight to the
//! socket (ZeroMQ's I/O thread does the writing); the driver waits for frames on the socket's
//! signal descriptor (`ZMQ_FD`) registered with tokio's reactor, so a frame reaches the node's
//! state with no thread of ours between them. (Until 2026-12-06 the socket lived in a thread of
//! its own, woken through an `inproc` socket: two more thread switches on every hop.)
//!
//! `ROUTER_HANDOVER` is on too: a neighbour that restarts connects again under the same identity,
//! and its new connection takes the identity over from the dead one.
//!
//! # The fault filter
//! `labctl fault` reaches a link of the process runtime through a filter in both ends'
//! transports ([`Transport::set_filters`]): a **cut** link drops every frame both ways, as a
//! pulled cable would; a **delay** holds every outgoing frame that long; a **loss** holds a frame
//! by a retransmission timeout (200 ms, doubling) with that probability, as TCP would resend it.
//! Held frames leave in order (a link stays FIFO), so the algorithms see delay, never loss or
//! reordering.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use labctl_core::NodeId;
use labctl_fault::LinkFilter;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// What the transport tells the driver.
#[derive(Debug)]
pub enum Inbound {
    /// A frame arrived from neighbour `from`.
    Frame {
        /// The sender, from its routing identity.
        from: NodeId,
        /// The frame's bytes.
        payload: Vec<u8>,
    },
    /// A peer whose routing identity is not `node-<id>` sent something.
    Stranger {
        /// The identity, lossily printed.
        identity: String,
        /// How many bytes it sent.
        len: usize,
    },
    /// A frame could not be delivered; `seq` is the number the driver gave it (None: droppable).
    Unroutable {
        /// The peer.
        to: NodeId,
        /// The frame's number on its link, if it must not be lost.
        seq: Option<u64>,
        /// The frame.
        payload: Vec<u8>,
    },
    /// The socket failed: the node cannot reach its neighbours any more.
    Failed(String),
}

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// ZeroMQ refused (binding, connecting).
    #[error("ZeroMQ: {context}: {source}")]
    Zmq {
        /// What was being done.
        context: String,
        /// ZeroMQ's error.
        source: zmq::Error,
    },
    /// The socket's descriptor could not be watched by the async runtime.
    #[error("watching the ZeroMQ socket: {0}")]
    Watch(std::io::Error),
}

/// A node's side of its links, as the driver sees it.
pub trait Transport: Send + 'static {
    /// Open a connection to a neighbour's control endpoint (`tcp://host:port`).
    fn connect(&mut self, endpoint: &str) -> Result<(), TransportError>;
    /// Send one frame to `peer`. `seq` numbers frames that must not be lost (control frames);
    /// `None` marks a droppable one (heartbeats). Failures come back as [`Inbound::Unroutable`].
    fn send(&mut self, peer: NodeId, seq: Option<u64>, payload: Vec<u8>);
    /// Stop bouncing frames for `peer` (it was heard from again).
    fn resume(&mut self, peer: NodeId);
    /// Replace the fault filter: what happens to each listed link's frames (the rest pass).
    fn set_filters(&mut self, filters: BTreeMap<NodeId, LinkFilter>);
    /// The next event: a frame, a frame bounced, a stranger, a failure. Cancel-safe: dropping
    /// the future before it is ready loses nothing (the driver waits on it among other things).
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send + '_;
}

/// The retransmission timeout a `loss` filter holds a frame by, doubling while it is lost again.
pub const RTO: Duration = Duration::from_millis(200);
/// The most times in a row one frame is lost (then it goes through).
pub const MAX_RETRANSMISSIONS: u32 = 6;

/// The largest frame a node accepts, in bytes (a larger one closes the sender's connection).
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// The routing identity of node `id`.
pub fn identity(id: NodeId) -> String {
    format!("node-{id}")
}

/// The node id in a routing identity, if it is one of ours.
pub fn parse_identity(identity: &[u8]) -> Option<NodeId> {
    let text = std::str::from_utf8(identity).ok()?;
    let id: NodeId = text.strip_prefix("node-")?.parse().ok()?;
    (id > 0 && identity == self::identity(id).as_bytes()).then_some(id)
}

/// The socket's signal descriptor, for tokio's reactor. ZeroMQ owns it (and closes it with the
/// socket); it only says "look at the socket again", never how many frames wait.
struct Signal(RawFd);

impl AsRawFd for Signal {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The ZeroMQ transport: a ROUTER socket owned by the driver's task.
pub struct ZmqTransport {
    /// Watches the socket's descriptor; declared before `router`, so it is dropped (and the
    /// descriptor unregistered) before the socket closes it.
    signal: AsyncFd<Signal>,
    router: zmq::Socket,
    endpoint: String,
    /// Peers whose frames are bounced until [`Transport::resume`] (keeps each link FIFO).
    bounced: HashSet<NodeId>,
    filter: Filter,
    /// Events made by sends (bounced frames), handed to the driver by its next `recv`.
    pending: VecDeque<Inbound>,
}

impl ZmqTransport {
    /// Bind node `id`'s ROUTER socket to `tcp://{host}:{port}` (port 0: any free port) and watch
    /// it from the current tokio runtime (which must have I/O enabled).
    pub fn bind(
        id: NodeId,
        host: &str,
        port: u16,
        timing: labctl_core::Timing,
    ) -> Result<ZmqTransport, TransportError> {
        let zmq_err = |context: &str| {
            let context = context.to_string();
            move |source| TransportError::Zmq { context, source }
        };
        let context = zmq::Context::new();
        let router = context.socket(zmq::ROUTER).map_err(zmq_err("socket"))?;
        router
            .set_identity(identity(id).as_bytes())
            .map_err(zmq_err("set identity"))?;
        router
            .set_router_mandatory(true)
            .map_err(zmq_err("set ROUTER_MANDATORY"))?;
        router
            .set_router_handover(true)
            .map_err(zmq_err("set ROUTER_HANDOVER"))?;
        // ZMTP heartbeats: a connection whose peer vanished without a word (a network pulled
        // from under a container leaves TCP silent) is closed within the suspicion timeout, and
        // the connecting side dials again, so a healed link comes back by itself.
        let ping = (2 * timing.heartbeat_ms).clamp(10, 60_000) as i32;
        let patience = timing.suspicion_ms.clamp(20, 600_000) as i32;
        router
            .set_heartbeat_ivl(ping)
            .map_err(zmq_err("set ZMQ_HEARTBEAT_IVL"))?;
        router
            .set_heartbeat_timeout(patience)
            .map_err(zmq_err("set ZMQ_HEARTBEAT_TIMEOUT"))?;
        router
            .set_heartbeat_ttl(patience)
            .map_err(zmq_err("set ZMQ_HEARTBEAT_TTL"))?;
        router.set_linger(0).map_err(zmq_err("set linger"))?;
        // A peer cannot make us allocate without bound; snapshots of a large chat still fit.
        router
            .set_maxmsgsize(MAX_FRAME as i64)
            .map_err(zmq_err("set maximum message size"))?;
        // Reconnect quickly after a neighbour restarts; back off to 1 s.
        router
            .set_reconnect_ivl(50)
            .map_err(zmq_err("set reconnect"))?;
        router
            .set_reconnect_ivl_max(1000)
            .map_err(zmq_err("set reconnect max"))?;
        let port_text = if port == 0 {
            "*".to_string()
        } else {
            port.to_string()
        };
        let bind_to = format!("tcp://{host}:{port_text}");
        router
            .bind(&bind_to)
            .map_err(zmq_err(&format!("bind {bind_to}")))?;
        let endpoint = router
            .get_last_endpoint()
            .map_err(zmq_err("read endpoint"))?
            .map_err(|_| TransportError::Zmq {
                context: "endpoint is not UTF-8".into(),
                source: zmq::Error::EINVAL,
            })?;

        let fd = router
            .get_fd()
            .map_err(zmq_err("read the socket's descriptor"))?;
        // SAFETY: the descriptor is the socket's, open as long as the socket is, and the
        // `AsyncFd` is dropped before the socket (the field order of `ZmqTransport`).
        let signal = unsafe { AsyncFd::register_with_interest(Signal(fd), Interest::READABLE) }
            .map_err(|e| TransportError::Watch(e.into_parts().1))?;
        Ok(ZmqTransport {
            signal,
            router,
            endpoint,
            bounced: HashSet::new(),
            filter: Filter::new(),
            pending: VecDeque::new(),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Hand one frame to ZeroMQ, or bounce it back to the driver (no connection to `peer`, or
    /// frames to it are bounced until it is heard from again).
    fn transmit(&mut self, peer: NodeId, seq: Option<u64>, payload: Vec<u8>) {
        // ROUTER_MANDATORY fails the first part (the peer's identity) if there is no route; the
        // payload goes only after it was accepted, without a copy.
        let routed = !self.bounced.contains(&peer)
            && self
                .router
                .send(identity(peer).as_bytes(), zmq::SNDMORE | zmq::DONTWAIT)
                .is_ok();
        if routed {
            if let Err(e) = self.router.send(payload, zmq::DONTWAIT) {
                // ZeroMQ's ROUTER takes a message's later parts once its first was routed (it
                // reports success even if the connection closes in between), so this does not
                // happen; if it ever did, the frame would be lost: said loudly.
                tracing::error!(
                    peer,
                    "ZeroMQ refused a frame's body after its identity: {e}"
                );
            }
            return;
        }
        if seq.is_some() {
            self.bounced.insert(peer);
        }
        self.pending.push_back(Inbound::Unroutable {
            to: peer,
            seq,
            payload,
        });
    }

    /// Send the frames the fault filter held whose time has come.
    fn release_due(&mut self) {
        if self.filter.held.is_empty() {
            return;
        }
        for (peer, held) in self.filter.due(Instant::now()) {
            self.transmit(peer, held.seq, held.payload);
        }
    }

    /// One frame from the socket if one is waiting (None: none is). Each call lets ZeroMQ
    /// process its pending commands, so once it finds nothing the socket's descriptor will
    /// signal the next frame.
    fn try_receive(&mut self) -> Result<Option<Inbound>, Inbound> {
        loop {
            let parts = match self.router.recv_multipart(zmq::DONTWAIT) {
                Ok(parts) => parts,
                Err(zmq::Error::EAGAIN) => return Ok(None),
                Err(zmq::Error::EINTR) => continue,
                Err(e) => return Err(Inbound::Failed(format!("receive: {e}"))),
            };
            let event = match (parts.first(), parts.len()) {
                (Some(id), 2..) => match parse_identity(id) {
                    // A cut link drops what arrives on it too.
                    Some(from) if self.filter.cut(from) => continue,
                    Some(from) => Inbound::Frame {
                        from,
                        payload: parts.into_iter().next_back().expect("two parts"),
                    },
                    None => Inbound::Stranger {
                        identity: String::from_utf8_lossy(id).into_owned(),
                        len: parts.last().map_or(0, Vec::len),
                    },
                },
                _ => Inbound::Stranger {
                    identity: "?".into(),
                    len: parts.iter().map(Vec::len).sum(),
                },
            };
            return Ok(Some(event));
        }
    }
}

impl Transport for ZmqTransport {
    fn connect(&mut self, endpoint: &str) -> Result<(), TransportError> {
        self.router
            .connect(endpoint)
            .map_err(|source| TransportError::Zmq {
                context: format!("connect {endpoint}"),
                source,
            })
    }

    fn send(&mut self, peer: NodeId, seq: Option<u64>, payload: Vec<u8>) {
        match self.filter.outgoing(peer, Instant::now()) {
            Verdict::Pass => self.transmit(peer, seq, payload),
            Verdict::Drop => {}
            Verdict::Hold(release) => self.filter.held.entry(peer).or_default().push_back(Held {
                release,
                seq,
                payload,
            }),
        }
    }

    fn resume(&mut self, peer: NodeId) {
        self.bounced.remove(&peer);
    }

    fn set_filters(&mut self, filters: BTreeMap<NodeId, LinkFilter>) {
        self.filter.replace(filters);
    }

    async fn recv(&mut self) -> Inbound {
        loop {
            self.release_due();
            if let Some(event) = self.pending.pop_front() {
                return event;
            }
            match self.try_receive() {
                Ok(Some(event)) => return event,
                Ok(None) => {}
                Err(failed) => return failed,
            }
            // Nothing waits: sleep until the socket signals or a held frame is due. The
            // readiness is cleared before the socket is looked at again, so a frame that came
            // in between is found by that look, and a later one signals anew.
            let due = self.filter.next_release();
            tokio::select! {
                ready = self.signal.readable() => match ready {
                    Ok(mut guard) => guard.clear_ready(),
                    Err(e) => return Inbound::Failed(format!("watching the socket: {e}")),
                },
                () = sleep_until_some(due) => {}
            }
        }
    }
}

/// Sleep until `at`, or for ever.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// A frame held back by the fault filter.
struct Held {
    release: Instant,
    seq: Option<u64>,
    payload: Vec<u8>,
}

/// The fault filter's state inside the transport: the filters, and per peer the frames held
/// back, in order.
#[derive(Default)]
struct Filter {
    filters: HashMap<NodeId, LinkFilter>,
    held: BTreeMap<NodeId, VecDeque<Held>>,
    /// A small generator for losses (xorshift), seeded from the clock.
    rng: u64,
}

/// What to do with one outgoing frame.
enum Verdict {
    /// Send it now.
    Pass,
    /// Lost on a cut link.
    Drop,
    /// Held back until the time given.
    Hold(Instant),
}

impl Filter {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        Filter {
            rng: seed | 1,
            ..Filter::default()
        }
    }

    fn percent(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % 100
    }

    fn cut(&self, peer: NodeId) -> bool {
        self.filters.get(&peer).is_some_and(|f| f.cut)
    }

    /// Judge a frame to `peer` at `now`. A frame behind held ones waits its turn (FIFO).
    fn outgoing(&mut self, peer: NodeId, now: Instant) -> Verdict {
        let filter = self.filters.get(&peer).copied().unwrap_or_default();
        if filter.cut {
            return Verdict::Drop;
        }
        let mut hold = Duration::from_millis(filter.delay_ms);
        let mut rto = RTO;
        for _ in 0..MAX_RETRANSMISSIONS {
            if filter.loss_percent == 0 || self.percent() >= u64::from(filter.loss_percent) {
                break;
            }
            hold += rto;
            rto *= 2;
        }
        let last = self
            .held
            .get(&peer)
            .and_then(|q| q.back())
            .map(|h| h.release);
        match (hold.is_zero(), last) {
            (true, None) => Verdict::Pass,
            (_, last) => Verdict::Hold((now + hold).max(last.unwrap_or(now))),
        }
    }

    /// When the first held frame is due (None: no frame is held).
    fn next_release(&self) -> Option<Instant> {
        self.held
            .values()
            .filter_map(|q| q.front())
            .map(|h| h.release)
            .min()
    }

    /// Replace the filters. Frames held for a link now cut are lost with it.
    fn replace(&mut self, filters: BTreeMap<NodeId, LinkFilter>) {
        self.filters = filters.into_iter().filter(|(_, f)| !f.is_clear()).collect();
        let filters = &self.filters;
        self.held
            .retain(|peer, _| !filters.get(peer).is_some_and(|f| f.cut));
    }

    /// The frames due at `now`, in order per peer.
    fn due(&mut self, now: Instant) -> Vec<(NodeId, Held)> {
        let mut due = Vec::new();
        for (&peer, queue) in &mut self.held {
            while queue.front().is_some_and(|h| h.release <= now) {
                due.push((peer, queue.pop_front().expect("a front")));
            }
        }
        self.held.retain(|_, q| !q.is_empty());
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_and_reject_impostors() {
        assert_eq!(identity(42), "node-42");
        assert_eq!(parse_identity(b"node-42"), Some(42));
        for bad in [
            &b"node-0"[..],
            b"node-042",
            b"node-",
            b"node-x",
            b"\x00abc",
            b"nodes-4",
            b"node-+4",
        ] {
            assert_eq!(parse_identity(bad), None, "{bad:?}");
        }
    }

    fn clear() -> LinkFilter {
        LinkFilter::default()
    }

    /// Node 1 connected to node 2 over loopback, each able to reach the other.
    async fn pair() -> (ZmqTransport, ZmqTransport) {
        let timing = labctl_core::Timing::default();
        let mut a = ZmqTransport::bind(1, "127.0.0.1", 0, timing).expect("bind 1");
        let mut b = ZmqTransport::bind(2, "127.0.0.1", 0, timing).expect("bind 2");
        a.connect(&format!("tcp://127.0.0.1:{}", b.port()))
            .expect("connect");
        // Until the handshake is done, a send to node 2 has no route and bounces.
        for _ in 0..200 {
            a.send(2, None, b"hello".to_vec());
            let heard = tokio::time::timeout(Duration::from_millis(20), b.recv()).await;
            if let Ok(Inbound::Frame { from: 1, .. }) = heard {
                a.pending.clear();
                return (a, b);
            }
        }
        panic!("node 1 never reached node 2 over loopback");
    }

    /// The next frame's payload, skipping the handshake's leftovers.
    async fn next_frame(t: &mut ZmqTransport) -> Vec<u8> {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), t.recv())
                .await
                .expect("a frame within 5 s");
            match event {
                Inbound::Frame { payload, .. } if payload != b"hello" => return payload,
                Inbound::Frame { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_cross_both_ways_in_order_and_none_waits_unnoticed() {
        let (a, b) = pair().await;
        // Each side sends while the other may be receiving: every frame must wake the
        // receiver (a wake-up lost between a look at the socket and the wait would hang here).
        const N: u32 = 500;
        let side = |mut t: ZmqTransport, to: NodeId| async move {
            let mut got = Vec::new();
            for i in 0..N {
                t.send(to, Some(u64::from(i)), i.to_be_bytes().to_vec());
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            while got.len() < N as usize {
                let payload = next_frame(&mut t).await;
                got.push(u32::from_be_bytes(payload.try_into().expect("4 bytes")));
            }
            got
        };
        let (from_b, from_a) = tokio::join!(tokio::spawn(side(a, 2)), tokio::spawn(side(b, 1)));
        let expected: Vec<u32> = (0..N).collect();
        assert_eq!(from_b.expect("node 1's side"), expected);
        assert_eq!(from_a.expect("node 2's side"), expected);
        // Lone frames, one at a time each way (a fresh pair: the first went into the tasks).
        let (mut a2, mut b2) = pair().await;
        for i in 0..20u32 {
            a2.send(2, Some(u64::from(i)), i.to_be_bytes().to_vec());
            assert_eq!(next_frame(&mut b2).await, i.to_be_bytes());
            b2.send(1, Some(u64::from(i)), i.to_be_bytes().to_vec());
            assert_eq!(next_frame(&mut a2).await, i.to_be_bytes());
        }
    }

    #[tokio::test]
    async fn a_frame_with_no_route_comes_back_and_its_link_bounces_until_resumed() {
        let timing = labctl_core::Timing::default();
        let mut a = ZmqTransport::bind(1, "127.0.0.1", 0, timing).expect("bind");
        a.send(9, Some(1), b"one".to_vec());
        a.send(9, None, b"beat".to_vec());
        for (seq, payload) in [(Some(1), &b"one"[..]), (None, b"beat")] {
            match a.recv().await {
                Inbound::Unroutable {
                    to: 9,
                    seq: s,
                    payload: p,
                } => assert_eq!((s, p.as_slice()), (seq, payload)),
                other => panic!("expected the frame back, got {other:?}"),
            }
        }
        assert!(
            a.bounced.contains(&9),
            "a lost numbered frame bounces its link"
        );
        a.resume(9);
        assert!(a.bounced.is_empty());
    }

    #[tokio::test]
    async fn a_delayed_frame_leaves_when_due_while_its_sender_waits() {
        let (mut a, mut b) = pair().await;
        a.set_filters(BTreeMap::from([(
            2,
            LinkFilter {
                delay_ms: 150,
                ..clear()
            },
        )]));
        let sent = Instant::now();
        a.send(2, Some(1), b"late".to_vec());
        // Node 1's transport releases the frame from inside its own wait for events.
        let (waited, payload) = tokio::join!(
            tokio::time::timeout(Duration::from_millis(600), a.recv()),
            next_frame(&mut b)
        );
        assert!(waited.is_err(), "nothing arrives at node 1: {waited:?}");
        assert_eq!(payload, b"late");
        assert!(sent.elapsed() >= Duration::from_millis(150));
    }

    #[test]
    fn a_cut_link_drops_frames_and_a_clear_one_passes_them() {
        let mut filter = Filter::new();
        let now = Instant::now();
        assert!(matches!(filter.outgoing(2, now), Verdict::Pass));
        filter.replace(BTreeMap::from([
            (
                2,
                LinkFilter {
                    cut: true,
                    ..clear()
                },
            ),
            (3, clear()),
        ]));
        assert!(matches!(filter.outgoing(2, now), Verdict::Drop));
        assert!(filter.cut(2) && !filter.cut(3));
        assert!(matches!(filter.outgoing(3, now), Verdict::Pass));
    }

    #[test]
    fn a_delay_holds_every_frame_and_keeps_them_in_order() {
        let mut filter = Filter::new();
        let now = Instant::now();
        filter.replace(BTreeMap::from([(
            2,
            LinkFilter {
                delay_ms: 200,
                ..clear()
            },
        )]));
        let Verdict::Hold(first) = filter.outgoing(2, now) else {
            panic!("held")
        };
        assert_eq!(first, now + Duration::from_millis(200));
        filter.held.entry(2).or_default().push_back(Held {
            release: first,
            seq: Some(1),
            payload: vec![1],
        });
        // The delay ends; a frame sent now still leaves after the one held before it.
        filter.replace(BTreeMap::new());
        let Verdict::Hold(second) = filter.outgoing(2, now + Duration::from_millis(10)) else {
            panic!("waits behind the held frame")
        };
        assert!(second >= first);
        assert!(filter.due(now + Duration::from_millis(199)).is_empty());
        assert_eq!(filter.due(first).len(), 1);
        assert_eq!(filter.next_release(), None, "nothing left held");
    }

    #[test]
    fn a_loss_holds_some_frames_by_doubling_timeouts_and_drops_none() {
        let mut filter = Filter::new();
        let now = Instant::now();
        filter.replace(BTreeMap::from([(
            2,
            LinkFilter {
                loss_percent: 50,
                ..clear()
            },
        )]));
        let mut delays = Vec::new();
        for _ in 0..2000 {
            match filter.outgoing(2, now) {
                Verdict::Pass => delays.push(0),
                Verdict::Hold(at) => delays.push((at - now).as_millis()),
                Verdict::Drop => panic!("loss never drops"),
            }
            filter.held.clear();
        }
        // Every delay is a sum of 200, 400, 800 … ms; about half the frames pass at once.
        let retransmitted: Vec<u128> = (0..=MAX_RETRANSMISSIONS)
            .map(|k| 200 * ((1 << k) - 1))
            .collect();
        assert!(
            delays.iter().all(|d| retransmitted.contains(d)),
            "{delays:?}"
        );
        let passed = delays.iter().filter(|&&d| d == 0).count();
        assert!(
            (800..1200).contains(&passed),
            "{passed} of 2000 passed at once"
        );
    }
}
