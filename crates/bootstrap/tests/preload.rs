//! `preload_topology`: a topology handed over at start behaves exactly like one loaded by
//! LoadTopology, also across restarts that find a persisted state.

mod common;

use common::{address, pairs, register, ring6, topology, Daemon};
use labctl_bootstrap::{preload_topology, Error};
use labctl_proto::bootstrap::{DescribeRequest, NeighborsRequest};

#[tokio::test]
async fn a_preloaded_topology_is_served_as_if_loaded_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("fresh/bootstrap"); // created by the preload
    let dropped = preload_topology(&state_dir, &ring6()).await.unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");

    let daemon = Daemon::start(&state_dir).await;
    let mut client = daemon.client().await;
    let described = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.lab, "ring6");
    assert_eq!(described.nodes, [1, 2, 3, 4, 5, 6]);
    assert_eq!(described.links.len(), 6);
    assert!(described.registered.is_empty());

    // Topology mode, not join order: node 1's neighbours are 2 and 6 before anyone else joins,
    // and an id outside the topology is refused.
    let reply = client
        .register(register(1, &address(1), false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pairs(&reply.neighbors),
        [(2, String::new()), (6, String::new())]
    );
    let err = client
        .register(register(9, &address(9), false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn preloading_after_a_restart_keeps_registrations_like_load_topology() {
    let dir = tempfile::tempdir().unwrap();
    preload_topology(dir.path(), &ring6()).await.unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    for id in [1, 2, 5] {
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

    // The container restarts with the same command line: the same topology again changes
    // nothing, so the registrations (the nodes are still there) survive.
    let dropped = preload_topology(dir.path(), &ring6()).await.unwrap();
    assert!(dropped.is_empty(), "{dropped:?}");
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    let after = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, before);
    let reply = client
        .neighbors(NeighborsRequest { id: 1, wait_ms: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pairs(&reply.neighbors),
        [(2, address(2)), (6, String::new())]
    );
    drop(client);
    daemon.stop().await.unwrap();

    // Another topology replaces it, as LoadTopology would: registrations of ids that are no
    // longer nodes are dropped, the others kept.
    let dropped = preload_topology(dir.path(), &topology("pair", &[1, 2], &[(1, 2)]))
        .await
        .unwrap();
    assert_eq!(dropped, [5]);
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    let after = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.lab, "pair");
    let registered: Vec<u64> = after.registered.iter().map(|r| r.id).collect();
    assert_eq!(registered, [1, 2]);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_preload_replaces_the_join_order() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    for id in [3, 7] {
        client
            .register(register(id, &address(id), false))
            .await
            .unwrap();
    }
    drop(client);
    daemon.stop().await.unwrap();

    let dropped = preload_topology(dir.path(), &ring6()).await.unwrap();
    assert_eq!(dropped, [7]);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bootstrap.json")).unwrap()).unwrap();
    assert_eq!(state["join_order"], serde_json::json!([]));
    assert_eq!(state["registered"], serde_json::json!({"3": address(3)}));
}

#[tokio::test]
async fn an_invalid_topology_is_refused_and_the_state_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    preload_topology(dir.path(), &ring6()).await.unwrap();
    let path = dir.path().join("bootstrap.json");
    let saved = std::fs::read(&path).unwrap();

    let err = preload_topology(dir.path(), &topology("bad", &[1, 2], &[(1, 7)]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTopology(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("link 1-7 names node 7, which is not in the topology"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        saved,
        "the state was changed"
    );
}

#[tokio::test]
async fn a_corrupt_state_file_stops_the_preload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, b"{\"format\": 1, \"topo").unwrap();
    let err = preload_topology(dir.path(), &ring6()).await.unwrap_err();
    assert!(matches!(err, Error::CorruptState { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"format\": 1, \"topo");
}
