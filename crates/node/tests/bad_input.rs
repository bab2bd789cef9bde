//! A node facing a misbehaving world: a real node daemon (in-process, real ZeroMQ and gRPC), a real
//! bootstrap, and a raw ZeroMQ socket playing its neighbour. Garbage frames, strangers and stale
//! epochs must be dropped and logged while the node keeps running and still completes its election.

use std::time::{Duration, Instant};

use labctl_core::{Body, Message, Vote};
use labctl_node::frame::Frame;
mod common;

use common::Captured;
use labctl_proto::bootstrap::RegisterRequest;
use labctl_proto::node::node_admin_client::NodeAdminClient;
use labctl_proto::node::{NodeStatus, StatusRequest};

/// The lab: a bootstrap with topology 1 — 2, node 2 as a real daemon, node 1 played by the test.
struct Lab {
    _dir: tempfile::TempDir,
    admin: NodeAdminClient<tonic::transport::Channel>,
    /// The test's ROUTER socket, identity node-1, connected to node 2.
    peer: zmq::Socket,
    _context: zmq::Context,
    stop: tokio::sync::oneshot::Sender<()>,
    node: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let (bootstrap, mut client) = common::bootstrap(dir.path(), "pair", &[1, 2], &[(1, 2)]).await;

    // Node 1 is us: a ROUTER socket with node 1's identity, registered like a node would.
    let context = zmq::Context::new();
    let peer = context.socket(zmq::ROUTER).unwrap();
    peer.set_identity(b"node-1").unwrap();
    peer.set_router_mandatory(true).unwrap();
    peer.set_rcvtimeo(5000).unwrap();
    peer.bind("tcp://127.0.0.1:*").unwrap();
    let our_endpoint = peer.get_last_endpoint().unwrap().unwrap();
    client
        .register(RegisterRequest {
            id: 1,
            address: our_endpoint.trim_start_matches("tcp://").to_string(),
            rejoin: false,
        })
        .await
        .unwrap();

    // Node 2 is a real node daemon.
    let config = common::config(2, "pair", &bootstrap, dir.path());
    let ready = config.ready_file.clone().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(labctl_node::run(config, async {
        let _ = stopped.await;
    }));
    let info = common::ready(&ready).await;
    // Node 1 < node 2, so node 1 (we) connects.
    peer.connect(&format!("tcp://{}", info.control)).unwrap();
    let url = format!("http://{}", info.admin);
    let admin = common::connect_retrying(|| NodeAdminClient::connect(url.clone())).await;
    Lab {
        _dir: dir,
        admin,
        peer,
        _context: context,
        stop,
        node,
    }
}

impl Lab {
    /// Send raw bytes to node 2, retrying while the connection is still being set up.
    fn send_raw(&self, bytes: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.peer.send_multipart([&b"node-2"[..], bytes], 0) {
                Ok(()) => return,
                Err(zmq::Error::EHOSTUNREACH) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("send: {e}"),
            }
        }
    }

    fn send(&self, frame: &Frame) {
        self.send_raw(&frame.encode());
    }

    fn control(&self, epoch: u64, body: Body) {
        self.send(&Frame::Control {
            message: Message { epoch, body },
        });
    }

    /// The next control message node 2 sends us (heartbeats skipped).
    fn next_control(&self) -> Message {
        loop {
            let parts = self
                .peer
                .recv_multipart(0)
                .expect("node 2 answers within 5 s");
            assert_eq!(parts[0], b"node-2");
            match Frame::decode(&parts[1]).expect("node 2 sends valid frames") {
                Frame::Control { message } => return message,
                Frame::Heartbeat { lab, .. } => assert_eq!(lab, "pair"),
                Frame::Data { .. } => {} // the data plane's announcement, once node 2 has its roles
            }
        }
    }

    async fn status(&mut self) -> NodeStatus {
        self.admin
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_dropped_and_the_node_still_elects() {
    let log = Captured::install();
    // A bounded test: if anything hangs, fail with the node's log rather than wait forever.
    let body = scenario(log.clone());
    if tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .is_err()
    {
        panic!(
            "the scenario did not finish within 60 s; the node's log:\n{}",
            log.text()
        );
    }
}

async fn scenario(log: Captured) {
    let mut lab = start().await;

    // Garbage before anything else: not JSON, JSON of the wrong shape, an unknown frame kind.
    lab.send_raw(b"\xff\x00 not a frame");
    lab.send_raw(br#"{"frame":"control","message":{"epoch":"one"}}"#);
    lab.send_raw(br#"{"frame":"launch_missiles"}"#);
    // A heartbeat of another lab is refused too.
    lab.send(&Frame::Heartbeat {
        incarnation: 1,
        sent: 0,
        lab: "other".into(),
    });

    // A stranger (identity not node-<id>) and a non-neighbour (node-9) talk to node 2.
    let context = zmq::Context::new();
    let mut strangers = Vec::new();
    for identity in [&b"mallory"[..], b"node-9"] {
        let stranger = context.socket(zmq::DEALER).unwrap();
        stranger.set_identity(identity).unwrap();
        stranger.set_linger(0).unwrap();
        let status = lab.status().await;
        stranger
            .connect(&format!("tcp://{}", status.control_address))
            .unwrap();
        stranger
            .send(
                Frame::Heartbeat {
                    lab: "pair".into(),
                    incarnation: 1,
                    sent: 0,
                }
                .encode(),
                0,
            )
            .unwrap();
        strangers.push(stranger); // kept open until the end, so the frames surely leave
    }

    // Watch the node's trace stream from here on, as labctl's trace view would.
    let mut trace = lab
        .admin
        .trace(labctl_proto::node::TraceRequest::default())
        .await
        .unwrap()
        .into_inner();

    // Now behave: our heartbeat brings the link up, and node 2 starts epoch 1 with its setup.
    lab.send(&Frame::Heartbeat {
        incarnation: 1,
        sent: 0,
        lab: "pair".into(),
    });
    let setup = lab.next_control();
    assert_eq!(
        setup,
        Message {
            epoch: 1,
            body: Body::Setup { id: 2 }
        }
    );

    // Jump to epoch 2: node 2 must join it (setup again, for epoch 2).
    lab.control(2, Body::Setup { id: 1 });
    let setup2 = lab.next_control();
    assert_eq!(
        setup2,
        Message {
            epoch: 2,
            body: Body::Setup { id: 2 }
        }
    );

    // A message of the old epoch 1 is stale: dropped and counted.
    lab.control(
        1,
        Body::YoDown {
            iteration: 1,
            value: 1,
        },
    );

    // Finish epoch 2 properly: we are the source, node 2 the sink with one in-neighbour, so it
    // answers YES and prunes itself; then our Q makes it our child, and it answers Yes(1).
    lab.control(
        2,
        Body::YoDown {
            iteration: 1,
            value: 1,
        },
    );
    assert_eq!(
        lab.next_control(),
        Message {
            epoch: 2,
            body: Body::YoUp {
                iteration: 1,
                vote: Vote::Yes,
                prune: true
            }
        }
    );
    lab.control(
        2,
        Body::Q {
            leader: 1,
            depth: 0,
        },
    );
    assert_eq!(
        lab.next_control(),
        Message {
            epoch: 2,
            // The convergecast carries node 2's log position (empty) for the view change.
            body: Body::Yes {
                size: 1,
                best: Some(labctl_core::plane::Best {
                    pos: labctl_core::log::Pos::START,
                    node: 2
                })
            }
        }
    );

    let status = lab.status().await;
    assert_eq!(status.epoch, 2);
    assert_eq!(status.leader, Some(1));
    assert_eq!(status.parent, Some(1));
    assert_eq!(status.roles, vec!["input".to_string()]);
    assert_eq!(status.election, "pruned");
    assert_eq!(
        status.counters.as_ref().unwrap().dropped,
        1,
        "the stale epoch-1 message was counted as dropped"
    );
    assert!(
        !lab.node.is_finished(),
        "the node kept running through it all"
    );

    // The trace stream told the story as it happened, in the simulator's trace format.
    let mut events = Vec::new();
    while !events
        .iter()
        .any(|e: &serde_json::Value| e["event"] == "roles")
    {
        let next = tokio::time::timeout(Duration::from_secs(5), trace.message())
            .await
            .expect("trace events arrive")
            .unwrap()
            .expect("the stream stays open");
        assert_eq!(next.node, 2);
        events.push(serde_json::from_str(&next.json).unwrap());
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    for expected in [
        "epoch_started",
        "send",
        "receive",
        "pruned",
        "joined",
        "complete",
        "roles",
    ] {
        assert!(
            kinds.contains(&expected),
            "trace lacks {expected}: {kinds:?}"
        );
    }
    let joined = events.iter().find(|e| e["event"] == "joined").unwrap();
    assert_eq!(
        (joined["parent"].as_u64(), joined["leader"].as_u64()),
        (Some(1), Some(1))
    );

    // The node recorded both epochs, each from its start, and serves the record on request:
    // the same lines the stream told, epoch 1's first, with the wall clock beside each.
    let mut recorded = lab
        .admin
        .trace(labctl_proto::node::TraceRequest {
            recorded: true,
            recorded_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    let mut lines = Vec::new();
    let mut last_unix_ms = 0;
    while let Some(next) = tokio::time::timeout(Duration::from_secs(5), recorded.message())
        .await
        .expect("the record arrives and ends")
        .unwrap()
    {
        assert!(next.unix_ms >= last_unix_ms && next.unix_ms > next.t_ms);
        last_unix_ms = next.unix_ms;
        lines.push(serde_json::from_str::<serde_json::Value>(&next.json).unwrap());
    }
    let started: Vec<u64> = lines
        .iter()
        .filter(|l| l["event"] == "epoch_started")
        .map(|l| l["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(started, [1, 2]);
    // The first line is epoch 1's first: its setup, sent as the node started it.
    assert_eq!(lines[0]["message"]["epoch"], 1, "{:?}", lines[0]);
    for event in &events {
        assert!(lines.contains(event), "the record lacks {event}");
    }

    // And it said what it refused, each in its own words. The strangers' frames travel on their
    // own connections, so give them until a deadline to be logged.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log.text().contains("which is not a neighbour")
        || !log.text().contains("unknown identity")
    {
        assert!(
            Instant::now() < deadline,
            "the strangers were never logged:\n{}",
            log.text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(strangers);
    let text = log.text();
    for expected in [
        "malformed frame",
        "heartbeat from lab \"other\", not ours",
        "unknown identity",
        "frame from node 9, which is not a neighbour",
        "stale epoch 1 (current 2)",
    ] {
        assert!(text.contains(expected), "log lacks {expected:?}:\n{text}");
    }

    let _ = lab.stop.send(());
    lab.node.await.unwrap().unwrap();
}
