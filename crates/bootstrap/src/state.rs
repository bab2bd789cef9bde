//! The bootstrap's state and its rules, as plain data: no I/O, no clock, no locking.
//!
//! The [driver](crate::driver) owns one [`State`], applies each request to a copy, saves the copy
//! and only then makes it current, so what the daemon answers is always what is on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use labctl_proto::bootstrap as proto;
use serde::{Deserialize, Serialize};

/// How many entries [`format_ids`] writes before it summarises the rest.
const IDS_SHOWN: usize = 8;

/// Why a request was refused; each maps to one gRPC status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A value in the request is malformed (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// The request names a node the bootstrap does not know (NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// Another node already holds this id (ALREADY_EXISTS).
    #[error("{0}")]
    AlreadyExists(String),
}

/// A validated lab topology: distinct positive ids and undirected links between known nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The lab's name, never empty.
    pub lab: String,
    /// The node ids.
    pub nodes: BTreeSet<u64>,
    /// Each link once, as `(smaller id, larger id)`.
    pub links: BTreeSet<(u64, u64)>,
}

impl Topology {
    /// Checks a topology sent by labctl, naming the first offending value.
    pub fn validate(topology: &proto::Topology) -> Result<Self, Refusal> {
        let lab = topology.lab.trim();
        if lab.is_empty() {
            return Err(Refusal::Invalid(
                "the topology has no lab name; name the lab (e.g. \"ring6\")".into(),
            ));
        }
        if topology.nodes.is_empty() {
            return Err(Refusal::Invalid(format!(
                "lab {lab}'s topology has no nodes; list at least one positive id"
            )));
        }
        let mut nodes = BTreeSet::new();
        for &id in &topology.nodes {
            if id == 0 {
                return Err(Refusal::Invalid(format!(
                    "lab {lab}: node id 0 is invalid; ids are positive integers"
                )));
            }
            if !nodes.insert(id) {
                return Err(Refusal::Invalid(format!(
                    "lab {lab}: node {id} is listed twice; node ids must be distinct"
                )));
            }
        }
        let mut links = BTreeSet::new();
        for link in &topology.links {
            let (a, b) = (link.a, link.b);
            if a == b {
                return Err(Refusal::Invalid(format!(
                    "lab {lab}: link {a}-{b} is a self-loop; a link joins two distinct nodes"
                )));
            }
            if let Some(unknown) = [a, b].into_iter().find(|id| !nodes.contains(id)) {
                return Err(Refusal::Invalid(format!(
                    "lab {lab}: link {a}-{b} names node {unknown}, which is not in the topology \
                     (nodes {})",
                    format_ids(nodes.iter().copied())
                )));
            }
            if !links.insert((a.min(b), a.max(b))) {
                return Err(Refusal::Invalid(format!(
                    "lab {lab}: link {a}-{b} is listed twice (links are undirected: {a}-{b} and \
                     {b}-{a} are the same link)"
                )));
            }
        }
        Ok(Self {
            lab: lab.to_owned(),
            nodes,
            links,
        })
    }

    /// The neighbours of `id`, in increasing order.
    fn neighbors_of(&self, id: u64) -> BTreeSet<u64> {
        self.links
            .iter()
            .filter_map(|&(a, b)| {
                if a == id {
                    Some(b)
                } else if b == id {
                    Some(a)
                } else {
                    None
                }
            })
            .collect()
    }

    /// The back-to-proto form.
    fn to_proto(&self) -> proto::Topology {
        proto::Topology {
            lab: self.lab.clone(),
            nodes: self.nodes.iter().copied().collect(),
            links: self
                .links
                .iter()
                .map(|&(a, b)| proto::Link { a, b })
                .collect(),
        }
    }
}

/// What the bootstrap knows: the topology (or the join order) and who has registered where.
///
/// Two modes:
/// - **topology mode** (`topology` is set, by LoadTopology): neighbours are the topology's links,
///   and only its nodes may register;
/// - **join-order mode** (no topology, as the original system did): any positive id may
///   register, and each id registering for the first time is linked to the id that first
///   registered just before it, so the nodes form a line in join order and node k's neighbours
///   are the ids that joined just before and just after it. The line is kept when a node
///   deregisters, so a node that comes back finds the same neighbours. Loading a topology
///   replaces the line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The loaded topology; `None` in join-order mode.
    pub topology: Option<Topology>,
    /// Join-order mode: every id that has registered, in the order it first did. Empty in
    /// topology mode.
    pub join_order: Vec<u64>,
    /// Registered nodes: id → host:port of the node's control-plane socket.
    pub registered: BTreeMap<u64, String>,
}

/// What [`State::register`] did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// A new registration.
    New,
    /// The same id and address again: nothing changed.
    Again,
    /// `rejoin` replaced the address the id had.
    Replaced {
        /// The address it had before.
        previous: String,
    },
}

impl State {
    /// LoadTopology: validates `topology` and makes it the lab's. Registrations of ids that are
    /// still nodes are kept; the others are dropped and returned.
    pub fn load_topology(&mut self, topology: &proto::Topology) -> Result<Vec<u64>, Refusal> {
        let topology = Topology::validate(topology)?;
        let dropped: Vec<u64> = self
            .registered
            .keys()
            .copied()
            .filter(|id| !topology.nodes.contains(id))
            .collect();
        self.registered.retain(|id, _| topology.nodes.contains(id));
        self.join_order.clear();
        self.topology = Some(topology);
        Ok(dropped)
    }

    /// Register: records `id` at `address` and answers its neighbours.
    ///
    /// A different address for an id already registered is refused unless `rejoin` is set
    /// (a restarted node); the same address again is accepted and changes nothing.
    pub fn register(
        &mut self,
        id: u64,
        address: &str,
        rejoin: bool,
    ) -> Result<(Registered, Vec<proto::Neighbor>), Refusal> {
        if id == 0 {
            return Err(Refusal::Invalid(
                "node id 0 is invalid; ids are positive integers".into(),
            ));
        }
        check_address(address)?;
        if let Some(topology) = &self.topology {
            if !topology.nodes.contains(&id) {
                return Err(not_in_topology(id, topology));
            }
        }
        let outcome = match self.registered.get(&id) {
            Some(current) if current == address => Registered::Again,
            Some(current) if !rejoin => {
                return Err(Refusal::AlreadyExists(format!(
                    "node {id} is already registered at {current}; a second node with the same \
                     id cannot join (pass rejoin after a restart)"
                )));
            }
            Some(current) => Registered::Replaced {
                previous: current.clone(),
            },
            None => Registered::New,
        };
        if self.topology.is_none() && !self.join_order.contains(&id) {
            // Join-order mode: the newcomer goes at the end of the line, next to the id that
            // joined just before it.
            self.join_order.push(id);
        }
        self.registered.insert(id, address.to_owned());
        let neighbors = self.neighbors(id)?;
        Ok((outcome, neighbors))
    }

    /// Deregister: forgets where `id` listens (the topology or join order stays). Returns whether
    /// it was registered.
    pub fn deregister(&mut self, id: u64) -> bool {
        self.registered.remove(&id).is_some()
    }

    /// The neighbours of `id`, sorted by id, each with its address or `""` while it has not
    /// registered.
    pub fn neighbors(&self, id: u64) -> Result<Vec<proto::Neighbor>, Refusal> {
        let ids: BTreeSet<u64> = match &self.topology {
            Some(topology) if topology.nodes.contains(&id) => topology.neighbors_of(id),
            Some(topology) => return Err(not_in_topology(id, topology)),
            None => {
                let Some(position) = self.join_order.iter().position(|&j| j == id) else {
                    return Err(Refusal::NotFound(format!(
                        "node {id} has not registered (no topology is loaded, so nodes are \
                         linked in join order; joined so far: {})",
                        if self.join_order.is_empty() {
                            "none".to_owned()
                        } else {
                            format_ids(self.join_order.iter().copied())
                        }
                    )));
                };
                let before = position.checked_sub(1).map(|p| self.join_order[p]);
                let after = self.join_order.get(position + 1).copied();
                before.into_iter().chain(after).collect()
            }
        };
        Ok(ids
            .into_iter()
            .map(|id| proto::Neighbor {
                id,
                address: self.registered.get(&id).cloned().unwrap_or_default(),
            })
            .collect())
    }

    /// Describe: the whole state. In join-order mode `lab` is empty and `nodes`/`links` are the
    /// line built so far (nodes in join order).
    /// How many nodes the lab has: the topology's, or in join-order mode those that joined.
    pub fn lab_size(&self) -> u64 {
        match &self.topology {
            Some(topology) => topology.nodes.len() as u64,
            None => self.join_order.len() as u64,
        }
    }

    pub fn describe(&self) -> proto::Description {
        let (lab, nodes, links) = match &self.topology {
            Some(topology) => {
                let proto::Topology { lab, nodes, links } = topology.to_proto();
                (lab, nodes, links)
            }
            None => (
                String::new(),
                self.join_order.clone(),
                self.join_order
                    .windows(2)
                    .map(|pair| proto::Link {
                        a: pair[0],
                        b: pair[1],
                    })
                    .collect(),
            ),
        };
        proto::Description {
            lab,
            nodes,
            links,
            registered: self
                .registered
                .iter()
                .map(|(&id, address)| proto::Registration {
                    id,
                    address: address.clone(),
                })
                .collect(),
        }
    }

    /// Checks a state read back from disk, which a person may have edited: the same rules as the
    /// requests that built it.
    pub fn check(&self) -> Result<(), String> {
        if let Some(topology) = &self.topology {
            let revalidated =
                Topology::validate(&topology.to_proto()).map_err(|refusal| refusal.to_string())?;
            if revalidated != *topology {
                return Err(format!(
                    "lab {}: links must be written as [smaller id, larger id]",
                    topology.lab
                ));
            }
            if !self.join_order.is_empty() {
                return Err("a topology is loaded, so join_order must be empty".into());
            }
            if let Some(id) = self
                .registered
                .keys()
                .find(|id| !topology.nodes.contains(id))
            {
                return Err(not_in_topology(*id, topology).to_string());
            }
        } else {
            let mut seen = BTreeSet::new();
            if let Some(id) = self.join_order.iter().find(|&&id| !seen.insert(id)) {
                return Err(format!("join_order lists node {id} twice"));
            }
            if let Some(id) = self.registered.keys().find(|id| !seen.contains(id)) {
                return Err(format!(
                    "node {id} is registered but missing from join_order"
                ));
            }
        }
        for (&id, address) in &self.registered {
            if id == 0 {
                return Err("node id 0 is registered; ids are positive integers".into());
            }
            check_address(address).map_err(|refusal| format!("node {id}: {refusal}"))?;
        }
        Ok(())
    }
}

/// NOT_FOUND for an id outside the loaded topology, listing the ids it has.
fn not_in_topology(id: u64, topology: &Topology) -> Refusal {
    Refusal::NotFound(format!(
        "node {id} is not in lab {}'s topology (nodes {})",
        topology.lab,
        format_ids(topology.nodes.iter().copied())
    ))
}

/// Checks that `address` looks like `host:port` with a non-zero port.
fn check_address(address: &str) -> Result<(), Refusal> {
    let invalid = |why: &str| {
        Refusal::Invalid(format!(
            "address {address:?} is not a host:port ({why}); expected e.g. 127.0.0.1:5555"
        ))
    };
    if address.is_empty() {
        return Err(invalid("it is empty"));
    }
    if address.chars().any(char::is_whitespace) {
        return Err(invalid("it contains whitespace"));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(invalid("no port"));
    };
    if host.is_empty() || host == "[]" {
        return Err(invalid("no host"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err(invalid("port 0")),
        Ok(_) => Ok(()),
        Err(_) => Err(invalid("the port is not a number from 1 to 65535")),
    }
}

/// Writes ids compactly for messages: runs of three or more as `a..b` (both included), the first
/// few entries only, then how many more there are. `1,2,3,4,5,6` is `1..6`; `2,5,9` is `2, 5, 9`.
pub fn format_ids(ids: impl IntoIterator<Item = u64>) -> String {
    // Group consecutive ids into runs.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for id in ids {
        match runs.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(id) => *last = id,
            _ => runs.push((id, id)),
        }
    }
    // A run of two reads better as two entries.
    let entries: Vec<String> = runs
        .into_iter()
        .flat_map(|(first, last)| match last - first {
            0 => vec![first.to_string()],
            1 => vec![first.to_string(), last.to_string()],
            _ => vec![format!("{first}..{last}")],
        })
        .collect();
    let mut out = entries
        .iter()
        .take(IDS_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if entries.len() > IDS_SHOWN {
        let _ = write!(out, ", … and {} more", entries.len() - IDS_SHOWN);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(lab: &str, nodes: &[u64], links: &[(u64, u64)]) -> proto::Topology {
        proto::Topology {
            lab: lab.into(),
            nodes: nodes.to_vec(),
            links: links.iter().map(|&(a, b)| proto::Link { a, b }).collect(),
        }
    }

    fn ring6() -> proto::Topology {
        topology(
            "ring6",
            &[1, 2, 3, 4, 5, 6],
            &[(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 1)],
        )
    }

    fn ids(neighbors: &[proto::Neighbor]) -> Vec<u64> {
        neighbors.iter().map(|n| n.id).collect()
    }

    #[test]
    fn format_ids_compresses_runs_and_truncates() {
        assert_eq!(format_ids([1, 2, 3, 4, 5, 6]), "1..6");
        assert_eq!(format_ids([2, 5, 9]), "2, 5, 9");
        assert_eq!(format_ids([1, 2, 7, 8, 9, 20]), "1, 2, 7..9, 20");
        assert_eq!(format_ids(1..=1000), "1..1000");
        let sparse: Vec<u64> = (1..=20).map(|i| i * 10).collect();
        assert_eq!(
            format_ids(sparse),
            "10, 20, 30, 40, 50, 60, 70, 80, … and 12 more"
        );
        assert_eq!(format_ids([]), "");
    }

    #[test]
    fn validation_names_the_offending_value() {
        let cases = [
            (topology("", &[1], &[]), "no lab name"),
            (topology("x", &[], &[]), "has no nodes"),
            (topology("x", &[1, 0], &[]), "node id 0"),
            (topology("x", &[1, 2, 1], &[]), "node 1 is listed twice"),
            (topology("x", &[1, 2], &[(2, 2)]), "link 2-2 is a self-loop"),
            (
                topology("x", &[1, 2], &[(1, 7)]),
                "link 1-7 names node 7, which is not in the topology (nodes 1, 2)",
            ),
            (
                topology("x", &[1, 2], &[(1, 2), (2, 1)]),
                "link 2-1 is listed twice",
            ),
        ];
        for (topology, expected) in cases {
            match Topology::validate(&topology) {
                Err(Refusal::Invalid(message)) => {
                    assert!(message.contains(expected), "{message:?} lacks {expected:?}")
                }
                other => panic!("{topology:?}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn topology_mode_neighbors_and_conflicts() {
        let mut state = State::default();
        state.load_topology(&ring6()).unwrap();
        let (outcome, neighbors) = state.register(1, "h:1", false).unwrap();
        assert_eq!(outcome, Registered::New);
        assert_eq!(ids(&neighbors), [2, 6]);
        assert!(neighbors.iter().all(|n| n.address.is_empty()));
        state.register(6, "h:6", false).unwrap();
        let neighbors = state.neighbors(1).unwrap();
        assert_eq!(neighbors[1].address, "h:6");

        assert_eq!(
            state.register(1, "h:1", false).unwrap().0,
            Registered::Again
        );
        let err = state.register(1, "h:9", false).unwrap_err();
        assert!(
            matches!(err, Refusal::AlreadyExists(ref m) if m.contains("node 1 is already registered at h:1"))
        );
        assert_eq!(
            state.register(1, "h:9", true).unwrap().0,
            Registered::Replaced {
                previous: "h:1".into()
            }
        );
        let err = state.register(9, "h:9", false).unwrap_err();
        assert_eq!(
            err,
            Refusal::NotFound("node 9 is not in lab ring6's topology (nodes 1..6)".into())
        );
        state.check().unwrap();
    }

    #[test]
    fn reloading_keeps_registrations_of_remaining_nodes() {
        let mut state = State::default();
        state.load_topology(&ring6()).unwrap();
        state.register(1, "h:1", false).unwrap();
        state.register(5, "h:5", false).unwrap();
        let dropped = state
            .load_topology(&topology("pair", &[1, 2], &[(1, 2)]))
            .unwrap();
        assert_eq!(dropped, [5]);
        assert_eq!(state.registered.keys().copied().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn join_order_builds_a_line() {
        let mut state = State::default();
        assert!(state.register(5, "h:5", false).unwrap().1.is_empty());
        assert_eq!(ids(&state.register(9, "h:9", false).unwrap().1), [5]);
        assert_eq!(ids(&state.register(2, "h:2", false).unwrap().1), [9]);
        assert_eq!(ids(&state.neighbors(5).unwrap()), [9]);
        assert_eq!(ids(&state.neighbors(9).unwrap()), [2, 5]);
        // Leaving and coming back keeps the node's place in the line.
        assert!(state.deregister(9));
        assert_eq!(state.neighbors(5).unwrap()[0].address, "");
        state.register(9, "h:99", false).unwrap();
        assert_eq!(state.join_order, [5, 9, 2]);
        assert!(matches!(state.neighbors(7), Err(Refusal::NotFound(_))));
        state.check().unwrap();
    }

    #[test]
    fn addresses_must_be_host_port() {
        for bad in ["", "host", ":80", "host:", "host:0", "host:99999", "a b:1"] {
            assert!(
                matches!(check_address(bad), Err(Refusal::Invalid(_))),
                "{bad:?} accepted"
            );
        }
        for good in ["127.0.0.1:4000", "node-3:5555", "[::1]:80"] {
            check_address(good).unwrap();
        }
    }
}
