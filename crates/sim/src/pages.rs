//! Huge pages for a large run's memory (Linux; elsewhere these do nothing).
//!
//! A million-node run touches a node, its heap blocks and its links at random for every
//! delivery: with 4 KiB pages nearly every one of those touches also misses the TLB, and in a
//! virtual machine each miss walks two levels of page tables. Backed by 2 MiB pages, the same
//! run is about a sixth faster here (measured with glibc's own `glibc.malloc.hugetlb=1`, which
//! a program cannot set for itself once started). Only hints to the kernel: a refused one (no
//! transparent huge pages, not enough free memory) changes nothing but the speed.

/// Runs of at least this many nodes ask for huge pages behind their heap.
pub(crate) const LARGE_RUN: usize = 50_000;

/// The heap a node's small blocks take in a large run, at the start (measured at a million
/// nodes of degree 4, rounded up; reserving too much costs nothing but address space).
pub(crate) const HEAP_PER_NODE: usize = 384;

/// Below this many bytes a block is not worth a hint (a huge page is 2 MiB).
const WORTH: usize = 16 << 20;

/// Ask for huge pages behind `v`'s whole buffer, before it is first written (so the kernel
/// places huge pages at once rather than copying into them later).
pub(crate) fn advise<T>(v: &Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes >= WORTH {
        advise_range(v.as_ptr() as usize, bytes);
    }
}

/// glibc's default `M_TOP_PAD` (how much more than asked the heap grows by), which
/// [`HeapReservation`]'s drop puts back.
const DEFAULT_TOP_PAD: usize = 128 << 10;

/// The heap made ready for `bytes` of small blocks (every node's neighbour ids, Yo-Yo's slots
/// …), backed by huge pages from their first write: glibc is asked to grow the heap by `bytes`
/// at its next growth, which a few blocks provoke now, and the new part is advised before
/// anything is written to it. (Advising after the blocks are written means the kernel copies
/// every page into huge ones: `MADV_COLLAPSE` took a tenth of a million-node run's setup.)
/// Untouched, the reserved part costs no memory; it stays as the heap's free top.
pub(crate) fn reserve_heap(bytes: usize) -> HeapReservation {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn sbrk(increment: libc::intptr_t) -> *mut libc::c_void;
        }
        /// Under glibc's smallest threshold for `mmap`: blocks of this size come from the heap.
        const BLOCK: usize = 120 << 10;
        let pad = bytes.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: `mallopt` only tunes the allocator; `sbrk(0)` only reads the heap's end; the
        // blocks are allocated and freed here, never written, and their pages only advised.
        let before = unsafe { sbrk(0) as usize };
        unsafe {
            if libc::mallopt(libc::M_TOP_PAD, pad) == 0 {
                return HeapReservation { tuned: false };
            }
            let mut held = Vec::with_capacity(256);
            while held.len() < 256 && sbrk(0) as usize == before {
                let block = libc::malloc(BLOCK);
                if block.is_null() {
                    break;
                }
                held.push(block);
            }
            for block in held {
                libc::free(block);
            }
            let after = sbrk(0) as usize;
            if after > before {
                advise_range(before, after - before);
            }
        }
        HeapReservation { tuned: true }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = bytes;
        HeapReservation { tuned: false }
    }
}

/// While it lives, glibc grows the heap in steps as large as [`reserve_heap`] asked.
pub(crate) struct HeapReservation {
    tuned: bool,
}

impl Drop for HeapReservation {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if self.tuned {
            // SAFETY: as above, a tuning of the allocator.
            unsafe {
                libc::mallopt(libc::M_TOP_PAD, DEFAULT_TOP_PAD as libc::c_int);
            }
        }
    }
}

/// `madvise` the 2 MiB pages wholly inside `len` bytes from `start`: huge pages from their
/// first write on.
fn advise_range(start: usize, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let first = start.next_multiple_of(HUGE);
        let end = (start + len) / HUGE * HUGE;
        if end <= first {
            return;
        }
        // SAFETY: the range lies inside memory this process owns (a live allocation, or the
        // heap's top that glibc just obtained); advice changes how the pages are backed, never
        // their contents, and a refusal is only an error code, ignored.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_changes_no_contents() {
        // A buffer advised before it is written, and blocks written to a heap advised before
        // them: everything reads back as written.
        let mut big: Vec<u64> = Vec::with_capacity(WORTH);
        advise(&big);
        big.extend((0..WORTH as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let reserved = reserve_heap(64 << 20);
        let small: Vec<Box<[u64; 4]>> = (0..100_000u64).map(|i| Box::new([i; 4])).collect();
        drop(reserved);
        assert!(big
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        assert!(small.iter().enumerate().all(|(i, b)| **b == [i as u64; 4]));
    }
}
