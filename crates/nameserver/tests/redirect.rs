//! The HTTP redirector: 307 to a live input node, round robin, keeping the path and the query.

mod common;

use common::{http_client, input_of, redirected, InputNode, Nameserver};
use labctl_nameserver::Config;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;

const NO_INPUT: &str = "no input node is live: the lab has no elected tree yet, or every input \
                        node is down; try again shortly";

#[tokio::test]
async fn redirect_keeps_the_method_path_and_query_exactly() {
    let mut nameserver = Nameserver::start(Config::default()).await;
    let input = InputNode::start(4).await;
    nameserver.register(4, &input.http_address()).await.unwrap();
    let client = http_client();

    for target in [
        "/users/alice/1234/chat?since=5&x=%20y",
        "/",
        "/groups/%7Bnot-a-uuid%7D/members?q=a+b&q=%2F&empty=&flag",
        "/users/%C3%A9lodie",
    ] {
        for method in ["GET", "POST", "DELETE", "PUT", "HEAD"] {
            let location = redirected(&client, &nameserver.http, method, target).await;
            assert_eq!(location, format!("http://{}{target}", input.address));
        }
        // Following the redirect reaches the input node with the same target, byte for byte.
        let location = redirected(&client, &nameserver.http, "POST", target).await;
        let echoed = client.post(&location).send().await.unwrap().text().await;
        assert_eq!(echoed.unwrap(), format!("input 4 POST {target}"));
    }

    input.kill().await;
    nameserver.stop().await;
}

#[tokio::test]
async fn round_robin_over_three_input_nodes() {
    let mut nameserver = Nameserver::start(Config::default()).await;
    let mut inputs = Vec::new();
    // Registered out of id order: the rotation follows the ids.
    for id in [30, 10, 20] {
        let input = InputNode::start(id).await;
        nameserver
            .register(id, &input.http_address())
            .await
            .unwrap();
        inputs.push(input);
    }
    assert_eq!(nameserver.live_ids().await, [10, 20, 30]);
    let client = http_client();

    let mut order = Vec::new();
    for _ in 0..6 {
        let location = redirected(&client, &nameserver.http, "GET", "/users").await;
        order.push(input_of(&location, &inputs).id);
    }
    // Each node exactly twice, in a repeating order that follows the ids (from wherever the
    // counter happens to start).
    for id in [10, 20, 30] {
        assert_eq!(
            order.iter().filter(|&&hit| hit == id).count(),
            2,
            "{order:?}"
        );
    }
    assert_eq!(order[..3], order[3..], "{order:?}");
    let start = order.iter().position(|&id| id == 10).unwrap();
    let mut rotated = order[..3].to_vec();
    rotated.rotate_left(start);
    assert_eq!(rotated, [10, 20, 30], "{order:?}");

    for input in inputs {
        input.kill().await;
    }
    nameserver.stop().await;
}

#[tokio::test]
async fn deregistered_or_moved_nodes_get_no_more_clients() {
    let mut nameserver = Nameserver::start(Config::default()).await;
    let first = InputNode::start(1).await;
    let second = InputNode::start(2).await;
    let moved = InputNode::start(2).await;
    nameserver.register(1, &first.http_address()).await.unwrap();
    nameserver
        .register(2, &second.http_address())
        .await
        .unwrap();
    let client = http_client();

    // Node 2 registers again from a new address: the new one replaces the old one.
    nameserver.register(2, &moved.http_address()).await.unwrap();
    assert_eq!(
        nameserver.live().await,
        [(1, first.http_address()), (2, moved.http_address())]
    );
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(redirected(&client, &nameserver.http, "GET", "/x").await);
    }
    assert!(seen.contains(&format!("http://{}/x", moved.address)));
    assert!(!seen.contains(&format!("http://{}/x", second.address)));

    nameserver.deregister(1).await.unwrap();
    assert_eq!(nameserver.live_ids().await, [2]);
    for _ in 0..4 {
        let location = redirected(&client, &nameserver.http, "GET", "/x").await;
        assert_eq!(location, format!("http://{}/x", moved.address));
    }

    for input in [first, second, moved] {
        input.kill().await;
    }
    nameserver.stop().await;
}

#[tokio::test]
async fn no_live_input_node_is_a_clear_503() {
    let nameserver = Nameserver::start(Config::default()).await;
    let client = http_client();

    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let response = client
            .request(method, format!("{}/users/alice", nameserver.http))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert!(response.headers().get(LOCATION).is_none());
        assert_eq!(response.text().await.unwrap(), NO_INPUT);
    }

    // A program asking for JSON gets the same sentence as {"error": ...}.
    for accept in [
        "application/json",
        "text/html;q=0.9, Application/JSON; charset=utf-8",
    ] {
        let response = client
            .get(format!("{}/users/alice", nameserver.http))
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).expect("a JSON body");
        assert_eq!(body, serde_json::json!({ "error": NO_INPUT }));
    }

    nameserver.stop().await;
}

#[tokio::test]
async fn healthz_and_inputs_are_answered_locally() {
    let mut nameserver = Nameserver::start(Config::default()).await;
    let client = http_client();
    let get = |path: &str| client.get(format!("{}{path}", nameserver.http)).send();

    // Even with no input node live, the nameserver itself is healthy.
    let response = get("/healthz").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "ok");
    let response = get("/_nameserver/inputs").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({ "live": [] }));

    let first = InputNode::start(7).await;
    let second = InputNode::start(3).await;
    nameserver.register(7, &first.http_address()).await.unwrap();
    nameserver
        .register(3, &second.http_address())
        .await
        .unwrap();

    // With input nodes live, both are still answered here, not redirected.
    let get = |path: &str| client.get(format!("{}{path}", nameserver.http)).send();
    let response = get("/healthz").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "ok");
    let response = get("/_nameserver/inputs").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "live": [
            { "id": 3, "http_address": second.http_address() },
            { "id": 7, "http_address": first.http_address() },
        ] })
    );
    // Other paths under the same names are redirected like any other request.
    redirected(&client, &nameserver.http, "GET", "/healthz/x").await;
    redirected(&client, &nameserver.http, "POST", "/_nameserver/inputs").await;

    first.kill().await;
    second.kill().await;
    nameserver.stop().await;
}

#[tokio::test]
async fn clients_are_sent_to_the_public_address_when_there_is_one() {
    let mut nameserver = Nameserver::start(Config::default()).await;
    // Node 4 is health-checked at `internal` but reached by clients at `public` (as a container's
    // port published on the host); node 5 gave no public address.
    let internal = InputNode::start(4).await;
    let public = InputNode::start(40).await;
    let plain = InputNode::start(5).await;
    nameserver
        .register_public(4, &internal.http_address(), &public.http_address())
        .await
        .unwrap();
    nameserver.register(5, &plain.http_address()).await.unwrap();
    assert_eq!(
        nameserver.live_public().await,
        [
            (4, internal.http_address(), public.http_address()),
            (5, plain.http_address(), String::new()),
        ]
    );
    let client = http_client();

    let mut seen = Vec::new();
    for _ in 0..4 {
        let location = redirected(&client, &nameserver.http, "GET", "/users?x=1").await;
        let echoed = client.get(&location).send().await.unwrap().text().await;
        seen.push((location, echoed.unwrap()));
    }
    seen.sort();
    seen.dedup();
    let mut expected = vec![
        (
            format!("http://{}/users?x=1", public.address),
            "input 40 GET /users?x=1".to_owned(),
        ),
        (
            format!("http://{}/users?x=1", plain.address),
            "input 5 GET /users?x=1".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected);

    // The listing shows where clients go.
    let response = client
        .get(format!("{}/_nameserver/inputs", nameserver.http))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "live": [
            { "id": 4, "http_address": public.http_address() },
            { "id": 5, "http_address": plain.http_address() },
        ] })
    );

    // Registering again without it sends clients to the internal address again.
    nameserver
        .register(4, &internal.http_address())
        .await
        .unwrap();
    nameserver.deregister(5).await.unwrap();
    let location = redirected(&client, &nameserver.http, "GET", "/").await;
    assert_eq!(location, format!("http://{}/", internal.address));

    for input in [internal, public, plain] {
        input.kill().await;
    }
    nameserver.stop().await;
}
