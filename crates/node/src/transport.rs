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
//! A ZeroMQ socket must have a single owner, so the socket lives in its own thread. The driver
//! hands it work through a channel and wakes it through an `inproc` PAIR socket (ZeroMQ can only
//! wait on its own sockets); frames that arrive go back to the driver on a tokio channel.
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
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use labctl_core::NodeId;
use labctl_fault::LinkFilter;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

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
    /// The socket thread failed and stopped.
    Failed(String),
}

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// ZeroMQ refused (binding, connecting, polling).
    #[error("ZeroMQ: {context}: {source}")]
    Zmq {
        /// What was being done.
        context: String,
        /// ZeroMQ's error.
        source: zmq::Error,
    },
    /// The socket thread is gone.
    #[error("the transport thread has stopped")]
    Stopped,
}

/// A node's side of its links, as the driver sees it.
pub trait Transport: Send + 'static {
    /// Open a connection to a neighbour's control endpoint (`tcp://host:port`).
    fn connect(&mut self, endpoint: &str) -> Result<(), TransportError>;
    /// Send one frame to `peer`. `seq` numbers frames that must not be lost (control frames);
    /// `None` marks a droppable one (heartbeats). Failures come back as [`Inbound::Unroutable`].
    fn send(
        &mut self,
        peer: NodeId,
        seq: Option<u64>,
        payload: Vec<u8>,
    ) -> Result<(), TransportError>;
    /// Stop bouncing frames for `peer` (it was heard from again).
    fn resume(&mut self, peer: NodeId) -> Result<(), TransportError>;
    /// Replace the fault filter: what happens to each listed link's frames (the rest pass).
    fn set_filters(&mut self, filters: BTreeMap<NodeId, LinkFilter>) -> Result<(), TransportError>;
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

enum Command {
    Connect(String, std_mpsc::Sender<Result<(), zmq::Error>>),
    Send(NodeId, Option<u64>, Vec<u8>),
    Resume(NodeId),
    Filters(BTreeMap<NodeId, LinkFilter>),
    Stop,
}

/// The ZeroMQ transport: a ROUTER socket owned by its own thread.
pub struct ZmqTransport {
    commands: std_mpsc::Sender<Command>,
    wake: zmq::Socket,
    endpoint: String,
    thread: Option<JoinHandle<()>>,
}

impl ZmqTransport {
    /// Bind node `id`'s ROUTER socket to `tcp://{host}:{port}` (port 0: any free port) and start its
    /// thread. Returns the transport and the stream of inbound events.
    pub fn bind(
        id: NodeId,
        host: &str,
        port: u16,
        timing: labctl_core::Timing,
    ) -> Result<(ZmqTransport, UnboundedReceiver<Inbound>), TransportError> {
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

        let wake_address = format!("inproc://wake-{id}");
        let wake_in = context.socket(zmq::PAIR).map_err(zmq_err("wake socket"))?;
        wake_in.bind(&wake_address).map_err(zmq_err("bind wake"))?;
        let wake = context.socket(zmq::PAIR).map_err(zmq_err("wake socket"))?;
        wake.connect(&wake_address)
            .map_err(zmq_err("connect wake"))?;

        let (commands, command_rx) = std_mpsc::channel();
        let (inbound, inbound_rx) = unbounded_channel();
        let thread = std::thread::Builder::new()
            .name(format!("zmq-node-{id}"))
            .spawn(move || socket_thread(router, wake_in, command_rx, inbound))
            .map_err(|_| TransportError::Stopped)?;
        Ok((
            ZmqTransport {
                commands,
                wake,
                endpoint,
                thread: Some(thread),
            },
            inbound_rx,
        ))
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    fn command(&mut self, command: Command) -> Result<(), TransportError> {
        self.commands
            .send(command)
            .map_err(|_| TransportError::Stopped)?;
        // One byte wakes the thread; if it is already awake, the queue is drained anyway.
        match self.wake.send(&[][..], zmq::DONTWAIT) {
            Ok(()) | Err(zmq::Error::EAGAIN) => Ok(()),
            Err(source) => Err(TransportError::Zmq {
                context: "wake".into(),
                source,
            }),
        }
    }
}

impl Transport for ZmqTransport {
    fn connect(&mut self, endpoint: &str) -> Result<(), TransportError> {
        let (reply, result) = std_mpsc::channel();
        self.command(Command::Connect(endpoint.to_string(), reply))?;
        result
            .recv()
            .map_err(|_| TransportError::Stopped)?
            .map_err(|source| TransportError::Zmq {
                context: format!("connect {endpoint}"),
                source,
            })
    }

    fn send(
        &mut self,
        peer: NodeId,
        seq: Option<u64>,
        payload: Vec<u8>,
    ) -> Result<(), TransportError> {
        self.command(Command::Send(peer, seq, payload))
    }

    fn resume(&mut self, peer: NodeId) -> Result<(), TransportError> {
        self.command(Command::Resume(peer))
    }

    fn set_filters(&mut self, filters: BTreeMap<NodeId, LinkFilter>) -> Result<(), TransportError> {
        self.command(Command::Filters(filters))
    }
}

impl Drop for ZmqTransport {
    fn drop(&mut self) {
        let _ = self.command(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A frame held back by the fault filter.
struct Held {
    release: Instant,
    seq: Option<u64>,
    payload: Vec<u8>,
}

/// The fault filter's state inside the socket thread: the filters, and per peer the frames held
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

    /// How long the thread may sleep before a held frame is due (-1: no frame is held).
    fn timeout_ms(&self, now: Instant) -> i64 {
        self.held
            .values()
            .filter_map(|q| q.front())
            .map(|h| {
                h.release
                    .saturating_duration_since(now)
                    .as_micros()
                    .div_ceil(1000) as i64
            })
            .min()
            .unwrap_or(-1)
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

/// The socket's owner: waits on the ROUTER and the wake socket, moves frames both ways, holds
/// back what the fault filter says.
fn socket_thread(
    router: zmq::Socket,
    wake: zmq::Socket,
    commands: std_mpsc::Receiver<Command>,
    inbound: UnboundedSender<Inbound>,
) {
    let mut bounced: HashSet<NodeId> = HashSet::new();
    let mut filter = Filter::new();
    // Hand one frame to ZeroMQ; a failure comes back to the driver. False: the driver is gone.
    let transmit =
        |bounced: &mut HashSet<NodeId>, peer: NodeId, seq: Option<u64>, payload: Vec<u8>| {
            let delivered = !bounced.contains(&peer)
                && router
                    .send_multipart(
                        [identity(peer).into_bytes(), payload.clone()],
                        zmq::DONTWAIT,
                    )
                    .is_ok();
            if delivered {
                return true;
            }
            if seq.is_some() {
                bounced.insert(peer);
            }
            inbound
                .send(Inbound::Unroutable {
                    to: peer,
                    seq,
                    payload,
                })
                .is_ok()
        };
    loop {
        let mut items = [
            router.as_poll_item(zmq::POLLIN),
            wake.as_poll_item(zmq::POLLIN),
        ];
        if let Err(e) = zmq::poll(&mut items, filter.timeout_ms(Instant::now())) {
            if e == zmq::Error::EINTR {
                continue;
            }
            let _ = inbound.send(Inbound::Failed(format!("poll: {e}")));
            return;
        }
        if items[0].is_readable() {
            loop {
                match router.recv_multipart(zmq::DONTWAIT) {
                    Ok(parts) => {
                        let event = match (parts.first(), parts.last(), parts.len()) {
                            (Some(id), Some(payload), 2..) => match parse_identity(id) {
                                // A cut link drops what arrives on it too.
                                Some(from) if filter.cut(from) => continue,
                                Some(from) => Inbound::Frame {
                                    from,
                                    payload: payload.clone(),
                                },
                                None => Inbound::Stranger {
                                    identity: String::from_utf8_lossy(id).into_owned(),
                                    len: payload.len(),
                                },
                            },
                            _ => Inbound::Stranger {
                                identity: "?".into(),
                                len: parts.iter().map(Vec::len).sum(),
                            },
                        };
                        if inbound.send(event).is_err() {
                            return; // the driver is gone
                        }
                    }
                    Err(zmq::Error::EAGAIN) => break,
                    Err(zmq::Error::EINTR) => continue,
                    Err(e) => {
                        let _ = inbound.send(Inbound::Failed(format!("receive: {e}")));
                        return;
                    }
                }
            }
        }
        if items[1].is_readable() {
            while wake.recv_bytes(zmq::DONTWAIT).is_ok() {}
        }
        // Always drain the command queue: a wake byte may have been coalesced.
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Connect(endpoint, reply) => {
                    let _ = reply.send(router.connect(&endpoint));
                }
                Command::Send(peer, seq, payload) => match filter.outgoing(peer, Instant::now()) {
                    Verdict::Pass => {
                        if !transmit(&mut bounced, peer, seq, payload) {
                            return;
                        }
                    }
                    Verdict::Drop => {}
                    Verdict::Hold(release) => {
                        filter.held.entry(peer).or_default().push_back(Held {
                            release,
                            seq,
                            payload,
                        })
                    }
                },
                Command::Resume(peer) => {
                    bounced.remove(&peer);
                }
                Command::Filters(filters) => filter.replace(filters),
                Command::Stop => return,
            }
        }
        for (peer, held) in filter.due(Instant::now()) {
            if !transmit(&mut bounced, peer, held.seq, held.payload) {
                return;
            }
        }
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
        assert_eq!(filter.timeout_ms(first), -1, "nothing left held");
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
