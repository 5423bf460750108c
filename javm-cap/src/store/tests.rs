//! Store tests run against both stores through the same functions.

use super::*;
use crate::cap::{CNodeCap, CapHashOrRef, DataCap, InstanceCap, SlotIdx};

fn stores() -> Vec<(Box<dyn CapStore>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(dir.path()).unwrap();
    vec![
        (Box::new(MemStore::new()), None),
        (Box::new(redb), Some(dir)),
    ]
}

fn data(seed: u8, pages: usize) -> Cap {
    let bytes: Vec<u8> = (0..pages * PAGE_SIZE)
        .map(|i| (i as u8) ^ seed ^ ((i / PAGE_SIZE) as u8).wrapping_mul(31))
        .collect();
    Cap::Data(DataCap::from_bytes(&bytes).unwrap())
}

#[test]
fn put_get_round_trips_and_dedups_pages() {
    for (s, _dir) in stores() {
        let a = data(1, 3);
        let b = data(1, 3);
        let hs = s.put_caps(&[&a, &b]).unwrap();
        assert_eq!(hs[0], hs[1]);
        assert_eq!(s.get_cap(&hs[0]).unwrap().unwrap(), a);
        assert_eq!(s.counts().unwrap()[&Table::Pages], 3);
        assert_eq!(s.get_cap(&[9; 32]).unwrap(), None);
    }
}

#[test]
fn corrupt_records_are_reported_by_hash() {
    let s = MemStore::new();
    let d = data(2, 2);
    let cn = Cap::Data(DataCap::from_pages(vec![PageSlot::Missing([0xAB; 32])]).unwrap());
    let h = s.put_caps(&[&d, &cn]).unwrap();
    let page = *d.page_slots().next().unwrap().hash();
    let mut bytes = s.read(Table::Pages, &page).unwrap().unwrap();
    bytes[100] ^= 1;
    s.poke(Table::Pages, page, bytes);
    let err = s.get_cap(&h[0]).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { hash, .. } if hash == page),
        "{err}"
    );
    let mut rec = s.read(Table::Caps, &h[1]).unwrap().unwrap();
    let at = rec.windows(32).position(|w| w == [0xAB; 32]).unwrap();
    rec[at + 5] ^= 0x40;
    s.poke(Table::Caps, h[1], rec);
    assert!(s.get_cap(&h[1]).is_err());
    let report = s.verify().unwrap();
    let bad: Vec<_> = report.corrupt.iter().map(|c| c.1).collect();
    assert_eq!(bad, vec![h[1], page]);
}

#[test]
fn gc_keeps_what_roots_reach() {
    for (s, _dir) in stores() {
        let d = data(3, 2);
        let dh = cap_hash(&d).unwrap();
        let mut cn = CNodeCap::new(8).unwrap();
        cn.set(SlotIdx(1), Some(CapHashOrRef::Hash(dh))).unwrap();
        let cn = Cap::CNode(cn);
        let junk = data(4, 1);
        let h = s.put_caps(&[&d, &cn, &junk]).unwrap();
        let r = s.gc(&[h[1]]).unwrap();
        assert_eq!(
            (r.kept_caps, r.removed_caps, r.kept_pages, r.removed_pages),
            (2, 1, 2, 1)
        );
        assert!(s.get_cap(&h[0]).unwrap().is_some());
        assert!(s.get_cap(&h[2]).unwrap().is_none());
        assert!(matches!(s.gc(&[[7; 32]]), Err(StoreError::NotFound(_))));
        assert_eq!(
            s.counts().unwrap()[&Table::Caps],
            2,
            "a failed gc removes nothing"
        );
    }
}

#[test]
fn refs_cannot_be_stored() {
    let cache = crate::CacheDirectory::new();
    let r = cache.put_instance(data(5, 1));
    let inst = Cap::Instance(InstanceCap::fresh([1; 32], CapHashOrRef::Ref(r), 0).unwrap());
    let s = MemStore::new();
    assert!(matches!(
        s.put_caps(&[&inst]),
        Err(StoreError::Cap(CapError::UnsettledRef(_)))
    ));
    assert_eq!(s.counts().unwrap()[&Table::Caps], 0);
}

#[test]
fn redb_store_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let d = data(6, 4);
    let h = {
        let s = RedbStore::open(dir.path()).unwrap();
        s.put_caps(&[&d]).unwrap()[0]
    };
    let s = RedbStore::open(dir.path()).unwrap();
    assert_eq!(s.get_cap(&h).unwrap().unwrap(), d);
    assert_eq!(s.verify().unwrap().corrupt, vec![]);
}
