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
                return HeapReservation {
                    tuned: false,
                    range: (0, 0),
                };
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
            HeapReservation {
                tuned: true,
                range: (before, after.saturating_sub(before)),
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = bytes;
        HeapReservation {
            tuned: false,
            range: (0, 0),
        }
    }
}

/// While it lives, glibc grows the heap in steps as large as [`reserve_heap`] asked.
pub(crate) struct HeapReservation {
    tuned: bool,
    /// The heap's new top (address, bytes): where the nodes' blocks will go.
    range: (usize, usize),
}

impl HeapReservation {
    /// The reserved part of the heap, (address, bytes); empty when nothing was reserved.
    pub(crate) fn range(&self) -> (usize, usize) {
        self.range
    }
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

/// Memory made present by a helper thread before this thread first writes it.
///
/// The first write to a fresh page makes the kernel clear it (and, in a virtual machine, the
/// hypervisor back it): at a million nodes, half the setup's time, spent on this thread while
/// the other core idles. The helper asks the kernel to make the pages present
/// (`MADV_POPULATE_WRITE`: their contents stay zero, as a first write would find them) ahead of
/// the writes, so the clearing runs on the other core. Only the pages' presence changes, never
/// their contents, so whichever thread gets to a page first, it reads the same. Dropping the
/// guard stops the helper at its next chunk and waits for it.
pub(crate) struct Prefault {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    helper: Option<std::thread::JoinHandle<()>>,
}

/// A small page, the unit memory is made present in.
const PAGE: usize = 4 << 10;

/// How much the helper makes present at a time (and how soon it sees a stop).
const PREFAULT_CHUNK: usize = 4 << 20;

/// Make `streams` present on a helper thread, in order: within one stream, from its start; the
/// ranges of one stream side by side, each advancing in proportion to its length (as memory the
/// caller fills together, a node's block in one and its heap blocks in another). Each range is
/// (address, bytes) of memory that stays allocated until the guard is dropped.
pub(crate) fn prefault(streams: Vec<Vec<(usize, usize)>>) -> Prefault {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let helper = std::thread::Builder::new()
        .name("sim-prefault".into())
        .spawn(move || {
            for ranges in streams {
                let longest = ranges.iter().map(|r| r.1).max().unwrap_or(0);
                let steps = longest.div_ceil(PREFAULT_CHUNK);
                for step in 0..steps {
                    if flag.load(Ordering::Relaxed) {
                        return;
                    }
                    for &(start, len) in &ranges {
                        // This range's share of the step, cut at page boundaries (of the
                        // address, so that one step ends on the page where the next begins).
                        let at = |k: usize| match k {
                            0 => start,
                            k if k == steps => start + len,
                            k => (start + len * k / steps) & !(PAGE - 1),
                        };
                        let (from, to) = (at(step), at(step + 1));
                        populate(from, to.saturating_sub(from));
                    }
                }
            }
        })
        .ok();
    Prefault { stop, helper }
}

impl Prefault {
    /// Wait for the helper to make everything present (the tests look at the pages).
    #[cfg(test)]
    fn finish(mut self) {
        if let Some(helper) = self.helper.take() {
            helper.join().expect("the helper does not panic");
        }
    }
}

impl Drop for Prefault {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(helper) = self.helper.take() {
            let _ = helper.join();
        }
    }
}

/// Make the whole pages inside `len` bytes from `start` present, as if written (Linux 5.14 or
/// later; elsewhere, or refused, nothing happens and the first write does it as usual).
fn populate(start: usize, len: usize) {
    // SAFETY: the caller keeps the range allocated while the helper runs (see `prefault`);
    // populating a page only makes it present, never changes what it holds.
    #[cfg(target_os = "linux")]
    unsafe {
        advise_pages(start, len, PAGE, libc::MADV_POPULATE_WRITE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

/// Give `advice` to `madvise` for the whole pages of `page` bytes inside `len` bytes from
/// `start`; a refusal (an old kernel, memory short) is only an error code, ignored.
///
/// # Safety
///
/// The range must be memory of this process that the advice cannot harm: advice that drops
/// pages (`MADV_DONTNEED`) only where nothing will read what they held.
#[cfg(target_os = "linux")]
pub(crate) unsafe fn advise_pages(start: usize, len: usize, page: usize, advice: libc::c_int) {
    // Never less than the system's page (16 or 64 KiB on some hosts): `madvise` rounds the
    // length up to a whole page, and advice that drops pages would reach past the range.
    let page = page.max(system_page());
    let first = start.next_multiple_of(page);
    let end = (start + len) / page * page;
    if end > first {
        // SAFETY: as the caller promises.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, advice);
        }
    }
}

/// The system's page size (4 KiB where it cannot be read).
#[cfg(target_os = "linux")]
fn system_page() -> usize {
    static PAGE_SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        // SAFETY: `sysconf` only reads a configuration value.
        let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(bytes)
            .ok()
            .filter(|b| b.is_power_of_two())
            .unwrap_or(4 << 10)
    })
}

/// The room glibc's allocator takes for a block of `bytes`: its size word added, rounded up to
/// 16 bytes, at least 32; none for no bytes (an empty box or vector allocates nothing).
pub(crate) fn chunk(bytes: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    (bytes + 8).next_multiple_of(16).max(32)
}

/// The memory behind `v`'s whole buffer, (address, bytes).
pub(crate) fn buffer<T>(v: &Vec<T>) -> (usize, usize) {
    (v.as_ptr() as usize, v.capacity() * std::mem::size_of::<T>())
}

/// `madvise` the 2 MiB pages wholly inside `len` bytes from `start`: huge pages from their
/// first write on.
fn advise_range(start: usize, len: usize) {
    // SAFETY: the range lies inside memory this process owns (a live allocation, or the heap's
    // top that glibc just obtained); advice changes how the pages are backed, never their
    // contents.
    #[cfg(target_os = "linux")]
    unsafe {
        advise_pages(start, len, 2 << 20, libc::MADV_HUGEPAGE);
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

    #[test]
    fn prefaulting_changes_no_contents() {
        // A buffer half written before the helper starts, the rest written while it runs over
        // the whole of it, and a second stream beside: everything reads back as written, and
        // the part never written reads zero.
        // Eight chunks' worth of bytes, in words.
        const LEN: usize = PREFAULT_CHUNK;
        let value = |i: usize| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut a: Vec<u64> = Vec::with_capacity(LEN);
        a.extend((0..LEN / 2).map(value));
        let b: Vec<u64> = vec![0; LEN / 3];
        let guard = prefault(vec![vec![buffer(&a), buffer(&b)], vec![buffer(&b)]]);
        a.extend((LEN / 2..LEN).map(value));
        drop(guard);
        assert!(a.iter().enumerate().all(|(i, &v)| v == value(i)));
        assert!(b.iter().all(|&v| v == 0));
        // Stopped before it starts: nothing changes either.
        let c: Vec<u64> = (0..LEN).map(value).collect();
        drop(prefault(vec![vec![buffer(&c)]]));
        assert!(c.iter().enumerate().all(|(i, &v)| v == value(i)));
    }

    /// How many of the pages wholly inside `len` bytes from `start` are present (`mincore`).
    #[cfg(target_os = "linux")]
    fn present(start: usize, len: usize) -> (usize, usize) {
        let first = start.next_multiple_of(PAGE);
        let pages = (start + len - first) / PAGE;
        let mut map = vec![0u8; pages];
        // SAFETY: `mincore` only reports on the range (inside a live buffer) into `map`, one
        // byte per page.
        let status = unsafe {
            libc::mincore(
                first as *mut libc::c_void,
                pages * PAGE,
                map.as_mut_ptr().cast(),
            )
        };
        assert_eq!(status, 0, "mincore");
        (map.iter().filter(|&&b| b & 1 == 1).count(), pages)
    }

    /// Fresh anonymous memory of `len` bytes, none of it present until touched (the allocator
    /// may hand out pages it already had, even for a large block, once large blocks were freed).
    #[cfg(target_os = "linux")]
    struct Fresh(usize, usize);

    #[cfg(target_os = "linux")]
    impl Fresh {
        fn new(len: usize) -> Fresh {
            // SAFETY: a new private anonymous mapping, owned by the value and unmapped on drop.
            let at = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(at, libc::MAP_FAILED, "mmap");
            Fresh(at as usize, len)
        }
    }

    #[cfg(target_os = "linux")]
    impl Drop for Fresh {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`, unmapped once.
            unsafe { libc::munmap(self.0 as *mut libc::c_void, self.1) };
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn prefaulting_makes_every_page_present() {
        // Two regions never written (their pages not there yet, as `mincore` shows), one of
        // them starting part way into a page and split into steps whose cuts fall inside pages:
        // after the helper, every whole page of both is present.
        let a = Fresh::new(3 * PREFAULT_CHUNK + 12_345);
        let b = Fresh::new(PREFAULT_CHUNK / 3);
        let odd = (a.0 + 1000, a.1 - 1000);
        let (before, pages) = present(odd.0, odd.1);
        assert_eq!(before, 0, "{before} of {pages} pages already present");
        assert_eq!(present(b.0, b.1).0, 0);
        prefault(vec![vec![odd, (b.0, b.1)]]).finish();
        assert_eq!(present(odd.0, odd.1), (pages, pages));
        let (b_present, b_pages) = present(b.0, b.1);
        assert_eq!(b_present, b_pages);
    }
}
