//! Canonical encoding, hashing and the rkyv wire form, over generated caps.

use std::sync::Arc;

use javm_cap::wire::{PageMode, decode_bundle, decode_cap, encode_bundle, encode_cap};
use javm_cap::{
    CNodeCap, CNodeSlot, CacheDirectory, Cap, CapError, CapHashOrRef, DataCap, Endpoint, ImageCap,
    ImageParts, InstanceCap, MemoryMapping, PAGE_SIZE, PageSlot, SlotHash, SlotIdx, SlotPath,
    ZERO_HASH, canonical_bytes, cap_hash, hash::hex,
};
use proptest::prelude::*;

fn page_slot() -> impl Strategy<Value = PageSlot> {
    prop_oneof![
        Just(PageSlot::Empty),
        (any::<u8>(), 1..PAGE_SIZE)
            .prop_map(|(b, n)| PageSlot::from_content(&vec![b | 1; n]).unwrap()),
        any::<[u8; 32]>().prop_map(PageSlot::Missing),
    ]
}

fn data() -> impl Strategy<Value = DataCap> {
    prop::collection::vec(page_slot(), 0..6).prop_map(|p| DataCap::from_pages(p).unwrap())
}

fn cnode() -> impl Strategy<Value = CNodeCap> {
    (
        0u8..=16,
        prop::collection::vec((any::<u32>(), any::<bool>(), any::<[u8; 32]>()), 0..8),
    )
        .prop_map(|(size_log, slots)| {
            let mut c = CNodeCap::new(size_log).unwrap();
            for (i, missing, h) in slots {
                let slot = if missing {
                    CNodeSlot::Missing(h)
                } else {
                    CNodeSlot::Materialized(CapHashOrRef::Hash(h))
                };
                c.set_slot(SlotIdx(i % c.capacity()), Some(slot)).unwrap();
            }
            c
        })
}

fn image() -> impl Strategy<Value = ImageCap> {
    (
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(any::<u32>(), 0..4),
        prop::collection::vec((0usize..64, any::<u32>(), any::<[u64; 13]>()), 0..4),
        prop::collection::vec((0u32..16, 1u64..4, 0u8..3), 0..5),
        any::<Option<u8>>(),
    )
        .prop_map(|(code, jump_table, eps, maps, yield_slot)| {
            let starts: Vec<bool> = code.iter().map(|b| b % 3 == 0).collect();
            let mut endpoints: Vec<(usize, Endpoint)> = Vec::new();
            for (i, pc, regs) in eps {
                if !endpoints.iter().any(|e| e.0 == i) {
                    endpoints.push((i, Endpoint { entry_pc: pc, regs }));
                }
            }
            let pinned = vec![SlotHash {
                slot: SlotIdx(1),
                hash: [1; 32],
            }];
            let initial = vec![SlotHash {
                slot: SlotIdx(2),
                hash: [2; 32],
            }];
            let mappings = maps
                .into_iter()
                .enumerate()
                .map(|(k, (gap, pages, src))| MemoryMapping {
                    start: (k as u64 * 64 + u64::from(gap)) * 0x1000,
                    size: pages * 0x1000,
                    source: match src {
                        0 => None,
                        1 => Some(SlotPath::slot(SlotIdx(1))),
                        _ => Some(SlotPath::new(vec![SlotIdx(2), SlotIdx(7)]).unwrap()),
                    },
                })
                .collect();
            ImageCap::new(ImageParts {
                bitmask: javm_cap::cap::pack_bitmask(starts),
                code,
                jump_table,
                endpoints,
                mappings,
                pinned,
                initial,
                yield_marker_slot: yield_slot.map(|s| SlotIdx(s.into())),
            })
            .unwrap()
        })
}

fn instance() -> impl Strategy<Value = InstanceCap> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        prop::collection::btree_map(0u32..64, page_slot(), 0..5),
        any::<[u64; 13]>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(chain, image, root, pages, regs, pc, gas)| {
            let overlays =
                InstanceCap::overlays_from_pages(pages.into_iter().map(|(p, s)| (p * 0x1000, s)))
                    .unwrap();
            InstanceCap::new(
                chain,
                image,
                CapHashOrRef::Hash(root),
                overlays,
                64 * 0x1000,
                regs,
                pc,
                gas,
            )
            .unwrap()
        })
}

fn cap() -> impl Strategy<Value = Cap> {
    prop_oneof![
        instance().prop_map(Cap::Instance),
        image().prop_map(Cap::Image),
        data().prop_map(Cap::Data),
        cnode().prop_map(Cap::CNode),
    ]
}

/// Every `Loaded` page replaced by `Missing` of its hash.
fn unloaded(cap: &Cap) -> Cap {
    decode_cap(&encode_cap(cap, PageMode::HashOnly).unwrap()).unwrap()
}

fn assert_pages_aligned(cap: &Cap) {
    for p in cap.page_slots() {
        if let Some(page) = p.page() {
            assert_eq!(page.bytes().as_ptr() as usize % PAGE_SIZE, 0);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn wire_round_trips_every_variant(c in cap()) {
        let back = decode_cap(&encode_cap(&c, PageMode::Inline).unwrap()).unwrap();
        prop_assert_eq!(&back, &c);
        prop_assert_eq!(cap_hash(&back).unwrap(), cap_hash(&c).unwrap());
        assert_pages_aligned(&back);
        assert_pages_aligned(&c.clone());
    }

    #[test]
    fn unloading_pages_keeps_the_hash(c in cap()) {
        let u = unloaded(&c);
        prop_assert_eq!(cap_hash(&u).unwrap(), cap_hash(&c).unwrap());
        prop_assert!(u.page_slots().all(|p| p.page().is_none()));
    }

    #[test]
    fn canonical_bytes_are_injective_on_samples(a in cap(), b in cap()) {
        let (ea, eb) = (canonical_bytes(&a).unwrap(), canonical_bytes(&b).unwrap());
        prop_assert_eq!(ea == eb, unloaded(&a) == unloaded(&b));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_cap(&bytes);
        let _ = decode_bundle(&bytes);
        let mut b = javm_cap::wire::BUNDLE_MAGIC.to_vec();
        b.extend_from_slice(&bytes);
        let _ = decode_bundle(&b);
    }

    #[test]
    fn truncated_and_flipped_encodings_are_errors_or_valid_caps(
        c in cap(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let bytes = encode_cap(&c, PageMode::Inline).unwrap();
        let n = cut.index(bytes.len());
        prop_assert!(decode_cap(&bytes[..n]).is_err(), "a strict prefix must not decode");
        let mut f = bytes.clone();
        let at = flip.index(f.len());
        f[at] ^= 1 << bit;
        // A flip either fails validation or yields some valid cap; it never panics.
        if let Ok(d) = decode_cap(&f) {
            prop_assert!(cap_hash(&d).is_ok());
        }
    }
}

#[test]
fn substitution_invariant() {
    let page = PageSlot::from_content(b"some bytes").unwrap();
    let h = *page.hash();
    let loaded = Cap::Data(DataCap::from_pages(vec![page.clone(), PageSlot::Empty]).unwrap());
    let missing =
        Cap::Data(DataCap::from_pages(vec![PageSlot::Missing(h), PageSlot::Empty]).unwrap());
    let zeros = Cap::Data(DataCap::from_pages(vec![page, PageSlot::Missing(ZERO_HASH)]).unwrap());
    assert_eq!(cap_hash(&loaded).unwrap(), cap_hash(&missing).unwrap());
    assert_eq!(
        cap_hash(&loaded).unwrap(),
        cap_hash(&zeros).unwrap(),
        "Empty is 32 zero bytes"
    );
    let explicit_zero = PageSlot::Loaded(Arc::new(javm_cap::PageBytes::from_content(&[]).unwrap()));
    assert_eq!(explicit_zero.hash(), &ZERO_HASH);

    let mut a = CNodeCap::new(8).unwrap();
    a.set(SlotIdx(4), Some(CapHashOrRef::Hash([9; 32])))
        .unwrap();
    let mut b = CNodeCap::new(8).unwrap();
    b.set_slot(SlotIdx(4), Some(CNodeSlot::Missing([9; 32])))
        .unwrap();
    assert_eq!(
        cap_hash(&Cap::CNode(a)).unwrap(),
        cap_hash(&Cap::CNode(b)).unwrap()
    );
}

#[test]
fn refs_have_no_hash_and_no_encoding() {
    let cache = CacheDirectory::new();
    let r = cache.put_instance(Cap::CNode(CNodeCap::new(1).unwrap()));
    let mut c = CNodeCap::new(8).unwrap();
    c.set(SlotIdx(0), Some(CapHashOrRef::Ref(r.clone())))
        .unwrap();
    let c = Cap::CNode(c);
    assert!(matches!(cap_hash(&c), Err(CapError::UnsettledRef(_))));
    assert!(matches!(
        canonical_bytes(&c),
        Err(CapError::UnsettledRef(_))
    ));
    assert!(matches!(
        encode_cap(&c, PageMode::Inline),
        Err(CapError::UnsettledRef(_))
    ));
    let i = Cap::Instance(InstanceCap::fresh([0; 32], CapHashOrRef::Ref(r), 0).unwrap());
    assert!(matches!(cap_hash(&i), Err(CapError::UnsettledRef(_))));
}

#[test]
fn bundles_round_trip_and_reject_other_files() {
    let caps = vec![
        Cap::Data(DataCap::from_bytes(b"abc").unwrap()),
        Cap::CNode(CNodeCap::new(3).unwrap()),
    ];
    assert_eq!(decode_bundle(&encode_bundle(&caps).unwrap()).unwrap(), caps);
    assert_eq!(
        decode_bundle(b"not a bundle"),
        Err(javm_cap::WireError::BadMagic)
    );
}

/// One fixed cap of each variant; their hashes are pinned below, so any change to the
/// canonical encoding (docs/CAPS.md) fails here.
fn golden() -> Vec<(&'static str, Cap)> {
    let data = DataCap::from_pages(vec![
        PageSlot::from_content(b"JAVM").unwrap(),
        PageSlot::Empty,
        PageSlot::Missing([0x11; 32]),
    ])
    .unwrap();
    let mut cnode = CNodeCap::new(8).unwrap();
    cnode
        .set(SlotIdx(1), Some(CapHashOrRef::Hash([0x22; 32])))
        .unwrap();
    cnode
        .set_slot(SlotIdx(200), Some(CNodeSlot::Missing([0x33; 32])))
        .unwrap();
    let image = ImageCap::new(ImageParts {
        code: vec![0, 1, 10, 0],
        bitmask: vec![0b0111],
        jump_table: vec![1],
        endpoints: vec![(
            3,
            Endpoint::with_regs(2, &[(1, 0xFEFE_0000), (7, 5)]).unwrap(),
        )],
        mappings: vec![
            MemoryMapping {
                start: 0x10000,
                size: 0x1000,
                source: Some(SlotPath::slot(SlotIdx(1))),
            },
            MemoryMapping {
                start: 0x20000,
                size: 0x2000,
                source: Some(SlotPath::slot(SlotIdx(2))),
            },
            MemoryMapping {
                start: 0xFEFD_0000,
                size: 0x10000,
                source: None,
            },
        ],
        pinned: vec![SlotHash {
            slot: SlotIdx(1),
            hash: [0x44; 32],
        }],
        initial: vec![SlotHash {
            slot: SlotIdx(2),
            hash: [0x55; 32],
        }],
        yield_marker_slot: Some(SlotIdx(9)),
    })
    .unwrap();
    let overlays = InstanceCap::overlays_from_pages([
        (0x20000, PageSlot::from_content(b"dirty").unwrap()),
        (0x21000, PageSlot::Empty),
    ])
    .unwrap();
    let instance = InstanceCap::new(
        [0x66; 32],
        [0x77; 32],
        CapHashOrRef::Hash([0x88; 32]),
        overlays,
        0xFEFE_0000,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
        42,
        1000,
    )
    .unwrap();
    vec![
        ("data", Cap::Data(data)),
        ("cnode", Cap::CNode(cnode)),
        ("image", Cap::Image(image)),
        ("instance", Cap::Instance(instance)),
    ]
}

#[test]
fn golden_hashes() {
    let want = [
        (
            "data",
            "3c75b02991a5764a620bbb23932bfb1cd0b1d1194396c06d0df49f9656b4e682",
        ),
        (
            "cnode",
            "b60ccd212c46a9ed933990064f794fd4d9ab4609707a4755e8935f0d6f59cfc2",
        ),
        (
            "image",
            "d04842144615be79ff19a5fdd9f3231abf509ce1569a8870880b5ceeeb414dec",
        ),
        (
            "instance",
            "130ee716a7ae734b2e8ee5eab586a4f493bf0cdf645de7aa9bc18119401ec076",
        ),
    ];
    let got: Vec<(&str, String)> = golden()
        .iter()
        .map(|(n, c)| (*n, hex(&cap_hash(c).unwrap())))
        .collect();
    let want: Vec<(&str, String)> = want.iter().map(|(n, h)| (*n, h.to_string())).collect();
    assert_eq!(
        got, want,
        "a golden hash changed: the canonical encoding is not what docs/CAPS.md says"
    );
}

#[test]
fn golden_data_encoding_bytes() {
    // The canonical bytes of a two-page data cap, spelled out (docs/CAPS.md, "Data").
    let page = PageSlot::from_content(b"JAVM").unwrap();
    let cap = Cap::Data(DataCap::from_pages(vec![page.clone(), PageSlot::Empty]).unwrap());
    let mut want = vec![16u8];
    want.extend_from_slice(b"javm/cap/data/v1");
    want.extend_from_slice(&2u32.to_le_bytes());
    want.extend_from_slice(page.hash());
    want.extend_from_slice(&[0; 32]);
    assert_eq!(canonical_bytes(&cap).unwrap(), want);
    let mut full = [0u8; PAGE_SIZE];
    full[..4].copy_from_slice(b"JAVM");
    assert_eq!(
        page.hash(),
        &javm_cap::sha256(&full),
        "a page hashes as SHA-256 of its 4 KiB"
    );
}
