//! The Docker runtime: every daemon in its own container, every topology link a veth pair between
//! two of them (or, where labctl cannot make those, a Docker network: [`plan::Links`]).
//!
//! [`plan`] says what to create; this module creates it through the engine's API (bollard, never
//! the `docker` CLI) and takes it down again. Everything it creates carries the label
//! `labctl.lab=<lab>`, so `down` finds it all by label, even after labctl crashed half-way and
//! the lab's record is incomplete.
//!
//! Order of `up`: build or reuse the image ([`image`]); pick a free address block; create
//! the networks (in parallel); then the bootstrap and the nameserver; then every node container
//! (created and connected one by one, started all at once, then, with veth pairs, wired by
//! [`wire`] while each node's daemon waits for its uplink). Daemons write their logs and ready files
//! into the lab's folder through bind mounts and run as the calling user, so the files stay
//! theirs; readiness is the ready file appearing, while the container's state is watched so a
//! daemon that dies says so at once.

pub mod engine;
pub mod image;
pub mod plan;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, EndpointIpamConfig, EndpointSettings,
    HostConfig, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, InspectNetworkOptions,
    KillContainerOptions, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use labctl_fault::NodeAction;
use labctl_topology::Topology;
use tokio::sync::{Mutex, OnceCell};

use self::plan::{Cidr, ContainerPlan, ContainerRole, Flavor, Links, Plan, VethKind, VethPlan};
use super::{NodeSettings, ProcState, Runtime, Shell, START_TIMEOUT};
use crate::lab::{last_words, LabDir, Process, Record};
use crate::poll::{poll_until, TimedOut};

/// How often to look for a ready file.
const POLL: Duration = Duration::from_millis(25);
/// Seconds a container gets to stop after SIGTERM before it is killed.
const STOP_GRACE_SECS: i32 = 3;
/// How many address blocks to try when another lab takes one at the same moment.
const BLOCK_ATTEMPTS: usize = 8;

/// Containers through the Docker engine.
#[derive(Default)]
pub struct DockerRuntime {
    docker: OnceCell<Docker>,
    /// Set by [`Runtime::build`]: the image's tag.
    image: OnceCell<String>,
    /// Set by [`Runtime::prepare`]: the lab's plan and image.
    state: Mutex<Option<Prepared>>,
}

struct Prepared {
    plan: Plan,
    image: String,
    /// The owner and folder labels every object of this lab gets beside the plan's.
    owned: BTreeMap<String, String>,
}

impl DockerRuntime {
    /// The engine client, connected on first use.
    async fn docker(&self) -> Result<&Docker> {
        self.docker.get_or_try_init(engine::connect).await
    }

    /// The plan and image of the lab being started.
    async fn prepared<T>(&self, f: impl FnOnce(&Plan, &str) -> T) -> Result<T> {
        let state = self.state.lock().await;
        let prepared = state
            .as_ref()
            .context("the Docker runtime was not prepared for this lab")?;
        Ok(f(&prepared.plan, &prepared.image))
    }

    /// The owner labels of the lab being started.
    async fn owned(&self) -> Result<BTreeMap<String, String>> {
        let state = self.state.lock().await;
        Ok(state
            .as_ref()
            .context("the Docker runtime was not prepared for this lab")?
            .owned
            .clone())
    }

    /// Create, wire and start one container, then wait until its daemon is ready.
    async fn start_service(&self, lab: &LabDir, role: ContainerRole) -> Result<Process> {
        let docker = self.docker().await?;
        let (container, image) = self
            .prepared(|plan, image| (plan.container(role).cloned(), image.to_string()))
            .await?;
        let container = container.context("the plan has no such container")?;
        let owned = self.owned().await?;
        create(docker, lab, &container, &image, &owned).await?;
        start(docker, &container.name).await?;
        wait_ready(docker, lab, &container).await?;
        self.process(&container).await
    }

    /// What the record keeps of a started container.
    async fn process(&self, container: &ContainerPlan) -> Result<Process> {
        let docker = self.docker().await?;
        let inspect = |name: String| async move {
            docker
                .inspect_container(&name, None::<InspectContainerOptions>)
                .await
                .map_err(|e| engine::explain(e, &format!("inspecting {name}")))
        };
        let info = inspect(container.name.clone()).await?;
        let pid = info
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .unwrap_or_default()
            .max(0) as u32;
        // A container in another's namespace has that one's addresses and published ports.
        let settings = match &container.network_of {
            Some(owner) => inspect(owner.clone()).await?.network_settings,
            None => info.network_settings,
        }
        .unwrap_or_default();
        let networks = settings.networks.unwrap_or_default();
        let address_on = |network: &str| -> Result<String> {
            networks
                .get(network)
                .and_then(|e| e.ip_address.clone())
                .filter(|ip| !ip.is_empty())
                .with_context(|| format!("{} has no address on {network}", container.name))
        };
        let (mgmt, uplink) = self
            .prepared(|plan, _| {
                let uplink = match container.role {
                    ContainerRole::Node(id) => plan.uplink(id).map(|n| n.name.clone()),
                    _ => None,
                };
                (plan.management().name.clone(), uplink)
            })
            .await?;
        Ok(match container.role {
            ContainerRole::Bootstrap => Process {
                pid,
                grpc: format!("{}:{}", address_on(&mgmt)?, plan::BOOTSTRAP_PORT),
                http: None,
                control: None,
                container: Some(container.name.clone()),
            },
            ContainerRole::Nameserver => {
                let published = settings
                    .ports
                    .unwrap_or_default()
                    .get(&format!("{}/tcp", plan::NAMESERVER_HTTP_PORT))
                    .cloned()
                    .flatten()
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|b| b.host_port)
                    .context("the nameserver's HTTP port was not published")?;
                Process {
                    pid,
                    grpc: format!("{}:{}", address_on(&mgmt)?, plan::NAMESERVER_GRPC_PORT),
                    http: Some(format!("127.0.0.1:{published}")),
                    control: None,
                    container: Some(container.name.clone()),
                }
            }
            ContainerRole::Node(_) => {
                // labctl reaches the admin API over the node's uplink network, or, with veth
                // pairs, over the management network (only the host can).
                let facing_host = uplink.unwrap_or(mgmt);
                Process {
                    pid,
                    grpc: format!("{}:{}", address_on(&facing_host)?, plan::NODE_ADMIN_PORT),
                    http: None,
                    control: Some(format!("{}:{}", container.name, plan::NODE_CONTROL_PORT)),
                    container: Some(container.name.clone()),
                }
            }
        })
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn kind(&self) -> &'static str {
        "docker"
    }

    async fn build(&self, progress: bool) -> Result<()> {
        // A bad LABCTL_DOCKER_POOL is refused before the lab's folder exists.
        pool()?;
        let docker = self.docker().await?;
        self.image
            .get_or_try_init(|| async {
                match std::env::var("LABCTL_IMAGE").ok().filter(|v| !v.is_empty()) {
                    Some(image) => given_image(docker, image).await,
                    None => image::ensure(docker, false, progress).await,
                }
            })
            .await?;
        Ok(())
    }

    async fn prepare(
        &self,
        lab: &LabDir,
        record: &mut Record,
        topology: &Topology,
        settings: &NodeSettings,
        progress: bool,
    ) -> Result<()> {
        let docker = self.docker().await?;
        refuse_taken(docker, lab).await?;
        let owned = owned_labels(lab, record);
        self.build(progress).await?;
        let image = self
            .image
            .get()
            .cloned()
            .context("the image was just made")?;
        record.image = Some(image.clone());
        lab.save(record)?;
        for dir in ["bootstrap".to_string()]
            .into_iter()
            .chain(topology.ids().iter().map(|id| format!("nodes/{id}")))
        {
            let path = lab.path.join(dir);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        }

        let http_ports = free_ports(&topology.ids())?;
        let wiring = links_wiring()?;
        record.docker_links = Some(wiring);
        let pool = pool()?;
        let mut tried = BTreeSet::new();
        for _ in 0..BLOCK_ATTEMPTS {
            let block = free_block(docker, &pool, &tried).await?;
            let plan = Plan::new(
                &lab.name,
                topology,
                settings,
                block,
                Flavor::Runtime,
                wiring,
                &http_ports,
            )?;
            // The management network claims the block: a lab racing for the same block fails
            // here, on the first network, and tries the next one.
            match create_network(docker, plan.management(), &owned).await {
                Ok(()) => {}
                Err(e) if is_overlap(&e) => {
                    tried.insert(block);
                    continue;
                }
                Err(e) => return Err(engine::explain(e, "creating the management network")),
            }
            record.network_block = Some(block.to_string());
            lab.save(record)?;
            // The engine creates networks one at a time (~0.1 s each): a bar on a terminal.
            if plan.networks.len() == 1 {
                *self.state.lock().await = Some(Prepared { plan, image, owned });
                return Ok(());
            }
            let bar = count_bar(
                plan.networks.len() as u64,
                progress,
                "networks",
                "one per node's uplink and per link",
            );
            bar.inc(1);
            let rest = plan.networks[1..].iter().map(|network| {
                let bar = bar.clone();
                let owned = &owned;
                async move {
                    let created = create_network(docker, network, owned).await;
                    bar.inc(1);
                    created
                }
            });
            let results = futures_util::future::join_all(rest).await;
            bar.finish_and_clear();
            for (result, network) in results.into_iter().zip(&plan.networks[1..]) {
                result.map_err(|e| engine::explain(e, &format!("creating {}", network.name)))?;
            }
            *self.state.lock().await = Some(Prepared { plan, image, owned });
            return Ok(());
        }
        bail!(
            "no free address block for the lab's networks in {pool} after {BLOCK_ATTEMPTS} tries; \
             `labctl down --all` removes old labs, or set LABCTL_DOCKER_POOL to a free private range"
        )
    }

    async fn start_bootstrap(&self, lab: &LabDir) -> Result<Process> {
        self.start_service(lab, ContainerRole::Bootstrap).await
    }

    async fn start_nameserver(&self, lab: &LabDir) -> Result<Process> {
        self.start_service(lab, ContainerRole::Nameserver).await
    }

    async fn start_nodes(
        &self,
        lab: &LabDir,
        ids: &[u64],
        _bootstrap: &Process,
        _nameserver: &Process,
        _settings: &NodeSettings,
        started: &mut (dyn FnMut(u64, Process) -> Result<()> + Send),
    ) -> Result<BTreeMap<u64, Process>> {
        let docker = self.docker().await?;
        let (containers, image) = self
            .prepared(|plan, image| {
                let containers: Vec<ContainerPlan> = ids
                    .iter()
                    .filter_map(|&id| plan.container(ContainerRole::Node(id)).cloned())
                    .collect();
                (containers, image.to_string())
            })
            .await?;
        // Create and wire them all (the engine's API 1.41 takes one network per create, so the
        // others are connected before the start), a few at a time.
        let owned = self.owned().await?;
        let creates = containers
            .iter()
            .map(|container| create(docker, lab, container, &image, &owned));
        for result in futures_util::future::join_all(creates).await {
            result?;
        }
        for container in &containers {
            if let ContainerRole::Node(id) = container.role {
                started(
                    id,
                    Process {
                        pid: 0,
                        grpc: String::new(),
                        http: None,
                        control: None,
                        container: Some(container.name.clone()),
                    },
                )?;
            }
        }
        // Start them all at once, then wait for each to be ready.
        let starts = containers.iter().map(|c| start(docker, &c.name));
        for result in futures_util::future::join_all(starts).await {
            result?;
        }
        // With veth pairs: those between the nodes just started (and the hub), cut links none.
        let wanted: BTreeSet<u64> = ids.iter().copied().collect();
        let (veths, block) = self
            .prepared(|plan, _| {
                let veths: Vec<VethPlan> = plan
                    .veths
                    .iter()
                    .filter(|v| match v.kind {
                        VethKind::Uplink(id) => wanted.contains(&id),
                        VethKind::Link(a, b) => wanted.contains(&a) && wanted.contains(&b),
                    })
                    .cloned()
                    .collect();
                (veths, plan.block)
            })
            .await?;
        if !veths.is_empty() {
            let veths: Vec<&VethPlan> = veths.iter().collect();
            let pids = running_pids(docker, containers_of(&veths)).await?;
            wire::wire(&veths, &pids, &hub_name(&lab.name), block, &|_| false).await?;
        }
        let waits = containers.iter().map(|c| wait_ready(docker, lab, c));
        for result in futures_util::future::join_all(waits).await {
            result?;
        }
        let mut nodes = BTreeMap::new();
        for container in &containers {
            if let ContainerRole::Node(id) = container.role {
                let process = self.process(container).await?;
                started(id, process.clone())?;
                nodes.insert(id, process);
            }
        }
        Ok(nodes)
    }

    /// `docker exec` of busybox's `sh` (or the command given) in the node's container, in its
    /// folder (`/lab/state`), as the container's user (root with `root`). Through the `docker`
    /// CLI, which passes a terminal through as it should.
    fn shell(
        &self,
        lab: &LabDir,
        record: &Record,
        id: u64,
        shell: &Shell,
    ) -> Result<std::process::Command> {
        let container = node_container(lab, record, id)?;
        let mut command = std::process::Command::new("docker");
        command.args(["exec", "--interactive"]);
        if shell.tty {
            command.arg("--tty");
        }
        if shell.root {
            command.args(["--user", "0:0"]);
        }
        command.args(["--workdir", plan::STATE_DIR]);
        for (key, value) in &shell.env {
            command.arg("--env").arg(format!("{key}={value}"));
        }
        command.arg(&container);
        if shell.command.is_empty() {
            command.arg("sh");
        } else {
            command.args(&shell.command);
        }
        Ok(command)
    }

    async fn stop(&self, lab: &LabDir, record: &Record) -> Result<()> {
        remove_lab(self.docker().await?, &Selector::of(lab, record)).await
    }

    async fn states(&self, lab: &LabDir, record: &Record) -> BTreeMap<String, ProcState> {
        let states = match self.docker().await {
            Ok(docker) => labelled_states(docker, &Selector::of(lab, record))
                .await
                .unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        record
            .processes()
            .into_iter()
            .map(|(label, process)| {
                let state = process
                    .container
                    .as_ref()
                    .and_then(|name| states.get(name))
                    .copied()
                    .unwrap_or(ProcState::Down);
                (label, state)
            })
            .collect()
    }

    async fn node_fault(
        &self,
        lab: &LabDir,
        record: &mut Record,
        id: u64,
        action: NodeAction,
        _settings: &NodeSettings,
    ) -> Result<()> {
        let docker = self.docker().await?;
        let name = node_container(lab, record, id)?;
        let doing = |what: &str| format!("{what} container {name}");
        match action {
            NodeAction::Kill => kill(docker, &name).await,
            NodeAction::Pause => docker
                .pause_container(&name)
                .await
                .map_err(|e| engine::explain(e, &doing("pausing"))),
            NodeAction::Resume => docker
                .unpause_container(&name)
                .await
                .map_err(|e| engine::explain(e, &doing("resuming"))),
            NodeAction::Restart => {
                kill(docker, &name).await?;
                let label = ContainerRole::Node(id).label();
                let _ = std::fs::remove_file(lab.run().join(format!("{label}.json")));
                start(docker, &name).await?;
                if let Some(wiring) = recorded_wiring(lab, record)? {
                    rewire(docker, lab, id, &wiring).await?;
                }
                wait_ready_named(docker, lab, &name, &label).await?;
                let info = docker
                    .inspect_container(&name, None::<InspectContainerOptions>)
                    .await
                    .map_err(|e| engine::explain(e, &doing("inspecting")))?;
                if let Some(process) = record.nodes.get_mut(&id) {
                    process.pid = info.state.and_then(|s| s.pid).unwrap_or_default().max(0) as u32;
                }
                Ok(())
            }
        }
    }

    fn cuts_links(&self) -> bool {
        true
    }

    async fn refuse_taken(&self, lab: &LabDir) -> Result<()> {
        refuse_taken(self.docker().await?, lab).await
    }

    async fn set_link_cut(
        &self,
        lab: &LabDir,
        record: &Record,
        a: u64,
        b: u64,
        cut: bool,
    ) -> Result<()> {
        let docker = self.docker().await?;
        if let Some(Recorded { veths, .. }) = recorded_wiring(lab, record)? {
            let kind = VethKind::Link(a.min(b), a.max(b));
            let veth = veths
                .iter()
                .find(|v| v.kind == kind)
                .with_context(|| format!("lab {} has no link {a}-{b}", lab.name))?;
            // Both ends down: no carrier either way, as a pulled cable. A container that is
            // not running has taken its end (and so the pair) away already.
            let pids = running_pids(docker, containers_of(&[veth])).await?;
            for end in &veth.ends {
                if let Some(&pid) = pids.get(&end.container) {
                    let step = wire::Step::Set {
                        interface: end.interface.clone(),
                        up: !cut,
                    };
                    wire::in_namespace(pid, vec![step], false)
                        .await
                        .with_context(|| {
                            format!(
                                "{} the link {a}-{b}",
                                if cut { "cutting" } else { "healing" }
                            )
                        })?;
                }
            }
            return Ok(());
        }
        let network = format!("{}-link-{}-{}", lab.name, a.min(b), a.max(b));
        // Each end gets its own address back when the link heals: its neighbour's connection
        // (and the engine's DNS) find it where they knew it.
        let addresses_file = lab.run().join(format!("{network}.addresses.json"));
        let mut addresses: BTreeMap<String, String> = std::fs::read_to_string(&addresses_file)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        if cut {
            let info = docker
                .inspect_network(&network, None::<InspectNetworkOptions>)
                .await
                .map_err(|e| engine::explain(e, &format!("inspecting network {network}")))?;
            for endpoint in info.containers.unwrap_or_default().into_values() {
                if let (Some(name), Some(ip)) = (endpoint.name, endpoint.ipv4_address) {
                    let ip = ip.split('/').next().unwrap_or_default().to_string();
                    addresses.insert(name, ip);
                }
            }
            labctl_node::write_atomically(&addresses_file, &serde_json::to_vec(&addresses)?)
                .with_context(|| format!("writing {}", addresses_file.display()))?;
        }
        for id in [a, b] {
            let container = node_container(lab, record, id)?;
            let result = if cut {
                docker
                    .disconnect_network(
                        &network,
                        NetworkDisconnectRequest {
                            container: container.clone(),
                            force: Some(true),
                        },
                    )
                    .await
            } else {
                let ipam_config = addresses.get(&container).map(|ip| EndpointIpamConfig {
                    ipv4_address: Some(ip.clone()),
                    ..EndpointIpamConfig::default()
                });
                docker
                    .connect_network(
                        &network,
                        NetworkConnectRequest {
                            container: container.clone(),
                            endpoint_config: Some(EndpointSettings {
                                ipam_config,
                                ..EndpointSettings::default()
                            }),
                        },
                    )
                    .await
            };
            match result {
                Ok(()) => {}
                // Already disconnected, or already connected: the link is as asked.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 403 | 404 | 409,
                    ..
                }) => {}
                Err(e) => {
                    return Err(engine::explain(
                        e,
                        &format!(
                            "{} {container} {} {network}",
                            if cut { "disconnecting" } else { "connecting" },
                            if cut { "from" } else { "to" }
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// SIGKILL a container and wait until it has stopped (already stopped is fine). A paused one is
/// thawed first: the engine cannot kill a frozen container.
async fn kill(docker: &Docker, name: &str) -> Result<()> {
    let info = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .map_err(|e| engine::explain(e, &format!("inspecting {name}")))?;
    if info.state.and_then(|s| s.paused) == Some(true) {
        docker
            .unpause_container(name)
            .await
            .map_err(|e| engine::explain(e, &format!("thawing container {name} to kill it")))?;
    }
    let options = KillContainerOptions {
        signal: "SIGKILL".into(),
    };
    match docker.kill_container(name, Some(options)).await {
        Ok(()) => {}
        // 409: not running (killed before, or exited by itself).
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {}
        Err(e) => return Err(engine::explain(e, &format!("killing container {name}"))),
    }
    let limit = Duration::from_secs(u64::from(STOP_GRACE_SECS.unsigned_abs()) + 7);
    poll_until(
        &format!("container {name} stopped after SIGKILL"),
        POLL,
        limit,
        || async {
            let info = docker
                .inspect_container(name, None::<InspectContainerOptions>)
                .await
                .map_err(|e| engine::explain(e, &format!("inspecting {name}")))?;
            Ok((info.state.and_then(|s| s.running) != Some(true)).then_some(()))
        },
    )
    .await
}

/// The container of node `id` on the lab's record.
fn node_container(lab: &LabDir, record: &Record, id: u64) -> Result<String> {
    record
        .nodes
        .get(&id)
        .and_then(|p| p.container.clone())
        .with_context(|| format!("lab {} has no container for node {id} on record", lab.name))
}

/// The hub's container (the bootstrap's; the nameserver shares its namespace) with veth pairs.
fn hub_name(lab: &str) -> String {
    format!("{lab}-bootstrap")
}

/// How this labctl makes a Docker lab's links: `$LABCTL_DOCKER_LINKS` (`veth`, `networks`), or
/// veth pairs when it runs as root beside a local engine (it makes them in the containers'
/// namespaces through /proc), else Docker networks.
fn links_wiring() -> Result<Links> {
    let root = rustix::process::geteuid().is_root();
    let local = std::env::var("DOCKER_HOST")
        .map(|host| host.is_empty() || host.starts_with("unix://"))
        .unwrap_or(true);
    match std::env::var("LABCTL_DOCKER_LINKS").as_deref() {
        Ok("veth") if !(root && local) => bail!(
            "LABCTL_DOCKER_LINKS=veth needs labctl to run as root beside a local Docker engine \
             (it makes the links inside the containers' namespaces); unset it for one Docker \
             network per link"
        ),
        Ok("veth") => Ok(Links::Veth),
        Ok("networks") => Ok(Links::Networks),
        Ok("") | Err(_) => Ok(if root && local {
            Links::Veth
        } else {
            Links::Networks
        }),
        Ok(other) => bail!("LABCTL_DOCKER_LINKS={other:?}: write veth or networks"),
    }
}

/// A veth-wired lab as its record says: its pairs, its address block and its links.
struct Recorded {
    veths: Vec<VethPlan>,
    block: Cidr,
    adjacency: labctl_core::report::Adjacency,
}

/// The lab's wiring as its record says (None: its links are Docker networks).
fn recorded_wiring(lab: &LabDir, record: &Record) -> Result<Option<Recorded>> {
    if record.docker_links != Some(Links::Veth) {
        return Ok(None);
    }
    let topology = Topology::from_toml(
        &record.topology,
        &record.topology_file.display().to_string(),
    )?;
    let block = record
        .network_block
        .as_deref()
        .context("the lab's record has no address block")?;
    let block = Cidr::parse(block)?;
    Ok(Some(Recorded {
        veths: plan::veths(&lab.name, &topology, block)?,
        block,
        adjacency: topology.adjacency(),
    }))
}

/// The containers at the ends of `veths`.
fn containers_of(veths: &[&VethPlan]) -> BTreeSet<String> {
    veths
        .iter()
        .flat_map(|v| v.ends.iter().map(|e| e.container.clone()))
        .collect()
}

/// The first process of each running (or paused) container of `names` (those not running are
/// left out).
async fn running_pids(docker: &Docker, names: BTreeSet<String>) -> Result<BTreeMap<String, u32>> {
    let inspections = names.iter().map(|name| async move {
        let info = docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .map_err(|e| engine::explain(e, &format!("inspecting {name}")))?;
        let state = info.state.unwrap_or_default();
        // A paused container's namespace is there as a running one's (only its processes
        // are frozen): its links are cut and healed alike.
        let pid = match state.running {
            Some(true) => state.pid.unwrap_or_default().max(0) as u32,
            _ => 0,
        };
        Ok::<_, anyhow::Error>((name.clone(), pid))
    });
    let mut pids = BTreeMap::new();
    for result in futures_util::future::join_all(inspections).await {
        let (name, pid) = result?;
        if pid > 0 {
            pids.insert(name, pid);
        }
    }
    Ok(pids)
}

/// Wire node `id` again after its container started anew (a new namespace, without the pairs
/// its old one took away): its links to the neighbours that run (a link cut in force stays
/// down), then its uplink.
async fn rewire(docker: &Docker, lab: &LabDir, id: u64, wiring: &Recorded) -> Result<()> {
    let mine: Vec<&VethPlan> = wiring.veths.iter().filter(|v| v.touches(id)).collect();
    let pids = running_pids(docker, containers_of(&mine)).await?;
    // Links to a neighbour that is not running wait for its own restart.
    let wired: Vec<&VethPlan> = mine
        .into_iter()
        .filter(|v| v.ends.iter().all(|e| pids.contains_key(&e.container)))
        .collect();
    let cut = lab.load_faults()?.cut_links(&wiring.adjacency);
    let down = |v: &VethPlan| match v.kind {
        VethKind::Link(a, b) => cut.contains(&(a, b)),
        VethKind::Uplink(_) => false,
    };
    wire::wire(&wired, &pids, &hub_name(&lab.name), wiring.block, &down).await
}

/// A bar counting `count` things (networks made, objects removed) on stderr, hidden unless
/// `visible`.
fn count_bar(
    count: u64,
    visible: bool,
    prefix: &'static str,
    message: &'static str,
) -> indicatif::ProgressBar {
    let target = if visible && count > 0 {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(count), target);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar.set_message(message);
    bar
}

/// The image `$LABCTL_IMAGE` names (say, one built from the repository's Dockerfile), if the
/// engine has it.
async fn given_image(docker: &Docker, image: String) -> Result<String> {
    match docker.inspect_image(&image).await {
        Ok(_) => Ok(image),
        Err(e) => Err(engine::explain(
            e,
            &format!("looking up LABCTL_IMAGE={image}"),
        ))
        .context(format!(
            "LABCTL_IMAGE names {image}, which the engine does not have: build it \
                 (`labctl image build`, or `docker build -t {image} .`), or unset LABCTL_IMAGE"
        )),
    }
}

/// A free port on the host's loopback for each node's chat, checked free by binding it (the
/// engine binds it again a moment later; a clash in between is reported by the engine).
///
/// The ports come from just below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`),
/// from a random place: neither the kernel (for any program's port 0) nor the engine (for the
/// ports it picks itself, the nameserver's) hands those out, so nothing else takes one in that
/// moment. (Taken from the ephemeral range, a port freed here was at times handed to another
/// program's port 0 before the engine bound it.)
fn free_ports(ids: &[u64]) -> Result<BTreeMap<u64, u16>> {
    let ephemeral = ephemeral_start();
    let below = ephemeral.saturating_sub(PORT_SPAN).max(1024)..ephemeral;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    let span = u64::from(below.end - below.start).max(1);
    let first = labctl_topology::rng::SplitMix64::new(seed).below(span);
    let mut candidates = (0..span).map(|k| below.start + ((first + k) % span) as u16);
    // Hold every listener until all are chosen, so no two nodes get the same port.
    let mut listeners = Vec::with_capacity(ids.len());
    for &id in ids {
        let listener = candidates
            .by_ref()
            .find_map(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok());
        let listener = match listener {
            Some(listener) => listener,
            // All taken (or none below the range): any free port, as the kernel picks it.
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .context("finding a free loopback port for a node's chat")?,
        };
        listeners.push((id, listener));
    }
    listeners
        .iter()
        .map(|(id, l)| Ok((*id, l.local_addr()?.port())))
        .collect()
}

/// How many ports below the ephemeral range the nodes' chat ports are drawn from.
const PORT_SPAN: u16 = 8192;

/// The first port of the kernel's ephemeral range (Linux's default where it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
}

/// The address pool labs take their blocks from: `$LABCTL_DOCKER_POOL` or [`plan::DEFAULT_POOL`].
pub(crate) fn pool() -> Result<Cidr> {
    let text = std::env::var("LABCTL_DOCKER_POOL").unwrap_or_else(|_| plan::DEFAULT_POOL.into());
    let pool = Cidr::parse(&text).context("LABCTL_DOCKER_POOL")?;
    if pool.prefix > plan::BLOCK_PREFIX {
        bail!(
            "LABCTL_DOCKER_POOL {pool} is smaller than one lab's /{} block",
            plan::BLOCK_PREFIX
        );
    }
    Ok(pool)
}

/// The first lab-sized block of `pool` that no Docker network and no route of this host uses, and that was
/// not `tried` already.
pub(crate) async fn free_block(
    docker: &Docker,
    pool: &Cidr,
    tried: &BTreeSet<Cidr>,
) -> Result<Cidr> {
    let mut used: Vec<Cidr> = host_routes();
    let networks = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .map_err(|e| engine::explain(e, "listing networks"))?;
    for network in networks {
        for config in network.ipam.and_then(|i| i.config).unwrap_or_default() {
            if let Some(subnet) = config.subnet.as_deref().and_then(|s| Cidr::parse(s).ok()) {
                used.push(subnet);
            }
        }
    }
    (0..pool.subnets(plan::BLOCK_PREFIX) as u32)
        .filter_map(|k| pool.subnet(plan::BLOCK_PREFIX, k))
        .find(|block| !tried.contains(block) && !used.iter().any(|u| u.overlaps(block)))
        .ok_or_else(|| {
            anyhow!(
                "every /{} block of {pool} is in use (by other labs or networks); `labctl down \
                 --all` removes old labs, or set LABCTL_DOCKER_POOL to a free private range such \
                 as 10.211.0.0/16",
                plan::BLOCK_PREFIX
            )
        })
}

/// The networks this host routes to (but the default route), from `/proc/net/route`.
fn host_routes() -> Vec<Cidr> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let destination = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?;
            // The kernel prints each address's bytes as a native-endian number.
            let base = u32::from_be_bytes(destination.to_ne_bytes());
            let prefix = u32::from_be_bytes(mask.to_ne_bytes()).leading_ones() as u8;
            (prefix > 0).then_some(Cidr { base, prefix })
        })
        .collect()
}

fn is_overlap(error: &bollard::errors::Error) -> bool {
    let text = error.to_string().to_lowercase();
    text.contains("overlap") || text.contains("address already in use")
}

async fn create_network(
    docker: &Docker,
    network: &plan::NetworkPlan,
    owned: &BTreeMap<String, String>,
) -> Result<(), bollard::errors::Error> {
    docker
        .create_network(NetworkCreateRequest {
            name: network.name.clone(),
            driver: Some("bridge".into()),
            internal: Some(network.internal),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(network.subnet.to_string()),
                    gateway: Some(network.gateway.to_string()),
                    ..IpamConfig::default()
                }]),
                ..Ipam::default()
            }),
            labels: Some(with_owner(&network.labels, owned)),
            options: network
                .isolated
                .then(|| HashMap::from([(plan::ICC_OPTION.to_string(), "false".to_string())])),
            ..NetworkCreateRequest::default()
        })
        .await
        .map(|_| ())
}

/// Create a container on its first network and connect it to the others (not started).
async fn create(
    docker: &Docker,
    lab: &LabDir,
    container: &ContainerPlan,
    image: &str,
    owned: &BTreeMap<String, String>,
) -> Result<()> {
    let user = format!(
        "{}:{}",
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw()
    );
    let binds = container
        .mounts
        .iter()
        .map(|m| {
            let source = lab.path.join(&m.lab_path);
            format!(
                "{}:{}{}",
                source.display(),
                m.target,
                if m.read_only { ":ro" } else { "" }
            )
        })
        .collect();
    let (network_mode, first, others) =
        match (&container.network_of, container.networks.split_first()) {
            (Some(owner), _) => (format!("container:{owner}"), None, &[][..]),
            (None, Some((first, others))) => (first.clone(), Some(first), others),
            (None, None) => bail!("container {} has no network", container.name),
        };
    let mut host_config = HostConfig {
        binds: Some(binds),
        network_mode: Some(network_mode),
        extra_hosts: (!container.hosts.is_empty()).then(|| {
            container
                .hosts
                .iter()
                .map(|(name, address)| format!("{name}:{address}"))
                .collect()
        }),
        sysctls: (!container.sysctls.is_empty())
            .then(|| container.sysctls.iter().cloned().collect()),
        ..HostConfig::default()
    };
    let mut exposed = None;
    if let Some(publish) = container.publish {
        let port = format!("{}/tcp", publish.container_port);
        // Published on the host's loopback only (port 0: the engine picks one).
        let host_port = match publish.host_port {
            0 => String::new(),
            p => p.to_string(),
        };
        host_config.port_bindings = Some(HashMap::from([(
            port.clone(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(host_port),
            }]),
        )]));
        exposed = Some(vec![port]);
    }
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(container.command.clone()),
        env: Some(
            container
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(with_owner(&container.labels, owned)),
        user: Some(user),
        // A container in another's namespace has that one's host name.
        hostname: first.map(|_| container.name.clone()),
        exposed_ports: exposed,
        stop_timeout: Some(i64::from(STOP_GRACE_SECS)),
        host_config: Some(host_config),
        networking_config: first.map(|first| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                first.clone(),
                EndpointSettings::default(),
            )])),
        }),
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptionsBuilder::new()
        .name(&container.name)
        .build();
    docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| engine::explain(e, &format!("creating container {}", container.name)))?;
    for network in others {
        docker
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: container.name.clone(),
                    endpoint_config: Some(EndpointSettings::default()),
                },
            )
            .await
            .map_err(|e| {
                engine::explain(e, &format!("connecting {} to {network}", container.name))
            })?;
    }
    Ok(())
}

async fn start(docker: &Docker, name: &str) -> Result<()> {
    docker
        .start_container(
            name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(|e| engine::explain(e, &format!("starting container {name}")))
}

/// Wait until the daemon in `container` wrote its ready file, failing early if it stopped.
async fn wait_ready(docker: &Docker, lab: &LabDir, container: &ContainerPlan) -> Result<()> {
    wait_ready_named(docker, lab, &container.name, &container.role.label()).await
}

/// [`wait_ready`] for the container `name` running daemon `label`.
async fn wait_ready_named(docker: &Docker, lab: &LabDir, name: &str, label: &str) -> Result<()> {
    let ready = lab.run().join(format!("{label}.json"));
    let checks = std::sync::atomic::AtomicU32::new(0);
    let waited = poll_until(
        &format!("{label} ready in container {name}"),
        POLL,
        START_TIMEOUT,
        || async {
            if ready.exists() {
                return Ok(Some(()));
            }
            // Ask the engine now and then (it is slower than a file check).
            let k = checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if k.is_multiple_of(8) {
                let info = docker
                    .inspect_container(name, None::<InspectContainerOptions>)
                    .await
                    .map_err(|e| engine::explain(e, &format!("inspecting {name}")))?;
                let state = info.state.unwrap_or_default();
                if state.running == Some(false) && !ready.exists() {
                    bail!(
                        "container {name} stopped (exit code {}) before {label} was ready; its \
                         last words:\n{}",
                        state.exit_code.unwrap_or_default(),
                        last_words(lab, label)
                    );
                }
            }
            Ok(None)
        },
    )
    .await;
    waited.map_err(|e| match e.downcast_ref::<TimedOut>() {
        Some(_) => anyhow!("{e}; its log:\n{}", last_words(lab, label)),
        None => e,
    })
}

/// The labels that make an object this lab's own: [`plan::OWNER_LABEL`] with the record's owner
/// id and [`plan::FOLDER_LABEL`] with the lab's folder.
fn owned_labels(lab: &LabDir, record: &Record) -> BTreeMap<String, String> {
    BTreeMap::from([
        (plan::OWNER_LABEL.to_string(), record.owner.clone()),
        (
            plan::FOLDER_LABEL.to_string(),
            lab.path.display().to_string(),
        ),
    ])
}

/// The plan's labels with the owner's.
fn with_owner(
    labels: &BTreeMap<String, String>,
    owned: &BTreeMap<String, String>,
) -> HashMap<String, String> {
    labels
        .iter()
        .chain(owned)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Which containers and networks a listing or a removal means: those labelled with a lab's name
/// and, unless the lab predates owners, with its owner id (or, for a lab whose record is gone,
/// its folder). Objects of another home's lab of the same name never match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The lab's name.
    pub lab: String,
    /// The further label, `key=value`.
    pub also: Option<String>,
}

impl Selector {
    /// The objects of the lab whose record this is.
    pub fn of(lab: &LabDir, record: &Record) -> Selector {
        Selector {
            lab: lab.name.clone(),
            also: (!record.owner.is_empty())
                .then(|| format!("{}={}", plan::OWNER_LABEL, record.owner)),
        }
    }

    /// The objects of a lab of this home whose folder (and record) are gone.
    pub fn orphan(lab: &LabDir) -> Selector {
        Selector {
            lab: lab.name.clone(),
            also: Some(format!("{}={}", plan::FOLDER_LABEL, lab.path.display())),
        }
    }

    /// Every object labelled with the lab's name, whoever owns it.
    fn anyone(lab: &str) -> Selector {
        Selector {
            lab: lab.to_string(),
            also: None,
        }
    }

    fn filters(&self) -> HashMap<String, Vec<String>> {
        let mut labels = vec![format!("{}={}", plan::LAB_LABEL, self.lab)];
        labels.extend(self.also.clone());
        HashMap::from([("label".to_string(), labels)])
    }
}

/// Every container `selector` means, running or not.
async fn list_labelled(
    docker: &Docker,
    selector: &Selector,
) -> Result<Vec<bollard::models::ContainerSummary>> {
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&selector.filters())
        .build();
    docker
        .list_containers(Some(options))
        .await
        .map_err(|e| engine::explain(e, "listing containers"))
}

/// Every container `selector` means, by name, and what it is doing.
pub async fn labelled_states(
    docker: &Docker,
    selector: &Selector,
) -> Result<BTreeMap<String, ProcState>> {
    Ok(list_labelled(docker, selector)
        .await?
        .into_iter()
        .filter_map(|c| {
            let name = c.names?.first()?.trim_start_matches('/').to_string();
            let state = match c.state {
                Some(ContainerSummaryStateEnum::RUNNING)
                | Some(ContainerSummaryStateEnum::RESTARTING) => ProcState::Running,
                Some(ContainerSummaryStateEnum::PAUSED) => ProcState::Paused,
                _ => ProcState::Down,
            };
            Some((name, state))
        })
        .collect())
}

/// Refuse to start lab `lab` while the engine holds containers or networks labelled with its
/// name: they are another home's lab, a compose lab, or this home's lab whose folder was deleted.
/// The error says which, and how to remove them; nothing is touched.
async fn refuse_taken(docker: &Docker, lab: &LabDir) -> Result<()> {
    let anyone = Selector::anyone(&lab.name);
    let containers = list_labelled(docker, &anyone).await?;
    let networks = labelled_networks(docker, &anyone).await?;
    let labels = containers
        .iter()
        .filter_map(|c| c.labels.clone())
        .chain(networks.iter().filter_map(|n| n.labels.clone()))
        .next();
    let Some(labels) = labels else {
        return Ok(());
    };
    let name = &lab.name;
    let what = format!(
        "{} and {} labelled {}={name}",
        plural(containers.len(), "container"),
        plural(networks.len(), "network"),
        plan::LAB_LABEL
    );
    let owner = labels.get(plan::OWNER_LABEL).map(String::as_str);
    let folder = labels.get(plan::FOLDER_LABEL).map(String::as_str);
    let ours = lab.path.display().to_string();
    match (owner, folder) {
        (Some(plan::COMPOSE_OWNER), _) => {
            let project = labels
                .get("com.docker.compose.project")
                .or_else(|| labels.get("com.docker.stack.namespace"))
                .cloned()
                .unwrap_or_else(|| name.clone());
            bail!(
                "the name {name} is taken in the Docker engine by a lab started from a compose \
                 file ({what}, project {project}); labctl leaves it alone: `docker compose -p \
                 {project} down` removes it, or start this lab under another name with --name"
            )
        }
        (_, Some(folder)) if folder == ours => bail!(
            "the Docker engine holds {what}, left by an earlier lab {name} of this home whose \
             folder was deleted; `labctl down {name}` removes them, or use --name"
        ),
        (Some(owner), Some(folder)) => {
            let home = Path::new(folder)
                .parent()
                .and_then(Path::parent)
                .map(|h| h.display().to_string())
                .unwrap_or_else(|| "?".into());
            bail!(
                "the name {name} is taken in the Docker engine by another labctl home's lab \
                 (its folder is {folder}, owner {owner}; {what}); labctl leaves it alone: \
                 `LABCTL_HOME={home} labctl down {name}` removes it, or start this lab under \
                 another name with --name"
            )
        }
        _ => bail!(
            "the Docker engine holds {what}, made by an older labctl or by hand (they carry no \
             {} label); labctl leaves them alone: remove them (`docker rm -f`, `docker network \
             rm`), or use --name",
            plan::OWNER_LABEL
        ),
    }
}

/// `1 container`, `3 networks`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// How long `down` lets a lab's daemons act on SIGTERM before the engine kills them: the whole
/// lab goes, so nobody is left to hear a goodbye; the grace only lets a node finish a write.
const DOWN_GRACE: Duration = Duration::from_millis(1000);

/// How many removals `down` asks of the engine at once. The engine tears down containers'
/// network endpoints and networks largely one at a time, so more would only queue inside it.
const REMOVAL_POOL: usize = 8;

/// Remove every container, network and volume `selector` means. Every daemon gets SIGTERM at
/// once and [`DOWN_GRACE`] to exit; then the containers are removed (killed if still running),
/// then the networks, each with [`REMOVAL_POOL`] removals in flight and a bar on a terminal.
/// Idempotent: what is already gone counts as removed.
pub async fn remove_lab(docker: &Docker, selector: &Selector) -> Result<()> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    // A paused container (labctl fault pause) can be neither stopped nor killed: thaw it first.
    for (name, state) in labelled_states(docker, selector).await? {
        if state == ProcState::Paused {
            let _ = docker.unpause_container(&name).await;
        }
    }
    // Containers in another's network namespace (the nameserver in the hub's) are told apart.
    let listed = list_labelled(docker, selector).await?;
    let (sharing, owning): (Vec<_>, Vec<_>) = listed.into_iter().partition(|c| {
        c.host_config
            .as_ref()
            .and_then(|h| h.network_mode.as_deref())
            .is_some_and(|mode| mode.starts_with("container:"))
    });
    let sharing: Vec<String> = sharing.into_iter().filter_map(|c| c.id).collect();
    let containers: Vec<String> = owning.into_iter().filter_map(|c| c.id).collect();
    let networks: Vec<String> = labelled_networks(docker, selector)
        .await?
        .into_iter()
        .filter_map(|n| n.id)
        .collect();
    let bar = count_bar(
        (sharing.len() + containers.len() + networks.len()) as u64,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        "removing",
        "stopping",
    );

    let remove_container = |id: &String| {
        let remove = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let id = id.clone();
        async move {
            removed(
                docker.remove_container(&id, Some(remove)).await,
                &format!("removing container {id}"),
            )
        }
    };
    // The containers in another's namespace go before anything else (a stateless nameserver:
    // no grace needed): stopping the namespace's owner while another container is still in it
    // can leave the engine holding an endpoint of a container that is gone, and the network
    // can then never be removed.
    for id in &sharing {
        remove_container(id).await?;
        bar.inc(1);
    }

    // SIGTERM to all the others at once, then wait (bounded) until they stopped.
    let terms = containers.iter().map(|id| async move {
        let term = KillContainerOptions {
            signal: "SIGTERM".into(),
        };
        // Not running is fine: the removal below is what counts.
        let _ = docker.kill_container(id, Some(term)).await;
    });
    futures_util::future::join_all(terms).await;
    let deadline = Instant::now() + DOWN_GRACE;
    while Instant::now() < deadline {
        let running = labelled_states(docker, selector)
            .await?
            .values()
            .filter(|s| **s != ProcState::Down)
            .count();
        if running == 0 {
            break;
        }
        tokio::time::sleep(POLL * 4).await;
    }

    bar.set_message("containers");
    stream::iter(containers.into_iter().map(|id| {
        let (bar, docker) = (bar.clone(), docker.clone());
        async move {
            let remove = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            let result = removed(
                docker.remove_container(&id, Some(remove)).await,
                &format!("removing container {id}"),
            );
            bar.inc(1);
            result
        }
    }))
    .buffer_unordered(REMOVAL_POOL)
    .try_collect::<Vec<()>>()
    .await?;

    bar.set_message("networks");
    stream::iter(networks.into_iter().map(|id| {
        let (bar, docker) = (bar.clone(), docker.clone());
        async move {
            // The engine may still be letting go of a removed container's endpoint: a network
            // with "active endpoints" is asked again, for a bounded while.
            let result = poll_until(
                &format!("network {id} free of endpoints"),
                POLL * 4,
                Duration::from_secs(10),
                || async {
                    match docker.remove_network(&id).await {
                        Err(
                            e @ bollard::errors::Error::DockerResponseServerError {
                                status_code: 403,
                                ..
                            },
                        ) if e.to_string().contains("active endpoints") => Ok(None),
                        other => removed(other, &format!("removing network {id}")).map(Some),
                    }
                },
            )
            .await;
            bar.inc(1);
            result
        }
    }))
    .buffer_unordered(REMOVAL_POOL)
    .try_collect::<Vec<()>>()
    .await?;
    bar.finish_and_clear();

    let options = ListVolumesOptionsBuilder::new()
        .filters(&selector.filters())
        .build();
    let volumes = docker
        .list_volumes(Some(options))
        .await
        .map_err(|e| engine::explain(e, "listing volumes"))?;
    for volume in volumes.volumes.unwrap_or_default() {
        removed(
            docker
                .remove_volume(
                    &volume.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await,
            &format!("removing volume {}", volume.name),
        )?;
    }
    Ok(())
}

/// Remove whatever the engine holds of the lab `selector` means, if an engine answers. Returns
/// whether there was anything (for `down NAME` on a lab whose folder is gone).
pub async fn sweep(selector: &Selector) -> Result<bool> {
    if !engine::answers().await {
        return Ok(false);
    }
    let docker = engine::connect().await?;
    let networks = labelled_networks(&docker, selector).await?;
    if list_labelled(&docker, selector).await?.is_empty() && networks.is_empty() {
        return Ok(false);
    }
    remove_lab(&docker, selector).await?;
    Ok(true)
}

/// A lab the engine holds, as its labels tell (for `labctl ls`): whatever started it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineLab {
    /// `labctl.lab`.
    pub lab: String,
    /// `labctl.owner`, if any (`compose` for a compose lab).
    pub owner: Option<String>,
    /// `labctl.folder`, if any.
    pub folder: Option<String>,
    /// The compose project or stack, if a compose tool started it.
    pub project: Option<String>,
    /// Its node containers.
    pub nodes: usize,
    /// All its containers.
    pub containers: usize,
    /// Those that run (or are paused).
    pub running: usize,
}

/// Every lab whose containers the engine holds (none if no engine answers), by name and owner.
pub async fn engine_labs() -> Vec<EngineLab> {
    if !engine::answers().await {
        return Vec::new();
    }
    let Ok(docker) = engine::connect().await else {
        return Vec::new();
    };
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&HashMap::from([(
            "label".to_string(),
            vec![plan::LAB_LABEL.to_string()],
        )]))
        .build();
    let Ok(containers) = docker.list_containers(Some(options)).await else {
        return Vec::new();
    };
    let mut labs: BTreeMap<(String, Option<String>), EngineLab> = BTreeMap::new();
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let Some(name) = labels.get(plan::LAB_LABEL) else {
            continue;
        };
        let owner = labels.get(plan::OWNER_LABEL).cloned();
        let lab = labs
            .entry((name.clone(), owner.clone()))
            .or_insert_with(|| EngineLab {
                lab: name.clone(),
                owner,
                folder: labels.get(plan::FOLDER_LABEL).cloned(),
                project: labels
                    .get("com.docker.compose.project")
                    .or_else(|| labels.get("com.docker.stack.namespace"))
                    .cloned(),
                ..EngineLab::default()
            });
        lab.containers += 1;
        if labels.get(plan::ROLE_LABEL).is_some_and(|r| r == "node") {
            lab.nodes += 1;
        }
        if matches!(
            container.state,
            Some(ContainerSummaryStateEnum::RUNNING)
                | Some(ContainerSummaryStateEnum::PAUSED)
                | Some(ContainerSummaryStateEnum::RESTARTING)
        ) {
            lab.running += 1;
        }
    }
    labs.into_values().collect()
}

/// The record of a lab started from an exported compose file, read from its containers (their
/// labels, addresses and the bootstrap's command line, which carries the topology), so that
/// `labctl status` reports on it read-only. `None` if the engine holds no such lab.
pub async fn compose_record(name: &str) -> Result<Option<Record>> {
    if !engine::answers().await {
        return Ok(None);
    }
    let docker = engine::connect().await?;
    let selector = Selector {
        lab: name.to_string(),
        also: Some(format!("{}={}", plan::OWNER_LABEL, plan::COMPOSE_OWNER)),
    };
    let containers = list_labelled(&docker, &selector).await?;
    if containers.is_empty() {
        return Ok(None);
    }
    let mut record = Record {
        name: name.to_string(),
        runtime: "docker".into(),
        owner: plan::COMPOSE_OWNER.into(),
        durability: labctl_core::plane::Durability::Majority,
        ..Record::default()
    };
    for summary in containers {
        let Some(id) = summary.id else { continue };
        let info = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| engine::explain(e, &format!("inspecting container {id}")))?;
        let labels = info
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        let command = info
            .config
            .as_ref()
            .and_then(|c| c.cmd.clone())
            .unwrap_or_default();
        let container = info
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let pid = info
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .unwrap_or_default()
            .max(0) as u32;
        let settings = info.network_settings.unwrap_or_default();
        let networks = settings.networks.unwrap_or_default();
        // A node's admin API on its uplink (the network that is not a link), a service's on any.
        let address = networks
            .iter()
            .filter(|(network, _)| !network.contains("link-") || network.contains("uplink-"))
            .find_map(|(_, e)| e.ip_address.clone().filter(|ip| !ip.is_empty()))
            .unwrap_or_default();
        let process = |port: u16| Process {
            pid,
            grpc: format!("{address}:{port}"),
            http: None,
            control: None,
            container: Some(container.clone()),
        };
        match labels.get(plan::ROLE_LABEL).map(String::as_str) {
            Some("bootstrap") => {
                if let Some(at) = command.iter().position(|a| a == "--topology-toml") {
                    record.topology = command.get(at + 1).cloned().unwrap_or_default();
                }
                record.bootstrap = Some(process(plan::BOOTSTRAP_PORT));
            }
            Some("nameserver") => {
                let published = settings
                    .ports
                    .unwrap_or_default()
                    .get(&format!("{}/tcp", plan::NAMESERVER_HTTP_PORT))
                    .cloned()
                    .flatten()
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|b| b.host_port);
                let mut nameserver = process(plan::NAMESERVER_GRPC_PORT);
                nameserver.http = published.map(|port| format!("127.0.0.1:{port}"));
                record.nameserver = Some(nameserver);
            }
            Some("node") => {
                if let Some(node) = labels.get(plan::NODE_LABEL).and_then(|n| n.parse().ok()) {
                    record.nodes.insert(node, process(plan::NODE_ADMIN_PORT));
                }
                // The file's own durability, as its nodes run it.
                if let Some(durability) = command
                    .iter()
                    .position(|a| a == "--durability")
                    .and_then(|at| command.get(at + 1))
                    .and_then(|text| text.parse().ok())
                {
                    record.durability = durability;
                }
            }
            _ => {}
        }
    }
    if record.topology.is_empty() {
        bail!(
            "lab {name} was started from a compose file, but its bootstrap container (which \
             carries the topology) is missing; `docker compose ps` shows what runs"
        );
    }
    record.topology_file = format!("{name} (compose)").into();
    Ok(Some(record))
}

/// Every network `selector` means.
async fn labelled_networks(
    docker: &Docker,
    selector: &Selector,
) -> Result<Vec<bollard::models::Network>> {
    let options = ListNetworksOptionsBuilder::new()
        .filters(&selector.filters())
        .build();
    docker
        .list_networks(Some(options))
        .await
        .map_err(|e| engine::explain(e, "listing networks"))
}

/// A removal's outcome, where "already gone" counts as done.
fn removed(result: Result<(), bollard::errors::Error>, doing: &str) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_gone(&e) => Ok(()),
        Err(e) => Err(engine::explain(e, doing)),
    }
}

/// Whether the engine said the thing is already gone (or going).
fn is_gone(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_chat_ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let ids: Vec<u64> = (1..=30).collect();
        let ports = free_ports(&ids).unwrap();
        let distinct: BTreeSet<u16> = ports.values().copied().collect();
        assert_eq!(distinct.len(), ids.len());
        let ephemeral = ephemeral_start();
        for &port in ports.values() {
            assert!(
                port < ephemeral && port >= ephemeral - PORT_SPAN,
                "port {port}"
            );
            // Given back: the engine can bind it.
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }

    #[test]
    fn host_routes_are_read_without_the_default_route() {
        // Whatever this machine routes, no route may be the default one (prefix 0), and every
        // route must be a masked network.
        for route in host_routes() {
            assert!(route.prefix > 0, "{route}");
            assert_eq!(Cidr::parse(&route.to_string()).unwrap(), route);
        }
    }
}
