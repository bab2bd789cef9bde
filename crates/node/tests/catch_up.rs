//! Replication catch-up through the real data plane: three real nodes in a line 1 — 2 — 3 (node 1
//! the writer, node 2 its persistence replica, node 3 an input node), real ZeroMQ, gRPC, SQLite.
//! The writer starts with data; the replica starts either empty (it must catch up by snapshot) or
//! with an old prefix of the log (it must fetch exactly the entries it lacks). Either way its
//! database ends up holding exactly the writer's rows.

use std::path::Path;
use std::time::{Duration, Instant};

use labctl_chat::ops::Write;
use labctl_chat::store::Store;
use labctl_proto::bootstrap::bootstrap_client::BootstrapClient;
use labctl_proto::bootstrap::{Link, Topology};
use labctl_proto::node::node_admin_client::NodeAdminClient;
use labctl_proto::node::StatusRequest;
use tokio::net::TcpListener;

/// A log sink the test can read (one global subscriber for the whole binary).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

/// Fill a writer's database with `n` users, each writing to the first.
fn seed_writer(db: &Path, n: usize) {
    let mut store = Store::open(db).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let hash = labctl_chat::password::hash("long enough password");
    let mut first = None;
    for i in 0..n {
        let register = Write::Register {
            username: format!("user{i}"),
            tag: "1000".into(),
            password_hash: hash.clone(),
        };
        let (reply, _) = store.execute(&register, 1, now).unwrap();
        let labctl_chat::ops::Reply::User { user } = reply else {
            panic!("register answers a user")
        };
        let to = first.get_or_insert_with(|| user.clone()).clone();
        let message = Write::SendPrivate {
            from: user.uuid,
            username: to.username,
            tag: to.tag,
            content: format!("message {i}"),
        };
        store.execute(&message, 1, now).unwrap();
    }
}

struct Node {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    admin: String,
}

async fn start_node(id: u64, bootstrap: &str, dir: &Path) -> Node {
    let ready = dir.join(format!("node-{id}.json"));
    let config = labctl_node::Config {
        id,
        lab: "line3".into(),
        bootstrap: bootstrap.to_string(),
        listen_host: "127.0.0.1".into(),
        advertise_host: "127.0.0.1".into(),
        control_port: 0,
        admin_port: 0,
        heartbeat: Duration::from_millis(50),
        suspicion: Duration::from_millis(2000),
        ready_file: Some(ready.clone()),
        join_timeout: Duration::from_secs(10),
        data_dir: dir.join(format!("node-{id}")),
        nameserver: None,
        http_port: 0,
        session_secret: b"test secret".to_vec(),
        templates: None,
        durability: labctl_node::data::Durability::Replicas,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(labctl_node::run(config, async {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(10);
    let info: labctl_node::Ready = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(Instant::now() < deadline, "node {id} never became ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    Node {
        stop,
        task,
        admin: info.admin,
    }
}

/// Wait until node `admin` reports `applied` = `want`.
async fn wait_applied(admin: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut client = loop {
        match NodeAdminClient::connect(format!("http://{admin}")).await {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    loop {
        let status = client.status(StatusRequest {}).await.unwrap().into_inner();
        if status.applied == want {
            assert!(
                status.roles.contains(&"persistence".to_string()),
                "{status:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {} stuck at applied {} (want {want})",
            status.id,
            status.applied
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Run the line lab with node 1 seeded and node 2 holding `prefix` entries of its log; wait until
/// node 2 caught up; stop; return both dumps.
async fn scenario(prefix: u64) -> (String, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let writer_db = dir.path().join("node-1").join("node.db");
    std::fs::create_dir_all(writer_db.parent().unwrap()).unwrap();
    seed_writer(&writer_db, 12);
    let total = Store::open(&writer_db).unwrap().last_seq();
    let replica_db = dir.path().join("node-2").join("node.db");
    std::fs::create_dir_all(replica_db.parent().unwrap()).unwrap();
    {
        let writer = Store::open(&writer_db).unwrap();
        let mut replica = Store::open(&replica_db).unwrap();
        for entry in writer.entries_since(0, prefix as usize).unwrap() {
            replica.apply(&entry).unwrap();
        }
        assert_eq!(replica.last_seq(), prefix);
    }

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bootstrap = listener.local_addr().unwrap().to_string();
    let config = labctl_bootstrap::Config {
        state_dir: dir.path().join("bootstrap"),
    };
    tokio::spawn(labctl_bootstrap::run(
        config,
        listener,
        std::future::pending(),
    ));
    let mut client = loop {
        match BootstrapClient::connect(format!("http://{bootstrap}")).await {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    client
        .load_topology(Topology {
            lab: "line3".into(),
            nodes: vec![1, 2, 3],
            links: vec![Link { a: 1, b: 2 }, Link { a: 2, b: 3 }],
        })
        .await
        .unwrap();

    let mut nodes = Vec::new();
    for id in [1, 2, 3] {
        nodes.push(start_node(id, &bootstrap, dir.path()).await);
    }
    wait_applied(&nodes[1].admin, total).await;
    for node in nodes {
        let _ = node.stop.send(());
        node.task.await.unwrap().unwrap();
    }
    let dump = |db: &Path| Store::open(db).unwrap().dump().unwrap();
    (dump(&writer_db), dump(&replica_db), total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_catches_up_by_snapshot_or_by_the_entries_it_lacks() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // From nothing: a snapshot.
    let (writer_rows, replica_rows, total) = scenario(0).await;
    assert_eq!(total, 24, "12 registrations and 12 messages");
    assert_eq!(
        replica_rows, writer_rows,
        "the replica holds exactly the writer's rows"
    );
    assert!(writer_rows.contains("user11"));
    assert_eq!(log.count("restoring a snapshot from the writer"), 1);

    // From an old prefix: only what it lacks, as log entries (no second snapshot).
    let (writer_rows, replica_rows, _) = scenario(9).await;
    assert_eq!(
        replica_rows, writer_rows,
        "the replica holds exactly the writer's rows"
    );
    assert_eq!(
        log.count("restoring a snapshot from the writer"),
        1,
        "a replica with a prefix fetches entries, not a snapshot"
    );
}
