//! The registry of input nodes, shared by the gRPC service, the HTTP redirector and the health
//! checker. Every method takes the lock for a few map operations and never across an `.await`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A live input node: its id and the `host:port` of its HTTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InputNode {
    /// The node's id.
    pub id: u64,
    /// Where the nameserver health-checks the node.
    pub http_address: String,
    /// Where clients are sent, when that differs from `http_address` (a published port).
    pub public_address: Option<String>,
}

impl InputNode {
    /// The `host:port` clients are sent to: the public address when there is one.
    pub fn client_address(&self) -> &str {
        self.public_address.as_deref().unwrap_or(&self.http_address)
    }
}

/// One node to health-check, stamped with the registration it belongs to, so that a result for an
/// address that has since been replaced (or a node that registered again) is ignored.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub id: u64,
    pub http_address: String,
    registration: u64,
}

/// The input nodes and the round-robin cursor.
///
/// Every registered node is live: a node leaves the registry when it deregisters or when it has
/// failed too many health checks in a row.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    /// Counts redirects; `next % live` picks the node (in id order) that gets the next client.
    next: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    /// By id, so the round-robin order and `List` are stable.
    nodes: BTreeMap<u64, Entry>,
    /// The last registration number handed out.
    registrations: u64,
}

#[derive(Debug)]
struct Entry {
    http_address: String,
    /// Where clients are sent instead of `http_address`, if anywhere.
    public_address: Option<String>,
    /// Consecutive failed health checks since the last success or registration.
    failures: u32,
    registration: u64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock, and the map stays consistent after every
        // statement, so a poisoned lock still holds a usable registry.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds node `id` or refreshes it: the new addresses replace the old ones and its failure count
    /// starts again from zero. Returns the (health-checked) address it replaces, if any.
    pub fn register(
        &self,
        id: u64,
        http_address: String,
        public_address: Option<String>,
    ) -> Option<String> {
        let mut inner = self.lock();
        inner.registrations += 1;
        let entry = Entry {
            http_address,
            public_address,
            failures: 0,
            registration: inner.registrations,
        };
        inner
            .nodes
            .insert(id, entry)
            .map(|previous| previous.http_address)
    }

    /// Removes node `id`; returns its address if it was registered.
    pub fn deregister(&self, id: u64) -> Option<String> {
        self.lock()
            .nodes
            .remove(&id)
            .map(|entry| entry.http_address)
    }

    /// The live input nodes, in round-robin order (by id).
    pub fn live(&self) -> Vec<InputNode> {
        self.lock()
            .nodes
            .iter()
            .map(|(&id, entry)| entry.node(id))
            .collect()
    }

    /// The input node that gets the next client, round robin; `None` when no node is live.
    pub fn next(&self) -> Option<InputNode> {
        let inner = self.lock();
        if inner.nodes.is_empty() {
            return None;
        }
        // Taken under the lock so that concurrent clients see the counter and the list together.
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % inner.nodes.len();
        inner
            .nodes
            .iter()
            .nth(turn)
            .map(|(&id, entry)| entry.node(id))
    }

    /// Every registered node, for one round of health checks.
    pub fn targets(&self) -> Vec<Target> {
        self.lock()
            .nodes
            .iter()
            .map(|(&id, entry)| Target {
                id,
                http_address: entry.http_address.clone(),
                registration: entry.registration,
            })
            .collect()
    }

    /// Records a successful health check: the node's failure count starts again from zero.
    pub fn record_success(&self, target: &Target) {
        if let Some(entry) = Self::current(&mut self.lock(), target) {
            entry.failures = 0;
        }
    }

    /// Records a failed health check. Once `limit` checks in a row have failed the node is removed
    /// and its failure count is returned; otherwise returns `None`.
    pub fn record_failure(&self, target: &Target, limit: u32) -> Option<u32> {
        let mut inner = self.lock();
        let entry = Self::current(&mut inner, target)?;
        entry.failures += 1;
        if entry.failures < limit {
            return None;
        }
        let failures = entry.failures;
        inner.nodes.remove(&target.id);
        Some(failures)
    }

    /// The entry `target` was taken from, unless it has since been deregistered or registered again.
    fn current<'a>(inner: &'a mut Inner, target: &Target) -> Option<&'a mut Entry> {
        inner
            .nodes
            .get_mut(&target.id)
            .filter(|entry| entry.registration == target.registration)
    }
}

impl Entry {
    /// Node `id` as the registry reports it.
    fn node(&self, id: u64) -> InputNode {
        InputNode {
            id,
            http_address: self.http_address.clone(),
            public_address: self.public_address.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(nodes: &[InputNode]) -> Vec<u64> {
        nodes.iter().map(|node| node.id).collect()
    }

    #[test]
    fn round_robin_cycles_through_the_nodes_by_id() {
        let registry = Registry::default();
        registry.register(7, "127.0.0.1:7".into(), None);
        registry.register(2, "127.0.0.1:2".into(), None);
        registry.register(5, "127.0.0.1:5".into(), None);
        let order: Vec<u64> = (0..6).map(|_| registry.next().unwrap().id).collect();
        assert_eq!(order, [2, 5, 7, 2, 5, 7]);
        assert_eq!(ids(&registry.live()), [2, 5, 7]);
    }

    #[test]
    fn nothing_to_choose_when_empty() {
        assert_eq!(Registry::default().next(), None);
    }

    #[test]
    fn registering_again_replaces_the_address_and_forgives_failures() {
        let registry = Registry::default();
        assert_eq!(registry.register(4, "127.0.0.1:1".into(), None), None);
        let old = registry.targets().remove(0);
        assert_eq!(registry.record_failure(&old, 2), None);
        assert_eq!(
            registry.register(4, "127.0.0.1:2".into(), None),
            Some("127.0.0.1:1".into())
        );
        // A late result about the old registration changes nothing.
        assert_eq!(registry.record_failure(&old, 2), None);
        let new = registry.targets().remove(0);
        assert_eq!(new.http_address, "127.0.0.1:2");
        assert_eq!(registry.record_failure(&new, 2), None);
        assert_eq!(registry.record_failure(&new, 2), Some(2));
        assert!(registry.live().is_empty());
    }

    #[test]
    fn only_consecutive_failures_drop_a_node() {
        let registry = Registry::default();
        registry.register(1, "127.0.0.1:1".into(), None);
        let target = registry.targets().remove(0);
        assert_eq!(registry.record_failure(&target, 3), None);
        assert_eq!(registry.record_failure(&target, 3), None);
        registry.record_success(&target);
        assert_eq!(registry.record_failure(&target, 3), None);
        assert_eq!(registry.record_failure(&target, 3), None);
        assert_eq!(ids(&registry.live()), [1]);
        assert_eq!(registry.record_failure(&target, 3), Some(3));
        assert!(registry.live().is_empty());
    }

    #[test]
    fn clients_go_to_the_public_address_and_checks_to_the_internal_one() {
        let registry = Registry::default();
        registry.register(1, "10.0.0.1:8080".into(), Some("127.0.0.1:5001".into()));
        registry.register(2, "10.0.0.2:8080".into(), None);
        let clients: Vec<String> = (0..2)
            .map(|_| registry.next().unwrap().client_address().to_owned())
            .collect();
        assert_eq!(clients, ["127.0.0.1:5001", "10.0.0.2:8080"]);
        let checked: Vec<String> = registry
            .targets()
            .into_iter()
            .map(|target| target.http_address)
            .collect();
        assert_eq!(checked, ["10.0.0.1:8080", "10.0.0.2:8080"]);
    }

    #[test]
    fn deregister_is_idempotent() {
        let registry = Registry::default();
        registry.register(1, "127.0.0.1:1".into(), None);
        assert_eq!(registry.deregister(1), Some("127.0.0.1:1".into()));
        assert_eq!(registry.deregister(1), None);
        assert!(registry.live().is_empty());
    }
}
