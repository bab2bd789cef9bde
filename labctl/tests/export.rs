//! `labctl export compose`, run as the real binary: the shipped `compose/` files are what it
//! prints now, docker-compose accepts what it writes (and refuses to run it without a session
//! key), the file wires every container and network of the lab as the topology says, and a
//! topology too big for one lab's address block is a clear error.
//!
//! These tests need docker-compose (1.29 or newer) on PATH and fail, rather than skip, without
//! it: `apt-get install docker-compose` on Debian.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{labctl, topologies_dir, topology_file, Run, LABCTL};
use labctl_topology::Topology;

/// The topology that is too big for a lab's /19 (more than 512 networks).
const TOO_BIG: &str = "bench-random100k";

/// A session key for docker-compose to interpolate.
const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// The address block of the shipped files (the default pool's first).
const SHIPPED_BLOCK: &str = "10.210.0.0/19";

/// The repository's root, where the shipped files' header commands are meant to run.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root")
}

/// `labctl args`, run from the repository's root (the shipped files name their topology as
/// `topologies/<stem>.toml`, relative to it).
fn labctl_in_repo(args: &[&str]) -> Run {
    let output = Command::new(LABCTL)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("running labctl");
    Run {
        command: format!("labctl {}", args.join(" ")),
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// The stems of the shipped topologies that get a compose file (all but [`TOO_BIG`]).
fn exported_stems() -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(topologies_dir())
        .expect("the topologies folder")
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|stem| stem != TOO_BIG)
        .collect();
    stems.sort();
    assert!(stems.len() >= 10, "too few topologies found: {stems:?}");
    stems
}

#[test]
fn every_shipped_compose_file_is_what_export_prints_now() {
    let compose = repo_root().join("compose");
    let mut stale = Vec::new();
    for stem in exported_stems() {
        let run = labctl_in_repo(&[
            "export",
            "compose",
            &format!("topologies/{stem}.toml"),
            "--subnet",
            SHIPPED_BLOCK,
        ])
        .expect_success();
        let path = compose.join(format!("{stem}.yml"));
        match std::fs::read_to_string(&path) {
            Ok(shipped) if shipped == run.stdout => {}
            Ok(_) => stale.push(format!("compose/{stem}.yml differs")),
            Err(e) => stale.push(format!("compose/{stem}.yml is missing ({e})")),
        }
    }
    let exported: BTreeSet<String> = exported_stems()
        .into_iter()
        .map(|s| format!("{s}.yml"))
        .collect();
    for entry in std::fs::read_dir(&compose).expect("the compose folder") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yml") && !exported.contains(&name) {
            stale.push(format!(
                "compose/{name} has no topology in topologies/ (delete it)"
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "the compose files are out of date with `labctl export compose`:\n  {}\nregenerate them \
         from the repository's root:\n  cargo build --bin labctl && for f in topologies/*.toml; \
         do s=$(basename $f .toml); [ $s = {TOO_BIG} ] || target/debug/labctl export compose \
         $f --subnet {SHIPPED_BLOCK} -o compose/$s.yml; done",
        stale.join("\n  ")
    );
}

#[test]
fn output_writes_what_stdout_prints() {
    let dir = tempfile::tempdir().unwrap();
    let file = topology_file("ring6.toml");
    let out = dir.path().join("ring6.yml");
    // A named block: without one, each export takes the first block free on the engine at that
    // moment, and the tests beside this one make and remove networks in between.
    let printed = labctl(&[
        "export".as_ref(),
        "compose".as_ref(),
        file.as_os_str(),
        "--subnet".as_ref(),
        SHIPPED_BLOCK.as_ref(),
    ])
    .expect_success();
    let wrote = labctl(&[
        "export".as_ref(),
        "compose".as_ref(),
        file.as_os_str(),
        "--subnet".as_ref(),
        SHIPPED_BLOCK.as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .expect_success();
    assert_eq!(wrote.stdout, "", "-o prints nothing");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), printed.stdout);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "only the file remains: {left:?}");
}

/// docker-compose, with LABCTL_SESSION_SECRET set to `secret` or unset.
fn docker_compose(file: &Path, secret: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new("docker-compose");
    command
        .arg("-f")
        .arg(file)
        .args(args)
        .env_remove("LABCTL_SESSION_SECRET")
        .env_remove("LABCTL_IMAGE")
        .env_remove("LABCTL_HTTP_PORT")
        .stdin(Stdio::null());
    if let Some(secret) = secret {
        command.env("LABCTL_SESSION_SECRET", secret);
    }
    match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "docker-compose is not on PATH, and these tests check the exported files with it: \
             install it (`apt-get install docker-compose` on Debian) and run them again"
        ),
        Err(e) => panic!("running docker-compose: {e}"),
    }
}

/// Exports `topologies/<stem>.toml` (with `extra` arguments) into `dir` and returns the path.
fn export_into(dir: &Path, stem: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{stem}.yml"));
    let file = topology_file(&format!("{stem}.toml"));
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "export".as_ref(),
        "compose".as_ref(),
        file.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    labctl(&args).expect_success();
    out
}

#[test]
fn docker_compose_accepts_the_ring6_file_only_with_a_session_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = export_into(dir.path(), "ring6", &[]);

    let ok = docker_compose(&file, Some(SECRET), &["config", "-q"]);
    assert!(
        ok.status.success(),
        "docker-compose config -q refused {}:\n{}",
        file.display(),
        String::from_utf8_lossy(&ok.stderr)
    );

    let refused = docker_compose(&file, None, &["config", "-q"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "docker-compose accepted the file without LABCTL_SESSION_SECRET"
    );
    assert!(
        stderr.contains("set LABCTL_SESSION_SECRET to a random secret")
            && stderr.contains("the comment at the top of this file shows how"),
        "the refusal should say how to set the key: {stderr}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("#   export LABCTL_SESSION_SECRET=$(openssl rand -hex 32)\n"),
        "the comment at the top shows how:\n{text}"
    );
}

/// What docker-compose understood of a file: its `config` output read back as (path, value)
/// pairs, e.g. `services/ring6-1/labels/labctl.lab` → `ring6`. Enough of YAML for the block
/// style docker-compose prints: nested mappings, lists (whose items are recorded under the
/// list's path), quoted or plain scalars. Lines it cannot read (the continuation lines of a
/// multi-line command argument) are skipped.
fn compose_model(file: &Path) -> BTreeMap<String, Vec<String>> {
    let output = docker_compose(file, Some(SECRET), &["config"]);
    assert!(
        output.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let unquote = |s: &str| -> String {
        let s = s.trim();
        if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
            s[1..s.len() - 1].replace("''", "'")
        } else if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
            s[1..s.len() - 1].to_string()
        } else {
            s.to_string()
        }
    };
    let mut model: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let content = line.trim_start();
        if content.is_empty() {
            continue;
        }
        let path_at = |stack: &[(usize, String)], depth: usize| -> String {
            stack
                .iter()
                .filter(|(i, _)| *i < depth)
                .map(|(_, k)| k.as_str())
                .collect::<Vec<_>>()
                .join("/")
        };
        if let Some(item) = content.strip_prefix("- ") {
            // A list item belongs to the innermost key above it.
            model
                .entry(path_at(&stack, indent + 1))
                .or_default()
                .push(unquote(item));
            continue;
        }
        let (key, value) = if let Some(key) = content.strip_suffix(':') {
            (key, None)
        } else if let Some((key, value)) = content.split_once(": ") {
            (key, Some(value))
        } else {
            continue; // a continuation line
        };
        if key.contains(' ') && !key.starts_with('"') && !key.starts_with('\'') {
            continue; // a continuation line that happens to hold ": "
        }
        stack.retain(|(i, _)| *i < indent);
        stack.push((indent, unquote(key)));
        if let Some(value) = value {
            model
                .entry(path_at(&stack, usize::MAX))
                .or_default()
                .push(unquote(value));
        }
    }
    model
}

/// The keys directly under `prefix` in a [`compose_model`].
fn children(model: &BTreeMap<String, Vec<String>>, prefix: &str) -> BTreeSet<String> {
    model
        .keys()
        .filter_map(|path| path.strip_prefix(&format!("{prefix}/")))
        .map(|rest| rest.split('/').next().unwrap().to_string())
        .collect()
}

/// The one value at `path`.
fn one(model: &BTreeMap<String, Vec<String>>, path: &str) -> String {
    match model.get(path).map(Vec::as_slice) {
        Some([value]) => value.clone(),
        other => panic!("{path}: expected one value, found {other:?}"),
    }
}

#[test]
fn the_ring6_file_wires_every_container_and_network_of_the_lab() {
    let dir = tempfile::tempdir().unwrap();
    let file = export_into(dir.path(), "ring6", &["--subnet", SHIPPED_BLOCK]);
    let model = compose_model(&file);
    let topology = Topology::from_path(&topology_file("ring6.toml")).unwrap();
    let ids = topology.ids();
    let links = topology.links();

    // Every container, keyed by its own name (its DNS name under `docker stack deploy` too).
    let mut services: BTreeSet<String> = ["ring6-bootstrap", "ring6-nameserver"]
        .map(String::from)
        .into();
    services.extend(ids.iter().map(|id| format!("ring6-{id}")));
    assert_eq!(children(&model, "services"), services);
    for service in &services {
        let at = |rest: &str| format!("services/{service}/{rest}");
        assert_eq!(one(&model, &at("container_name")), *service);
        // Labelled as the lab's, owned by `compose` (labctl shows such a lab and leaves it
        // alone), with what it runs; on the container and on the Swarm service alike.
        let role = match service.strip_prefix("ring6-").unwrap() {
            "bootstrap" => "bootstrap",
            "nameserver" => "nameserver",
            _ => "node",
        };
        for labels in ["labels", "deploy/labels"] {
            let label = |name: &str| one(&model, &at(&format!("{labels}/{name}")));
            assert_eq!(label("labctl.lab"), "ring6", "{service} {labels}");
            assert_eq!(label("labctl.owner"), "compose", "{service} {labels}");
            assert_eq!(label("labctl.role"), role, "{service} {labels}");
            let node = service.strip_prefix("ring6-").filter(|_| role == "node");
            assert_eq!(
                model
                    .get(&at(&format!("{labels}/labctl.node")))
                    .map(|v| v.join(",")),
                node.map(String::from),
                "{service} {labels}"
            );
        }
        // Swarm: the name resolves to the container itself, not to a virtual IP behind IPVS.
        assert_eq!(
            one(&model, &at("deploy/endpoint_mode")),
            "dnsrr",
            "{service}"
        );
        assert_eq!(one(&model, &at("image")), "labctl:latest", "{service}");
        assert_eq!(model[&at("command")][0], "daemon", "{service}");
    }

    // Every network, named after the lab, labelled with it, on its own subnet.
    let mut networks: BTreeSet<String> = BTreeSet::from(["mgmt".to_string()]);
    networks.extend(ids.iter().map(|id| format!("uplink-{id}")));
    networks.extend(links.iter().map(|(a, b)| format!("link-{a}-{b}")));
    assert_eq!(children(&model, "networks"), networks);
    let mut subnets = BTreeSet::new();
    for network in &networks {
        let at = |rest: &str| format!("networks/{network}/{rest}");
        assert_eq!(one(&model, &at("name")), format!("ring6-{network}"));
        assert_eq!(one(&model, &at("labels/labctl.lab")), "ring6", "{network}");
        assert_eq!(
            one(&model, &at("labels/labctl.owner")),
            "compose",
            "{network}"
        );
        let kind = network.split('-').next().unwrap();
        assert_eq!(one(&model, &at("labels/labctl.network")), kind, "{network}");
        // Links are internal; the management network and the uplinks publish ports on the host.
        let internal = one(&model, &at("internal"));
        assert_eq!(
            internal,
            network.starts_with("link-").to_string(),
            "{network}"
        );
        let config = one(&model, &at("ipam/config"));
        let subnet = config
            .strip_prefix("subnet: ")
            .expect("one ipam config: a subnet");
        let (address, prefix) = subnet.split_once('/').expect("address/prefix");
        let address: std::net::Ipv4Addr = address.parse().expect("an IPv4 subnet");
        let [a, b, c, _] = address.octets();
        assert_eq!(
            (a, b, prefix),
            (10, 210, "28"),
            "{network}: {subnet} is not a /28 of the lab's block 10.210.0.0/19"
        );
        assert!(c < 32, "{network}: {subnet} is outside 10.210.0.0/19");
        subnets.insert(subnet.to_string());
    }
    assert_eq!(
        subnets.len(),
        networks.len(),
        "every network has its own subnet"
    );

    // Nodes share a network only with their topology neighbours; the bootstrap and the
    // nameserver are on the management network and every uplink.
    let mut services_networks: BTreeSet<String> = BTreeSet::from(["mgmt".to_string()]);
    services_networks.extend(ids.iter().map(|id| format!("uplink-{id}")));
    for service in ["ring6-bootstrap", "ring6-nameserver"] {
        assert_eq!(
            children(&model, &format!("services/{service}/networks")),
            services_networks,
            "{service}"
        );
    }
    for id in &ids {
        let service = format!("ring6-{id}");
        let mut expected: BTreeSet<String> = BTreeSet::from([format!("uplink-{id}")]);
        expected.extend(
            links
                .iter()
                .filter(|(a, b)| a == id || b == id)
                .map(|(a, b)| format!("link-{a}-{b}")),
        );
        assert_eq!(
            children(&model, &format!("services/{service}/networks")),
            expected,
            "{service}"
        );
        assert_eq!(
            children(&model, &format!("services/{service}/depends_on")),
            BTreeSet::from([
                "ring6-bootstrap".to_string(),
                "ring6-nameserver".to_string()
            ])
        );
        assert_eq!(
            model[&format!("services/{service}/volumes")],
            [format!("ring6-{id}-state:/lab/state:rw")]
        );
        assert_eq!(
            one(
                &model,
                &format!("services/{service}/environment/LABCTL_SESSION_SECRET")
            ),
            SECRET
        );
    }
    // Published in host mode (by the machine running the container, as Swarm needs without
    // its routing mesh): the nameserver at 8080, node k (in id order) at 8080 + k, so every
    // input node is 127.0.0.1 to a browser on that machine.
    let published = |service: &str| -> (String, String, String) {
        let at = |rest: &str| format!("services/{service}/ports{rest}");
        (
            one(&model, &at("")),
            one(&model, &at("/published")),
            one(&model, &at("/target")),
        )
    };
    let host_mode = |port: usize| ("mode: host".to_string(), port.to_string(), "8080".into());
    assert_eq!(published("ring6-nameserver"), host_mode(8080));
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(
            published(&format!("ring6-{id}")),
            host_mode(8081 + k),
            "node {id}"
        );
    }
    assert!(!model.contains_key("services/ring6-bootstrap/ports"));

    // The bootstrap gets the topology on its command line.
    let bootstrap = &model["services/ring6-bootstrap/command"];
    assert!(
        bootstrap.iter().any(|a| a == "--topology-toml"),
        "{bootstrap:?}"
    );
    let mut volumes: BTreeSet<String> = BTreeSet::from(["ring6-bootstrap-state".to_string()]);
    volumes.extend(ids.iter().map(|id| format!("ring6-{id}-state")));
    assert_eq!(children(&model, "volumes"), volumes);
}

#[test]
fn the_bootstrap_gets_the_topology_and_nodes_the_timing() {
    let dir = tempfile::tempdir().unwrap();
    let topology = dir.path().join("tri.toml");
    std::fs::write(
        &topology,
        "name = \"tri\"\nnodes = [1, 2, 3]\nlinks = [[1, 2], [2, 3], [3, 1]]\n\n[timing]\n\
         heartbeat_ms = 40\nsuspicion_ms = 400\n",
    )
    .unwrap();
    let run = labctl(&[
        "export".as_ref(),
        "compose".as_ref(),
        topology.as_os_str(),
        "--name".as_ref(),
        "tri-b".as_ref(),
    ])
    .expect_success();
    let text = run.stdout;
    assert!(
        text.contains("      - \"--topology-toml\"\n      - \"name = \\\"tri-b\\\"\\nnodes = [1, 2, 3]\\nlinks = [[1, 2], [1, 3], [2, 3]]\\n\"\n"),
        "the bootstrap's topology, quoted on one line:\n{text}"
    );
    assert!(
        text.contains("      - \"--heartbeat-ms\"\n      - \"40\"\n      - \"--suspicion-ms\"\n      - \"400\"\n"),
        "the topology's timing:\n{text}"
    );
    assert!(text.contains("  tri-b-3:\n    container_name: \"tri-b-3\"\n"));
    assert!(
        text.contains("--name tri-b -o tri-b.yml"),
        "the header repeats --name"
    );
    assert!(
        !text.contains("\"tri\"") && !text.contains("tri-1"),
        "every name is the lab's: {text}"
    );
}

#[test]
fn a_topology_too_big_for_a_lab_block_is_a_clear_error() {
    let file = topology_file(&format!("{TOO_BIG}.toml"));
    labctl(&["export".as_ref(), "compose".as_ref(), file.as_os_str()]).expect_error(&[
        "bench-random100k",
        "a compose file gives every node and every link a /28 network",
        "300001",
        "holds 512",
        "labctl up --runtime process",
    ]);
}

#[test]
fn bad_names_and_unwritable_outputs_are_errors() {
    let file = topology_file("pair.toml");
    labctl(&[
        "export".as_ref(),
        "compose".as_ref(),
        file.as_os_str(),
        "--name".as_ref(),
        "Not_A_Name".as_ref(),
    ])
    .expect_error(&["--name \"Not_A_Name\" is not a valid lab name"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("missing/pair.yml");
    labctl(&[
        "export".as_ref(),
        "compose".as_ref(),
        file.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .expect_error(&["missing/pair.yml", "check that its folder exists"]);
}

/// A daemon this test started, killed (by its own pid) when the test ends, even by a panic.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_bootstrap_daemon_serves_the_topology_of_its_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("bootstrap.json");
    let log = dir.path().join("bootstrap.log");
    let text = "name = \"tri\"\nnodes = [1, 2, 3]\nlinks = [[1, 2], [2, 3], [3, 1]]\n";
    let mut daemon = Daemon(
        Command::new(LABCTL)
            .args([
                "daemon",
                "bootstrap",
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(dir.path().join("state"))
            .arg("--ready-file")
            .arg(&ready)
            .arg("--log-file")
            .arg(&log)
            .args(["--topology-toml", text])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the bootstrap daemon"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let grpc = loop {
        if let Ok(bytes) = std::fs::read(&ready) {
            let info: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            break info["grpc"].as_str().unwrap().to_string();
        }
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!(
                "the bootstrap exited ({status}) before it was ready: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bootstrap did not get ready"
        );
        std::thread::sleep(common::POLL);
    };
    let described = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use labctl_proto::bootstrap::bootstrap_client::BootstrapClient;
        let mut client = BootstrapClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        client
            .describe(labctl_proto::bootstrap::DescribeRequest {})
            .await
            .unwrap()
            .into_inner()
    });
    assert_eq!(described.lab, "tri");
    assert_eq!(described.nodes, [1, 2, 3]);
    let links: Vec<(u64, u64)> = described.links.iter().map(|l| (l.a, l.b)).collect();
    assert_eq!(links, [(1, 2), (1, 3), (2, 3)]);
}

#[test]
fn the_daemons_refuse_a_bad_topology_toml_and_a_missing_session_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], secret: Option<&str>| -> (Option<i32>, String) {
        let mut command = Command::new(LABCTL);
        command
            .args(args)
            .env_remove("LABCTL_SESSION_SECRET")
            .stdin(Stdio::null());
        if let Some(secret) = secret {
            command.env("LABCTL_SESSION_SECRET", secret);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stderr)
    };
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();

    let (code, stderr) = run(
        &[
            "daemon",
            "bootstrap",
            "--state-dir",
            state,
            "--topology-toml",
            "name = \"tri\"\nnodes = [1, 2]\nlinks = [[1, 3]]\n",
        ],
        None,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("labctl: --topology-toml:3:") && stderr.contains("node 3"),
        "{stderr}"
    );

    let node = [
        "daemon",
        "node",
        "--id",
        "1",
        "--lab",
        "tri",
        "--bootstrap",
        "127.0.0.1:9",
        "--data-dir",
        state,
    ];
    let (code, stderr) = run(&node, None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--session-secret-file") && stderr.contains("LABCTL_SESSION_SECRET"),
        "{stderr}"
    );
    let (code, stderr) = run(&node, Some("too short"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("LABCTL_SESSION_SECRET holds 9 bytes, fewer than the 16"),
        "{stderr}"
    );
}

/// The subnets of a compose file's networks, from its `- subnet: "…"` lines.
fn subnets_of(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("- subnet: "))
        .map(|subnet| subnet.trim_matches('"').to_string())
        .collect()
}

#[test]
fn subnet_names_the_block_and_is_checked() {
    let file = topology_file("ring6.toml");
    let export = |subnet: &str| {
        labctl(&[
            "export".as_ref(),
            "compose".as_ref(),
            file.as_os_str(),
            "--subnet".as_ref(),
            subnet.as_ref(),
        ])
    };
    // ring6 needs 13 /28 networks: a /24 holds 16.
    let text = export("10.99.3.0/24").expect_success().stdout;
    let subnets = subnets_of(&text);
    assert_eq!(subnets.len(), 13, "{text}");
    for (k, subnet) in subnets.iter().enumerate() {
        assert_eq!(*subnet, format!("10.99.3.{}/28", 16 * k));
    }
    assert!(
        text.contains("# Each network is a /28 of 10.99.3.0/24 (given by --subnet);\n"),
        "{text}"
    );
    assert!(
        text.contains("ring6.toml --subnet 10.99.3.0/24 -o ring6.yml\n"),
        "the header's command repeats --subnet: {text}"
    );

    export("10.99.3.0/25").expect_error(&[
        "--subnet 10.99.3.0/25 holds 8 /28 networks, and lab ring6 needs 13",
        "give a /24 or larger",
    ]);
    export("10.99.3.0/29").expect_error(&["holds 0 /28 networks", "give a /24 or larger"]);
    export("10.99.3.7/24")
        .expect_error(&["10.99.3.7 is not the first address of a /24; did you mean 10.99.3.0/24?"]);
    export("10.99.3.0").expect_error(&["--subnet", "write it as address/prefix"]);
    export("10.99.300.0/24").expect_error(&["--subnet", "is not an IPv4 address"]);
    export("10.99.3.0/40").expect_error(&["--subnet", "prefix length must be 0-32"]);
}

#[test]
fn http_port_moves_every_published_port() {
    let run = labctl(&[
        "export".as_ref(),
        "compose".as_ref(),
        topology_file("pair.toml").as_os_str(),
        "--http-port".as_ref(),
        "9000".as_ref(),
    ])
    .expect_success();
    let published: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("published: "))
        .collect();
    assert_eq!(
        published,
        [r#""${LABCTL_HTTP_PORT:-9000}""#, "9001", "9002"]
    );
    assert!(run
        .stdout
        .contains("\"--public-http\"\n      - \"127.0.0.1:9001\"\n"));
    assert!(run.stdout.contains("-o pair.yml") && run.stdout.contains(" --http-port 9000 -o"));
    labctl(&[
        "export".as_ref(),
        "compose".as_ref(),
        topology_file("ring6.toml").as_os_str(),
        "--http-port".as_ref(),
        "65530".as_ref(),
    ])
    .expect_error(&["--http-port 65530", "run past 65535", "below 65530"]);
}

#[test]
fn without_an_engine_the_default_block_is_used_and_said() {
    let output = Command::new(LABCTL)
        .args(["export", "compose"])
        .arg(topology_file("pair.toml"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env_remove("LABCTL_DOCKER_POOL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        subnets_of(&text),
        [
            "10.210.0.0/28",
            "10.210.0.16/28",
            "10.210.0.32/28",
            "10.210.0.48/28"
        ]
    );
    assert!(
        text.contains(
            "(the default: no Docker engine answered at export time);\n# --subnet CIDR exports"
        ),
        "{text}"
    );
}

/// A network this test made on the engine, removed when the test ends.
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.0])
            .output();
    }
}

/// The subnets of every network on the engine.
fn engine_subnets() -> BTreeSet<String> {
    let output = Command::new("docker")
        .args(["network", "ls", "-q"])
        .output()
        .expect("running docker (this test needs the docker CLI and an engine)");
    let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut subnets = BTreeSet::new();
    for id in ids {
        let output = Command::new("docker")
            .args([
                "network",
                "inspect",
                "--format",
                "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
                &id,
            ])
            .output()
            .unwrap();
        subnets.extend(
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .filter(|s| s.contains('.'))
                .map(String::from),
        );
    }
    subnets
}

/// Whether two `a.b.c.d/p` networks share an address.
fn overlap(a: &str, b: &str) -> bool {
    let parse = |text: &str| -> (u32, u32) {
        let (address, prefix) = text.split_once('/').unwrap();
        let address: std::net::Ipv4Addr = address.parse().unwrap();
        (u32::from(address), prefix.parse().unwrap())
    };
    let ((a, p), (b, q)) = (parse(a), parse(b));
    let prefix = p.min(q);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    a & mask == b & mask
}

#[test]
fn the_block_chosen_is_free_on_the_engine() {
    // Take a piece of the default block, so the export must look past it (when another lab
    // holds it already, the create fails, and the block is just as taken).
    let probe = Network(format!("labctl-export-probe-{}", std::process::id()));
    let _ = Command::new("docker")
        .args([
            "network",
            "create",
            "--subnet",
            "10.210.0.0/28",
            "--label",
            "labctl.test=export",
            &probe.0,
        ])
        .output()
        .expect("running docker (this test needs the docker CLI and an engine)");
    let before = engine_subnets();
    assert!(
        before.iter().any(|s| overlap(s, "10.210.0.0/19")),
        "nothing holds 10.210.0.0/19: {before:?}"
    );
    let text = labctl(&[
        "export".as_ref(),
        "compose".as_ref(),
        topology_file("ring6.toml").as_os_str(),
    ])
    .expect_success()
    .stdout;
    let after = engine_subnets();
    let subnets = subnets_of(&text);
    assert_eq!(subnets.len(), 13);
    for subnet in &subnets {
        for used in before.intersection(&after) {
            assert!(
                !overlap(subnet, used),
                "{subnet} of the export overlaps {used}, a network of the engine"
            );
        }
    }
    assert!(
        text.contains("(free on the Docker engine at export time);"),
        "{text}"
    );
}

/// A lab started with `docker-compose` from an exported file: `labctl ls` lists it as started by
/// compose, `labctl status` reports on it read-only (converged), and `labctl up` of the same name
/// is refused, naming the compose project, without touching it.
#[test]
fn a_compose_started_lab_is_listed_and_reported_but_not_touched() {
    let image = common::lab_image().to_string();
    let lab = format!("cmp{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = dir.path().join("lab.yml");
    let base = common::free_ports(6);
    let topology = topology_file("ring6.toml");
    labctl(&[
        "export",
        "compose",
        topology.to_str().unwrap(),
        "--name",
        &lab,
        "--http-port",
        &base.to_string(),
        "-o",
        out.to_str().unwrap(),
    ])
    .expect_success();
    let secret = common::random_secret();
    let compose = |args: &[&str]| -> Output {
        let mut command = Command::new("docker-compose");
        command
            .arg("-p")
            .arg(&lab)
            .arg("-f")
            .arg(&out)
            .args(args)
            .env("LABCTL_SESSION_SECRET", &secret)
            .env("LABCTL_IMAGE", &image)
            .stdin(Stdio::null());
        command.output().expect("running docker-compose")
    };
    /// Takes the compose lab down whatever happens.
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-v", "--timeout", "1"]);
        }
    }
    let _down = Down(&compose);
    let up = compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let run = |args: &[&str]| common::try_labctl(args, Some(home.path())).expect("labctl runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let report = loop {
        let status = run(&["status", &lab, "--json"]);
        if status.code == Some(0) {
            let report: serde_json::Value =
                serde_json::from_str(status.stdout.trim()).expect("a JSON report");
            if report["converged"] == true {
                break report;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the compose lab did not report converged within 90 s: {}{}",
            status.stdout,
            status.stderr
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_eq!(report["leader"], 1, "{report}");
    assert_eq!(report["runtime"], "docker", "{report}");

    let ls = run(&["ls", "--json"]);
    let line = ls
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .find(|l| l["name"] == lab.as_str())
        .unwrap_or_else(|| panic!("ls lists the compose lab: {}", ls.stdout));
    assert_eq!(line["started_by"], "compose", "{line}");
    assert_eq!(line["nodes"], 6, "{line}");
    assert_eq!(line["running"], 8, "{line}");

    let refused = run(&[
        "up",
        topology.to_str().unwrap(),
        "--runtime",
        "docker",
        "--name",
        &lab,
    ]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("compose file") && refused.stderr.contains("docker compose -p"),
        "{}",
        refused.stderr
    );
    let still = run(&["ls", "--json"]);
    assert!(still.stdout.contains("\"running\":8"), "{}", still.stdout);
}
