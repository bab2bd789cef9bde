//! The gRPC registry: Register validates and refreshes, Deregister is idempotent, List is ordered.

mod common;

use common::{InputNode, Nameserver};
use labctl_nameserver::Config;
use tonic::Code;

#[tokio::test]
async fn register_refuses_bad_addresses_and_keeps_the_registry() {
    let mut nameserver = Nameserver::start(Config::default()).await;
    let input = InputNode::start(1).await;
    nameserver.register(1, &input.http_address()).await.unwrap();
    let before = nameserver.live().await;

    for bad in [
        "nope",
        "127.0.0.1:notaport",
        "",
        "127.0.0.1:0",
        "a/b:80",
        "::1:80",
    ] {
        for id in [1, 2] {
            let status = nameserver.register(id, bad).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
            assert!(
                status.message().contains(&format!("{bad:?}"))
                    && status.message().contains("host:port"),
                "{bad:?}: the message names the address and the expected form: {}",
                status.message()
            );
        }
        assert_eq!(nameserver.live().await, before, "after {bad:?}");
    }

    let status = nameserver.register(0, "127.0.0.1:8080").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("positive"),
        "{}",
        status.message()
    );
    assert_eq!(nameserver.live().await, before);

    input.kill().await;
    nameserver.stop().await;
}

#[tokio::test]
async fn register_accepts_host_names_and_ipv6() {
    // No health check runs during this test (the first would come after an hour), so no name is
    // ever resolved and the nodes stay live although nothing listens behind them.
    let mut nameserver = Nameserver::start(Config {
        health_interval: std::time::Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    nameserver.register(3, "node-3:8080").await.unwrap();
    nameserver.register(1, "[::1]:8080").await.unwrap();
    nameserver.register(2, "localhost:1").await.unwrap();
    assert_eq!(
        nameserver.live().await,
        [
            (1, "[::1]:8080".to_owned()),
            (2, "localhost:1".to_owned()),
            (3, "node-3:8080".to_owned()),
        ]
    );
    nameserver.stop().await;
}

#[tokio::test]
async fn deregister_removes_and_is_idempotent() {
    let mut nameserver = Nameserver::start(Config::default()).await;
    let first = InputNode::start(1).await;
    let second = InputNode::start(2).await;
    nameserver.register(1, &first.http_address()).await.unwrap();
    nameserver
        .register(2, &second.http_address())
        .await
        .unwrap();

    nameserver.deregister(99).await.expect("unknown id is OK");
    assert_eq!(nameserver.live_ids().await, [1, 2]);
    nameserver.deregister(1).await.unwrap();
    assert_eq!(nameserver.live_ids().await, [2]);
    nameserver.deregister(1).await.expect("twice is OK");
    assert_eq!(nameserver.live_ids().await, [2]);

    first.kill().await;
    second.kill().await;
    nameserver.stop().await;
}

#[tokio::test]
async fn run_refuses_a_zero_interval() {
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        health_interval: std::time::Duration::ZERO,
        ..Config::default()
    };
    let result = labctl_nameserver::run(config, grpc, http, std::future::pending()).await;
    assert!(
        matches!(result, Err(labctl_nameserver::Error::Config(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn register_refuses_a_bad_public_address_and_keeps_the_registry() {
    let mut nameserver = Nameserver::start(Config::default()).await;
    let input = InputNode::start(1).await;
    nameserver
        .register_public(1, &input.http_address(), "127.0.0.1:5001")
        .await
        .unwrap();
    let before = nameserver.live_public().await;

    for bad in [
        "nope",
        "127.0.0.1:notaport",
        "127.0.0.1:0",
        "a/b:80",
        "::1:80",
    ] {
        for id in [1, 2] {
            let status = nameserver
                .register_public(id, &input.http_address(), bad)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
            assert!(
                status
                    .message()
                    .contains(&format!("public_address {bad:?}"))
                    && status.message().contains("host:port"),
                "{bad:?}: the message names the field, the address and the expected form: {}",
                status.message()
            );
        }
        assert_eq!(nameserver.live_public().await, before, "after {bad:?}");
    }

    // Host names are as good a public address as socket addresses.
    nameserver
        .register_public(1, &input.http_address(), "localhost:5001")
        .await
        .unwrap();
    assert_eq!(
        nameserver.live_public().await,
        [(1, input.http_address(), "localhost:5001".to_owned())]
    );

    input.kill().await;
    nameserver.stop().await;
}
