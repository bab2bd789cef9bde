//! The shape of a lab in Docker: which networks, which containers on which of them, with which
//! command lines. Pure data computed from the topology, shared by the Docker runtime (which
//! creates it through the engine) and `labctl export compose` (which writes it as a file), so the
//! two always agree.
//!
//! The wiring, as containerlab does it for network labs:
//!
//! - `<lab>-mgmt`: the management network. The bootstrap and the nameserver sit on it, and the
//!   nameserver's HTTP port is published on the host from it, so a browser there can chat.
//! - `<lab>-uplink-<id>`: one per node, holding that node, the bootstrap and the nameserver. It is
//!   how a node joins, registers its HTTP address, and how labctl (on the host) reaches its admin
//!   API. No other node is on it. It is the one network of a node that is not internal, because
//!   the node's chat port is published on the host's loopback through it: every input node then
//!   has the same host name (127.0.0.1) in a browser, so the session cookie set at one input node
//!   is sent to all of them, as SPEC §5 promises.
//! - `<lab>-link-<a>-<b>`: one per topology link, holding just nodes `a` and `b`.
//!
//! Docker does not forward between networks, so two nodes share a network exactly when they are
//! topology neighbours: data and control traffic can only cross topology links. Inside a lab every
//! daemon names the others by container name; Docker's DNS answers a name only on a network the
//! asker shares with it, with the address on that network, so `<lab>-2` seen from node 1 is node
//! 2's end of the link `1-2`, and is not found at all from a node that is not its neighbour.
//!
//! Every network gets an explicit /28 subnet from one /19 block per lab, because Docker's default
//! address pools hold only about thirty networks and a lab needs one per node and one per link.
//!
//! That is [`Links::Networks`], the wiring a compose file can say and any Docker user can run.
//! The engine creates and removes networks one at a time, ~0.15 s each (and each endpoint on them
//! costs a container ~0.07 s more to stop), so a lab of 30 nodes and 60 links took ~28 s to take
//! down. When labctl runs as root beside a local engine it wires a lab as containerlab does,
//! [`Links::Veth`]:
//!
//! - `<lab>-mgmt`, the one Docker network, holds every container, with inter-container traffic
//!   off (`enable_icc=false`): the host reaches each container (admin APIs, published ports), but
//!   no container reaches another through it.
//! - Every topology link is a veth pair between the two nodes' network namespaces, an interface
//!   `to<peer>` at each end with the two addresses of a /30.
//! - Every node has a veth pair `uplink` to the bootstrap's namespace, which the nameserver
//!   shares (the hub: one interface `n<id>` per node, forwarding off, so no node reaches another
//!   through it).
//! - Names resolve from each node's `/etc/hosts` (the image's `nsswitch.conf` reads it first):
//!   the services at the hub's end of the node's uplink, each neighbour at its end of the link.
//!   A non-neighbour's name is the engine's answer on `<lab>-mgmt`, where nothing reaches it.
//!
//! The veths live and die with the containers' namespaces: taking a lab down is removing its
//! containers and one network.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use labctl_topology::Topology;

use crate::runtime::launch::{BootstrapLaunch, Files, NameserverLaunch, NodeLaunch, NodePorts};
use crate::runtime::NodeSettings;

/// The label every container and network of a lab carries: `labctl.lab=<lab>`.
pub const LAB_LABEL: &str = "labctl.lab";
/// What a container is: `bootstrap`, `nameserver` or `node`.
pub const ROLE_LABEL: &str = "labctl.role";
/// A node container's id.
pub const NODE_LABEL: &str = "labctl.node";
/// What a network is: `mgmt`, `uplink` or `link`.
pub const NETWORK_LABEL: &str = "labctl.network";
/// Whose lab it is: the owner id in the lab's record (`labctl.owner=<16 hex>`), or `compose` for a
/// lab started from an exported compose file. labctl removes only objects of its own owner id.
pub const OWNER_LABEL: &str = "labctl.owner";
/// The lab's folder on the host (labctl's Docker runtime only), so that a lab whose folder was
/// deleted is still found, and a refusal can say which home holds a name.
pub const FOLDER_LABEL: &str = "labctl.folder";
/// The [`OWNER_LABEL`] of a lab started from an exported compose file (`docker compose up`,
/// `docker stack deploy`): labctl shows it and leaves it alone.
pub const COMPOSE_OWNER: &str = "compose";

/// A node's session key in a compose file: `$LABCTL_SESSION_SECRET`, which Compose refuses to run
/// without. The message has no `-`, `$`, `{` or `}`: `docker stack deploy` reads the text after
/// a `-` anywhere in it as a default value (so `$(openssl rand -hex 32)` in the message made every
/// node's key `hex 32)`, though the variable was set).
pub const COMPOSE_SESSION_SECRET: &str = "${LABCTL_SESSION_SECRET:?set LABCTL_SESSION_SECRET to \
     a random secret (16 characters or more, the same for every command on this file): the \
     comment at the top of this file shows how}";

/// A compose file's nameserver HTTP port on the host (`$LABCTL_HTTP_PORT`, else `labctl export
/// --http-port`, else this); node k's chat (in id order) is published at this + k.
pub const COMPOSE_HTTP_PORT: u16 = 8080;

/// The bootstrap's gRPC port inside its container.
pub const BOOTSTRAP_PORT: u16 = 7000;
/// The nameserver's gRPC port inside its container.
pub const NAMESERVER_GRPC_PORT: u16 = 7001;
/// The nameserver's HTTP port inside its container (published on the host).
pub const NAMESERVER_HTTP_PORT: u16 = 8080;
/// A node's ZeroMQ control port.
pub const NODE_CONTROL_PORT: u16 = 7100;
/// A node's admin gRPC port.
pub const NODE_ADMIN_PORT: u16 = 7101;
/// A node's chat HTTP port, while it is an input node.
pub const NODE_HTTP_PORT: u16 = 8080;

/// Inside every container: the lab's logs, ready files, and the daemon's own state.
pub const LOGS_DIR: &str = "/lab/logs";
/// Ready files, which labctl waits for.
pub const RUN_DIR: &str = "/lab/run";
/// The daemon's own state (the bootstrap's topology, a node's database).
pub const STATE_DIR: &str = "/lab/state";
/// The lab-wide session key.
pub const SECRET_FILE: &str = "/lab/session.key";

/// The address block labs take their /19 from, unless `LABCTL_DOCKER_POOL` says otherwise.
pub const DEFAULT_POOL: &str = "10.210.0.0/16";
/// Prefix length of one lab's block.
pub const BLOCK_PREFIX: u8 = 19;
/// Prefix length of one network: the gateway, up to three containers, and room to spare (a
/// Swarm's overlay network spends more addresses than a bridge).
pub const NETWORK_PREFIX: u8 = 28;
/// [`Links::Veth`]: prefix length of the management network, the first part of the lab's block
/// (every container is on it).
pub const VETH_MGMT_PREFIX: u8 = 21;
/// [`Links::Veth`]: prefix length of one veth pair's subnet (its two ends), taken from the block
/// after the management network.
pub const VETH_PREFIX: u8 = 30;
/// [`Links::Veth`]: a node's interface to the hub.
pub const UPLINK_INTERFACE: &str = "uplink";
/// The Docker network option that keeps containers on a bridge from reaching each other.
pub const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";

/// How a Docker lab's topology links are made (see the module's documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Links {
    /// One Docker network per node's uplink and per link: what compose files and Swarm run, and
    /// what labctl runs when it cannot make veth pairs (not root, or a remote engine).
    #[default]
    Networks,
    /// Veth pairs between the containers' namespaces, made by labctl; one Docker network per lab.
    Veth,
}

impl std::fmt::Display for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Links::Networks => "networks",
            Links::Veth => "veth",
        })
    }
}

/// An IPv4 network, `address/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The first address, as a number.
    pub base: u32,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parse `a.b.c.d/p`; the address is masked to the prefix.
    pub fn parse(text: &str) -> Result<Cidr> {
        let Some((address, prefix)) = text.trim().split_once('/') else {
            bail!("{text:?} is not a network: write it as address/prefix, e.g. {DEFAULT_POOL}");
        };
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| anyhow::anyhow!("{text:?}: {address:?} is not an IPv4 address"))?;
        let prefix: u8 = match prefix.parse() {
            Ok(p) if p <= 32 => p,
            _ => bail!("{text:?}: the prefix length must be 0-32"),
        };
        Ok(Cidr {
            base: u32::from(address) & mask(prefix),
            prefix,
        })
    }

    /// The `k`-th address of the network.
    pub fn host(&self, k: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(k))
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let prefix = self.prefix.min(other.prefix);
        self.base & mask(prefix) == other.base & mask(prefix)
    }

    /// The `k`-th sub-network of length `prefix` (None past the end).
    pub fn subnet(&self, prefix: u8, k: u32) -> Option<Cidr> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let count = 1u64 << (prefix - self.prefix);
        if u64::from(k) >= count {
            return None;
        }
        Some(Cidr {
            base: self.base + (k << (32 - prefix)),
            prefix,
        })
    }

    /// How many sub-networks of length `prefix` it holds.
    pub fn subnets(&self, prefix: u8) -> u64 {
        if prefix < self.prefix {
            0
        } else {
            1u64 << (prefix - self.prefix)
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

/// What a network is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkKind {
    /// labctl's network to the bootstrap and the nameserver.
    Management,
    /// One node's way to the bootstrap and the nameserver.
    Uplink(u64),
    /// A topology link.
    Link(u64, u64),
}

impl NetworkKind {
    /// The value of [`NETWORK_LABEL`].
    pub fn label(&self) -> &'static str {
        match self {
            NetworkKind::Management => "mgmt",
            NetworkKind::Uplink(_) => "uplink",
            NetworkKind::Link(..) => "link",
        }
    }
}

/// One network to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPlan {
    /// `<lab>-mgmt`, `<lab>-uplink-<id>` or `<lab>-link-<a>-<b>`.
    pub name: String,
    /// Its short name inside a compose file: `mgmt`, `uplink-<id>`, `link-<a>-<b>`.
    pub key: String,
    /// What it is for.
    pub kind: NetworkKind,
    /// Its subnet.
    pub subnet: Cidr,
    /// Its gateway (the host's address on it): the subnet's first address.
    pub gateway: Ipv4Addr,
    /// No route out of it (every network but the management one, which publishes a port).
    pub internal: bool,
    /// Containers on it cannot reach each other (only the host reaches them): [`ICC_OPTION`].
    pub isolated: bool,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// What a container runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContainerRole {
    /// The bootstrap server.
    Bootstrap,
    /// The nameserver.
    Nameserver,
    /// A node.
    Node(u64),
}

impl ContainerRole {
    /// The daemon's label in logs and ready files: `bootstrap`, `nameserver`, `node-<id>`.
    pub fn label(&self) -> String {
        match self {
            ContainerRole::Bootstrap => "bootstrap".into(),
            ContainerRole::Nameserver => "nameserver".into(),
            ContainerRole::Node(id) => format!("node-{id}"),
        }
    }
}

/// A folder of the lab's state mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPlan {
    /// The path under the lab's folder (`logs`, `run`, `nodes/3`, `session.key` …).
    pub lab_path: String,
    /// The path inside the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// One container to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPlan {
    /// `<lab>-bootstrap`, `<lab>-nameserver`, `<lab>-<id>`; also its host name in the lab.
    pub name: String,
    /// What it runs.
    pub role: ContainerRole,
    /// The networks it is on (names); the first is the one it is created on. Empty when it
    /// shares another container's namespace ([`ContainerPlan::network_of`]).
    pub networks: Vec<String>,
    /// The container whose network namespace it shares, if any (the nameserver sits in the
    /// bootstrap's in [`Links::Veth`]).
    pub network_of: Option<String>,
    /// Names its `/etc/hosts` gives (in [`Links::Veth`]: the services, the neighbours).
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// Kernel settings of its network namespace (`net.ipv4.ip_forward=0` at the hub).
    pub sysctls: Vec<(String, String)>,
    /// The arguments after the image's entry point (`labctl`): `daemon …`.
    pub command: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// What of the lab's folder it sees.
    pub mounts: Vec<MountPlan>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// A port published on the host's loopback.
    pub publish: Option<Publish>,
}

/// A container port published on the host's 127.0.0.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publish {
    /// The port inside the container.
    pub container_port: u16,
    /// The port on the host; 0: the engine picks one.
    pub host_port: u16,
}

/// What a veth pair is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VethKind {
    /// A node's way to the hub (the bootstrap and the nameserver).
    Uplink(u64),
    /// A topology link `a < b`.
    Link(u64, u64),
}

/// One end of a veth pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethEnd {
    /// The container it sits in.
    pub container: String,
    /// The interface's name there.
    pub interface: String,
    /// Its address (in the pair's subnet).
    pub address: Ipv4Addr,
}

/// A veth pair: two interfaces in two containers, a cable between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethPlan {
    /// What it is for.
    pub kind: VethKind,
    /// Its /30.
    pub subnet: Cidr,
    /// An uplink: the node's end, then the hub's. A link `a`–`b`: `a`'s end, then `b`'s.
    pub ends: [VethEnd; 2],
}

impl VethPlan {
    /// Whether node `id` is at one end.
    pub fn touches(&self, id: u64) -> bool {
        match self.kind {
            VethKind::Uplink(node) => node == id,
            VethKind::Link(a, b) => a == id || b == id,
        }
    }
}

/// A whole lab in Docker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The lab's name.
    pub lab: String,
    /// The /19 its networks come from.
    pub block: Cidr,
    /// How its links are made.
    pub links: Links,
    /// Management network first, then (with [`Links::Networks`]) the uplinks by node id, then
    /// the links.
    pub networks: Vec<NetworkPlan>,
    /// Bootstrap, nameserver, then the nodes by id.
    pub containers: Vec<ContainerPlan>,
    /// With [`Links::Veth`]: the links, then the uplinks by node id.
    pub veths: Vec<VethPlan>,
}

/// Which runner the plan is for; they differ only in where logs and state go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// labctl's Docker runtime: logs, ready files and state in the lab's folder (bind mounts).
    Runtime,
    /// A compose file: logs to the container's output (`docker compose logs`), state on named
    /// volumes, the session key from `$LABCTL_SESSION_SECRET`, the topology on the bootstrap's
    /// command line.
    Compose,
}

impl Plan {
    /// The plan of `topology` as lab `lab`, its networks taken from `block` (a /19), its links
    /// made as `wiring` says (a compose file has only [`Links::Networks`]).
    pub fn new(
        lab: &str,
        topology: &Topology,
        settings: &NodeSettings,
        block: Cidr,
        flavor: Flavor,
        wiring: Links,
        http_ports: &BTreeMap<u64, u16>,
    ) -> Result<Plan> {
        let ids = topology.ids();
        let links = topology.links();
        if wiring == Links::Veth && flavor == Flavor::Compose {
            bail!("a compose file can link nodes only by Docker networks");
        }
        let veths = match wiring {
            Links::Veth => veths(lab, topology, block)?,
            Links::Networks => {
                check_network_room(flavor, block, ids.len(), links.len())?;
                Vec::new()
            }
        };
        let labels = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
            let mut all = BTreeMap::from([(LAB_LABEL.to_string(), lab.to_string())]);
            if flavor == Flavor::Compose {
                all.insert(OWNER_LABEL.into(), COMPOSE_OWNER.into());
            }
            all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
            all
        };
        let mut networks = Vec::new();
        let mut network = |key: String, kind: NetworkKind, internal: bool| {
            let subnet = match (wiring, &kind) {
                (Links::Veth, _) => block.subnet(VETH_MGMT_PREFIX, 0),
                _ => block.subnet(NETWORK_PREFIX, networks.len() as u32),
            }
            .expect("room was checked");
            let mut own = labels(&[(NETWORK_LABEL, kind.label().to_string())]);
            if let NetworkKind::Uplink(id) = kind {
                own.insert(NODE_LABEL.into(), id.to_string());
            }
            networks.push(NetworkPlan {
                name: format!("{lab}-{key}"),
                key,
                isolated: wiring == Links::Veth && kind == NetworkKind::Management,
                kind,
                subnet,
                gateway: subnet.host(1),
                internal,
                labels: own,
            });
            networks.last().expect("just pushed").name.clone()
        };
        let mgmt = network("mgmt".into(), NetworkKind::Management, false);
        let mut node_networks: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        let mut services_networks = vec![mgmt.clone()];
        match wiring {
            Links::Veth => {
                for &id in &ids {
                    node_networks.insert(id, vec![mgmt.clone()]);
                }
            }
            Links::Networks => {
                for &id in &ids {
                    let uplink = network(format!("uplink-{id}"), NetworkKind::Uplink(id), false);
                    services_networks.push(uplink.clone());
                    node_networks.insert(id, vec![uplink]);
                }
                for &(a, b) in &links {
                    let name = network(format!("link-{a}-{b}"), NetworkKind::Link(a, b), true);
                    for end in [a, b] {
                        node_networks
                            .get_mut(&end)
                            .expect("links join listed nodes")
                            .push(name.clone());
                    }
                }
            }
        }

        let bootstrap_name = format!("{lab}-bootstrap");
        let nameserver_name = format!("{lab}-nameserver");
        let common = |role: ContainerRole| -> (Option<Files>, Vec<MountPlan>) {
            let label = role.label();
            match flavor {
                Flavor::Runtime => (
                    Some(Files {
                        ready: format!("{RUN_DIR}/{label}.json"),
                        log: format!("{LOGS_DIR}/{label}.log"),
                    }),
                    vec![
                        MountPlan {
                            lab_path: "logs".into(),
                            target: LOGS_DIR.into(),
                            read_only: false,
                        },
                        MountPlan {
                            lab_path: "run".into(),
                            target: RUN_DIR.into(),
                            read_only: false,
                        },
                    ],
                ),
                Flavor::Compose => (None, Vec::new()),
            }
        };
        let state_mount = |lab_path: String| MountPlan {
            lab_path,
            target: STATE_DIR.into(),
            read_only: false,
        };
        // The nameserver's HTTP port, published from the namespace it runs in.
        let nameserver_publish = Publish {
            container_port: NAMESERVER_HTTP_PORT,
            host_port: 0,
        };

        let mut containers = Vec::with_capacity(ids.len() + 2);
        {
            let role = ContainerRole::Bootstrap;
            let (files, mut mounts) = common(role);
            let launch = BootstrapLaunch {
                listen: format!("0.0.0.0:{BOOTSTRAP_PORT}"),
                state_dir: STATE_DIR.into(),
                // No labctl there to hand the topology over: it rides on the command line.
                topology_toml: (flavor == Flavor::Compose).then(|| topology_toml(lab, topology)),
                files,
            };
            let command = daemon(launch.args());
            mounts.push(state_mount("bootstrap".into()));
            let hub = wiring == Links::Veth;
            containers.push(ContainerPlan {
                name: bootstrap_name.clone(),
                role,
                networks: services_networks.clone(),
                network_of: None,
                hosts: Vec::new(),
                // The hub must not carry one node's packets to another.
                sysctls: if hub {
                    vec![("net.ipv4.ip_forward".into(), "0".into())]
                } else {
                    Vec::new()
                },
                command,
                env: Vec::new(),
                mounts,
                labels: labels(&[(ROLE_LABEL, "bootstrap".into())]),
                publish: hub.then_some(nameserver_publish),
            });
        }
        {
            let role = ContainerRole::Nameserver;
            let (files, mounts) = common(role);
            let launch = NameserverLaunch {
                grpc: format!("0.0.0.0:{NAMESERVER_GRPC_PORT}"),
                http: format!("0.0.0.0:{NAMESERVER_HTTP_PORT}"),
                files,
            };
            let command = daemon(launch.args());
            let shared = wiring == Links::Veth;
            containers.push(ContainerPlan {
                name: nameserver_name.clone(),
                role,
                networks: if shared {
                    Vec::new()
                } else {
                    services_networks
                },
                network_of: shared.then(|| bootstrap_name.clone()),
                hosts: Vec::new(),
                sysctls: Vec::new(),
                command,
                env: Vec::new(),
                mounts,
                labels: labels(&[(ROLE_LABEL, "nameserver".into())]),
                publish: (!shared).then_some(nameserver_publish),
            });
        }
        for &id in &ids {
            let role = ContainerRole::Node(id);
            let name = format!("{lab}-{id}");
            let (files, mut mounts) = common(role);
            let mut launch = NodeLaunch {
                id,
                lab: lab.to_string(),
                bootstrap: format!("{bootstrap_name}:{BOOTSTRAP_PORT}"),
                nameserver: format!("{nameserver_name}:{NAMESERVER_GRPC_PORT}"),
                listen: Some("0.0.0.0".into()),
                // Neighbours reach this node by name: on a link, Docker's DNS (or their
                // /etc/hosts) gives them this node's address on that link.
                advertise: Some(name.clone()),
                // Browsers and the nameserver reach the chat at the address facing the
                // nameserver (the uplink), which the host can route to.
                advertise_http: Some("auto".into()),
                public_http: None,
                ports: Some(NodePorts {
                    control: NODE_CONTROL_PORT,
                    admin: NODE_ADMIN_PORT,
                    http: Some(NODE_HTTP_PORT),
                }),
                timing: settings.timing,
                durability: settings.durability,
                data_dir: STATE_DIR.into(),
                session_secret_file: None,
                await_interface: None,
                files,
            };
            let mut hosts = Vec::new();
            if wiring == Links::Veth {
                // labctl wires the namespace after the container starts: the daemon waits for
                // its uplink, which comes up last.
                launch.await_interface = Some(UPLINK_INTERFACE.into());
                for veth in veths.iter().filter(|v| v.touches(id)) {
                    match veth.kind {
                        VethKind::Uplink(_) => {
                            let hub = veth.ends[1].address;
                            hosts.push((bootstrap_name.clone(), hub));
                            hosts.push((nameserver_name.clone(), hub));
                        }
                        VethKind::Link(a, _) => {
                            let far = if a == id {
                                &veth.ends[1]
                            } else {
                                &veth.ends[0]
                            };
                            hosts.push((far.container.clone(), far.address));
                        }
                    }
                }
            }
            let mut env = vec![("SQLITE_TMPDIR".to_string(), STATE_DIR.to_string())];
            match flavor {
                Flavor::Runtime => {
                    launch.session_secret_file = Some(SECRET_FILE.into());
                    mounts.push(MountPlan {
                        lab_path: "session.key".into(),
                        target: SECRET_FILE.into(),
                        read_only: true,
                    });
                }
                Flavor::Compose => {
                    env.push((
                        "LABCTL_SESSION_SECRET".into(),
                        COMPOSE_SESSION_SECRET.into(),
                    ));
                }
            }
            // Browsers reach the chat at the port published on the host's loopback.
            let publish = http_ports.get(&id).map(|&host_port| {
                launch.public_http = Some(format!("127.0.0.1:{host_port}"));
                Publish {
                    container_port: NODE_HTTP_PORT,
                    host_port,
                }
            });
            let command = daemon(launch.args());
            mounts.push(state_mount(format!("nodes/{id}")));
            containers.push(ContainerPlan {
                name,
                role,
                networks: node_networks.remove(&id).expect("every node has a network"),
                network_of: None,
                hosts,
                sysctls: Vec::new(),
                command,
                env,
                mounts,
                labels: labels(&[(ROLE_LABEL, "node".into()), (NODE_LABEL, id.to_string())]),
                publish,
            });
        }
        Ok(Plan {
            lab: lab.to_string(),
            block,
            links: wiring,
            networks,
            containers,
            veths,
        })
    }

    /// The network called `name`.
    pub fn network(&self, name: &str) -> Option<&NetworkPlan> {
        self.networks.iter().find(|n| n.name == name)
    }

    /// The container running `role`.
    pub fn container(&self, role: ContainerRole) -> Option<&ContainerPlan> {
        self.containers.iter().find(|c| c.role == role)
    }

    /// The management network.
    pub fn management(&self) -> &NetworkPlan {
        &self.networks[0]
    }

    /// Node `id`'s uplink network.
    pub fn uplink(&self, id: u64) -> Option<&NetworkPlan> {
        self.networks
            .iter()
            .find(|n| n.kind == NetworkKind::Uplink(id))
    }
}

/// `daemon` and a daemon's arguments: a container's command after the image's entry point.
fn daemon(args: Vec<String>) -> Vec<String> {
    std::iter::once("daemon".to_string()).chain(args).collect()
}

/// [`Links::Networks`]: refuse a topology whose networks do not fit in the block.
fn check_network_room(flavor: Flavor, block: Cidr, nodes: usize, links: usize) -> Result<()> {
    let needed = 1 + nodes + links;
    let room = block.subnets(NETWORK_PREFIX);
    if needed as u64 <= room {
        return Ok(());
    }
    match flavor {
        Flavor::Runtime => bail!(
            "the Docker runtime gives every node and every link a /{NETWORK_PREFIX} network: \
             this topology needs {needed}, but a lab's /{} block holds {room}; run it with \
             --runtime process",
            block.prefix
        ),
        Flavor::Compose => bail!(
            "a compose file gives every node and every link a /{NETWORK_PREFIX} network: this \
             topology needs {needed} ({nodes} nodes, {links} links and the management network), \
             but a lab's /{} block holds {room}; run it without Docker, with `labctl up \
             --runtime process`",
            block.prefix
        ),
    }
}

/// [`Links::Veth`]: the lab's veth pairs, links first (by their ends), then the uplinks (by
/// node id). Each takes the next /30 of the block after the management network; a node's end of
/// a link is `to<peer>`, the hub's end of an uplink `n<id>` (or, where that would pass the
/// kernel's 15 characters, `l<k>` and `u<k>` by position).
pub fn veths(lab: &str, topology: &Topology, block: Cidr) -> Result<Vec<VethPlan>> {
    let ids = topology.ids();
    let links = topology.links();
    let mgmt = block
        .subnet(VETH_MGMT_PREFIX, 0)
        .context("the lab's block is smaller than its management network")?;
    let hosts = mgmt.subnets(32).saturating_sub(3); // network, gateway, broadcast
    if ids.len() as u64 + 1 > hosts {
        bail!(
            "the Docker runtime puts every container on the lab's {mgmt} network, which holds \
             {hosts}; this topology has {} nodes: run it with --runtime process",
            ids.len()
        );
    }
    let first = u64::from(mgmt.base) + mgmt.subnets(32);
    let end = u64::from(block.base) + block.subnets(32);
    let room = (end - first) >> (32 - VETH_PREFIX);
    let needed = (links.len() + ids.len()) as u64;
    if needed > room {
        bail!(
            "the Docker runtime gives every link and every node's uplink a /{VETH_PREFIX}: this \
             topology needs {needed}, but a lab's /{} block holds {room}; run it with --runtime \
             process",
            block.prefix
        );
    }
    let subnet = |k: usize| Cidr {
        base: (first as u32) + ((k as u32) << (32 - VETH_PREFIX)),
        prefix: VETH_PREFIX,
    };
    let name = |text: String, short: String| if text.len() <= 15 { text } else { short };
    let container = |id: u64| format!("{lab}-{id}");
    let mut position: BTreeMap<u64, usize> = BTreeMap::new();
    let mut pairs = Vec::with_capacity(links.len() + ids.len());
    for &(a, b) in &links {
        let net = subnet(pairs.len());
        let mut end = |me: u64, peer: u64, k: u32| {
            let n = position.entry(me).or_default();
            *n += 1;
            VethEnd {
                container: container(me),
                interface: name(format!("to{peer}"), format!("l{n}")),
                address: net.host(k),
            }
        };
        let ends = [end(a, b, 1), end(b, a, 2)];
        pairs.push(VethPlan {
            kind: VethKind::Link(a, b),
            subnet: net,
            ends,
        });
    }
    for (k, &id) in ids.iter().enumerate() {
        let net = subnet(pairs.len());
        pairs.push(VethPlan {
            kind: VethKind::Uplink(id),
            subnet: net,
            ends: [
                VethEnd {
                    container: container(id),
                    interface: UPLINK_INTERFACE.into(),
                    address: net.host(2),
                },
                VethEnd {
                    container: format!("{lab}-bootstrap"),
                    interface: name(format!("n{id}"), format!("u{k}")),
                    address: net.host(1),
                },
            ],
        });
    }
    Ok(pairs)
}

/// The topology as the bootstrap's `--topology-toml` takes it: the file format of SPEC §2 with
/// the links written out, under the lab's name.
pub fn topology_toml(lab: &str, topology: &Topology) -> String {
    let nodes: Vec<String> = topology.ids().iter().map(u64::to_string).collect();
    let links: Vec<String> = topology
        .links()
        .iter()
        .map(|(a, b)| format!("[{a}, {b}]"))
        .collect();
    format!(
        "name = \"{lab}\"\nnodes = [{}]\nlinks = [{}]\n",
        nodes.join(", "),
        links.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NodeSettings {
        NodeSettings {
            timing: labctl_topology::Timing::default(),
            durability: labctl_core::plane::Durability::Majority,
        }
    }

    fn ring(n: u64) -> Topology {
        let nodes: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        let links: Vec<String> = (1..=n).map(|i| format!("[{i}, {}]", i % n + 1)).collect();
        let text = format!(
            "name = \"ring\"\nnodes = [{}]\nlinks = [{}]\n",
            nodes.join(", "),
            links.join(", ")
        );
        Topology::from_toml(&text, "test").expect("a valid ring")
    }

    /// The plan of `topology` as lab `lab`, no chat ports published.
    fn plan_of(
        lab: &str,
        topology: &Topology,
        block: Cidr,
        flavor: Flavor,
        wiring: Links,
    ) -> Result<Plan> {
        Plan::new(
            lab,
            topology,
            &settings(),
            block,
            flavor,
            wiring,
            &BTreeMap::new(),
        )
    }

    fn veth(plan: &Plan, kind: VethKind) -> Option<&VethPlan> {
        plan.veths.iter().find(|v| v.kind == kind)
    }

    #[test]
    fn cidr_parses_masks_and_splits() {
        let pool = Cidr::parse("10.210.3.7/16").unwrap();
        assert_eq!(pool.to_string(), "10.210.0.0/16");
        assert_eq!(pool.subnets(20), 16);
        assert_eq!(pool.subnet(20, 1).unwrap().to_string(), "10.210.16.0/20");
        assert_eq!(pool.subnet(20, 16), None);
        let block = pool.subnet(20, 0).unwrap();
        assert!(block.overlaps(&pool));
        assert!(!block.overlaps(&pool.subnet(20, 1).unwrap()));
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten/8").is_err());
    }

    /// Two nodes share a network exactly when they are neighbours, and every network has its own
    /// subnet inside the lab's block.
    #[test]
    fn nodes_share_networks_only_with_their_neighbours() {
        let topology = ring(6);
        let block = Cidr::parse("10.210.0.0/19").unwrap();
        let plan = plan_of("ring6", &topology, block, Flavor::Runtime, Links::Networks).unwrap();
        assert_eq!(plan.networks.len(), 1 + 6 + 6);
        let subnets: std::collections::BTreeSet<_> =
            plan.networks.iter().map(|n| n.subnet).collect();
        assert_eq!(subnets.len(), plan.networks.len());
        assert!(plan.networks.iter().all(|n| n.subnet.overlaps(&block)));
        let node_nets = |id: u64| -> std::collections::BTreeSet<String> {
            plan.container(ContainerRole::Node(id))
                .unwrap()
                .networks
                .iter()
                .cloned()
                .collect()
        };
        let neighbours: std::collections::BTreeSet<(u64, u64)> =
            topology.links().into_iter().collect();
        for a in 1..=6u64 {
            for b in 1..=6u64 {
                if a == b {
                    continue;
                }
                let shared = node_nets(a).intersection(&node_nets(b)).count();
                let linked = neighbours.contains(&(a.min(b), a.max(b)));
                assert_eq!(shared, usize::from(linked), "nodes {a} and {b}");
            }
        }
        let bootstrap = plan.container(ContainerRole::Bootstrap).unwrap();
        assert_eq!(bootstrap.networks.len(), 1 + 6);
        assert!(plan
            .containers
            .iter()
            .all(|c| c.labels[LAB_LABEL] == "ring6"));
    }

    /// With veth pairs: one network (isolated), each link a pair between exactly its two nodes
    /// with the two addresses of one /30, each node an uplink to the hub, and a node's
    /// `/etc/hosts` names the services at the hub's end and its neighbours at theirs, and no one
    /// else.
    #[test]
    fn veth_plans_wire_exactly_the_topology() {
        let topology = ring(6);
        let block = Cidr::parse("10.210.32.0/19").unwrap();
        let plan = plan_of("ring6", &topology, block, Flavor::Runtime, Links::Veth).unwrap();
        assert_eq!(plan.networks.len(), 1);
        assert!(plan.networks[0].isolated && !plan.networks[0].internal);
        assert_eq!(plan.veths.len(), 6 + 6);
        let subnets: std::collections::BTreeSet<_> = plan.veths.iter().map(|v| v.subnet).collect();
        assert_eq!(subnets.len(), 12);
        for veth in &plan.veths {
            assert!(veth.subnet.overlaps(&block));
            assert!(!veth.subnet.overlaps(&plan.networks[0].subnet));
            for end in &veth.ends {
                assert_eq!(
                    Cidr {
                        base: u32::from(end.address),
                        prefix: VETH_PREFIX
                    }
                    .base
                        & !3,
                    veth.subnet.base
                );
                assert!(end.interface.len() <= 15);
            }
            assert_ne!(veth.ends[0].address, veth.ends[1].address);
        }
        let link = veth(&plan, VethKind::Link(1, 2)).unwrap();
        assert_eq!(link.ends[0].container, "ring6-1");
        assert_eq!(link.ends[0].interface, "to2");
        assert_eq!(link.ends[1].interface, "to1");
        let node1 = plan.container(ContainerRole::Node(1)).unwrap();
        let named: std::collections::BTreeMap<&str, Ipv4Addr> =
            node1.hosts.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        assert_eq!(named.len(), 4, "{named:?}");
        assert_eq!(named["ring6-2"], link.ends[1].address);
        assert_eq!(
            named["ring6-6"],
            veth(&plan, VethKind::Link(1, 6)).unwrap().ends[1].address
        );
        let uplink = veth(&plan, VethKind::Uplink(1)).unwrap();
        assert_eq!(named["ring6-bootstrap"], uplink.ends[1].address);
        assert_eq!(named["ring6-nameserver"], uplink.ends[1].address);
        assert_eq!(uplink.ends[0].interface, UPLINK_INTERFACE);
        assert_eq!(uplink.ends[1].container, "ring6-bootstrap");
        assert!(node1
            .command
            .windows(2)
            .any(|w| w == ["--await-interface", UPLINK_INTERFACE]));
        // The nameserver lives in the hub's namespace, whose port is published.
        let nameserver = plan.container(ContainerRole::Nameserver).unwrap();
        assert_eq!(nameserver.network_of.as_deref(), Some("ring6-bootstrap"));
        assert!(nameserver.networks.is_empty() && nameserver.publish.is_none());
        let bootstrap = plan.container(ContainerRole::Bootstrap).unwrap();
        assert_eq!(
            bootstrap.publish.map(|p| p.container_port),
            Some(NAMESERVER_HTTP_PORT)
        );
        assert!(bootstrap
            .sysctls
            .contains(&("net.ipv4.ip_forward".into(), "0".into())));
        // A compose file cannot say veth pairs.
        assert!(plan_of("ring6", &topology, block, Flavor::Compose, Links::Veth).is_err());
    }

    #[test]
    fn a_topology_too_big_for_the_block_is_refused_with_advice() {
        let topology = ring(300);
        let block = Cidr::parse("10.210.0.0/19").unwrap();
        let err = plan_of("big", &topology, block, Flavor::Runtime, Links::Networks).unwrap_err();
        assert!(err.to_string().contains("--runtime process"), "{err}");
        // Veth pairs take a /30 each: 1,536 fit in a /19 beside the management network.
        let topology = ring(1000);
        let err = plan_of("big", &topology, block, Flavor::Runtime, Links::Veth).unwrap_err();
        assert!(err.to_string().contains("--runtime process"), "{err}");
        let fits = ring(700);
        let plan = plan_of("big", &fits, block, Flavor::Runtime, Links::Veth).unwrap();
        assert_eq!(plan.veths.len(), 1400);
    }

    /// `docker stack deploy` reads the text after a `-` in a `${VAR:?message}` as a default
    /// value, even when VAR is set; `$`, `{` and `}` would end or nest the template.
    #[test]
    fn the_compose_session_key_message_is_read_alike_by_compose_and_stack_deploy() {
        let message = COMPOSE_SESSION_SECRET
            .strip_prefix("${LABCTL_SESSION_SECRET:?")
            .and_then(|rest| rest.strip_suffix('}'))
            .expect("a required-variable template");
        for c in ['-', '$', '{', '}'] {
            assert!(!message.contains(c), "{c:?} in {message:?}");
        }
        assert!(message.starts_with("set LABCTL_SESSION_SECRET"));
    }

    /// A compose lab's containers and networks are labelled as owned by `compose`; the
    /// runtime's own labs never are.
    #[test]
    fn compose_plans_are_owned_by_compose() {
        let topology = ring(4);
        let block = Cidr::parse("10.210.0.0/19").unwrap();
        let plan = |flavor| plan_of("ring4", &topology, block, flavor, Links::Networks).unwrap();
        let owners = |plan: &Plan| -> Vec<Option<String>> {
            plan.containers
                .iter()
                .map(|c| &c.labels)
                .chain(plan.networks.iter().map(|n| &n.labels))
                .map(|labels| labels.get(OWNER_LABEL).cloned())
                .collect()
        };
        let compose = plan(Flavor::Compose);
        assert_eq!(
            owners(&compose),
            vec![Some(COMPOSE_OWNER.to_string()); 6 + 9]
        );
        let runtime = plan(Flavor::Runtime);
        assert!(owners(&runtime)
            .iter()
            .all(|owner| owner.as_deref() != Some(COMPOSE_OWNER)));
    }

    #[test]
    fn topology_toml_reads_back_as_the_same_topology() {
        let topology = ring(5);
        let text = topology_toml("again", &topology);
        let back = Topology::from_toml(&text, "test").unwrap();
        assert_eq!(back.name, "again");
        assert_eq!(back.ids(), topology.ids());
        assert_eq!(back.links(), topology.links());
    }
}
