//! Health checks: input nodes that stop answering `/healthz` are dropped, the others keep
//! getting clients.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{dead_address, fast_config, http_client, input_of, redirected, InputNode, Nameserver};
use tokio::net::TcpListener;

/// With 50 ms between checks, a 100 ms timeout and 3 failures, a dead node is gone in well under
/// this; the margin is for a loaded machine.
const DROPPED_WITHIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_dead_input_node_is_dropped_and_the_others_keep_the_traffic() {
    let mut nameserver = Nameserver::start(fast_config()).await;
    let mut inputs = Vec::new();
    for id in [1, 2, 3] {
        let input = InputNode::start(id).await;
        nameserver
            .register(id, &input.http_address())
            .await
            .unwrap();
        inputs.push(input);
    }
    let client = http_client();

    let dead = inputs.remove(1);
    let killed_at = Instant::now();
    dead.kill().await;
    nameserver.wait_for_live(&[1, 3]).await;
    let took = killed_at.elapsed();
    assert!(took < DROPPED_WITHIN, "node 2 dropped after {took:?}");

    // The survivors share the clients, and every redirect leads to a node that answers.
    let mut hits = Vec::new();
    for _ in 0..4 {
        let location = redirected(&client, &nameserver.http, "GET", "/users").await;
        let input = input_of(&location, &inputs);
        let echoed = client.get(&location).send().await.unwrap().text().await;
        assert_eq!(echoed.unwrap(), format!("input {} GET /users", input.id));
        hits.push(input.id);
    }
    hits.sort_unstable();
    assert_eq!(hits, [1, 1, 3, 3]);

    for input in inputs {
        input.kill().await;
    }
    nameserver.stop().await;
}

#[tokio::test]
async fn an_input_node_answering_500_is_dropped() {
    let mut nameserver = Nameserver::start(fast_config()).await;
    let sick = InputNode::start(1).await;
    let well = InputNode::start(2).await;
    nameserver.register(1, &sick.http_address()).await.unwrap();
    nameserver.register(2, &well.http_address()).await.unwrap();

    let since = Instant::now();
    sick.set_health(StatusCode::INTERNAL_SERVER_ERROR);
    nameserver.wait_for_live(&[2]).await;
    assert!(since.elapsed() < DROPPED_WITHIN, "{:?}", since.elapsed());

    // Once it recovers and registers again it is live at once, before its next check.
    sick.set_health(StatusCode::OK);
    nameserver.register(1, &sick.http_address()).await.unwrap();
    assert_eq!(nameserver.live_ids().await, [1, 2]);

    sick.kill().await;
    well.kill().await;
    nameserver.stop().await;
}

#[tokio::test]
async fn an_input_node_that_never_answers_is_dropped() {
    let mut nameserver = Nameserver::start(fast_config()).await;
    // The kernel accepts connections on this socket, but nothing ever reads or answers them: every
    // check runs into the timeout.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_address = silent.local_addr().unwrap().to_string();
    let well = InputNode::start(2).await;
    nameserver.register(1, &silent_address).await.unwrap();
    nameserver.register(2, &well.http_address()).await.unwrap();
    // A new node is live at once, before its first check.
    assert_eq!(nameserver.live_ids().await, [1, 2]);

    let took = nameserver.wait_for_live(&[2]).await;
    assert!(took < DROPPED_WITHIN, "{took:?}");

    drop(silent);
    well.kill().await;
    nameserver.stop().await;
}

#[tokio::test]
async fn with_every_input_node_dropped_clients_get_a_503() {
    let mut nameserver = Nameserver::start(fast_config()).await;
    let first = InputNode::start(1).await;
    let second = InputNode::start(2).await;
    nameserver.register(1, &first.http_address()).await.unwrap();
    nameserver
        .register(2, &second.http_address())
        .await
        .unwrap();
    let client = http_client();
    redirected(&client, &nameserver.http, "GET", "/").await;

    first.kill().await;
    second.kill().await;
    nameserver.wait_for_live(&[]).await;

    let response = client
        .get(format!("{}/users/alice", nameserver.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[reqwest::header::RETRY_AFTER], "1");
    let body = response.text().await.unwrap();
    assert!(body.starts_with("no input node is live"), "{body}");

    nameserver.stop().await;
}

#[tokio::test]
async fn health_checks_go_to_the_internal_address_not_the_public_one() {
    let mut nameserver = Nameserver::start(fast_config()).await;
    let alive = InputNode::start(1).await;
    // Node 1: internal address alive, public one dead: it stays. Node 2: the reverse: it goes.
    nameserver
        .register_public(1, &alive.http_address(), &dead_address().await)
        .await
        .unwrap();
    nameserver
        .register_public(2, &dead_address().await, &alive.http_address())
        .await
        .unwrap();
    assert_eq!(nameserver.live_ids().await, [1, 2]);

    let took = nameserver.wait_for_live(&[1]).await;
    assert!(took < DROPPED_WITHIN, "node 2 dropped after {took:?}");
    // Many more rounds of checks (50 ms apart) leave node 1 in place.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(nameserver.live_ids().await, [1]);

    alive.kill().await;
    nameserver.stop().await;
}
