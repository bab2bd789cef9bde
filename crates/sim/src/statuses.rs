//! The nodes' statuses at the end of a run, made as the nodes are given up.
//!
//! A million nodes and their statuses do not fit side by side in the memory goal, so each node
//! is given up as its status is made and the pages its place took are handed back to the kernel
//! as they empty. Most of the time goes into freeing each node's heap blocks: a large run makes
//! the statuses of each half of the nodes on its own thread.

use std::mem::MaybeUninit;

use labctl_core::{Node, Status};

/// How many nodes a thread gives up between handing their pages back.
const GIVE_BACK_EVERY: usize = 1 << 14;

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
    // SAFETY: from here on the nodes are read out of the buffer one by one (each exactly once,
    // `ptr::read`), so the vector must not drop them again: its length goes to zero first, and
    // it keeps the buffer (given back at its drop). A panic part way leaks the nodes not yet
    // read and the statuses made, nothing worse.
    let base = Place(nodes.as_mut_ptr());
    unsafe { nodes.set_len(0) };
    let out = &mut statuses.spare_capacity_mut()[..n];
    if two {
        let (low, high) = out.split_at_mut(n / 2);
        std::thread::scope(|scope| {
            scope.spawn(|| make(base, n / 2, high));
            make(base, 0, low);
        });
    } else {
        make(base, 0, out);
    }
    // SAFETY: `make` wrote every one of the first `n` places.
    unsafe { statuses.set_len(n) };
    drop(nodes);
    statuses
}

/// The nodes' buffer, shared by the two threads, each reading its own half.
#[derive(Clone, Copy)]
struct Place(*mut Node);

// SAFETY: the threads read disjoint nodes (see `take`), and a node may move between threads.
unsafe impl Send for Place {}
unsafe impl Sync for Place {}

/// Give up the nodes from `first` on (as many as `out` has places), from the last back, writing
/// each one's status to its place in `out`; every [`GIVE_BACK_EVERY`] nodes, the pages wholly
/// behind the last one read go back to the kernel.
fn make(base: Place, first: usize, out: &mut [MaybeUninit<Status>]) {
    let end = first + out.len();
    let mut given_back_to = end;
    for i in (first..end).rev() {
        // SAFETY: node `i` is in this thread's part and read exactly once (see `take`).
        let node = unsafe { std::ptr::read(base.0.add(i)) };
        out[i - first].write(node.into_status());
        if (end - i).is_multiple_of(GIVE_BACK_EVERY) || i == first {
            give_back(base, i, given_back_to);
            given_back_to = i;
        }
    }
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
            (3 * GIVE_BACK_EVERY + 5, true),
            (2 * GIVE_BACK_EVERY + 1, false),
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
