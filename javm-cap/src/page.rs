//! One 4 KiB page of content, in a 4 KiB-aligned slab, shared by reference count.
//!
//! Memory layouts hold their initial contents as [`PageRef`]s. Engines materialize a
//! page from its slab on first touch (the interpreter copies it into its flat memory;
//! the recompiler will copy or map it into the guest window), so building an instance
//! never copies page contents. The alignment is part of the type: [`AlignedPage`] is
//! `#[repr(align(4096))]`, so every slab — including clones — starts on a page boundary,
//! with no `unsafe` allocation code.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::hash::{CapHash, ZERO_HASH, sha256};

/// PVM page size in bytes.
pub const PAGE_SIZE: usize = 4096;

/// Exactly one page of bytes, aligned to a page boundary.
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(4096))]
pub struct AlignedPage(pub [u8; PAGE_SIZE]);

/// The all-zero page: what [`PageBytes::bytes`] would show for a page whose slab is
/// gone, which happens only while it is being dropped.
static ZERO_PAGE: AlignedPage = AlignedPage([0; PAGE_SIZE]);

/// Slabs a thread keeps from dropped pages for the next pages it builds.
const SPARE_SLABS: usize = 64;

thread_local! {
    /// Slabs of pages dropped on this thread, each with the length of the content
    /// it last held (past which it is zero), reused by [`PageBytes::from_content`]:
    /// building a memory layout for each run then needs no allocation per page. A
    /// page-aligned allocation and its release are the C allocator's slow path
    /// (each consolidates its free lists).
    static SPARE: RefCell<Vec<(Box<AlignedPage>, usize)>> = const { RefCell::new(Vec::new()) };
}

/// A page's bytes plus its content hash (SHA-256 of the 4 KiB page), computed the
/// first time it is asked for: building a memory layout to run a program never
/// needs it, and hashing a page costs far more than copying it.
///
/// The all-zero page hashes to [`ZERO_HASH`] (the canonical `Empty` page of
/// docs/CAPS.md), so a zero page built explicitly and an absent page hash alike.
#[derive(Clone)]
pub struct PageBytes {
    /// The content hash, once computed (set at construction for the zero page).
    hash: OnceLock<CapHash>,
    /// Whether every byte is zero (known from construction).
    zero: bool,
    /// The slab; `None` only inside `drop`, which hands it to the thread's spares.
    bytes: Option<Box<AlignedPage>>,
    /// Bytes from the slab's start that may be non-zero (the content's length):
    /// the rest is zero, so a reused slab needs zeroing only up to here.
    len: usize,
}

/// Refcounted handle to a [`PageBytes`]; cloning it shares the slab.
pub type PageRef = Arc<PageBytes>;

impl PageBytes {
    /// Build a page from up to [`PAGE_SIZE`] content bytes (the tail is zero-filled).
    ///
    /// Returns `None` if `content` is longer than a page.
    pub fn from_content(content: &[u8]) -> Option<Self> {
        if content.len() > PAGE_SIZE {
            return None;
        }
        let spare = SPARE
            .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
            .ok()
            .flatten();
        // A fresh slab is zero; a reused one is zero past its last content.
        let (mut bytes, stale) =
            spare.unwrap_or_else(|| (Box::new(AlignedPage([0u8; PAGE_SIZE])), 0));
        let len = content.len();
        let (head, tail) = bytes.0.split_at_mut(len);
        head.copy_from_slice(content);
        if let Some(old) = tail.get_mut(..stale.saturating_sub(len)) {
            // Most pages hold a few bytes of data at their start: zeroing the whole
            // tail of every reused slab was most of the memory a small program's
            // layout wrote.
            old.fill(0);
        }
        let zero = content.iter().all(|&b| b == 0);
        let hash = OnceLock::new();
        if zero {
            let _ = hash.set(ZERO_HASH);
        }
        Some(PageBytes {
            hash,
            zero,
            bytes: Some(bytes),
            len,
        })
    }

    /// The page's content hash (computed on the first call).
    pub fn hash(&self) -> &CapHash {
        self.hash.get_or_init(|| sha256(&self.slab().0))
    }

    /// The page's 4096 bytes. The slice always starts on a 4 KiB boundary.
    pub fn bytes(&self) -> &[u8; PAGE_SIZE] {
        &self.slab().0
    }

    fn slab(&self) -> &AlignedPage {
        self.bytes.as_deref().unwrap_or(&ZERO_PAGE)
    }

    /// Whether every byte of the page is zero.
    pub fn is_zero(&self) -> bool {
        self.zero
    }
}

/// A dropped page's slab joins the thread's spares (up to 64 slabs per thread).
impl Drop for PageBytes {
    fn drop(&mut self) {
        if let Some(slab) = self.bytes.take() {
            // During thread teardown the spares may be gone; the slab is then freed.
            let _ = SPARE.try_with(|s| {
                if let Ok(mut s) = s.try_borrow_mut()
                    && s.len() < SPARE_SLABS
                {
                    s.push((slab, self.len));
                }
            });
        }
    }
}

/// Pages are equal when their bytes are (and then so are their hashes).
impl PartialEq for PageBytes {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for PageBytes {}

impl fmt::Debug for PageBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageBytes(")?;
        for b in &self.hash()[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slab_holds_only_the_new_content() {
        let old = PageBytes::from_content(&[0xAB; PAGE_SIZE]).unwrap();
        let at = old.bytes().as_ptr();
        drop(old);
        let p = PageBytes::from_content(&[1, 2]).unwrap();
        assert_eq!(p.bytes().as_ptr(), at, "the dropped page's slab is reused");
        assert_eq!(p.bytes()[..2], [1, 2]);
        assert!(
            p.bytes()[2..].iter().all(|&b| b == 0),
            "no byte of the old page is left"
        );
        assert_eq!(p.hash(), PageBytes::from_content(&[1, 2]).unwrap().hash());
        drop(p);
        let z = PageBytes::from_content(&[]).unwrap();
        assert!(z.is_zero() && z.bytes().iter().all(|&b| b == 0));
        assert_eq!(z.bytes().as_ptr() as usize % PAGE_SIZE, 0);
    }

    #[test]
    fn a_slab_reused_again_and_again_holds_only_its_newest_content() {
        // Long, then short, then empty, then long again: each reuse must clear what
        // the slab's previous content left past the new one.
        let mut at = None;
        for (n, fill) in [
            (3000, 0xCD),
            (10, 0x11),
            (0, 0),
            (100, 0x22),
            (4096, 0x33),
            (1, 0x44),
        ] {
            let p = PageBytes::from_content(&vec![fill; n]).unwrap();
            let slab = p.bytes().as_ptr();
            assert_eq!(*at.get_or_insert(slab), slab, "the same slab is reused");
            assert!(
                p.bytes()[..n].iter().all(|&b| b == fill),
                "content of {n} bytes"
            );
            assert!(
                p.bytes()[n..].iter().all(|&b| b == 0),
                "nothing of an earlier content is left past {n} bytes"
            );
            let mut want = [0u8; PAGE_SIZE];
            want[..n].fill(fill);
            let hash = if p.is_zero() {
                ZERO_HASH
            } else {
                sha256(&want)
            };
            assert_eq!(p.hash(), &hash);
        }
    }

    #[test]
    fn slabs_are_page_aligned_including_clones() {
        let p = PageBytes::from_content(&[1, 2, 3]).unwrap();
        assert_eq!(p.bytes().as_ptr() as usize % PAGE_SIZE, 0);
        let q = p.clone();
        assert_eq!(q.bytes().as_ptr() as usize % PAGE_SIZE, 0);
        assert_eq!(p, q);
    }

    #[test]
    fn equality_does_not_depend_on_whether_the_hash_was_computed() {
        let p = PageBytes::from_content(&[7, 8]).unwrap();
        let q = p.clone();
        let _ = p.hash();
        assert_eq!(p, q);
        assert_eq!(p.hash(), q.hash());
        assert_ne!(p, PageBytes::from_content(&[7, 9]).unwrap());
        assert!(!p.is_zero());
    }

    #[test]
    fn tail_is_zero_filled_and_hash_covers_the_whole_page() {
        let p = PageBytes::from_content(&[9]).unwrap();
        assert_eq!(p.bytes()[0], 9);
        assert!(p.bytes()[1..].iter().all(|&b| b == 0));
        let mut full = [0u8; PAGE_SIZE];
        full[0] = 9;
        assert_eq!(p.hash(), &sha256(&full));
    }

    #[test]
    fn zero_page_has_zero_hash() {
        let p = PageBytes::from_content(&[]).unwrap();
        assert!(p.is_zero());
        assert_eq!(p.hash(), &ZERO_HASH);
    }

    #[test]
    fn oversized_content_is_rejected() {
        assert!(PageBytes::from_content(&[0u8; PAGE_SIZE + 1]).is_none());
    }
}
