//! End-to-end tests of the Docker runtime (issue 5): real containers from an image built here
//! `FROM scratch`, one veth pair per topology link (or, with `LABCTL_DOCKER_LINKS=networks`,
//! one Docker network per link), through the real Docker engine.
//!
//! Lab names carry this test process's id, because container and network names are global to the
//! engine. Every lab lives in a private `LABCTL_HOME` whose guard runs `labctl down --all`, and
//! each test checks by label that nothing of its labs is left in the engine.

mod common;
// Shared with the other live tests; not every helper is used here.
#[allow(dead_code)]
mod live_util;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, WaitContainerOptions,
};
use bollard::Docker;
use common::{check_election_and_tree, load, topology_file};
use futures_util::StreamExt;
use labctl_topology::Topology;
use live_util::{labelled_in_engine, Home, Labelled, LiveReport};
use serde::Deserialize;

/// A lab name unique to this test process.
fn lab_name(base: &str) -> String {
    format!("t{}-{base}", std::process::id())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn engine() -> Docker {
    runtime()
        .block_on(async {
            Docker::connect_with_defaults()
                .expect("a Docker engine")
                .negotiate_version()
                .await
        })
        .expect("the Docker engine answers")
}

/// What the engine holds labelled with `lab`.
fn labelled(lab: &str) -> Labelled {
    runtime().block_on(labelled_in_engine(lab))
}

/// How the lab's links were made, as its record says: `veth` or `networks`.
fn wiring(home: &Home, lab: &str) -> String {
    let path = home.lab_folder(lab).join("lab.json");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("lab.json")).expect("JSON");
    record["docker_links"]
        .as_str()
        .expect("a Docker lab's record says how its links are made")
        .to_string()
}

/// The containers and networks a lab of `topology` named `lab`, wired by `wiring`, must have.
fn expected_names(
    lab: &str,
    topology: &Topology,
    wiring: &str,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut containers: BTreeSet<String> =
        [format!("{lab}-bootstrap"), format!("{lab}-nameserver")].into();
    let mut networks: BTreeSet<String> = [format!("{lab}-mgmt")].into();
    for id in topology.ids() {
        containers.insert(format!("{lab}-{id}"));
        if wiring == "networks" {
            networks.insert(format!("{lab}-uplink-{id}"));
        }
    }
    if wiring == "networks" {
        for (a, b) in topology.links() {
            networks.insert(format!("{lab}-link-{a}-{b}"));
        }
    }
    (containers, networks)
}

/// Checks a Docker lab's report by the same rules as the process runtime's.
fn check_report(live: &LiveReport, topology: &Topology, lab: &str) {
    let context = format!("docker lab {lab} ({})", topology.name);
    check_election_and_tree(&live.report, topology, &context);
    assert_eq!(live.report.epoch, Some(1), "{context}: one election");
    assert_eq!(live.report.lab, lab, "{context}");
    assert_eq!(live.report.runtime, "docker", "{context}");
    assert!(
        live.nameserver.starts_with("http://127.0.0.1:"),
        "{context}: the nameserver is published on the host's loopback: {}",
        live.nameserver
    );
    for (id, address) in &live.addresses {
        assert_eq!(address.state, "running", "{context}: node {id}");
        assert_eq!(
            address.control.as_deref(),
            Some(format!("{lab}-{id}:7100").as_str()),
            "{context}: node {id} is reached by its container's name"
        );
    }
}

/// Two labs side by side, one with shuffled ids: both converge by the process runtime's rules,
/// `status` agrees with `up`, and `down` of one removes every container, network and volume
/// labelled with it while the other keeps running.
#[test]
fn two_docker_labs_converge_side_by_side_and_down_leaves_nothing() {
    common::lab_image();
    let home = Home::with_runtime("docker");
    let ring = lab_name("ring6");
    let shuffled = lab_name("ring12s");
    let ring_topology = load(&topology_file("ring6.toml"));
    let shuffled_topology = load(&topology_file("ring12-shuffled.toml"));

    let ring_up = home.up(&topology_file("ring6.toml"), &["--name", &ring]);
    let shuffled_up = home.up(
        &topology_file("ring12-shuffled.toml"),
        &["--name", &shuffled],
    );
    check_report(&ring_up, &ring_topology, &ring);
    check_report(&shuffled_up, &shuffled_topology, &shuffled);

    for (lab, topology) in [(&ring, &ring_topology), (&shuffled, &shuffled_topology)] {
        let held = labelled(lab);
        // As root beside a local engine, labctl makes veth pairs (one Docker network per lab).
        let root = rustix::process::geteuid().is_root();
        assert_eq!(wiring(&home, lab), if root { "veth" } else { "networks" });
        let (want_containers, want_networks) = expected_names(lab, topology, &wiring(&home, lab));
        assert_eq!(held.containers, want_containers, "lab {lab}: containers");
        assert_eq!(held.networks, want_networks, "lab {lab}: networks");
    }

    let status = home.status(&ring);
    check_report(&status, &ring_topology, &ring);
    assert_eq!(
        (
            status.report.leader,
            &status.report.tree,
            &status.report.roles
        ),
        (
            ring_up.report.leader,
            &ring_up.report.tree,
            &ring_up.report.roles
        ),
        "status reads the same lab that up started"
    );

    home.labctl(&["down", ring.as_str()]).expect_success();
    let left = labelled(&ring);
    assert!(left.is_empty(), "after down {ring}: {left:?}");
    assert!(
        !home.lab_folder(&ring).exists(),
        "the lab's folder is removed"
    );
    let still = home.status(&shuffled);
    check_report(&still, &shuffled_topology, &shuffled);

    home.labctl(&["down", shuffled.as_str()]).expect_success();
    let left = labelled(&shuffled);
    assert!(left.is_empty(), "after down {shuffled}: {left:?}");
}

/// `down` finds a lab's containers by label, not by its record: after a labctl that crashed
/// before writing the nodes into `lab.json`, and again when the lab's folder is gone altogether.
#[test]
fn down_removes_by_label_after_a_crash() {
    common::lab_image();
    let home = Home::with_runtime("docker");
    let lab = lab_name("crash");
    let topology = load(&topology_file("pair.toml"));
    let up = home.up(&topology_file("pair.toml"), &["--name", &lab]);
    check_report(&up, &topology, &lab);

    // As if labctl died before recording the nodes.
    let record_path = home.lab_folder(&lab).join("lab.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).expect("lab.json"))
            .expect("a JSON record");
    record["nodes"] = serde_json::json!({});
    std::fs::write(&record_path, record.to_string()).expect("rewriting lab.json");
    home.labctl(&["down", lab.as_str()]).expect_success();
    let left = labelled(&lab);
    assert!(
        left.is_empty(),
        "after down with an incomplete record: {left:?}"
    );

    // Again, with the folder deleted by hand while the lab ran.
    let up = home.up(&topology_file("pair.toml"), &["--name", &lab]);
    check_report(&up, &topology, &lab);
    std::fs::remove_dir_all(home.lab_folder(&lab)).expect("removing the lab folder");
    let run = home.labctl(&["down", lab.as_str()]);
    let out = run.expect_success().stdout;
    assert!(out.contains(&lab), "down names the lab: {out}");
    let left = labelled(&lab);
    assert!(left.is_empty(), "after down without a folder: {left:?}");
    // Nothing is left, so a second `down` says there is no such lab.
    home.labctl(&["down", lab.as_str()])
        .expect_error(&["no lab named"]);
}

#[derive(Debug, Deserialize)]
struct ProbeResult {
    target: String,
    open: bool,
}

/// Runs `labctl daemon probe TARGETS` in `container`'s network namespace (so it sees exactly
/// what the daemon in it sees) and returns whether each target opened.
fn probe_from(
    docker: &Docker,
    image: &str,
    container: &str,
    targets: &[String],
) -> BTreeMap<String, bool> {
    runtime().block_on(async {
        let name = format!("{container}-probe");
        let mut cmd = vec!["daemon".to_string(), "probe".to_string()];
        cmd.extend(targets.iter().cloned());
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(cmd),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some(format!("container:{container}")),
                ..Default::default()
            }),
            labels: Some(HashMap::from([(
                "labctl.test".to_string(),
                "probe".to_string(),
            )])),
            ..Default::default()
        };
        docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                body,
            )
            .await
            .expect("creating the probe");
        docker
            .start_container(
                &name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .expect("starting the probe");
        let mut wait = docker.wait_container(&name, None::<WaitContainerOptions>);
        while let Some(status) = wait.next().await {
            status.expect("the probe exits 0");
        }
        let mut logs = docker.logs(
            &name,
            Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
        );
        let mut text = String::new();
        while let Some(chunk) = logs.next().await {
            text.push_str(&chunk.expect("the probe's output").to_string());
        }
        docker
            .remove_container(
                &name,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await
            .expect("removing the probe");
        text.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let r: ProbeResult = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                (r.target, r.open)
            })
            .collect()
    })
}

/// Every address of `container` on every network, by network name.
fn addresses_of(docker: &Docker, container: &str) -> BTreeMap<String, String> {
    runtime().block_on(async {
        docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .expect("inspecting a node")
            .network_settings
            .and_then(|s| s.networks)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(network, e)| Some((network, e.ip_address.filter(|ip| !ip.is_empty())?)))
            .collect()
    })
}

/// The IPv4 address of every interface in `container`'s namespace but the loopback, by
/// interface name (busybox's `ip -o -4 addr` in it).
fn interfaces_of(container: &str) -> BTreeMap<String, String> {
    let (code, output) = docker_exec(container, &["ip", "-o", "-4", "addr"]);
    assert_eq!(code, Some(0), "ip addr in {container}:\n{output}");
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip(1);
            let interface = words.next()?.to_string();
            let address = words.skip_while(|w| *w != "inet").nth(1)?;
            let address = address.split('/').next()?.to_string();
            (interface != "lo").then_some((interface, address))
        })
        .collect()
}

/// Every address of `container`: on each Docker network (by network name) and on each of its
/// own interfaces (by interface name; a veth lab's links and uplink).
fn every_address_of(docker: &Docker, container: &str) -> BTreeMap<String, String> {
    let mut all = addresses_of(docker, container);
    let known: BTreeSet<String> = all.values().cloned().collect();
    for (interface, address) in interfaces_of(container) {
        if !known.contains(&address) {
            all.insert(interface, address);
        }
    }
    all
}

/// Node `id`'s address on its link to `peer`: its end of the veth pair (`to<peer>`), or its
/// address on the link's network.
fn link_end(docker: &Docker, lab: &str, id: u64, peer: u64) -> String {
    let (a, b) = (id.min(peer), id.max(peer));
    let container = format!("{lab}-{id}");
    match addresses_of(docker, &container).remove(&format!("{lab}-link-{a}-{b}")) {
        Some(address) => address,
        None => interfaces_of(&container)
            .remove(&format!("to{peer}"))
            .unwrap_or_else(|| panic!("{container} has no end of the link {a}-{b}")),
    }
}

/// From inside a node's network namespace, a neighbour's control port opens (by name and at its
/// address on the shared link), while no address or name of any other node opens at all: the
/// only paths between nodes are the topology's links. Veth pairs (labctl's wiring as root).
#[test]
fn a_node_reaches_only_its_topology_neighbours() {
    reaches_only_neighbours(Home::with_runtime("docker"), "iso");
}

/// The same with one Docker network per link (`LABCTL_DOCKER_LINKS=networks`: the wiring of
/// a labctl that is not root, and of the exported compose files).
#[test]
fn a_node_reaches_only_its_topology_neighbours_over_docker_networks() {
    let home = Home::with_runtime("docker").with_env("LABCTL_DOCKER_LINKS", "networks");
    reaches_only_neighbours(home, "isonet");
}

fn reaches_only_neighbours(home: Home, base: &str) {
    let image = common::lab_image();
    let docker = engine();
    let lab = lab_name(base);
    let topology = load(&topology_file("ring6.toml"));
    let up = home.up(&topology_file("ring6.toml"), &["--name", &lab]);
    check_report(&up, &topology, &lab);
    let wired = wiring(&home, &lab);
    let (_, want_networks) = expected_names(&lab, &topology, &wired);
    assert_eq!(labelled(&lab).networks, want_networks, "{wired}");
    let adjacency = topology.adjacency();

    for from in [1u64, 4] {
        let neighbours = &adjacency[&from];
        let mut targets = Vec::new();
        let mut expect = BTreeMap::new();
        for other in topology.ids().into_iter().filter(|&j| j != from) {
            let name = format!("{lab}-{other}");
            let is_neighbour = neighbours.contains(&other);
            targets.push(format!("{name}:7100"));
            expect.insert(format!("{name}:7100"), is_neighbour);
            let (a, b) = (from.min(other), from.max(other));
            let shared = [format!("{lab}-link-{a}-{b}"), format!("to{from}")];
            let addresses = every_address_of(&docker, &name);
            assert!(addresses.len() >= 2, "{name}: {addresses:?}");
            for (network, ip) in addresses {
                for port in [7100, 7101] {
                    let target = format!("{ip}:{port}");
                    targets.push(target.clone());
                    // Open exactly at a neighbour's end of the shared link.
                    expect.insert(target, is_neighbour && shared.contains(&network));
                }
            }
        }
        // The services are reachable (through the node's own uplink).
        for service in ["bootstrap:7000", "nameserver:7001"] {
            let target = format!("{lab}-{service}");
            targets.push(target.clone());
            expect.insert(target, true);
        }
        let seen = probe_from(&docker, image, &format!("{lab}-{from}"), &targets);
        assert_eq!(
            seen, expect,
            "from node {from} (neighbours {neighbours:?}): what opened"
        );
    }
    home.labctl(&[OsStr::new("down"), OsStr::new(&lab)])
        .expect_success();
    assert!(labelled(&lab).is_empty());
}

/// Runs `docker exec <container> args…` (as root in the container when this test is not root:
/// busybox's ping opens a raw socket, which only root may) and returns its exit code and its
/// stdout and stderr together.
fn docker_exec(container: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new("docker");
    command.arg("exec");
    // SAFETY: getuid cannot fail and touches no memory.
    if unsafe { libc::getuid() } != 0 {
        command.args(["--user", "0:0"]);
    }
    let output = command
        .arg(container)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the docker CLI runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

/// Every node has busybox's shell (`docker exec <lab>-<id> sh`), in its own network namespace:
/// `ip addr` shows its address on each of its links, a neighbour answers a ping by name, and a
/// node that is not a neighbour answers neither by name nor at any of its addresses.
/// `labctl shell` opens the same shell with the node's variables, in its folder.
#[test]
fn every_node_has_a_shell_that_reaches_only_its_neighbours() {
    common::lab_image();
    let docker = engine();
    let home = Home::with_runtime("docker");
    let lab = lab_name("shell");
    let topology = load(&topology_file("ring6.toml"));
    let up = home.up(&topology_file("ring6.toml"), &["--name", &lab]);
    check_report(&up, &topology, &lab);
    assert!(topology.adjacency()[&1].contains(&2));
    assert!(!topology.adjacency()[&1].contains(&4));

    let one = format!("{lab}-1");
    let script = format!("ip addr; ping -c1 -W2 {lab}-2");
    let (code, output) = docker_exec(&one, &["sh", "-c", &script]);
    assert_eq!(
        code,
        Some(0),
        "ip addr and a ping of neighbour 2:\n{output}"
    );
    for (network, ip) in every_address_of(&docker, &one) {
        assert!(
            output.contains(&format!("inet {ip}/")),
            "ip addr shows node 1's address {ip} on {network}:\n{output}"
        );
    }
    let link = link_end(&docker, &lab, 2, 1);
    assert!(
        output.contains(&format!("({link})")) && output.contains("1 packets received"),
        "node 2 answers at its end of the link 1-2 ({link}):\n{output}"
    );

    // Node 4 is not a neighbour of 1: its name finds no path (with veth pairs the engine's DNS
    // gives its management address, where containers cannot reach each other), and none of its
    // addresses answers.
    let (code, output) = docker_exec(&one, &["ping", "-c1", "-W2", &format!("{lab}-4")]);
    assert_ne!(code, Some(0), "ping {lab}-4 from node 1:\n{output}");
    assert!(!output.contains("1 packets received"), "{output}");
    let four = every_address_of(&docker, &format!("{lab}-4"));
    assert!(four.len() >= 3, "node 4's addresses: {four:?}");
    for (network, ip) in four {
        let (code, output) = docker_exec(&one, &["ping", "-c1", "-W1", &ip]);
        assert_ne!(
            code,
            Some(0),
            "node 4's address {ip} on {network} answered node 1:\n{output}"
        );
        assert!(!output.contains("1 packets received"), "{output}");
    }

    // labctl shell: the same container, the node's variables, its folder.
    let run = home
        .labctl(&[
            "shell",
            &lab,
            "3",
            "--",
            "sh",
            "-c",
            "echo $LABCTL_LAB $LABCTL_NODE $LABCTL_CONTROL; pwd; hostname",
        ])
        .expect_success();
    assert_eq!(
        run.stdout,
        format!("{lab} 3 {lab}-3:7100\n/lab/state\n{lab}-3\n"),
        "labctl shell {lab} 3"
    );
    let code = home
        .labctl(&["shell", &lab, "3", "--", "sh", "-c", "exit 7"])
        .code;
    assert_eq!(code, Some(7), "the command's exit code is labctl's");
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let run = home
        .labctl(&["shell", &lab, "3", "--", "id", "-u"])
        .expect_success();
    assert_eq!(run.stdout, format!("{uid}\n"), "the container's user: you");
    let run = home
        .labctl(&["shell", &lab, "3", "--root", "--", "id", "-u"])
        .expect_success();
    assert_eq!(run.stdout, "0\n", "--root: root in the container");

    home.labctl(&["down", lab.as_str()]).expect_success();
    let left = labelled(&lab);
    assert!(left.is_empty(), "after down {lab}: {left:?}");
}
