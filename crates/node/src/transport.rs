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

use std::collections::HashSet;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use labctl_core::NodeId;
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
}

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
}

impl Drop for ZmqTransport {
    fn drop(&mut self) {
        let _ = self.command(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The socket's owner: waits on the ROUTER and the wake socket, moves frames both ways.
fn socket_thread(
    router: zmq::Socket,
    wake: zmq::Socket,
    commands: std_mpsc::Receiver<Command>,
    inbound: UnboundedSender<Inbound>,
) {
    let mut bounced: HashSet<NodeId> = HashSet::new();
    loop {
        let mut items = [
            router.as_poll_item(zmq::POLLIN),
            wake.as_poll_item(zmq::POLLIN),
        ];
        if let Err(e) = zmq::poll(&mut items, -1) {
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
                Command::Send(peer, seq, payload) => {
                    let delivered = !bounced.contains(&peer)
                        && router
                            .send_multipart(
                                [identity(peer).into_bytes(), payload.clone()],
                                zmq::DONTWAIT,
                            )
                            .is_ok();
                    if !delivered {
                        if seq.is_some() {
                            bounced.insert(peer);
                        }
                        let bounce = Inbound::Unroutable {
                            to: peer,
                            seq,
                            payload,
                        };
                        if inbound.send(bounce).is_err() {
                            return;
                        }
                    }
                }
                Command::Resume(peer) => {
                    bounced.remove(&peer);
                }
                Command::Stop => return,
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
}
