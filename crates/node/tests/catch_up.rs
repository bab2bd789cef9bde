//! Replication catch-up through the real data plane: three real nodes in a line 1 — 2 — 3 (node 1
//! the writer, node 2 its persistence replica, node 3 an input node), real ZeroMQ, gRPC, SQLite.
//! The writer starts with data; the replica starts empty, or with an old prefix of the log (it
//! must fetch exactly the entries it lacks, batch after batch), or with an old writer's tail that
//! never committed (it must discard it). Either way its database ends up holding exactly the
//! writer's rows, and its log the writer's log.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::Captured;
use labctl_chat::ops::Write;
use labctl_chat::store::Store;
use labctl_core::log::WireEntry;
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
        let (reply, _) = store.execute(&register, WRITER_EPOCH, now).unwrap();
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
        store.execute(&message, WRITER_EPOCH, now).unwrap();
    }
}

/// The epoch the writer's seeded entries were written in.
const WRITER_EPOCH: u64 = 2;

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
    /// The first entries of the writer's own log, applied.
    Prefix(u64),
    /// The first entries of the writer's log, applied, then an older writer's tail of this many
    /// entries, stored and never committed.
    StaleTail(u64, u64),
}

/// Run the line lab with node 1 seeded with `users` users (two entries each) and node 2 as
/// `replica` says; wait until node 2 caught up; stop; return both dumps (rows, then the log) and
/// the seeded log's length.
async fn scenario(users: usize, replica: Replica) -> (String, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let writer_db = dir.path().join("node-1").join("node.db");
    std::fs::create_dir_all(writer_db.parent().unwrap()).unwrap();
    seed_writer(&writer_db, users);
    let total = Store::open(&writer_db).unwrap().last_seq();
    let replica_db = dir.path().join("node-2").join("node.db");
    std::fs::create_dir_all(replica_db.parent().unwrap()).unwrap();
    let (prefix, tail) = match replica {
        Replica::Prefix(prefix) => (prefix, 0),
        Replica::StaleTail(prefix, tail) => (prefix, tail),
    };
    {
        let writer = Store::open(&writer_db).unwrap();
        let mut replica = Store::open(&replica_db).unwrap();
        replica
            .append(0, &writer.entries_since(0, prefix as usize).unwrap())
            .unwrap();
        replica.apply_committed(prefix).unwrap();
        // An older writer's entries that never committed: a user who must never appear.
        let stale: Vec<WireEntry> = (1..=tail)
            .map(|i| WireEntry {
                epoch: WRITER_EPOCH - 1,
                seq: prefix + i,
                key: None,
                body: serde_json::to_string(&labctl_chat::Command {
                    write: Write::Register {
                        username: format!("ghost{i}"),
                        tag: "1000".into(),
                        password_hash: labctl_chat::password::hash("long enough password"),
                    },
                    sent_at: "2026-12-03T10:00:00.000Z".into(),
                })
                .unwrap(),
            })
            .collect();
        replica.append(prefix, &stale).unwrap();
        assert_eq!(replica.last_seq(), prefix + tail);
    }

    let (bootstrap, _client) =
        common::bootstrap(dir.path(), "line3", &[1, 2, 3], &[(1, 2), (2, 3)]).await;

    let mut nodes = Vec::new();
    for id in [1, 2, 3] {
        nodes.push(start_node(id, &bootstrap, dir.path()).await);
    }
    // The new writer's epoch-start entry follows the seeded log.
    wait_applied(&nodes[1].admin, total + 1).await;
    for node in nodes {
        let _ = node.stop.send(());
        node.task.await.unwrap().unwrap();
    }
    let dump = |db: &Path| {
        let store = Store::open(db).unwrap();
        let log = serde_json::to_string(&store.entries_since(0, 100_000).unwrap()).unwrap();
        format!("{}\n{log}", store.dump().unwrap())
    };
    (dump(&writer_db), dump(&replica_db), total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_catches_up_with_the_entries_it_lacks_and_discards_a_stale_tail() {
    let log = Captured::install();
    let discarded = || log.count("of an old writer's tail");

    // From nothing.
    let (writer, replica, total) = scenario(12, Replica::Prefix(0)).await;
    assert_eq!(total, 24, "12 registrations and 12 messages");
    assert_eq!(
        replica, writer,
        "the replica holds exactly the writer's rows and log"
    );
    assert!(writer.contains("user11"));

    // From an old prefix: only what it lacks, in more than one batch, which must follow one
    // another.
    let users = labctl_core::plane::BATCH / 2 + 20;
    let (writer, replica, total) = scenario(users, Replica::Prefix(9)).await;
    assert!(total as usize > labctl_core::plane::BATCH + 9);
    assert_eq!(
        replica, writer,
        "the replica holds exactly the writer's rows and log"
    );
    assert_eq!(discarded(), 0);

    // An old writer's tail that never committed: discarded, never applied.
    let (writer, replica, _) = scenario(12, Replica::StaleTail(9, 5)).await;
    assert_eq!(
        replica, writer,
        "the replica holds exactly the writer's rows and log"
    );
    assert!(
        !replica.contains("ghost"),
        "a discarded entry was never applied"
    );
    assert!(discarded() >= 1, "the replica said it discarded the tail");
}
