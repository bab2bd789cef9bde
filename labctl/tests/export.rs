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
        let run = labctl_in_repo(&["export", "compose", &format!("topologies/{stem}.toml")])
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
         $f -o compose/$s.yml; done",
        stale.join("\n  ")
    );
}

#[test]
fn output_writes_what_stdout_prints() {
    let dir = tempfile::tempdir().unwrap();
    let file = topology_file("ring6.toml");
    let out = dir.path().join("ring6.yml");
    let printed =
        labctl(&["export".as_ref(), "compose".as_ref(), file.as_os_str()]).expect_success();
    let wrote = labctl(&[
        "export".as_ref(),
        "compose".as_ref(),
        file.as_os_str(),
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
        stderr.contains("set LABCTL_SESSION_SECRET") && stderr.contains("openssl rand -hex 32"),
        "the refusal should say how to set the key: {stderr}"
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
    let file = export_into(dir.path(), "ring6", &[]);
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
        assert_eq!(one(&model, &at("labels/labctl.lab")), "ring6", "{service}");
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
    // Published on the host's loopback: the nameserver at 8080, node k (in id order) at 8080 + k,
    // so every input node is 127.0.0.1 to a browser.
    assert_eq!(
        one(&model, "services/ring6-nameserver/ports"),
        "127.0.0.1:8080:8080/tcp"
    );
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(
            one(&model, &format!("services/ring6-{id}/ports")),
            format!("127.0.0.1:{}:8080/tcp", 8081 + k),
            "node {id}"
        );
    }

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
