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

/// Below this many bytes a block is not worth a hint (a huge page is 2 MiB).
const WORTH: usize = 16 << 20;

/// Ask for huge pages behind `v`'s whole buffer, before it is first written (so the kernel
/// places huge pages at once rather than copying into them later).
pub(crate) fn advise<T>(v: &Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes >= WORTH {
        advise_range(v.as_ptr() as usize, bytes, false);
    }
}

/// Ask for huge pages behind the heap (the small blocks of every node), and for the pages
/// already there to be gathered into huge ones now.
pub(crate) fn collapse_heap() {
    #[cfg(target_os = "linux")]
    {
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return;
        };
        let heap = maps.lines().find(|l| l.ends_with("[heap]"));
        let range = heap.and_then(|l| l.split_whitespace().next());
        let Some((start, end)) = range.and_then(|r| r.split_once('-')) else {
            return;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            return;
        };
        if end - start >= WORTH {
            advise_range(start, end - start, true);
        }
    }
}

/// `madvise` the 2 MiB pages wholly inside `len` bytes from `start`: huge pages from here on,
/// and if `collapse`, the present pages gathered into huge ones now.
fn advise_range(start: usize, len: usize, collapse: bool) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        /// `MADV_COLLAPSE` (Linux 6.1); older kernels refuse it, which is fine.
        const MADV_COLLAPSE: libc::c_int = 25;
        let first = start.next_multiple_of(HUGE);
        let end = (start + len) / HUGE * HUGE;
        if end <= first {
            return;
        }
        // SAFETY: the range lies inside memory this process owns (a live allocation, or its
        // heap as the kernel lists it); advice changes how the pages are backed, never their
        // contents, and a refusal is only an error code, ignored.
        unsafe {
            let at = first as *mut libc::c_void;
            libc::madvise(at, end - first, libc::MADV_HUGEPAGE);
            if collapse {
                libc::madvise(at, end - first, MADV_COLLAPSE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len, collapse);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_changes_no_contents() {
        // A buffer advised before it is written, and the heap gathered into huge pages after
        // blocks were written to it: everything reads back as written.
        let mut big: Vec<u64> = Vec::with_capacity(WORTH);
        advise(&big);
        big.extend((0..WORTH as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let small: Vec<Box<[u64; 4]>> = (0..100_000u64).map(|i| Box::new([i; 4])).collect();
        collapse_heap();
        advise_range(big.as_ptr() as usize, 8 * big.len(), true);
        assert!(big
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        assert!(small.iter().enumerate().all(|(i, b)| **b == [i as u64; 4]));
    }
}
