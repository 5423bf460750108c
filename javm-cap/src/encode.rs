//! The canonical encoding of every cap, and the cap hash: SHA-256 over it.
//!
//! `docs/CAPS.md` specifies these bytes so another implementation can reproduce every
//! hash. In short: a domain tag (`u8` length, then ASCII) names the variant; integers
//! are little-endian; every variable-length list is preceded by its `u32` count; a
//! reference to another cap or page is its 32-byte hash. Pages contribute only their
//! hash, so a `Loaded` page and a `Missing` page with the same hash encode alike, and
//! the `Empty` page encodes as 32 zero bytes. A working [`CapHashOrRef::Ref`] has no
//! encoding: it is a typed error.
//!
//! This is not the wire form (that is rkyv, [`crate::wire`]): the canonical encoding
//! is defined by hand so it never changes with a library version.

use sha2::{Digest, Sha256};

use crate::cap::{CNodeSlot, Cap, CapError, CapHashOrRef, ImageCap, InstanceCap};
use crate::hash::CapHash;

/// Domain tag of an instance.
pub const TAG_INSTANCE: &[u8] = b"javm/cap/instance/v1";
/// Domain tag of an image.
pub const TAG_IMAGE: &[u8] = b"javm/cap/image/v1";
/// Domain tag of a data cap.
pub const TAG_DATA: &[u8] = b"javm/cap/data/v1";
/// Domain tag of a cnode.
pub const TAG_CNODE: &[u8] = b"javm/cap/cnode/v1";

/// Where canonical bytes go: a buffer, or straight into SHA-256.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    fn count(&mut self, n: usize) {
        // Every list is bounded well below 2^32 by its constructor.
        self.u32(u32::try_from(n).expect("lists are bounded below 2^32"));
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

fn target(t: &CapHashOrRef) -> Result<&CapHash, CapError> {
    match t {
        CapHashOrRef::Hash(h) => Ok(h),
        CapHashOrRef::Ref(r) => Err(CapError::UnsettledRef(r.clone())),
    }
}

fn encode(cap: &Cap, s: &mut impl Sink) -> Result<(), CapError> {
    let tag = match cap {
        Cap::Instance(_) => TAG_INSTANCE,
        Cap::Image(_) => TAG_IMAGE,
        Cap::Data(_) => TAG_DATA,
        Cap::CNode(_) => TAG_CNODE,
    };
    // Check for references before writing anything, so a failed encode writes nothing.
    if cap.has_ref() {
        return Err(match cap {
            Cap::Instance(i) => target(i.root_cnode()).expect_err("has_ref"),
            Cap::CNode(c) => c
                .iter()
                .find_map(|(_, s)| match s {
                    CNodeSlot::Materialized(CapHashOrRef::Ref(r)) => {
                        Some(CapError::UnsettledRef(r.clone()))
                    }
                    _ => None,
                })
                .expect("has_ref"),
            Cap::Image(_) | Cap::Data(_) => unreachable!("images and data hold no refs"),
        });
    }
    s.u8(tag.len() as u8);
    s.put(tag);
    match cap {
        Cap::Instance(i) => instance(i, s),
        Cap::Image(img) => image(img, s),
        Cap::Data(d) => {
            s.count(d.pages().len());
            for p in d.pages() {
                s.put(p.hash());
            }
        }
        Cap::CNode(c) => {
            s.u8(c.size_log());
            s.count(c.occupied());
            for (idx, slot) in c.iter() {
                s.u32(idx.0);
                match slot {
                    CNodeSlot::Materialized(t) => s.put(target(t)?),
                    CNodeSlot::Missing(h) => s.put(h),
                }
            }
        }
    }
    Ok(())
}

fn instance(i: &InstanceCap, s: &mut impl Sink) {
    s.put(i.image_hash_chain());
    s.put(i.image_hash());
    s.put(target(i.root_cnode()).expect("checked by has_ref"));
    s.u64(i.mem_size());
    for r in i.regs() {
        s.u64(*r);
    }
    s.u32(i.pc());
    s.u64(i.gas_remaining());
    s.count(i.rw_overlays().len());
    for o in i.rw_overlays() {
        s.u32(o.start());
        s.count(o.pages().len());
        for p in o.pages() {
            s.put(p.hash());
        }
    }
}

fn image(img: &ImageCap, s: &mut impl Sink) {
    s.count(img.code().len());
    s.put(img.code());
    s.count(img.bitmask().len());
    s.put(img.bitmask());
    s.count(img.jump_table().len());
    for t in img.jump_table() {
        s.u32(*t);
    }
    for e in img.endpoints().iter() {
        s.u32(e.entry_pc);
        for r in &e.regs {
            s.u64(*r);
        }
    }
    s.count(img.mappings().len());
    for m in img.mappings() {
        s.u64(m.start);
        s.u64(m.size);
        let steps = m.source.as_ref().map_or(&[][..], |p| p.steps());
        s.u8(steps.len() as u8);
        for step in steps {
            s.u32(step.0);
        }
    }
    for list in [img.pinned(), img.initial()] {
        s.count(list.len());
        for e in list {
            s.u32(e.slot.0);
            s.put(&e.hash);
        }
    }
    match img.yield_marker_slot() {
        None => s.u8(0),
        Some(slot) => {
            s.u8(1);
            s.u32(slot.0);
        }
    }
}

/// The canonical bytes of `cap` (what [`cap_hash`] hashes).
pub fn canonical_bytes(cap: &Cap) -> Result<Vec<u8>, CapError> {
    let mut out = Vec::new();
    encode(cap, &mut out)?;
    Ok(out)
}

/// The cap's hash: SHA-256 of its canonical bytes. Fails with
/// [`CapError::UnsettledRef`] if the cap still holds a working reference.
pub fn cap_hash(cap: &Cap) -> Result<CapHash, CapError> {
    let mut h = Sha256::new();
    encode(cap, &mut h)?;
    Ok(h.finalize().into())
}
