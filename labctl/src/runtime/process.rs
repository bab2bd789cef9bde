//! The process runtime: every daemon a detached local process on loopback ports.
//!
//! Each daemon is this very executable run as `labctl daemon …`, in its own process group (so a
//! Ctrl-C at labctl's terminal does not reach it), with its output in the lab's `logs/` folder.
//! Ports are picked by the kernel (port 0) and read back from the ready file each daemon writes
//! once it listens, so two labs never collide and nothing waits on a fixed sleep.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use labctl_core::NodeId;
use rustix::process::{Pid, Signal};
use serde::de::DeserializeOwned;

use labctl_fault::NodeAction;

use super::launch::{BootstrapLaunch, Files, NameserverLaunch, NodeLaunch, NodePorts};
use super::{NodeSettings, ProcState, Runtime, Shell, START_TIMEOUT};
use crate::lab::{
    is_ours, last_words, process_start, process_state, stray_daemons_async, LabDir, Process,
    Record, ServiceReady,
};
use crate::poll::{poll_until, TimedOut};

/// Local processes.
pub struct ProcessRuntime;

/// How often to look for a ready file or a process's exit.
const POLL: Duration = Duration::from_millis(10);
/// How many times a restart tries its node's own ports while another socket holds one.
const RESTART_ATTEMPTS: u32 = 20;

/// How long a daemon gets to stop after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Spawn `labctl daemon <args>` detached, output to `logs/<label>.out`.
fn spawn(lab: &LabDir, label: &str, args: &[String]) -> Result<Child> {
    let out_path = lab.logs().join(format!("{label}.out"));
    let out =
        File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
    spawn_into(out, label, args)
}

/// [`spawn`], adding to `logs/<label>.out` (a restart keeps what the earlier run said).
fn spawn_appending(lab: &LabDir, label: &str, args: &[String]) -> Result<Child> {
    let out_path = lab.logs().join(format!("{label}.out"));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .with_context(|| format!("opening {}", out_path.display()))?;
    spawn_into(out, label, args)
}

fn spawn_into(out: File, label: &str, args: &[String]) -> Result<Child> {
    let exe = std::env::current_exe().context("finding the labctl executable")?;
    let child = std::process::Command::new(&exe)
        .arg("daemon")
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} daemon {label}", exe.display()))?;
    Ok(child)
}

/// Wait until `ready` exists (then parse it), failing early if the process died.
///
/// While starting, the runtime still holds the child, so its exit is read with `try_wait` (the
/// process's `/proc` entry would be no good: until `exec` it still shows labctl's command line).
async fn wait_ready<T: DeserializeOwned>(
    lab: &LabDir,
    label: &str,
    child: &mut Child,
    ready: &Path,
) -> Result<T> {
    let waited = poll_until(&format!("{label} listening"), POLL, START_TIMEOUT, || {
        std::future::ready(ready_yet(lab, label, child, ready))
    })
    .await;
    match waited {
        Err(error) if error.is::<TimedOut>() => {
            // Not in the lab's record yet, so nothing else would ever stop it.
            let _ = child.kill();
            let _ = child.wait();
            bail!("{error}; its log:\n{}", last_words(lab, label))
        }
        waited => waited,
    }
}

/// What `ready` says, once it exists; an error if the process exited first.
fn ready_yet<T: DeserializeOwned>(
    lab: &LabDir,
    label: &str,
    child: &mut Child,
    ready: &Path,
) -> Result<Option<T>> {
    if let Ok(text) = std::fs::read_to_string(ready) {
        return serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("reading {label}'s ready file {}", ready.display()));
    }
    if let Some(status) = child.try_wait().context("checking on a daemon")? {
        bail!(
            "{label} exited ({status}) before it was ready; its last words:\n{}",
            last_words(lab, label)
        );
    }
    Ok(None)
}

fn path_arg(path: PathBuf) -> String {
    path.to_string_lossy().into_owned()
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn kind(&self) -> &'static str {
        "process"
    }

    async fn start_bootstrap(&self, lab: &LabDir) -> Result<Process> {
        let ready = lab.run().join("bootstrap.json");
        let args = BootstrapLaunch {
            listen: "127.0.0.1:0".into(),
            state_dir: path_arg(lab.path.join("bootstrap")),
            topology_toml: None,
            files: Some(files(lab, "bootstrap")),
        }
        .args();
        let mut child = spawn(lab, "bootstrap", &args)?;
        let info: ServiceReady = wait_ready(lab, "bootstrap", &mut child, &ready).await?;
        Ok(Process {
            pid: child.id(),
            grpc: info.grpc,
            http: None,
            control: None,
            container: None,
        })
    }

    async fn start_nameserver(&self, lab: &LabDir) -> Result<Process> {
        let ready = lab.run().join("nameserver.json");
        let args = NameserverLaunch {
            grpc: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
            files: Some(files(lab, "nameserver")),
        }
        .args();
        let mut child = spawn(lab, "nameserver", &args)?;
        let info: ServiceReady = wait_ready(lab, "nameserver", &mut child, &ready).await?;
        Ok(Process {
            pid: child.id(),
            grpc: info.grpc,
            http: info.http,
            control: None,
            container: None,
        })
    }

    async fn start_nodes(
        &self,
        lab: &LabDir,
        ids: &[NodeId],
        bootstrap: &Process,
        nameserver: &Process,
        settings: &NodeSettings,
        started: &mut (dyn FnMut(u64, Process) -> Result<()> + Send),
    ) -> Result<BTreeMap<NodeId, Process>> {
        // Start them all first, then wait for them all: they start in parallel.
        let mut children = BTreeMap::new();
        for &id in ids {
            let label = format!("node-{id}");
            let args = node_args(lab, id, bootstrap, nameserver, settings, None);
            let child = spawn(lab, &label, &args)?;
            started(
                id,
                Process {
                    pid: child.id(),
                    grpc: String::new(),
                    http: None,
                    control: None,
                    container: None,
                },
            )?;
            children.insert(id, child);
        }
        let mut nodes = BTreeMap::new();
        for (id, mut child) in children {
            let label = format!("node-{id}");
            let ready_file = lab.run().join(format!("{label}.json"));
            let ready: labctl_node::Ready =
                wait_ready(lab, &label, &mut child, &ready_file).await?;
            let process = Process {
                pid: child.id(),
                grpc: ready.admin,
                http: None,
                control: Some(ready.control),
                container: None,
            };
            started(id, process.clone())?;
            nodes.insert(id, process);
        }
        Ok(nodes)
    }

    async fn node_fault(
        &self,
        lab: &LabDir,
        record: &mut Record,
        id: NodeId,
        action: NodeAction,
        settings: &NodeSettings,
    ) -> Result<()> {
        let process = record
            .nodes
            .get(&id)
            .cloned()
            .with_context(|| format!("lab {} has no node {id} on record", lab.name))?;
        // Only a pid we checked is this lab's daemon; its start time tells it from a later
        // process given the same pid.
        let started = is_ours(process.pid, lab)
            .then(|| process_start(process.pid))
            .flatten();
        let signal = |signal: Signal| {
            if started.is_some() && process_start(process.pid) == started {
                send(process.pid, signal);
            }
        };
        match action {
            NodeAction::Kill => {
                signal(Signal::KILL);
                wait_gone(process.pid, started).await
            }
            NodeAction::Pause => {
                signal(Signal::STOP);
                Ok(())
            }
            NodeAction::Resume => {
                signal(Signal::CONT);
                Ok(())
            }
            NodeAction::Restart => {
                signal(Signal::KILL);
                wait_gone(process.pid, started).await?;
                let (bootstrap, nameserver) = match (&record.bootstrap, &record.nameserver) {
                    (Some(b), Some(n)) => (b.clone(), n.clone()),
                    _ => bail!("lab {} has no bootstrap or nameserver on record", lab.name),
                };
                // The same ports as before: its neighbours reconnect to the address they know,
                // and labctl finds its admin API where the record says.
                let port = |address: &Option<String>| {
                    address
                        .as_deref()
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| p.parse::<u16>().ok())
                };
                let ports = port(&process.control).zip(port(&Some(process.grpc.clone())));
                let label = format!("node-{id}");
                let ready_file = lab.run().join(format!("{label}.json"));
                let _ = std::fs::remove_file(&ready_file);
                let args = node_args(lab, id, &bootstrap, &nameserver, settings, ports);
                // Its ports were free while it was down: any outgoing connection on this host
                // may have taken one as its ephemeral port meanwhile. Such connections are
                // mostly short; try again for a few seconds before giving up.
                let mut attempt = 1;
                let (mut child, ready) = loop {
                    let mut child = spawn_appending(lab, &label, &args)?;
                    match wait_ready::<labctl_node::Ready>(lab, &label, &mut child, &ready_file)
                        .await
                    {
                        Ok(ready) => break (child, ready),
                        Err(e)
                            if attempt < RESTART_ATTEMPTS
                                && format!("{e:#}").contains("Address already in use") =>
                        {
                            let _ = child.wait();
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        Err(e) => return Err(e),
                    }
                };
                record.nodes.insert(
                    id,
                    Process {
                        pid: child.id(),
                        grpc: ready.admin,
                        http: None,
                        control: Some(ready.control),
                        container: None,
                    },
                );
                // The node is this process's child: in a long-lived labctl (the dashboard, a
                // chaos run) it would stay a zombie once killed. Reap it when it exits (when
                // labctl exits first, init adopts it).
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
                Ok(())
            }
        }
    }

    async fn states(&self, lab: &LabDir, record: &Record) -> BTreeMap<String, ProcState> {
        record
            .processes()
            .into_iter()
            .map(|(label, p)| {
                let state = match process_state(p.pid, lab) {
                    None => ProcState::Down,
                    Some(true) => ProcState::Paused,
                    Some(false) => ProcState::Running,
                };
                (label, state)
            })
            .collect()
    }

    /// `$SHELL` (else `/bin/sh`), or the command given, in the node's data folder.
    fn shell(
        &self,
        lab: &LabDir,
        _record: &Record,
        id: NodeId,
        shell: &Shell,
    ) -> Result<std::process::Command> {
        if shell.root {
            bail!(
                "--root is for Docker labs (root inside a node's container); lab {} runs as \
                 local processes, and its shell runs as you",
                lab.name
            );
        }
        let folder = node_folder(lab, id);
        let mut command = match shell.command.split_first() {
            Some((program, args)) => {
                let mut command = std::process::Command::new(program);
                command.args(args);
                command
            }
            None => std::process::Command::new(
                std::env::var_os("SHELL")
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "/bin/sh".into()),
            ),
        };
        command.current_dir(&folder).envs(shell.env.iter().cloned());
        Ok(command)
    }

    async fn stop(&self, lab: &LabDir, record: &Record) -> Result<()> {
        // Nodes first (they deregister from the bootstrap on the way out), then the services;
        // daemons of the lab that are not on record (spawned as `up` was interrupted) with them.
        let mut nodes: Vec<u32> = record.nodes.values().map(|p| p.pid).collect();
        nodes.extend(
            stray_daemons_async()
                .await
                .into_iter()
                .filter(|d| d.lab == lab.name)
                .map(|d| d.pid)
                .filter(|pid| record.processes().iter().all(|(_, p)| p.pid != *pid)),
        );
        let services: Vec<u32> = [&record.nameserver, &record.bootstrap]
            .into_iter()
            .flatten()
            .map(|p| p.pid)
            .collect();
        for group in [nodes, services] {
            terminate(lab, &group).await;
        }
        Ok(())
    }
}

/// Where daemon `label` writes its ready file and its log, in the lab's folder.
fn files(lab: &LabDir, label: &str) -> Files {
    Files {
        ready: path_arg(lab.run().join(format!("{label}.json"))),
        log: path_arg(lab.logs().join(format!("{label}.log"))),
    }
}

/// The command line of node `id`'s daemon; `ports` (control, admin) pins its ports (a restart),
/// else the kernel picks free ones.
fn node_args(
    lab: &LabDir,
    id: NodeId,
    bootstrap: &Process,
    nameserver: &Process,
    settings: &NodeSettings,
    ports: Option<(u16, u16)>,
) -> Vec<String> {
    NodeLaunch {
        id,
        lab: lab.name.clone(),
        bootstrap: bootstrap.grpc.clone(),
        nameserver: nameserver.grpc.clone(),
        listen: None,
        advertise: None,
        advertise_http: None,
        public_http: None,
        ports: ports.map(|(control, admin)| NodePorts {
            control,
            admin,
            http: None,
        }),
        timing: settings.timing,
        durability: settings.durability,
        data_dir: path_arg(node_folder(lab, id)),
        session_secret_file: Some(path_arg(lab.secret())),
        await_interface: None,
        files: Some(files(lab, &format!("node-{id}"))),
    }
    .args()
}

/// Node `id`'s data folder: `<lab>/nodes/<id>`.
fn node_folder(lab: &LabDir, id: NodeId) -> PathBuf {
    lab.path.join("nodes").join(id.to_string())
}

/// Wait until `pid` is gone (a SIGKILL takes a moment to be reaped).
async fn wait_gone(pid: u32, started: Option<u64>) -> Result<()> {
    let Some(started) = started else {
        return Ok(());
    };
    poll_until(
        &format!("process {pid} gone after SIGKILL"),
        POLL,
        STOP_GRACE,
        || std::future::ready(Ok((process_start(pid) != Some(started)).then_some(()))),
    )
    .await
}

/// Stop every daemon of `lab` found by its command line ([`stray_daemons_async`]): those of a lab whose
/// record or folder is gone.
pub async fn stop_strays(lab: &LabDir) {
    let pids: Vec<u32> = stray_daemons_async()
        .await
        .into_iter()
        .filter(|d| d.lab == lab.name)
        .map(|d| d.pid)
        .collect();
    if !pids.is_empty() {
        terminate(lab, &pids).await;
    }
}

/// Sends `signal` to process `pid`, if it is one (not 0, and a `pid_t`: never a process group).
/// A process already gone is no error: the caller checks what is left.
fn send(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// SIGTERM every live process of ours in `pids`, wait for them to go, SIGKILL what remains.
async fn terminate(lab: &LabDir, pids: &[u32]) {
    // Each daemon of ours by its command line, and when it started: the process itself, whose
    // sockets stay open after its command line is gone.
    let ours: Vec<(u32, u64)> = pids
        .iter()
        .filter(|&&pid| is_ours(pid, lab))
        .filter_map(|&pid| Some((pid, process_start(pid)?)))
        .collect();
    let alive = |&(pid, started): &(u32, u64)| process_start(pid) == Some(started);
    for &(pid, _) in &ours {
        // A paused daemon (labctl fault pause) is thawed so that it can act on the SIGTERM.
        send(pid, Signal::TERM);
        send(pid, Signal::CONT);
    }
    // What is left at the deadline gets a SIGKILL, and a moment to go.
    let _ = poll_until("the daemons gone after SIGTERM", POLL, STOP_GRACE, || {
        std::future::ready(Ok((!ours.iter().any(alive)).then_some(())))
    })
    .await;
    let left: Vec<(u32, u64)> = ours.iter().copied().filter(alive).collect();
    for &(pid, _) in &left {
        send(pid, Signal::KILL);
    }
    for &(pid, started) in &left {
        let _ = wait_gone(pid, Some(started)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kill_waits_for_the_process_not_its_command_line() {
        // A process that is not one of a lab's daemons by its command line, as a dying daemon is
        // not once its memory is gone, while its sockets are still open.
        let mut child = std::process::Command::new("sleep")
            .arg("0.4")
            .spawn()
            .expect("sleep runs");
        let started = process_start(child.id());
        assert!(started.is_some(), "a running process has a start time");
        wait_gone(child.id(), started).await.expect("gone in time");
        assert_eq!(
            process_start(child.id()),
            None,
            "it had exited (a zombie until reaped) when the wait ended"
        );
        assert!(child.wait().unwrap().success(), "it ran to its end");
        // A pid whose process is gone, or another one's start time: nothing to wait for.
        wait_gone(child.id(), started).await.expect("already gone");
        let other = std::process::id();
        let started = process_start(other).unwrap();
        wait_gone(other, Some(started + 1))
            .await
            .expect("another start time is another process");
    }
}
