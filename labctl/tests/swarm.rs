//! An exported compose file on a Docker Swarm, for real: `labctl export compose` writes ring6,
//! `docker stack deploy` runs it, the lab elects node 1 and builds a spanning tree (read from
//! every node's log), the nameserver sends clients to exactly the input nodes, and a user
//! registers, posts to a group and reads the message back through the published chat ports.
//! Then `docker stack rm` removes it, and nothing of it is left.
//!
//! The engine is shared: the test makes a single-node swarm only when the engine is in none
//! (`docker swarm init --advertise-addr 127.0.0.1`) and then always leaves it again, also when it
//! fails ([`Swarm`]'s `Drop`); it touches only its own stack, [`LAB`], found by its labels.
//!
//! Needs the `docker` CLI (23 or newer: `docker stack config`) and an engine, and fails, rather
//! than skips, without them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{expected_roles, free_ports, lab_image, labctl, load, random_secret, topology_file};
use labctl_core::Role;
use labctl_topology::NodeId;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The lab's name, which is also the stack's: every service, network and volume of the test
/// carries it.
const LAB: &str = "swarmtest";

/// The topology deployed.
const TOPOLOGY: &str = "ring6.toml";

/// How long the lab may take to converge and serve the chat once deployed.
const CONVERGE: Duration = Duration::from_secs(120);

/// How long `docker stack rm` may take to remove everything.
const REMOVE: Duration = Duration::from_secs(60);

/// How often to look again while waiting.
const POLL: Duration = Duration::from_millis(500);

/// Stack deploy's label naming a stack's services, networks, containers and volumes.
const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// `docker args` with `env` set, its output; a missing `docker` is a clear failure.
fn docker_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new("docker");
    command
        .args(args)
        .env_remove("LABCTL_SESSION_SECRET")
        .env_remove("LABCTL_HTTP_PORT")
        .env_remove("LABCTL_IMAGE")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "the docker CLI is not on PATH, and this test deploys on a Docker Swarm with it: \
             install Docker (the CLI and an engine) and run it again"
        ),
        Err(e) => panic!("running docker {}: {e}", args.join(" ")),
    }
}

fn docker(args: &[&str]) -> Output {
    docker_with(args, &[])
}

/// `docker args`, insisting that it succeeds; its stdout.
fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {} failed ({}): {}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The non-empty lines of `docker args`' stdout, or nothing when it fails (for cleanups).
fn docker_lines(args: &[&str]) -> Vec<String> {
    let output = docker(args);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect()
}

/// The engine's swarm, made for this test when the engine is in none and left again when the
/// test ends, however it ends.
struct Swarm {
    /// This test ran `docker swarm init`: leave the swarm again.
    created: bool,
    /// The swarm's bridge to the host network existed before: keep it.
    had_gwbridge: bool,
}

impl Swarm {
    fn join() -> Swarm {
        let state = docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let had_gwbridge =
            !docker_lines(&["network", "ls", "-q", "--filter", "name=^docker_gwbridge$"])
                .is_empty();
        match state.trim() {
            "inactive" => {
                let output = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
                // Whatever init answered, a swarm it made is left again.
                let swarm = Swarm {
                    created: docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).trim()
                        == "active",
                    had_gwbridge,
                };
                assert!(
                    output.status.success() && swarm.created,
                    "docker swarm init failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                swarm
            }
            "active" => {
                let manager = docker_ok(&["info", "--format", "{{.Swarm.ControlAvailable}}"]);
                assert_eq!(
                    manager.trim(),
                    "true",
                    "the engine is a worker of a swarm: stacks are deployed on a manager"
                );
                Swarm {
                    created: false,
                    had_gwbridge,
                }
            }
            other => panic!(
                "the engine's swarm is {other:?} (neither inactive nor active): leave or repair \
                 it (`docker swarm leave --force`) and run the test again"
            ),
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        let left = docker(&["swarm", "leave", "--force"]);
        if !left.status.success() {
            eprintln!(
                "docker swarm leave --force failed: {}",
                String::from_utf8_lossy(&left.stderr)
            );
        }
        if !self.had_gwbridge {
            // Made by the swarm for its containers; nothing else of the engine uses it.
            let _ = docker(&["network", "rm", "docker_gwbridge"]);
        }
    }
}

/// The test's stack: removed (services, containers, networks, volumes) when the test ends.
struct Stack {
    removed: bool,
}

impl Stack {
    /// What of the stack is still there, by kind.
    fn leftovers() -> BTreeMap<&'static str, Vec<String>> {
        let filter = format!("label={NAMESPACE_LABEL}={LAB}");
        let kinds: [(&str, Vec<&str>); 4] = [
            ("services", vec!["service", "ls", "--format", "{{.Name}}"]),
            ("containers", vec!["ps", "-a", "--format", "{{.Names}}"]),
            ("networks", vec!["network", "ls", "--format", "{{.Name}}"]),
            ("volumes", vec!["volume", "ls", "--format", "{{.Name}}"]),
        ];
        kinds
            .into_iter()
            .map(|(kind, mut args)| {
                args.extend(["--filter", &filter]);
                (kind, docker_lines(&args))
            })
            .filter(|(_, names)| !names.is_empty())
            .collect()
    }

    /// `docker stack rm`, then waits until its services, containers and networks are gone and
    /// removes its volumes (which stack rm keeps). Err: what is left after [`REMOVE`].
    fn remove(&mut self) -> Result<Duration, String> {
        let start = Instant::now();
        if !docker_lines(&["stack", "ls", "--format", "{{.Name}}"])
            .iter()
            .any(|name| name == LAB)
            && Stack::leftovers().is_empty()
        {
            self.removed = true;
            return Ok(start.elapsed());
        }
        let _ = docker(&["stack", "rm", LAB]);
        loop {
            let mut left = Stack::leftovers();
            if left.keys().all(|kind| *kind == "volumes") {
                for volume in left.remove("volumes").unwrap_or_default() {
                    let _ = docker(&["volume", "rm", &volume]);
                }
                if Stack::leftovers().is_empty() {
                    self.removed = true;
                    return Ok(start.elapsed());
                }
            }
            if start.elapsed() > REMOVE {
                return Err(format!(
                    "after docker stack rm {LAB} and {REMOVE:?}, left: {:?}",
                    Stack::leftovers()
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.removed {
            if let Err(e) = self.remove() {
                eprintln!("{e}");
            }
        }
    }
}

/// Exports `topology` as lab [`LAB`] into `dir` with `extra` arguments; the file's path.
fn export(dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{LAB}.yml"));
    let topology = topology_file(TOPOLOGY);
    let mut args = vec![
        "export",
        "compose",
        topology.to_str().expect("a UTF-8 path"),
        "--name",
        LAB,
        "-o",
        out.to_str().expect("a UTF-8 path"),
    ];
    args.extend(extra);
    labctl(&args).expect_success();
    out
}

/// `docker stack deploy` reads the session key exactly as set (it used to read the text after
/// a `-` in the "unset" message as a default value, so every node's key was `hex 32)`), and
/// refuses the file without one, saying what to do.
#[test]
fn stack_deploy_reads_the_session_key_as_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = export(dir.path(), &["--subnet", "10.210.0.0/19"]);
    let file = file.to_str().unwrap();
    let secret = random_secret();
    let output = docker_with(
        &["stack", "config", "-c", file],
        &[("LABCTL_SESSION_SECRET", &secret)],
    );
    let config = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "docker stack config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let keys: Vec<&str> = config
        .lines()
        .filter_map(|line| line.trim().strip_prefix("LABCTL_SESSION_SECRET:"))
        .map(str::trim)
        .collect();
    assert_eq!(
        keys,
        vec![secret.as_str(); 6],
        "one key per node:\n{config}"
    );

    let refused = docker(&["stack", "config", "-c", file]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "no key, yet accepted:\n{config}");
    assert!(
        stderr.contains("set LABCTL_SESSION_SECRET to a random secret")
            && stderr.contains("top of this file"),
        "the refusal should say what to do: {stderr}"
    );
}

/// One node's story since its container started, from its log.
#[derive(Debug, Default, Clone, PartialEq)]
struct NodeLog {
    /// The newest epoch it started.
    epoch: Option<u64>,
    /// In that epoch: it was elected (the root).
    elected: bool,
    /// In that epoch: its parent and the leader its Q announced.
    joined: Option<(NodeId, NodeId)>,
    /// In that epoch, at the root: the size of the complete tree.
    complete: Option<u64>,
    /// In that epoch: its roles.
    roles: Option<BTreeSet<Role>>,
}

impl NodeLog {
    /// Reads the events a node logs, in the words its log says them (`epoch 2 started: …`,
    /// `elected leader after …`, `joined the tree under 2 at depth 1 (leader 1)`, `subtree
    /// complete: 6 nodes`, `roles: writer, persistence`).
    fn parse(log: &str) -> NodeLog {
        let mut node = NodeLog::default();
        // The number right after `prefix` in `text`.
        let number = |text: &str, prefix: &str| -> Option<u64> {
            let (_, rest) = text.split_once(prefix)?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        for line in log.lines() {
            let line = strip_ansi(line);
            if line.contains(" started: a new election") {
                node = NodeLog {
                    epoch: number(&line, "epoch "),
                    ..NodeLog::default()
                };
            } else if line.contains("elected leader after ") {
                node.elected = true;
            } else if line.contains("joined the tree under ") {
                node.joined =
                    number(&line, "joined the tree under ").zip(number(&line, "(leader "));
            } else if line.contains("subtree complete: ") {
                node.complete = number(&line, "subtree complete: ");
            } else if let Some((_, names)) = line.split_once("roles: ") {
                node.roles = Some(
                    names
                        .trim()
                        .split(", ")
                        .filter(|name| !name.is_empty() && *name != "none")
                        .map(|name| match name {
                            "writer" => Role::Writer,
                            "leader" => Role::Leader,
                            "persistence" => Role::Persistence,
                            "input" => Role::Input,
                            "forwarder" => Role::Forwarder,
                            other => panic!("an unknown role {other:?} in {line:?}"),
                        })
                        .collect(),
                );
            }
        }
        node
    }
}

/// `text` without its terminal colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The running container of service `<LAB>_<key>`, if there is one.
fn running_container(key: &str) -> Option<String> {
    docker_lines(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={LAB}_{key}"),
        "--filter",
        "status=running",
    ])
    .into_iter()
    .next()
}

/// The log (stdout and stderr) of service `<LAB>_<key>`'s running container.
fn service_log(key: &str) -> String {
    let Some(container) = running_container(key) else {
        return String::new();
    };
    let output = docker(&["logs", &container]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What went wrong, for a failure: the stack's tasks and the tail of each service's log.
fn diagnostics(keys: &[String]) -> String {
    let mut text = docker_lines(&[
        "stack",
        "ps",
        LAB,
        "--no-trunc",
        "--format",
        "{{.Name}} {{.CurrentState}} {{.Error}}",
    ])
    .join("\n");
    for key in keys {
        let log = service_log(key);
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(12)..];
        text.push_str(&format!("\n--- {key}:\n{}", tail.join("\n")));
    }
    text
}

/// An HTTP answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    location: Option<String>,
    node: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self, status: StatusCode, what: &str) -> Value {
        assert_eq!(self.status, status, "{what}: {self:?}");
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {self:?}"))
    }
}

/// Sends `method url` (JSON, no redirect followed); None when nothing answered.
async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Option<Answer> {
    let mut request = client
        .request(method, url)
        .header(ACCEPT, "application/json");
    if let Some(body) = body {
        request = request
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.ok()?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (location, node) = (header(LOCATION.as_str()), header("x-labctl-node"));
    let status = response.status();
    let body = response.text().await.ok()?;
    Some(Answer {
        status,
        location,
        node,
        body,
    })
}

#[test]
fn an_exported_lab_runs_on_a_swarm_and_serves_the_chat() {
    let started = Instant::now();
    let topology = load(&topology_file(TOPOLOGY));
    let ids = topology.ids();
    let links: BTreeSet<(NodeId, NodeId)> = topology.links().into_iter().collect();
    let image = lab_image().to_string();

    // The engine's swarm (made if need be), then a clean slate: a stack of a failed run whose
    // engine stayed a swarm, or its volumes, would hold that run's node state.
    let _swarm = Swarm::join();
    let mut stack = Stack { removed: false };
    stack.remove().expect("removing what a previous run left");
    stack.removed = false;

    let dir = tempfile::tempdir().unwrap();
    let base = free_ports(ids.len() as u16);
    let file = export(dir.path(), &["--http-port", &base.to_string()]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("(free on the Docker engine at export time)"),
        "the export asks the engine for a free block:\n{}",
        &text[..text.find("services:").unwrap_or(text.len())]
    );

    let secret = random_secret();
    let deployed = docker_with(
        &[
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            file.to_str().unwrap(),
            LAB,
        ],
        &[("LABCTL_SESSION_SECRET", &secret), ("LABCTL_IMAGE", &image)],
    );
    assert!(
        deployed.status.success(),
        "docker stack deploy failed: {}{}",
        String::from_utf8_lossy(&deployed.stdout),
        String::from_utf8_lossy(&deployed.stderr)
    );
    let deployed_at = Instant::now();

    // Every service and network carries the lab's labels, owned by `compose`.
    let keys: Vec<String> = ["bootstrap".to_string(), "nameserver".to_string()]
        .into_iter()
        .chain(ids.iter().map(u64::to_string))
        .map(|suffix| format!("{LAB}-{suffix}"))
        .collect();
    let owned = |kind: &str| -> BTreeSet<String> {
        docker_lines(&[
            kind,
            "ls",
            "--filter",
            &format!("label=labctl.lab={LAB}"),
            "--filter",
            "label=labctl.owner=compose",
            "--format",
            "{{.Name}}",
        ])
        .into_iter()
        .collect()
    };
    let services: BTreeSet<String> = keys.iter().map(|key| format!("{LAB}_{key}")).collect();
    assert_eq!(owned("service"), services);
    let mut networks: BTreeSet<String> = BTreeSet::from([format!("{LAB}-mgmt")]);
    networks.extend(ids.iter().map(|id| format!("{LAB}-uplink-{id}")));
    networks.extend(links.iter().map(|(a, b)| format!("{LAB}-link-{a}-{b}")));
    assert_eq!(owned("network"), networks);
    for network in &networks {
        let driver = docker_ok(&["network", "inspect", "--format", "{{.Driver}}", network]);
        assert_eq!(driver.trim(), "overlay", "{network}");
    }

    // Converged: every node in one epoch, node 1 (the minimum) elected with a complete tree of
    // all six, every other node joined under a neighbour with leader 1, the roles of SPEC §3.4.
    let node_keys: BTreeMap<NodeId, String> =
        ids.iter().map(|&id| (id, format!("{LAB}-{id}"))).collect();
    let converged = loop {
        let logs: BTreeMap<NodeId, NodeLog> = node_keys
            .iter()
            .map(|(&id, key)| (id, NodeLog::parse(&service_log(key))))
            .collect();
        let epochs: BTreeSet<Option<u64>> = logs.values().map(|node| node.epoch).collect();
        let tree: BTreeMap<NodeId, Option<NodeId>> = logs
            .iter()
            .map(|(&id, node)| (id, node.joined.map(|(parent, _)| parent)))
            .collect();
        let done = epochs.len() == 1
            && !epochs.contains(&None)
            && logs[&1].elected
            && logs[&1].complete == Some(ids.len() as u64)
            && logs
                .iter()
                .all(|(&id, node)| id == 1 || node.joined.is_some_and(|(_, leader)| leader == 1))
            && logs.values().all(|node| node.roles.is_some());
        if done {
            break (logs, tree);
        }
        assert!(
            deployed_at.elapsed() < CONVERGE,
            "the lab did not converge within {CONVERGE:?}: {logs:#?}\n{}",
            diagnostics(&keys)
        );
        std::thread::sleep(POLL);
    };
    let (logs, tree) = converged;
    for (&id, parent) in &tree {
        if let Some(parent) = parent {
            assert!(
                links.contains(&(id.min(*parent), id.max(*parent))),
                "node {id}'s parent {parent} is no neighbour: {tree:?}"
            );
        }
    }
    let roles: BTreeMap<NodeId, BTreeSet<Role>> = logs
        .iter()
        .map(|(&id, node)| (id, node.roles.clone().unwrap()))
        .collect();
    assert_eq!(
        roles,
        expected_roles(&tree),
        "the roles of SPEC §3.4 for {tree:?}"
    );
    let converged_after = deployed_at.elapsed();

    // The nameserver sends clients to exactly the input nodes, at their published ports (node k
    // in id order at base + k), keeping the path.
    let port_of: BTreeMap<NodeId, u16> = ids.iter().copied().zip(base + 1..).collect();
    let inputs: BTreeSet<NodeId> = roles
        .iter()
        .filter(|(_, roles)| roles.contains(&Role::Input))
        .map(|(&id, _)| id)
        .collect();
    let input_urls: BTreeMap<String, NodeId> = inputs
        .iter()
        .map(|id| (format!("http://127.0.0.1:{}", port_of[id]), *id))
        .collect();
    let nameserver = format!("http://127.0.0.1:{base}");
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut seen = BTreeSet::new();
        while seen.len() < input_urls.len() {
            let answer = send(&client, Method::GET, &format!("{nameserver}/users"), None).await;
            match answer {
                Some(Answer {
                    status: StatusCode::TEMPORARY_REDIRECT,
                    location: Some(location),
                    ..
                }) => {
                    let base_url = location
                        .strip_suffix("/users")
                        .unwrap_or_else(|| panic!("the path was not kept: {location}"));
                    assert!(
                        input_urls.contains_key(base_url),
                        "the nameserver sent a client to {location}, not an input node's chat \
                         ({input_urls:?})"
                    );
                    seen.insert(base_url.to_string());
                }
                other => assert!(
                    deployed_at.elapsed() < CONVERGE,
                    "the nameserver never sent clients to every input node ({input_urls:?}; \
                     seen {seen:?}); last answer {other:?}\n{}",
                    diagnostics(&keys)
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A user registers and logs in at one input node, makes a group and posts to it; the
        // message reads back at every input node (the session cookie holds at all of them: one
        // host, 127.0.0.1).
        let first = input_urls.keys().next().unwrap().clone();
        let credentials = json!({"username": "swarm", "tag": "1234", "password": "a long secret"});
        let register = send(
            &client,
            Method::POST,
            &format!("{first}/register"),
            Some(credentials.clone()),
        )
        .await
        .expect("the input node answers");
        let user = register.json(StatusCode::CREATED, "register");
        assert_eq!(
            register.node.as_deref(),
            Some(&input_urls[&first].to_string()[..])
        );
        let login = send(
            &client,
            Method::POST,
            &format!("{first}/login"),
            Some(credentials),
        )
        .await
        .expect("the input node answers");
        assert_eq!(login.json(StatusCode::OK, "login"), user);
        let group = send(
            &client,
            Method::POST,
            &format!("{first}/groups"),
            Some(json!({"name": "swarm"})),
        )
        .await
        .expect("the input node answers")
        .json(StatusCode::CREATED, "create a group");
        let chat = format!("/groups/{}/chat", group["uuid"].as_str().unwrap());
        let content = format!("hello from a swarm, key {}", &secret[..8]);
        let sent = send(
            &client,
            Method::POST,
            &format!("{first}{chat}"),
            Some(json!({ "content": content })),
        )
        .await
        .expect("the input node answers")
        .json(StatusCode::CREATED, "post to the group");
        assert_eq!(sent["content"], content.as_str());
        for url in input_urls.keys() {
            let read = send(&client, Method::GET, &format!("{url}{chat}"), None)
                .await
                .expect("the input node answers");
            let messages = read.json(StatusCode::OK, &format!("read the group at {url}"));
            assert_eq!(messages, json!([sent]), "at {url}");
        }
    });
    let chatted_after = deployed_at.elapsed();

    let removed_in = stack.remove().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "swarm test: converged {converged_after:?} after deploy, chat done at \
         {chatted_after:?}, removed in {removed_in:?}; {:?} in all",
        started.elapsed()
    );
}
