//! Neighbors waits for the missing addresses without polling, and gives up after `wait_ms`.

mod common;

use std::time::{Duration, Instant};

use common::{address, pairs, register, ring6, Daemon};
use labctl_proto::bootstrap::NeighborsRequest;

/// Loads ring6 and registers every node but 6; node 1 then waits for 6 (its neighbours: 2, 6).
async fn ring6_without_node_6(daemon: &Daemon) -> common::Client {
    let mut client = daemon.client().await;
    client.load_topology(ring6()).await.unwrap();
    for id in 1..=5 {
        client
            .register(register(id, &address(id), false))
            .await
            .unwrap();
    }
    client
}

#[tokio::test]
async fn a_waiting_call_answers_as_soon_as_the_last_neighbour_registers() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = ring6_without_node_6(&daemon).await;

    let started = Instant::now();
    let mut waiting = {
        let mut client = daemon.client().await;
        tokio::spawn(async move {
            client
                .neighbors(NeighborsRequest {
                    id: 1,
                    wait_ms: 10_000,
                })
                .await
        })
    };
    // While 6 is missing the call keeps waiting (this checks the behaviour, it is not a
    // readiness delay: the outcome below holds however the call and the registration interleave).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "Neighbors answered while a neighbour was still missing"
    );

    client
        .register(register(6, &address(6), false))
        .await
        .unwrap();
    let reply = waiting.await.unwrap().unwrap().into_inner();
    let elapsed = started.elapsed();
    assert_eq!(pairs(&reply.neighbors), [(2, address(2)), (6, address(6))]);
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: it waited for the timeout instead of the registration"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn with_a_neighbour_missing_it_answers_after_wait_ms() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = ring6_without_node_6(&daemon).await;

    let started = Instant::now();
    let reply = client
        .neighbors(NeighborsRequest {
            id: 1,
            wait_ms: 250,
        })
        .await
        .unwrap()
        .into_inner();
    let elapsed = started.elapsed();
    assert_eq!(
        pairs(&reply.neighbors),
        [(2, address(2)), (6, String::new())]
    );
    assert!(
        elapsed >= Duration::from_millis(250),
        "answered after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn other_changes_do_not_end_the_wait_early() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let mut client = ring6_without_node_6(&daemon).await;
    client.load_topology(ring6()).await.unwrap(); // registrations kept, 6 still missing

    let mut waiting = {
        let mut client = daemon.client().await;
        tokio::spawn(async move {
            client
                .neighbors(NeighborsRequest {
                    id: 1,
                    wait_ms: 10_000,
                })
                .await
        })
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "Neighbors answered while neighbour 6 was still missing"
    );
    // A change that wakes the waiting call but leaves 6 missing: node 3 rejoins elsewhere.
    client
        .register(register(3, "127.0.0.1:5003", true))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "Neighbors answered after an unrelated change while neighbour 6 was still missing"
    );
    client
        .register(register(6, &address(6), false))
        .await
        .unwrap();
    let reply = waiting.await.unwrap().unwrap().into_inner();
    assert_eq!(pairs(&reply.neighbors), [(2, address(2)), (6, address(6))]);
    daemon.stop().await.unwrap();
}

#[tokio::test]
async fn shutting_down_answers_waiting_calls_instead_of_waiting_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path()).await;
    let _client = ring6_without_node_6(&daemon).await;

    let mut waiting = {
        let mut client = daemon.client().await;
        tokio::spawn(async move {
            client
                .neighbors(NeighborsRequest {
                    id: 1,
                    wait_ms: 20_000,
                })
                .await
        })
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "Neighbors answered while a neighbour was still missing"
    );
    let started = Instant::now();
    daemon.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    let reply = waiting.await.unwrap().unwrap().into_inner();
    assert_eq!(
        pairs(&reply.neighbors),
        [(2, address(2)), (6, String::new())]
    );
}
