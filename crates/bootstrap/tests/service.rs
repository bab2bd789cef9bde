//! The Bootstrap service over real gRPC on loopback: topologies, registrations, join order.

mod common;

use common::{address, pairs, register, ring6, topology, Daemon};
use labctl_proto::bootstrap::{DeregisterRequest, DescribeRequest, NeighborsRequest, Topology};
use tonic::Code;

/// Node `id`'s two ring6 neighbours, in id order.
fn ring6_neighbors(id: u64) -> [u64; 2] {
    let before = if id == 1 { 6 } else { id - 1 };
    let after = if id == 6 { 1 } else { id + 1 };
    [before.min(after), before.max(after)]
}

#[tokio::test]
async fn ring6_nodes_get_their_two_ring_neighbours_with_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    client.load_topology(ring6()).await.unwrap();

    for id in 1..=6u64 {
        let reply = client
            .register(register(id, &address(id), false))
            .await
            .unwrap()
            .into_inner();
        // Registered so far: 1..=id. A neighbour registered earlier has its address, a later one "".
        let expected: Vec<(u64, String)> = ring6_neighbors(id)
            .into_iter()
            .map(|n| (n, if n < id { address(n) } else { String::new() }))
            .collect();
        assert_eq!(
            pairs(&reply.neighbors),
            expected,
            "register reply of node {id}"
        );
        assert_eq!(
            reply.lab_size, 6,
            "the topology's node count, for the quorum"
        );
    }
    for id in 1..=6u64 {
        let reply = client
            .neighbors(NeighborsRequest { id, wait_ms: 0 })
            .await
            .unwrap()
            .into_inner();
        let expected: Vec<(u64, String)> = ring6_neighbors(id)
            .into_iter()
            .map(|n| (n, address(n)))
            .collect();
        assert_eq!(pairs(&reply.neighbors), expected, "neighbours of node {id}");
    }
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_node_with_the_same_id_is_refused_unless_it_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    client.load_topology(ring6()).await.unwrap();
    client
        .register(register(3, "127.0.0.1:4000", false))
        .await
        .unwrap();

    let err = client
        .register(register(3, "127.0.0.1:4999", false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(
        err.message()
            .contains("node 3 is already registered at 127.0.0.1:4000"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("rejoin"), "{}", err.message());

    // The same address again is idempotent.
    client
        .register(register(3, "127.0.0.1:4000", false))
        .await
        .unwrap();
    let described = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.registered.len(), 1);
    assert_eq!(described.registered[0].address, "127.0.0.1:4000");

    // A restarted node passes rejoin and replaces its address; its neighbours see the new one.
    client
        .register(register(3, "127.0.0.1:4999", true))
        .await
        .unwrap();
    let seen_by_2 = client
        .neighbors(NeighborsRequest { id: 2, wait_ms: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pairs(&seen_by_2.neighbors),
        [(1, String::new()), (3, "127.0.0.1:4999".to_owned())]
    );
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_ids_and_bad_registrations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    client.load_topology(ring6()).await.unwrap();

    let err = client
        .register(register(9, &address(9), false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        err.message(),
        "node 9 is not in lab ring6's topology (nodes 1..6)"
    );
    let err = client
        .neighbors(NeighborsRequest { id: 9, wait_ms: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    for (id, addr, names) in [
        (0, "127.0.0.1:4000", "node id 0"),
        (1, "", "\"\""),
        (1, "127.0.0.1", "\"127.0.0.1\""),
        (1, "127.0.0.1:0", "port 0"),
    ] {
        let err = client
            .register(register(id, addr, false))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id} at {addr:?}");
        assert!(err.message().contains(names), "{}", err.message());
    }
    let described = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(described.registered.is_empty());
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_topology_is_refused_and_the_previous_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    client.load_topology(ring6()).await.unwrap();
    client
        .register(register(1, &address(1), false))
        .await
        .unwrap();
    let before = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();

    let cases: [(Topology, &str); 4] = [
        (
            topology("bad", &[1, 2, 2], &[(1, 2)]),
            "node 2 is listed twice",
        ),
        (
            topology("bad", &[1, 2], &[(1, 2), (2, 2)]),
            "link 2-2 is a self-loop",
        ),
        (
            topology("bad", &[1, 2], &[(1, 3)]),
            "link 1-3 names node 3, which is not in the topology",
        ),
        (topology("bad", &[0, 1], &[(0, 1)]), "node id 0"),
    ];
    for (bad, expected) in cases {
        let err = client.load_topology(bad.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        assert!(
            err.message().contains(expected),
            "{:?} lacks {expected:?}",
            err.message()
        );
        let after = client
            .describe(DescribeRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(after, before, "state changed by refused {bad:?}");
    }
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn a_new_topology_keeps_registrations_of_the_nodes_it_still_has() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    client.load_topology(ring6()).await.unwrap();
    for id in [1, 2, 5] {
        client
            .register(register(id, &address(id), false))
            .await
            .unwrap();
    }
    client
        .load_topology(topology("line3", &[1, 2, 3], &[(1, 2), (2, 3)]))
        .await
        .unwrap();
    let described = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.lab, "line3");
    assert_eq!(described.nodes, [1, 2, 3]);
    let registered: Vec<u64> = described.registered.iter().map(|r| r.id).collect();
    assert_eq!(registered, [1, 2]);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn deregister_forgets_the_address_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;
    client.load_topology(ring6()).await.unwrap();
    for id in [1, 2] {
        client
            .register(register(id, &address(id), false))
            .await
            .unwrap();
    }
    client
        .deregister(DeregisterRequest { id: 2 })
        .await
        .unwrap();
    client
        .deregister(DeregisterRequest { id: 2 })
        .await
        .unwrap();
    client
        .deregister(DeregisterRequest { id: 42 })
        .await
        .unwrap();

    let seen_by_1 = client
        .neighbors(NeighborsRequest { id: 1, wait_ms: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pairs(&seen_by_1.neighbors),
        [(2, String::new()), (6, String::new())]
    );
    let described = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.lab, "ring6", "deregistering keeps the topology");
    assert_eq!(described.registered.len(), 1);
    // A node that left may join again from another address without rejoin.
    client
        .register(register(2, "127.0.0.1:5002", false))
        .await
        .unwrap();
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_topology_nodes_are_linked_in_join_order() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = daemon.client().await;

    let first = client
        .register(register(5, &address(5), false))
        .await
        .unwrap()
        .into_inner();
    assert!(
        first.neighbors.is_empty(),
        "the first node has no neighbours"
    );
    let second = client
        .register(register(9, &address(9), false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(&second.neighbors), [(5, address(5))]);
    let third = client
        .register(register(2, &address(2), false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(&third.neighbors), [(9, address(9))]);
    assert_eq!(
        (first.lab_size, second.lab_size, third.lab_size),
        (1, 2, 3),
        "in join order, the lab is as large as the ids that joined"
    );

    let neighbors = |id| {
        let mut client = client.clone();
        async move {
            let reply = client
                .neighbors(NeighborsRequest { id, wait_ms: 0 })
                .await
                .unwrap()
                .into_inner();
            reply.neighbors.iter().map(|n| n.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(neighbors(5).await, [9], "5 is linked to 9 only, not to 2");
    assert_eq!(neighbors(9).await, [2, 5]);
    assert_eq!(neighbors(2).await, [9]);

    let described = client
        .describe(DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.lab, "", "no topology loaded");
    assert_eq!(described.nodes, [5, 9, 2], "nodes in join order");
    let links: Vec<(u64, u64)> = described.links.iter().map(|l| (l.a, l.b)).collect();
    assert_eq!(links, [(5, 9), (9, 2)]);

    let err = client
        .neighbors(NeighborsRequest { id: 7, wait_ms: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("node 7"), "{}", err.message());
    daemon.stop().await.unwrap();
}
