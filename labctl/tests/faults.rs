//! `labctl fault` on live labs in the process runtime (SPEC §6, §7): the writer killed then
//! restarted, a 2|4 partition then healed, a node paused then resumed, a flapping link, a
//! forwarder killed. After each step: `status` converged with the expected components, roots
//! and roles, and the nameserver lists exactly the input nodes that can reach their root. Then
//! bad input: refused with exit 2, nothing changed.

mod common;
#[allow(dead_code)]
mod live_util;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use labctl_core::{NodeId, Role};
use live_util::{fault_on, inputs, settle_lab, status_of, Home, LiveReport, Part};

fn ring6() -> std::path::PathBuf {
    common::topology_file("ring6.toml")
}

/// [`fault_on`] lab `ring6`.
fn fault(home: &Home, args: &[&str]) -> String {
    fault_on(home, "ring6", args)
}

/// `labctl status ring6 --json`, read back.
fn status(home: &Home) -> LiveReport {
    status_of(home, "ring6")
}

/// [`settle_lab`] for lab `ring6`.
fn settle(home: &Home, expected: &[Part]) -> LiveReport {
    settle_lab(home, "ring6", expected)
}

/// The nameserver's gRPC address, from the lab's record.
fn nameserver_grpc(home: &Home, lab: &str) -> String {
    let record = std::fs::read_to_string(home.lab_folder(lab).join("lab.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    record["nameserver"]["grpc"].as_str().unwrap().to_string()
}

/// Poll the nameserver's list until it is exactly the report's input nodes.
fn check_nameserver(home: &Home, report: &LiveReport) {
    let want = inputs(report);
    let address = format!("http://{}", nameserver_grpc(home, &report.report.lab));
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed: BTreeSet<NodeId> = tokio.block_on(async {
            use labctl_proto::nameserver::nameserver_client::NameserverClient;
            let mut client = NameserverClient::connect(address.clone()).await.unwrap();
            let reply = client
                .list(labctl_proto::nameserver::ListRequest {})
                .await
                .unwrap();
            reply.into_inner().live.iter().map(|n| n.id).collect()
        });
        if listed == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nameserver lists {listed:?}; the input nodes that reach their root are {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn whole() -> Vec<Part> {
    vec![((1..=6).collect(), Some(1), true)]
}

#[test]
fn the_writer_killed_then_restarted() {
    let home = Home::new();
    let up = home.up(&ring6(), &[]);
    assert_eq!(up.report.leader, Some(1));
    let said = fault(&home, &["kill", "leader"]);
    assert!(said.contains("node 1 (the leader) killed"), "{said}");

    let killed = settle(&home, &[(vec![2, 3, 4, 5, 6], Some(2), true)]);
    assert_eq!(killed.report.leader, Some(2));
    assert_eq!(killed.addresses["1"].state, "down");
    assert!(
        !killed.report.tree.contains_key("1"),
        "a dead node has no place"
    );
    assert_eq!(
        killed.faults,
        vec![
            serde_json::json!({"action": "kill", "node": 1, "since_ms": killed.faults[0]["since_ms"]})
        ]
    );
    check_nameserver(&home, &killed);

    fault(&home, &["restart", "1"]);
    let back = settle(&home, &whole());
    assert!(back.faults.is_empty(), "{:?}", back.faults);
    assert!(
        back.report.epoch > killed.report.epoch,
        "epochs only grow: {:?} then {:?}",
        killed.report.epoch,
        back.report.epoch
    );
    assert_ne!(
        back.addresses["1"].pid, up.addresses["1"].pid,
        "a new process"
    );
    check_nameserver(&home, &back);
}

/// POST a JSON body to `url` and GET `read`; returns both statuses and bodies.
fn post_and_get(url: &str, body: serde_json::Value, read: &str) -> ((u16, String), (u16, String)) {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let client = reqwest::Client::new();
        let post = client
            .post(url)
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap();
        let post = (post.status().as_u16(), post.text().await.unwrap());
        let get = client
            .get(read)
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        (post, (get.status().as_u16(), get.text().await.unwrap()))
    })
}

#[test]
fn a_two_four_partition_then_healed() {
    let home = Home::new();
    let up = home.up(&ring6(), &[]);
    // A user, stored while the lab is whole.
    let register = |url: &str, name: &str| {
        post_and_get(
            &format!("{url}/register"),
            serde_json::json!({"username": name, "tag": "1234", "password": "a long password"}),
            &format!("{url}/users/alice"),
        )
    };
    let ((created, _), _) = register(&up.nameserver, "alice");
    assert_eq!(created, 201);

    let said = fault(&home, &["partition", "1,2", "3,4,5,6"]);
    assert!(said.contains("2 links cut (1–6, 2–3)"), "{said}");
    let split = settle(
        &home,
        &[
            (vec![1, 2], Some(1), false),
            (vec![3, 4, 5, 6], Some(3), true),
        ],
    );
    assert_eq!(split.report.leader, Some(3), "the quorum's root");
    assert_eq!(split.report.roles["1"], vec![Role::Leader]);
    check_nameserver(&home, &split);

    // The minority refuses writes, saying why, and still serves the reads it can.
    let http = split.addresses["2"]
        .http
        .clone()
        .expect("2 serves the chat");
    let ((status, body), (read, users)) = register(&format!("http://{http}"), "bob");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("holds 2 of 6 nodes; writes need 4"), "{body}");
    assert_eq!(read, 200, "{users}");
    assert!(users.contains("alice"), "{users}");

    fault(&home, &["heal", "--all"]);
    let healed = settle(&home, &whole());
    assert!(healed.faults.is_empty());
    check_nameserver(&home, &healed);
}

#[test]
fn a_node_paused_then_resumed() {
    let home = Home::new();
    home.up(&ring6(), &[]);
    fault(&home, &["pause", "4"]);
    let paused = settle(&home, &[(vec![1, 2, 3, 5, 6], Some(1), true)]);
    assert_eq!(paused.addresses["4"].state, "paused");
    check_nameserver(&home, &paused);
    fault(&home, &["resume", "4"]);
    let resumed = settle(&home, &whole());
    assert_eq!(resumed.addresses["4"].state, "running");
    check_nameserver(&home, &resumed);
}

#[test]
fn a_link_healed_while_an_end_was_paused_works_once_it_resumes() {
    // Healing skips a paused node (it cannot take a new filter); on resume it must get its filter
    // back, even an empty one, or it keeps dropping the healed link's frames.
    let home = Home::new();
    home.up(&ring6(), &[]);
    fault(&home, &["cut", "1", "2"]);
    assert_eq!(filters_of(&home, 1), vec![(2, true)]);
    fault(&home, &["pause", "1"]);
    fault(&home, &["heal", "1", "2"]);
    assert_eq!(
        filters_of(&home, 2),
        vec![],
        "the running end is healed at once"
    );
    fault(&home, &["resume", "1"]);
    assert_eq!(
        filters_of(&home, 1),
        vec![],
        "the resumed end takes its (empty) filter"
    );
    let healed = settle(&home, &whole());
    assert!(healed.faults.is_empty());
}

/// The fault filter node `id` of lab ring6 reports over its admin API: (peer, cut) per link.
fn filters_of(home: &Home, id: u64) -> Vec<(u64, bool)> {
    let record = std::fs::read_to_string(home.lab_folder("ring6").join("lab.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let admin = format!(
        "http://{}",
        record["nodes"][id.to_string()]["grpc"].as_str().unwrap()
    );
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        use labctl_proto::node::node_admin_client::NodeAdminClient;
        let mut client = NodeAdminClient::connect(admin).await.unwrap();
        let status = client
            .status(labctl_proto::node::StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        status.filters.iter().map(|f| (f.peer, f.cut)).collect()
    })
}

#[test]
fn a_forwarder_killed() {
    let home = Home::new();
    let up = home.up(&ring6(), &[]);
    let forwarder: NodeId = up
        .report
        .roles
        .iter()
        .find(|(_, r)| r.contains(&Role::Forwarder))
        .map(|(id, _)| id.parse().unwrap())
        .expect("a ring of six has a forwarder");
    fault(&home, &["kill", &forwarder.to_string()]);
    let rest: Vec<NodeId> = (1..=6).filter(|&n| n != forwarder).collect();
    let killed = settle(&home, &[(rest, Some(1), true)]);
    assert_eq!(killed.report.leader, Some(1), "the writer survives");
    check_nameserver(&home, &killed);
    fault(&home, &["heal", "--all"]);
    settle(&home, &whole());
}

#[test]
fn a_restart_waits_for_its_port_taken_meanwhile() {
    // While node 3 is down, another socket on this host holds its control port (as an outgoing
    // connection's ephemeral port may): the restart tries again until the port is free.
    let home = Home::new();
    let up = home.up(&ring6(), &[]);
    let control = up.addresses["3"]
        .control
        .clone()
        .expect("a control address");
    fault(&home, &["kill", "3"]);
    let squatter = std::net::TcpListener::bind(&control).expect("the dead node's port is free");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(squatter);
    });
    fault(&home, &["restart", "3"]);
    release.join().unwrap();
    let back = settle(&home, &whole());
    assert_eq!(
        back.addresses["3"].control.as_deref(),
        Some(control.as_str()),
        "on its own port again"
    );
    let log = std::fs::read_to_string(home.lab_folder("ring6").join("logs/node-3.out")).unwrap();
    assert!(
        log.contains("Address already in use"),
        "the first attempts met the taken port"
    );
}

#[test]
fn a_flapping_link_backs_off() {
    let home = Home::new();
    home.up(&ring6(), &[]);
    // Link 2–3 is cut for 1.3 s (longer than the suspicion timeout) and healed for 0.3 s, six
    // times over.
    for _ in 0..6 {
        fault(&home, &["cut", "2", "3"]);
        std::thread::sleep(Duration::from_millis(1300));
        fault(&home, &["heal", "2", "3"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let end = settle(&home, &whole());
    // Without damping, every flap costs two epochs (the cut, the link coming back): 13 in all.
    let epoch = end.report.epoch.unwrap();
    assert!(epoch <= 11, "{epoch} epochs");
    // Node 2 held the link longer each time it came back.
    let log = std::fs::read_to_string(home.lab_folder("ring6").join("logs/node-2.log")).unwrap();
    let holds: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("neighbour 3 came back"))
        .filter_map(|l| l.split("held for ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    println!("{epoch} epochs; holds {holds:?}");
    assert!(holds.len() >= 4, "{holds:?}");
    assert!(
        holds.windows(2).take(4).all(|w| w[1] == 2 * w[0]),
        "the hold doubles each time: {holds:?}"
    );
}

#[test]
fn bad_faults_are_refused_and_change_nothing() {
    let home = Home::new();
    home.up(&ring6(), &[]);
    fault(&home, &["cut", "1", "2"]);
    let before = settle(&home, &[((1..=6).collect(), Some(1), true)]);
    let faults_file = home.lab_folder("ring6").join("faults.json");
    let kept = std::fs::read_to_string(&faults_file).unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["kill", "9"], "no node 9"),
        (&["cut", "1", "4"], "share no link"),
        (&["cut", "1", "2"], "cut already"),
        (
            &["partition", "1,2,3", "3,4,5,6"],
            "node 3 is in group 1 and in group 2",
        ),
        (&["partition", "1,2", "3,4"], "5, 6 are in no group"),
        (&["partition", "1,x", "2,3,4,5,6"], "is not a node id"),
        (&["resume", "2"], "only a paused node"),
        (&["heal", "3", "4"], "no fault is in force on link 3–4"),
    ];
    for (args, mentions) in cases {
        let mut all = vec!["fault"];
        all.extend(args);
        let run = home.labctl(&all).expect_code(2);
        assert!(
            run.stderr.starts_with("labctl: ") && run.stderr.contains(mentions),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(
            std::fs::read_to_string(&faults_file).unwrap(),
            kept,
            "{args:?}"
        );
    }
    let after = status(&home);
    assert_eq!(
        after.report.epoch, before.report.epoch,
        "no election was caused"
    );
    assert_eq!(after.faults.len(), 1);

    // A lab that is not running, and one that does not exist.
    home.labctl(&["fault", "kill", "3", "--lab", "nosuchlab"])
        .expect_error(&["no lab named \"nosuchlab\""]);
    for pid in home.recorded_pids().into_values() {
        live_util::sigkill(pid);
    }
    let gone: BTreeSet<u32> = home.recorded_pids().into_values().collect();
    assert!(home.wait_gone(&gone).is_empty());
    home.labctl(&["fault", "kill", "3"])
        .expect_error(&["is not running"]);
    home.labctl(&["down", "ring6"]).expect_success();
}

// ---------------------------------------------------------------- the Docker runtime

/// A Docker lab name unique to this test process (names are global to the engine).
fn docker_lab(base: &str) -> String {
    format!("t{}-{base}", std::process::id())
}

/// Whether the link `a`–`b` of a Docker lab carries frames: with veth pairs, both ends have a
/// carrier (`LOWER_UP` in busybox's `ip link` in each node's namespace); with Docker networks,
/// both nodes are attached to the link's network.
fn link_carries(lab: &str, a: u64, b: u64) -> bool {
    let network = format!("{lab}-link-{}-{}", a.min(b), a.max(b));
    if let Some(attached) = attached(&network) {
        return attached == [format!("{lab}-{a}"), format!("{lab}-{b}")].into();
    }
    let carrier = |id: u64, peer: u64| {
        let output = std::process::Command::new("docker")
            .args(["exec", &format!("{lab}-{id}"), "ip", "-o", "link", "show"])
            .arg(format!("to{peer}"))
            .output()
            .expect("the docker CLI runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "ip link in {lab}-{id}: {text}");
        text.contains("LOWER_UP")
    };
    let (one, other) = (carrier(a, b), carrier(b, a));
    assert_eq!(one, other, "both ends of the veth pair {a}-{b} agree");
    one
}

/// The containers attached to one of a Docker lab's networks (None: no such network).
fn attached(network: &str) -> Option<BTreeSet<String>> {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let docker = bollard::Docker::connect_with_defaults().unwrap();
        let info = match docker
            .inspect_network(
                network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return None,
            Err(e) => panic!("inspecting {network}: {e}"),
        };
        Some(
            info.containers
                .unwrap_or_default()
                .values()
                .filter_map(|c| c.name.clone())
                .collect(),
        )
    })
}

#[test]
fn docker_the_writer_killed_then_restarted() {
    common::lab_image();
    let home = Home::with_runtime("docker");
    let lab = docker_lab("fkill");
    home.up(&ring6(), &["--name", &lab]);
    // A paused container can be killed too (the engine needs it thawed first).
    fault_on(&home, &lab, &["pause", "4"]);
    fault_on(&home, &lab, &["kill", "4"]);
    let four = settle_lab(&home, &lab, &[(vec![1, 2, 3, 5, 6], Some(1), true)]);
    assert_eq!(four.addresses["4"].state, "down");
    fault_on(&home, &lab, &["restart", "4"]);
    settle_lab(&home, &lab, &whole());
    let said = fault_on(&home, &lab, &["kill", "leader"]);
    assert!(said.contains("node 1 (the leader) killed"), "{said}");
    let killed = settle_lab(&home, &lab, &[(vec![2, 3, 4, 5, 6], Some(2), true)]);
    assert_eq!(
        killed.addresses["1"].state, "down",
        "the container is stopped"
    );
    check_nameserver(&home, &killed);
    fault_on(&home, &lab, &["restart", "1"]);
    let back = settle_lab(&home, &lab, &whole());
    assert!(back.report.epoch > killed.report.epoch);
    check_nameserver(&home, &back);
    home.labctl(&["down", &lab]).expect_success();
    assert!(live_util::labelled_in_engine_now(&lab).is_empty());
}

/// A partition cuts the links between the groups for real (veth pairs set down), and a node
/// restarted while they are cut comes back with them still cut; healing restores them.
#[test]
fn docker_a_partition_cuts_the_links_for_real() {
    common::lab_image();
    let home = Home::with_runtime("docker");
    let lab = docker_lab("fsplit");
    home.up(&ring6(), &["--name", &lab]);
    let said = fault_on(&home, &lab, &["partition", "1,2", "3,4,5,6"]);
    assert!(said.contains("(1–6, 2–3)"), "{said}");
    // The cut links carry nothing; the others do.
    assert!(!link_carries(&lab, 1, 6));
    assert!(!link_carries(&lab, 2, 3));
    assert!(link_carries(&lab, 3, 4));
    // A node started again gets its links again, the cut one still cut.
    fault_on(&home, &lab, &["restart", "2"]);
    assert!(
        !link_carries(&lab, 2, 3),
        "still cut after node 2 restarted"
    );
    assert!(link_carries(&lab, 1, 2), "node 2's other link is back");
    let split = settle_lab(
        &home,
        &lab,
        &[
            (vec![1, 2], Some(1), false),
            (vec![3, 4, 5, 6], Some(3), true),
        ],
    );
    check_nameserver(&home, &split);
    fault_on(&home, &lab, &["heal", "--all"]);
    assert!(link_carries(&lab, 2, 3));
    assert!(link_carries(&lab, 1, 6));
    let healed = settle_lab(&home, &lab, &whole());
    check_nameserver(&home, &healed);
    home.labctl(&["down", &lab]).expect_success();
    assert!(live_util::labelled_in_engine_now(&lab).is_empty());
}

#[test]
fn status_shows_a_dead_nameserver_or_bootstrap() {
    let home = Home::new();
    home.up(&ring6(), &[]);
    let pids = home.recorded_pids();
    for service in ["nameserver", "bootstrap"] {
        let pid = pids[&format!("ring6 {service}")];
        live_util::sigkill(pid);
        assert!(home.wait_gone(&[pid].into()).is_empty());
        let report = status(&home);
        assert_eq!(report.services[service], "down", "{service}");
        assert!(report.report.converged, "the nodes keep their tree");
        let text = home.labctl(&["status", "ring6"]).stdout;
        assert!(
            text.contains(&format!("the {service} is down")),
            "{service}: {text}"
        );
    }
}

#[test]
fn down_removes_a_lab_whatever_faults_are_in_force() {
    let home = Home::new();
    home.up(&ring6(), &[]);
    fault(&home, &["pause", "2"]);
    fault(&home, &["kill", "5"]);
    fault(&home, &["delay", "3", "4", "--ms", "500"]);
    fault(&home, &["cut", "1", "6"]);
    let pids: BTreeSet<u32> = home.recorded_pids().into_values().collect();
    home.labctl(&["down", "ring6"]).expect_success();
    assert!(
        home.wait_gone(&pids).is_empty(),
        "a paused daemon is stopped too"
    );
    assert!(!home.lab_folder("ring6").exists());
}
