//! Blocks of several stores through one base register (the recompiler checks them as
//! a group, `javm-jit-x86/src/codegen/stores.rs`), against the interpreter: bases
//! near page boundaries and near 2^32, pages written, read-only, pinned or unmapped,
//! the base changed between stores, a second base (two clusters, or one where their
//! groups overlap), divisions and rotates through RCX that end groups (so copies
//! return to the inline code mid-block), faults and host actions mid-block. Every exit,
//! register, gas value, page state and byte is compared by the differential oracle.

#![cfg(jit)]

use std::sync::Arc;

use differential_tests::jit;
use differential_tests::oracle::{Case, compare};
use javm_exec::asm::assemble;
use javm_exec::{GasProfile, Interpreter, MemoryLayout, PageKind};
use proptest::prelude::*;

const BASE: u32 = 0x20000;

/// Page kinds for the four pages from `BASE` (`None`: unmapped).
fn kinds() -> impl Strategy<Value = [Option<PageKind>; 4]> {
    let kind = prop_oneof![
        3 => Just(Some(PageKind::EphemeralZero)),
        2 => Just(Some(PageKind::UnpinnedCapCow)),
        1 => Just(Some(PageKind::PinnedCapRo)),
        1 => Just(None),
    ];
    [kind.clone(), kind.clone(), kind.clone(), kind]
}

/// One instruction of the block under test.
fn item() -> impl Strategy<Value = String> {
    let width = prop_oneof![Just("u8"), Just("u16"), Just("u32"), Just("u64")];
    let off = prop_oneof![-16i32..48, 4040i32..4120, -4100i32..-4080];
    let (width2, off2) = (width.clone(), off.clone());
    prop_oneof![
        6 => (width.clone(), off.clone()).prop_map(|(w, x)| format!("store_ind_{w} r3, r2, {x}")),
        2 => (width.clone(), off.clone(), any::<i8>())
            .prop_map(|(w, x, y)| format!("store_imm_ind_{w} r2, {x}, {y}")),
        2 => (width, off.clone()).prop_map(|(w, x)| format!("load_ind_{w} r4, r2, {x}")),
        1 => (-16i32..16).prop_map(|x| format!("add_imm_64 r2, r2, {x}")),
        1 => off.prop_map(|x| format!("load_ind_u64 r2, r5, {x}")),
        1 => Just("add_64 r3, r3, r4".to_string()),
        2 => (width2, off2).prop_map(|(w, x)| format!("store_ind_{w} r3, r7, {x}")),
        1 => Just("div_u_64 r8, r3, r6".to_string()),
        1 => Just("rot_r_64 r8, r3, r4".to_string()),
    ]
}

fn case(
    kinds: [Option<PageKind>; 4],
    prewrite: Vec<u8>,
    items: Vec<String>,
    base: u32,
    top: bool,
    profile: GasProfile,
) -> Case {
    let start = if top { 0xFFFF_C000 } else { BASE };
    let mut layout = MemoryLayout::new();
    for (i, k) in kinds.iter().enumerate() {
        if let Some(k) = *k {
            let page = start + (i as u32) * 4096;
            let bytes: Vec<u8> = (0..64).map(|b| b as u8 ^ i as u8).collect();
            layout
                .add_region(
                    u64::from(page),
                    4096,
                    k,
                    if k == PageKind::EphemeralZero {
                        &[]
                    } else {
                        &bytes
                    },
                )
                .unwrap();
        }
    }
    // Write some pages first (through their own stores), then loop the block
    // twice so its second run meets the pages its first run wrote.
    let mut src = String::new();
    for p in prewrite {
        let p = u32::from(p % 4);
        src += &format!("store_imm_u8 {}, 1\n", start + p * 4096 + 100);
    }
    src += "load_imm r6, 2\nfallthrough\nloop:\n";
    for i in &items {
        src += i;
        src += "\n";
    }
    src += "add_imm_64 r6, r6, -1\nbranch_ne_imm r6, 0, loop\ntrap\n";
    let program = Arc::new(assemble(&src).unwrap().program().unwrap());
    let mut regs = [0u64; 13];
    regs[2] = u64::from(start.wrapping_add(base));
    regs[3] = 0x0102_0304_0506_0708;
    regs[5] = u64::from(start);
    regs[7] = u64::from(start.wrapping_add(base).wrapping_add(24));
    Case {
        program,
        layout: Arc::new(layout),
        regs,
        pc: 0,
        gas: 1 << 30,
        profile,
        host_seed: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]
    #[test]
    fn store_groups_agree_with_the_interpreter(
        kinds in kinds(),
        prewrite in proptest::collection::vec(any::<u8>(), 0..4),
        items in proptest::collection::vec(item(), 3..16),
        base in prop_oneof![0u32..64, 4080u32..4112, 8160u32..8200, 16300u32..16400],
        top in proptest::bool::weighted(0.2),
        gp in any::<bool>(),
    ) {
        let profile = if gp { GasProfile::Gp } else { GasProfile::Jar1 };
        let c = case(kinds, prewrite, items, base, top, profile);
        if let Err(d) = compare(&Interpreter::new(), jit(), &c) {
            panic!("divergence: {}\n{}", d.what, d.localized);
        }
    }
}

/// A group that fills a frame up to the last byte of a written page whose next page
/// is not writable (a stack frame at the top of the stack, below the arguments): its
/// last granule is `SHADOW_IN_PAGE`, which the group check accepts for the last
/// byte; one byte further, the last store crosses into the next page, which must
/// fault if it is read-only, or be written through the run loop (charged, its state
/// changed) if it is a zero page not yet written — in the same materialization unit,
/// so its protection would not stop a store the check let through. Widths and the
/// frame's alignment vary.
#[test]
fn a_group_may_end_at_the_last_byte_below_a_page_not_writable() {
    let zero = Some(PageKind::EphemeralZero);
    let mut cases = 0;
    for next in [Some(PageKind::PinnedCapRo), zero] {
        // The frame's page is written before the block.
        cases += group_below([zero, zero, next, None], vec![1]);
    }
    assert_eq!(cases, 96);
}

/// The cases of [`a_group_may_end_at_the_last_byte_below_a_page_not_writable`] for
/// one page layout; returns how many ran.
fn group_below(kinds: [Option<PageKind>; 4], prewrite: Vec<u8>) -> usize {
    let mut cases = 0;
    for (width, w) in [("u8", 1), ("u16", 2), ("u32", 4), ("u64", 8)] {
        for shift in [0i32, 1, 3] {
            for past in [0i32, 1] {
                // Offsets from r2 = BASE + 8192 - 296 - shift: the last store's last
                // byte is BASE + 8191 + past.
                let last = 296 + shift - w + past;
                let items = vec![
                    format!("store_ind_{width} r3, r2, {last}"),
                    format!("store_ind_{width} r3, r2, {}", last - 8),
                    format!("store_imm_ind_{width} r2, 64, 5"),
                    format!("store_ind_{width} r3, r2, 128"),
                ];
                for profile in [GasProfile::Jar1, GasProfile::Gp] {
                    let base = 8192 - 296 - shift as u32;
                    let c = case(kinds, prewrite.clone(), items.clone(), base, false, profile);
                    if let Err(d) = compare(&Interpreter::new(), jit(), &c) {
                        panic!(
                            "divergence ({kinds:?}, {items:?}): {}\n{}",
                            d.what, d.localized
                        );
                    }
                    cases += 1;
                }
            }
        }
    }
    cases
}
