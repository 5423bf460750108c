//! Data caps: paged bytes whose length is a multiple of 4 KiB.
//!
//! Pages are [`PageSlot`]s. Clones of a data cap share their [`PageRef`]s (copy on
//! write happens in the memory layer, never here), and a data cap's hash lists its
//! page hashes, so a page can be held (`Loaded`) or only known by hash (`Missing`)
//! without changing the hash: the substitution invariant.

use std::sync::Arc;

use super::CapError;
use crate::hash::{CapHash, ZERO_HASH};
use crate::page::{PAGE_SIZE, PageBytes, PageRef};

/// The largest data cap: 2^20 pages (the whole 4 GiB address space).
pub const MAX_DATA_PAGES: usize = 1 << 20;

/// One page of a data cap or an overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageSlot {
    /// The all-zero page. Hashes as 32 zero bytes.
    Empty,
    /// A page held in memory. Hashes as its content hash.
    Loaded(PageRef),
    /// A page known only by its content hash (not loaded). Hashes as that hash.
    Missing(CapHash),
}

impl PageSlot {
    /// The slot for `content` (up to one page; the tail is zero): `Empty` for an
    /// all-zero page, else `Loaded`.
    pub fn from_content(content: &[u8]) -> Option<Self> {
        let page = PageBytes::from_content(content)?;
        Some(Self::from_page(page))
    }

    /// The slot holding `page` (`Empty` when it is all zero).
    pub fn from_page(page: PageBytes) -> Self {
        if page.is_zero() {
            PageSlot::Empty
        } else {
            PageSlot::Loaded(Arc::new(page))
        }
    }

    /// The hash this slot contributes to its cap's hash.
    pub fn hash(&self) -> &CapHash {
        match self {
            PageSlot::Empty => &ZERO_HASH,
            PageSlot::Loaded(p) => p.hash(),
            PageSlot::Missing(h) => h,
        }
    }

    /// The page's bytes, if they are held (`Empty` reads as zeros: `None` here).
    pub fn page(&self) -> Option<&PageRef> {
        match self {
            PageSlot::Loaded(p) => Some(p),
            PageSlot::Empty | PageSlot::Missing(_) => None,
        }
    }
}

/// Paged bytes: `pages().len() × 4096` bytes of content.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataCap {
    pages: Vec<PageSlot>,
}

impl DataCap {
    /// A data cap of the given pages.
    pub fn from_pages(pages: Vec<PageSlot>) -> Result<Self, CapError> {
        if pages.len() > MAX_DATA_PAGES {
            return Err(CapError::TooLarge {
                what: "data cap pages",
                value: pages.len() as u64,
                limit: MAX_DATA_PAGES as u64,
            });
        }
        Ok(DataCap { pages })
    }

    /// `pages` all-zero pages (no page is allocated).
    pub fn zeros(pages: usize) -> Result<Self, CapError> {
        Self::from_pages(vec![PageSlot::Empty; pages])
    }

    /// A data cap holding `bytes`, zero-padded up to a page multiple (an empty input
    /// gives an empty cap). All-zero pages become `Empty`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CapError> {
        let n = bytes.len().div_ceil(PAGE_SIZE);
        if n > MAX_DATA_PAGES {
            return Err(CapError::TooLarge {
                what: "data cap pages",
                value: n as u64,
                limit: MAX_DATA_PAGES as u64,
            });
        }
        let pages = bytes
            .chunks(PAGE_SIZE)
            .map(|c| PageSlot::from_content(c).unwrap_or(PageSlot::Empty))
            .collect();
        Ok(DataCap { pages })
    }

    /// A data cap holding exactly `bytes`, whose length must be a page multiple.
    pub fn from_exact_bytes(bytes: &[u8]) -> Result<Self, CapError> {
        if !bytes.len().is_multiple_of(PAGE_SIZE) {
            return Err(CapError::DataLength(bytes.len()));
        }
        Self::from_bytes(bytes)
    }

    /// The pages.
    pub fn pages(&self) -> &[PageSlot] {
        &self.pages
    }

    /// Mutable pages, for the cache and store layers (loading `Missing` pages).
    pub(crate) fn pages_mut(&mut self) -> &mut [PageSlot] {
        &mut self.pages
    }

    /// Content length in bytes (a multiple of 4096).
    pub fn len(&self) -> u64 {
        self.pages.len() as u64 * PAGE_SIZE as u64
    }

    /// Whether the cap has no pages.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether every page is held or zero (no `Missing` page).
    pub fn is_complete(&self) -> bool {
        !self.pages.iter().any(|p| matches!(p, PageSlot::Missing(_)))
    }

    /// Copy `len` bytes from byte `offset` (clamped to the content). `Missing` pages
    /// read as `None`: the caller asked for bytes that are not held.
    pub fn read(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let end = (offset.saturating_add(len as u64)).min(self.len());
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let page = (at / PAGE_SIZE as u64) as usize;
            let in_page = (at % PAGE_SIZE as u64) as usize;
            let n = ((PAGE_SIZE - in_page) as u64).min(end - at) as usize;
            match &self.pages[page] {
                PageSlot::Empty => out.resize(out.len() + n, 0),
                PageSlot::Loaded(p) => out.extend_from_slice(&p.bytes()[in_page..in_page + n]),
                PageSlot::Missing(_) => return None,
            }
            at += n as u64;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_padded_and_zero_pages_are_empty() {
        let mut bytes = vec![0u8; PAGE_SIZE + 10];
        bytes[PAGE_SIZE + 3] = 7;
        let d = DataCap::from_bytes(&bytes).unwrap();
        assert_eq!(d.len(), 2 * PAGE_SIZE as u64);
        assert_eq!(d.pages()[0], PageSlot::Empty);
        assert!(matches!(d.pages()[1], PageSlot::Loaded(_)));
        assert_eq!(d.read(PAGE_SIZE as u64 + 2, 3).unwrap(), vec![0, 7, 0]);
        assert_eq!(d.read(2 * PAGE_SIZE as u64 - 1, 100).unwrap(), vec![0]);
    }

    #[test]
    fn clones_share_page_slabs() {
        let d = DataCap::from_bytes(&[1u8; 3 * PAGE_SIZE]).unwrap();
        let e = d.clone();
        for (a, b) in d.pages().iter().zip(e.pages()) {
            assert!(Arc::ptr_eq(a.page().unwrap(), b.page().unwrap()));
        }
    }

    #[test]
    fn exact_length_is_checked() {
        assert_eq!(
            DataCap::from_exact_bytes(&[1; 100]),
            Err(CapError::DataLength(100))
        );
        assert!(DataCap::from_exact_bytes(&[1; PAGE_SIZE]).is_ok());
    }

    #[test]
    fn size_limit_is_checked_before_allocating() {
        assert!(matches!(
            DataCap::zeros(MAX_DATA_PAGES + 1),
            Err(CapError::TooLarge { .. })
        ));
    }

    #[test]
    fn missing_pages_are_not_readable() {
        let d = DataCap::from_pages(vec![PageSlot::Missing([1; 32])]).unwrap();
        assert!(!d.is_complete());
        assert_eq!(d.read(0, 1), None);
    }
}
