//! The nodes' statuses at the end of a run, made as the nodes are given up.
//!
//! A million nodes and their statuses do not fit side by side in the memory goal, so each node
//! is given up once its status is made and the pages its place took are handed back to the
//! kernel as they empty. Most of the time goes into the allocator: each status allocates its
//! lists, and each node frees its heap blocks. A large run splits the two by kind, not by
//! nodes: a helper thread makes the statuses, from the last node back, and this thread frees
//! the nodes behind it. The helper's allocations come from its own arena and this thread's
//! frees go to the one the nodes were built in, so neither waits on the other's lock (two
//! threads that each made and freed half the nodes were no faster than one: every free of
//! both went to the same arena).

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use labctl_core::{Node, Status};

/// How many nodes go at a time: the helper's step between telling how far it has got, and
/// this thread's between handing pages back.
const STEP: usize = 1 << 14;

/// Every node's status, in the nodes' order, the nodes given up.
pub(crate) fn take(nodes: Vec<Node>) -> Vec<Status> {
    // On two threads as the deliveries are.
    let two = nodes.len() >= crate::parallel::TWO_THREADS;
    take_on(nodes, two)
}

/// [`take`], on two threads or one.
fn take_on(mut nodes: Vec<Node>, two: bool) -> Vec<Status> {
    let n = nodes.len();
    let mut statuses: Vec<Status> = Vec::with_capacity(n);
    // SAFETY: from here on each node's status is made once (`make`) and then the node is
    // dropped in place once (`free`), after which its place is never read again; so the vector
    // must not drop them again: its length goes to zero first, and it keeps the buffer (given
    // back at its drop). A panic part way leaks the nodes not yet dropped and the statuses
    // made, nothing worse.
    let base = Place(nodes.as_mut_ptr());
    unsafe { nodes.set_len(0) };
    let out = Out(statuses.spare_capacity_mut().as_mut_ptr());
    if two {
        // The helper has made the statuses of the nodes from `made` on; this thread has freed
        // them from `freed` on. The helper keeps at most `LEAD` nodes ahead: statuses made
        // take memory, nodes freed give it back, and a helper far ahead would raise the run's
        // peak.
        let made = AtomicUsize::new(n);
        let freed = AtomicUsize::new(n);
        // Set by the helper as it stops, normally or not, after its last word on `made`.
        let stopped = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _stopping = Stopping(&stopped);
                let mut to = n;
                while to > 0 {
                    wait_until(|| freed.load(Ordering::Acquire) <= to + LEAD);
                    let from = to.saturating_sub(STEP);
                    // SAFETY: nodes `from..to` are the helper's until it says so below, and
                    // their places in `out` are written by no one else.
                    unsafe { make(base, out, from, to) };
                    made.store(from, Ordering::Release);
                    to = from;
                }
            });
            // Should this thread stop short (a panic), the helper is let go.
            let _let_go = LetGo(&freed);
            let mut freed_to = n;
            while freed_to > 0 {
                wait_until(|| {
                    made.load(Ordering::Acquire) < freed_to || stopped.load(Ordering::Acquire)
                });
                let from = made.load(Ordering::Acquire);
                if from == freed_to {
                    // The helper stopped short: it panicked, which the scope passes on.
                    break;
                }
                // SAFETY: the helper is done with nodes `from..freed_to` (the acquire above sees
                // its writes) and never looks at them again.
                unsafe { free(base, from, freed_to) };
                freed_to = from;
                freed.store(freed_to, Ordering::Release);
            }
        });
    } else {
        let mut to = n;
        while to > 0 {
            let from = to.saturating_sub(STEP);
            // SAFETY: each range once, made and then freed.
            unsafe {
                make(base, out, from, to);
                free(base, from, to);
            }
            to = from;
        }
    }
    // SAFETY: `make` wrote every one of the first `n` places.
    unsafe { statuses.set_len(n) };
    drop(nodes);
    statuses
}

/// How far ahead of this thread's frees the helper may make statuses.
const LEAD: usize = 2 * STEP;

/// Wait, spinning a little and then giving the core away, until `ready`.
fn wait_until(ready: impl Fn() -> bool) {
    let mut idle = 0u32;
    while !ready() {
        idle += 1;
        if idle < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// On drop, tells this thread the helper has stopped (its last word on `made` said before).
struct Stopping<'a>(&'a AtomicBool);

impl Drop for Stopping<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// On drop, lets the helper make every status left, whatever this thread has freed.
struct LetGo<'a>(&'a AtomicUsize);

impl Drop for LetGo<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// The nodes' buffer, shared by the two threads.
#[derive(Clone, Copy)]
struct Place(*mut Node);

/// The statuses' buffer, written by the thread that makes them.
#[derive(Clone, Copy)]
struct Out(*mut MaybeUninit<Status>);

// The nodes and their statuses must be able to move between threads for the impls below to
// be sound: checked here, at compile time.
const _: () = {
    const fn send<T: Send>() {}
    send::<Node>();
    send::<Status>();
};

// SAFETY: the threads touch disjoint nodes at any time, handed over through `made` (see
// `take_on`); a node and a status may move between threads.
unsafe impl Send for Place {}
unsafe impl Sync for Place {}
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// Make the statuses of nodes `from..to`, from the last back, into their places in `out`; the
/// nodes are left to be dropped.
///
/// # Safety
/// Nodes `from..to` are live and no other thread touches them or their places in `out` during
/// the call; `out` has room for `to` statuses.
unsafe fn make(base: Place, out: Out, from: usize, to: usize) {
    for i in (from..to).rev() {
        // SAFETY: as the caller promises.
        unsafe {
            let node = &*base.0.add(i);
            (*out.0.add(i)).write(node.status());
        }
    }
}

/// Drop nodes `from..to` in place, from the last back, and hand the kernel the pages wholly
/// inside their places.
///
/// # Safety
/// Nodes `from..to` are live, their statuses made, and no other thread touches them; they are
/// never read again.
unsafe fn free(base: Place, from: usize, to: usize) {
    for i in (from..to).rev() {
        // SAFETY: as the caller promises: each node dropped exactly once.
        unsafe { std::ptr::drop_in_place(base.0.add(i)) };
    }
    give_back(base, from, to);
}

/// Hand the kernel the pages wholly inside the places of nodes `from..to`, which have all been
/// read: their memory is never looked at again (the buffer is only freed).
fn give_back(base: Place, from: usize, to: usize) {
    // SAFETY: the range lies inside the nodes' buffer, whose nodes there have been read out
    // and are never read again; dropping the pages only makes them read as zero.
    #[cfg(target_os = "linux")]
    unsafe {
        crate::pages::advise_pages(
            base.0 as usize + from * std::mem::size_of::<Node>(),
            (to - from) * std::mem::size_of::<Node>(),
            4 << 10,
            libc::MADV_DONTNEED,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (base, from, to);
}

#[cfg(test)]
mod tests {
    use super::*;
    use labctl_core::{Input, Output};

    #[test]
    fn each_status_is_its_nodes_in_order_on_one_thread_or_two() {
        // A ring of nodes, some started (so that their statuses differ), more than a few
        // page-returns' worth on each thread, and an odd count.
        for (n, two) in [
            (3 * STEP + 5, true),
            (2 * STEP + 1, false),
            (1, true),
            (0, true),
        ] {
            let mut nodes: Vec<Node> = (1..=n as u64)
                .map(|id| {
                    let next = id % n as u64 + 1;
                    let previous = (id + n as u64 - 2) % n as u64 + 1;
                    Node::new(id, [next, previous].into_iter().filter(|&m| m != id))
                })
                .collect();
            let mut out: Vec<Output> = Vec::new();
            for node in nodes.iter_mut().step_by(3) {
                node.handle(0, Input::Start { epoch: 1 }, &mut out);
            }
            let expected: Vec<Status> = nodes.iter().map(Node::status).collect();
            assert_eq!(
                take_on(nodes, two),
                expected,
                "{n} nodes, two threads {two}"
            );
        }
    }
}
