//! The state file: restarts keep the state, corrupt files stop the daemon, writes are atomic.

mod common;

use common::{address, register, ring6, Daemon};
use labctl_bootstrap::{run, Config, Error};
use labctl_proto::bootstrap::{DeregisterRequest, DescribeRequest};
use tokio::net::TcpListener;

const STATE: &str = "bootstrap.json";
const TEMP: &str = "bootstrap.json.tmp";

#[tokio::test]
async fn a_restart_keeps_the_topology_and_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("nested/bootstrap"); // created by run
    let daemon = Daemon::start(&state_dir).await;
    let mut client = daemon.client().await;
    client.load_topology(ring6()).await.unwrap();
    for id in [1, 2, 4] {
        client
            .register(register(id, &address(id), false))
            .await
            .unwrap();
    }
    client
        .deregister(DeregisterRequest { id: 4 })
        .await
        .unwrap();
    let before = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    drop(client);
    daemon.stop().await.unwrap();

    let daemon = Daemon::start(&state_dir).await;
    let mut client = daemon.client().await;
    let after = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, before);
    assert_eq!(after.lab, "ring6");
    assert_eq!(after.nodes, [1, 2, 3, 4, 5, 6]);
    assert_eq!(after.links.len(), 6);
    let registered: Vec<(u64, String)> = after
        .registered
        .iter()
        .map(|r| (r.id, r.address.clone()))
        .collect();
    assert_eq!(registered, [(1, address(1)), (2, address(2))]);
    // The registrations are live ones: the same id from another address is still refused.
    let err = client
        .register(register(1, "127.0.0.1:5999", false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_restart_keeps_the_join_order() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    for id in [5, 9, 2] {
        client
            .register(register(id, &address(id), false))
            .await
            .unwrap();
    }
    let before = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    drop(client);
    daemon.stop().await.unwrap();

    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    assert_eq!(
        client
            .describe(DescribeRequest {})
            .await
            .unwrap()
            .into_inner(),
        before
    );
    // The line continues where it stopped: 7 joins after 2.
    let reply = client
        .register(register(7, &address(7), false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.neighbors.iter().map(|n| n.id).collect::<Vec<_>>(),
        [2]
    );
    daemon.stop().await.unwrap();
}

/// Runs the daemon on `dir` with a shutdown that never comes: it must fail at start.
async fn start_fails(dir: &std::path::Path) -> Error {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        state_dir: dir.to_owned(),
    };
    run(config, listener, std::future::pending())
        .await
        .expect_err("run started on a corrupt state file")
}

#[tokio::test]
async fn a_corrupt_state_file_stops_the_daemon_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE);
    let contents = b"{\"format\": 1, \"topology\": {\"lab\": \"ring6\", \"nod";
    std::fs::write(&path, contents).unwrap();

    let err = start_fails(dir.path()).await;
    assert!(matches!(err, Error::CorruptState { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("delete it"), "{message}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        contents,
        "the file was changed"
    );
    assert!(!dir.path().join(TEMP).exists());
}

#[tokio::test]
async fn an_inconsistent_state_file_stops_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STATE);
    // Valid JSON, but node 9 is registered outside the topology.
    let contents = r#"{
  "format": 1,
  "topology": {"lab": "pair", "nodes": [1, 2], "links": [[1, 2]]},
  "join_order": [],
  "registered": {"9": "127.0.0.1:4009"}
}"#;
    std::fs::write(&path, contents).unwrap();

    let err = start_fails(dir.path()).await;
    assert!(matches!(err, Error::CorruptState { .. }), "{err:?}");
    assert!(err.to_string().contains("node 9"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), contents);
}

#[tokio::test]
async fn every_change_is_written_atomically_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    client.load_topology(ring6()).await.unwrap();
    client
        .register(register(3, &address(3), false))
        .await
        .unwrap();

    // The reply came after the write: the file already holds the registration.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [STATE], "only the state file remains");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(STATE)).unwrap()).unwrap();
    assert_eq!(json["topology"]["lab"], "ring6");
    assert_eq!(json["registered"]["3"], address(3));

    client
        .deregister(DeregisterRequest { id: 3 })
        .await
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(STATE)).unwrap()).unwrap();
    assert_eq!(json["registered"], serde_json::json!({}));
    assert!(!dir.path().join(TEMP).exists());
    daemon.stop().await.unwrap();
}
