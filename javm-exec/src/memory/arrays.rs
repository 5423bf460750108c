//! The page map's two per-page arrays (a kind byte and a state byte for each of the
//! 2^20 pages), and a process-wide pool that recycles them.
//!
//! A fresh pair is two 1 MiB anonymous reservations; mapping, first-touching and
//! unmapping them was most of the cost of creating an instance. A released pair is
//! zeroed over exactly the page ranges its map wrote (every write to either array is
//! confined to the map's ranges, see [`crate::memory::PageMap`]) and kept, so a
//! recycled pair is indistinguishable from a fresh one. Pairs whose maps covered more
//! than [`RECYCLE_MAX_PAGES`] pages are unmapped instead: zeroing them would cost more
//! than a new reservation, and keeping them would keep their resident pages.

use std::sync::Mutex;

use memmap2::{MmapMut, MmapOptions};

/// Number of pages in the 4 GiB address space (and bytes in each array).
pub(crate) const PAGES: usize = 1 << 20;
/// Pairs kept for reuse.
pub(crate) const POOL_MAX: usize = 64;
/// Largest number of mapped pages whose arrays are recycled.
const RECYCLE_MAX_PAGES: u64 = 1 << 16;

/// A kind array and a state array, each [`PAGES`] bytes, zero outside the ranges
/// their owner has written.
#[derive(Debug)]
pub(crate) struct Arrays {
    /// `PageKind::as_u8` per page; 0 = inaccessible.
    pub(crate) kinds: MmapMut,
    /// `PageState::as_u8` per page.
    pub(crate) states: MmapMut,
    /// Pages that became `PresentRw`: one bit per page, so the written pages of an
    /// instance are listed in time proportional to their number.
    pub(crate) dirty: PageSet,
    /// Pages whose storage may be non-zero (filled from a slab, or written): what
    /// an engine must reset before it reuses the storage behind them.
    pub(crate) filled: PageSet,
}

/// A set of page numbers with O(1) insert (no allocation, safe in a signal handler)
/// and listing in time proportional to the number of members: a bitmap of all 2^20
/// pages plus a summary with one bit per non-zero bitmap word, and the range of
/// summary words in use (so an empty or small set is listed without a scan).
#[derive(Debug)]
pub(crate) struct PageSet {
    words: Box<[u64]>,
    summary: Box<[u64]>,
    /// Summary words `lo..hi` hold every set bit (`lo >= hi`: none).
    lo: usize,
    hi: usize,
}

impl PageSet {
    const WORDS: usize = PAGES / 64;

    pub(crate) fn new() -> PageSet {
        PageSet {
            words: vec![0; Self::WORDS].into_boxed_slice(),
            summary: vec![0; Self::WORDS / 64].into_boxed_slice(),
            lo: usize::MAX,
            hi: 0,
        }
    }

    /// Add page number `page` (`< 2^20`; larger numbers are ignored).
    #[inline]
    pub(crate) fn insert(&mut self, page: usize) {
        let w = page / 64;
        if let Some(word) = self.words.get_mut(w) {
            *word |= 1 << (page % 64);
            let si = w / 64;
            if let Some(s) = self.summary.get_mut(si) {
                *s |= 1 << (w % 64);
                self.lo = self.lo.min(si);
                self.hi = self.hi.max(si + 1);
            }
        }
    }

    /// Remove page number `page` (absent or out-of-range numbers are ignored). The
    /// summary bit goes when its word empties; the span of summary words in use
    /// stays a superset.
    #[inline]
    pub(crate) fn remove(&mut self, page: usize) {
        let w = page / 64;
        if let Some(word) = self.words.get_mut(w) {
            *word &= !(1 << (page % 64));
            if *word == 0
                && let Some(s) = self.summary.get_mut(w / 64)
            {
                *s &= !(1 << (w % 64));
            }
        }
    }

    /// Whether the set has no member.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.lo >= self.hi
    }

    /// Call `f` with every member, ascending.
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize)) {
        if self.is_empty() {
            return;
        }
        for si in self.lo..self.hi {
            let mut s = self.summary.get(si).copied().unwrap_or(0);
            while s != 0 {
                let w = si * 64 + s.trailing_zeros() as usize;
                s &= s - 1;
                let mut bits = self.words.get(w).copied().unwrap_or(0);
                while bits != 0 {
                    f(w * 64 + bits.trailing_zeros() as usize);
                    bits &= bits - 1;
                }
            }
        }
    }

    /// Call `f(first, count)` for every run of consecutive members, ascending.
    pub(crate) fn for_each_run(&self, mut f: impl FnMut(usize, usize)) {
        let mut run: Option<(usize, usize)> = None;
        self.for_each(|p| match &mut run {
            Some((start, n)) if *start + *n == p => *n += 1,
            _ => {
                if let Some((start, n)) = run.replace((p, 1)) {
                    f(start, n);
                }
            }
        });
        if let Some((start, n)) = run {
            f(start, n);
        }
    }

    /// Remove every member (time proportional to the members' words).
    pub(crate) fn clear(&mut self) {
        if self.is_empty() {
            return;
        }
        for si in self.lo..self.hi {
            let Some(slot) = self.summary.get_mut(si) else {
                break;
            };
            let mut s = std::mem::take(slot);
            while s != 0 {
                let w = si * 64 + s.trailing_zeros() as usize;
                s &= s - 1;
                if let Some(word) = self.words.get_mut(w) {
                    *word = 0;
                }
            }
        }
        self.lo = usize::MAX;
        self.hi = 0;
    }

    /// Whether every bit is clear (a full scan, for tests).
    #[cfg(test)]
    fn is_clear(&self) -> bool {
        self.summary
            .iter()
            .chain(self.words.iter())
            .all(|&w| w == 0)
    }
}

static POOL: Mutex<Vec<Arrays>> = Mutex::new(Vec::new());

impl Arrays {
    /// An all-zero pair: a recycled one, or two new reservations (which fail only if
    /// the host cannot reserve 1 MiB).
    pub(crate) fn acquire() -> std::io::Result<Arrays> {
        if let Some(a) = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(a);
        }
        let reserve = || MmapOptions::new().len(PAGES).no_reserve_swap().map_anon();
        Ok(Arrays {
            kinds: reserve()?,
            states: reserve()?,
            dirty: PageSet::new(),
            filled: PageSet::new(),
        })
    }

    /// Give the pair back. `ranges` are `[first, end)` page numbers covering every
    /// byte the owner wrote in either array.
    pub(crate) fn release(mut self, ranges: &[(u32, u32)]) {
        if !recyclable(ranges) {
            return;
        }
        for &(first, end) in ranges {
            let r = first as usize..end as usize;
            self.kinds[r.clone()].fill(0);
            self.states[r].fill(0);
        }
        self.dirty.clear();
        self.filled.clear();
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(self);
        }
    }

    /// Whether both arrays are all zero (a full scan, for tests).
    #[cfg(test)]
    pub(crate) fn is_zero(&self) -> bool {
        self.kinds.iter().chain(self.states.iter()).all(|&b| b == 0)
            && self.dirty.is_clear()
            && self.filled.is_clear()
    }
}

/// Whether arrays written over `ranges` are worth zeroing and keeping.
fn recyclable(ranges: &[(u32, u32)]) -> bool {
    let pages: u64 = ranges.iter().map(|&(s, e)| u64::from(e - s)).sum();
    pages <= RECYCLE_MAX_PAGES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_set_lists_members_and_runs_in_order_and_clears() {
        let mut d = PageSet::new();
        assert!(d.is_empty());
        for p in [PAGES - 1, 0, 63, 64, 4096, 4095, 64, 1] {
            d.insert(p);
        }
        d.insert(PAGES); // out of range: ignored
        assert!(!d.is_empty());
        let mut got = Vec::new();
        d.for_each(|p| got.push(p));
        assert_eq!(got, [0, 1, 63, 64, 4095, 4096, PAGES - 1]);
        let mut runs = Vec::new();
        d.for_each_run(|p, n| runs.push((p, n)));
        assert_eq!(runs, [(0, 2), (63, 2), (4095, 2), (PAGES - 1, 1)]);
        d.clear();
        assert!(d.is_empty() && d.is_clear());
        let mut n = 0;
        d.for_each(|_| n += 1);
        d.for_each_run(|_, _| n += 1);
        assert_eq!(n, 0);
        // Removing keeps the others, and an emptied word leaves no trace.
        for p in [7, 8, 9, 70] {
            d.insert(p);
        }
        d.remove(8);
        d.remove(70);
        d.remove(PAGES + 3);
        let mut got = Vec::new();
        d.for_each(|p| got.push(p));
        assert_eq!(got, [7, 9]);
        d.remove(7);
        d.remove(9);
        assert!(d.is_clear());
        d.clear();
        // Bounds are kept after a clear.
        d.insert(5000);
        let mut got = Vec::new();
        d.for_each(|p| got.push(p));
        assert_eq!(got, [5000]);
    }

    #[test]
    fn a_released_pair_comes_back_zeroed() {
        let mut a = Arrays::acquire().unwrap();
        a.kinds[10..20].fill(3);
        a.states[12..14].fill(2);
        a.kinds[PAGES - 1] = 1;
        a.states[PAGES - 1] = 1;
        a.dirty.insert(12);
        a.dirty.insert(PAGES - 1);
        a.filled.insert(12);
        a.filled.insert(PAGES - 1);
        a.release(&[(10, 20), (PAGES as u32 - 1, PAGES as u32)]);
        // Other tests may hold or release pairs concurrently: whatever we get is zero.
        for _ in 0..4 {
            assert!(Arrays::acquire().unwrap().is_zero());
        }
    }

    #[test]
    fn only_maps_up_to_the_limit_are_recycled() {
        let limit = RECYCLE_MAX_PAGES as u32;
        assert!(recyclable(&[]));
        assert!(recyclable(&[(0, limit / 2), (limit, limit + limit / 2)]));
        assert!(!recyclable(&[
            (0, limit / 2),
            (limit, limit + limit / 2 + 1)
        ]));
        assert!(!recyclable(&[(0, PAGES as u32)]));
    }

    #[test]
    fn large_maps_are_not_recycled() {
        let mut a = Arrays::acquire().unwrap();
        a.kinds.fill(1);
        // Claims a range too large to recycle: the pair is unmapped, so no acquire
        // may ever see its bytes.
        a.release(&[(0, PAGES as u32)]);
        for _ in 0..(POOL_MAX + 1) {
            assert!(Arrays::acquire().unwrap().is_zero());
        }
    }
}
