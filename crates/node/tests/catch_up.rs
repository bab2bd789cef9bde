//! Replication catch-up through the real data plane: three real nodes in a line 1 — 2 — 3 (node 1
//! the writer, node 2 its persistence replica, node 3 an input node), real ZeroMQ, gRPC, SQLite.
//! The writer starts with data; the replica starts either empty (it must catch up by snapshot) or
//! with an old prefix of the log (it must fetch exactly the entries it lacks). Either way its
//! database ends up holding exactly the writer's rows.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::Captured;
use labctl_chat::ops::Write;
use labctl_chat::store::Store;
use labctl_proto::node::node_admin_client::NodeAdminClient;
use labctl_proto::node::StatusRequest;

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
    let config = common::config(id, "line3", bootstrap, dir);
    let ready = config.ready_file.clone().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(labctl_node::run(config, async {
        let _ = stopped.await;
    }));
    Node {
        stop,
        task,
        admin: common::ready(&ready).await.admin,
    }
}

/// Wait until node `admin` reports `applied` = `want`.
async fn wait_applied(admin: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let url = format!("http://{admin}");
    let mut client = common::connect_retrying(|| NodeAdminClient::connect(url.clone())).await;
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

/// What the replica's database holds when the lab starts.
enum Replica {
    /// The first entries of the writer's own log.
    Prefix(u64),
    /// A log of its own, written by another writer (a copy that diverged), with this many users.
    Foreign(usize),
}

/// Run the line lab with node 1 seeded with `users` users (two entries each) and node 2 as
/// `replica` says; wait until node 2 caught up; stop; return both dumps and the log's length.
async fn scenario(users: usize, replica: Replica) -> (String, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let writer_db = dir.path().join("node-1").join("node.db");
    std::fs::create_dir_all(writer_db.parent().unwrap()).unwrap();
    seed_writer(&writer_db, users);
    let total = Store::open(&writer_db).unwrap().last_seq();
    let replica_db = dir.path().join("node-2").join("node.db");
    std::fs::create_dir_all(replica_db.parent().unwrap()).unwrap();
    match replica {
        Replica::Prefix(prefix) => {
            let writer = Store::open(&writer_db).unwrap();
            let mut replica = Store::open(&replica_db).unwrap();
            for entry in writer.entries_since(0, prefix as usize).unwrap() {
                replica.apply(&entry).unwrap();
            }
            assert_eq!(replica.last_seq(), prefix);
        }
        Replica::Foreign(users) => seed_writer(&replica_db, users),
    }

    let (bootstrap, _client) =
        common::bootstrap(dir.path(), "line3", &[1, 2, 3], &[(1, 2), (2, 3)]).await;

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
    let log = Captured::install();

    let snapshots = || log.count("restoring a snapshot from the writer");

    // From nothing: a snapshot.
    let (writer_rows, replica_rows, total) = scenario(12, Replica::Prefix(0)).await;
    assert_eq!(total, 24, "12 registrations and 12 messages");
    assert_eq!(
        replica_rows, writer_rows,
        "the replica holds exactly the writer's rows"
    );
    assert!(writer_rows.contains("user11"));
    assert_eq!(snapshots(), 1);

    // From an old prefix: only what it lacks, as log entries (no second snapshot); here more
    // than one catch-up batch of them, which must follow one another.
    let users = labctl_node::store::CATCH_UP_BATCH / 2 + 20;
    let (writer_rows, replica_rows, total) = scenario(users, Replica::Prefix(9)).await;
    assert!(total as usize > labctl_node::store::CATCH_UP_BATCH + 9);
    assert_eq!(
        replica_rows, writer_rows,
        "the replica holds exactly the writer's rows"
    );
    assert_eq!(
        snapshots(),
        1,
        "a replica with a prefix fetches entries, not a snapshot"
    );

    // A copy whose log runs past the writer's (it diverged): replaced by a snapshot, never
    // acknowledged for entries it does not share.
    let (writer_rows, replica_rows, _) = scenario(12, Replica::Foreign(15)).await;
    assert_eq!(
        replica_rows, writer_rows,
        "the diverged copy now holds the writer's rows"
    );
    assert_eq!(
        snapshots(),
        2,
        "the diverged copy was replaced by a snapshot"
    );
}
