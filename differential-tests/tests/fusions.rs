//! Runs of instructions both engines execute as one (`javm-exec/src/fuse.rs`:
//! rotates written as two shifts and an `or`/`xor`/`add_64`, zero extensions
//! written as two shifts, an `add_64` folded into the load that overwrites its sum)
//! against the interpreter executing every instruction on its own
//! (`Interpreter::without_fusion`): the patterns with every aliasing of their
//! registers, near misses that must not fuse, store groups around them, both
//! profiles, and execution that starts at every instruction of the program —
//! inside a run too, which the interpreter serves from the run's later slots and
//! the recompiler from the run's tail copy or from its block's checked copy.

use std::sync::Arc;

#[cfg(jit)]
use differential_tests::jit;
use differential_tests::oracle::{Case, compare};
use javm_exec::asm::assemble;
use javm_exec::{Engine, GasProfile, Instance, Interpreter, MemoryLayout, PageKind};

/// Where r2 points: a zero page the stores may write.
const BASE: u32 = 0x20000;
use proptest::prelude::*;

/// One item of a block: a rotate, a zero extension (either maybe broken), or filler.
fn item() -> impl Strategy<Value = String> {
    let reg = || 0u8..13;
    let combine = prop_oneof![Just("or"), Just("xor"), Just("add_64"), Just("and")];
    prop_oneof![
        // A rotate: x >> n and x << (64 − n), combined into d; `skew` breaks the
        // amounts sometimes, `swap` puts the left shift first.
        5 => (reg(), reg(), reg(), reg(), 1u8..64, combine, any::<bool>(), any::<bool>(), prop_oneof![4 => Just(0u8), 1 => 1u8..3])
            .prop_map(|(x, t, u, d, n, op, swap, flip, skew)| {
                let right = format!("shlo_r_imm_64 r{t}, r{x}, {n}");
                let left = format!("shlo_l_imm_64 r{u}, r{x}, {}", (64 - n + skew) % 64);
                let (a, b) = if flip { (t, u) } else { (u, t) };
                let (s1, s2) = if swap { (left, right) } else { (right, left) };
                format!("{s1}\n{s2}\n{op} r{d}, r{a}, r{b}")
            }),
        3 => (reg(), reg(), 1u8..64, prop_oneof![4 => Just(32u8), 1 => 30u8..34], any::<bool>())
            .prop_map(|(d, s, k, l, same)| {
                let e = if same { d } else { (d + 1) % 13 };
                format!("shlo_l_imm_64 r{d}, r{s}, {l}\nshlo_r_imm_64 r{e}, r{d}, {k}")
            }),
        2 => (reg(), reg(), any::<i32>()).prop_map(|(d, a, x)| format!("add_imm_64 r{d}, r{a}, {x}")),
        // Stores through r2 (the base, pointing at a writable page) form groups with
        // a checked copy, which then serves resumes inside later fused runs.
        3 => (reg(), 0i32..8).prop_map(|(v, o)| format!("store_ind_u64 r{v}, r2, {}", o * 8)),
        1 => (reg(), reg(), reg()).prop_map(|(d, a, b)| format!("xor r{d}, r{a}, r{b}")),
        // An `add_64` folded into the load that overwrites its sum: from r2 (the
        // writable page) plus a small index, so the load mostly succeeds (its first
        // touch retries after the fault handler materializes the page); from any two
        // registers, so it mostly faults (the handler then performs the sum); with a
        // destination other than the sum (a near miss, not folded).
        4 => (reg(), reg(), reg(), 0i32..4096, -8i32..4096, load(), 0u8..4)
            .prop_map(|(d, t, b, k, x, op, form)| match form {
                0 | 1 => {
                    let t = if t == 2 { 3 } else { t };
                    format!("load_imm r{t}, {k}\nadd_64 r{d}, r2, r{t}\nload_ind_{op} r{d}, r{d}, {}", x / 2)
                }
                2 => format!("add_64 r{d}, r{t}, r{b}\nload_ind_{op} r{d}, r{d}, {x}"),
                // An array index: zero-extended, scaled by 1..8 (sometimes not an
                // index shift: 28), added to r2 or to any register.
                3 if k % 3 != 0 => {
                    let k = 29 + k % 5;
                    let base = if x % 2 == 0 { 2 } else { t };
                    let add = if x % 4 < 2 { format!("r{base}, r{d}") } else { format!("r{d}, r{base}") };
                    // A small index (the load mostly succeeds), or whatever the
                    // register holds, upper half included (it mostly faults, and the
                    // handler's sum must zero-extend it).
                    let index = if k % 2 == 0 { format!("load_imm r{b}, {}\n", x % 512) } else { String::new() };
                    format!(
                        "{index}shlo_l_imm_64 r{d}, r{b}, 32\nshlo_r_imm_64 r{d}, r{d}, {k}\nadd_64 r{d}, {add}\nload_ind_{op} r{d}, r{d}, {}",
                        x / 8 - 8
                    )
                }
                _ => format!("add_64 r{d}, r{t}, r{b}\nload_ind_{op} r{}, r{d}, {x}", (d + 1) % 13),
            }),
    ]
}

/// The width and extension of a load.
fn load() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("u8"),
        Just("i8"),
        Just("u16"),
        Just("i16"),
        Just("u32"),
        Just("i32"),
        Just("u64")
    ]
}

fn program(items: &[String]) -> String {
    let mut src = String::from("load_imm r1, 2\nfallthrough\nloop:\n");
    for i in items {
        src += i;
        src += "\n";
    }
    // The loop counter may have been overwritten: leave after two rounds or when
    // it is not a small count any more.
    src += "add_imm_64 r1, r1, -1\nbranch_lt_u_imm r1, 2, @out\nbranch_ne_imm r1, 0, loop\nout:\ntrap\n";
    src
}

fn case(src: &str, mut regs: [u64; 13], profile: GasProfile) -> Case {
    let mut layout = MemoryLayout::new();
    layout
        .add_region(u64::from(BASE), 4096, PageKind::EphemeralZero, &[])
        .unwrap();
    regs[2] = u64::from(BASE);
    Case {
        program: Arc::new(assemble(src).unwrap().program().unwrap()),
        layout: Arc::new(layout),
        regs,
        pc: 0,
        gas: 1 << 20,
        profile,
        host_seed: 0,
    }
}

/// Start at every instruction (`set_pc`, uncharged inside a block) on `engine` and
/// on the unfused reference, and compare what each run ends with.
fn every_entry_agrees<E: Engine>(engine: &E, c: &Case) {
    let reference = Interpreter::new().without_fusion();
    for &pc in c.program.pcs() {
        let mut ia = c.instance(&reference).unwrap();
        let mut ib = c.instance(engine).unwrap();
        ia.set_pc(pc);
        ib.set_pc(pc);
        let (ea, eb) = (ia.run(), ib.run());
        assert_eq!(ea, eb, "exit from pc {pc}");
        assert_eq!(
            (ia.pc(), ia.gas(), ia.regs()),
            (ib.pc(), ib.gas(), ib.regs()),
            "state after entering at pc {pc} ({ea:?})"
        );
    }
}

/// `engine` against the unfused reference on `c`: a whole run (every exit, state
/// and memory, as the differential oracle compares them), then an entry at every
/// instruction.
fn agrees_with_the_reference<E: Engine>(engine: &E, c: &Case) {
    if let Err(d) = compare(&Interpreter::new().without_fusion(), engine, c) {
        panic!("divergence: {}\n{}", d.what, d.localized);
    }
    every_entry_agrees(engine, c);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn fused_runs_agree_with_the_unfused_interpreter(
        items in proptest::collection::vec(item(), 1..8),
        regs in proptest::array::uniform13(any::<u64>()),
        gp in any::<bool>(),
    ) {
        let profile = if gp { GasProfile::Gp } else { GasProfile::Jar1 };
        let c = case(&program(&items), regs, profile);
        agrees_with_the_reference(&Interpreter::new(), &c);
        #[cfg(jit)]
        agrees_with_the_reference(jit(), &c);
    }
}

/// The patterns of the golden listing, entered at each of their instructions.
#[test]
fn runs_entered_in_the_middle_continue_as_written() {
    let src = "shlo_r_imm_64 r6, r5, 63\nshlo_l_imm_64 r0, r5, 1\nor r6, r0, r6\n\
               shlo_l_imm_64 r0, r5, 8\nshlo_r_imm_64 r6, r5, 56\nxor r7, r6, r0\n\
               shlo_r_imm_64 r5, r12, 28\nshlo_l_imm_64 r12, r12, 36\nadd_64 r9, r12, r5\n\
               shlo_l_imm_64 r6, r4, 32\nshlo_r_imm_64 r6, r6, 30\ntrap";
    let regs = std::array::from_fn(|i| 0x0123_4567_89ab_cdef_u64.rotate_left(7 * i as u32));
    // The same runs after a store group, so inside its block's checked copy.
    let grouped = format!(
        "store_ind_u64 r3, r2, 0\nstore_ind_u64 r3, r2, 8\nstore_ind_u64 r3, r2, 16\n{src}"
    );
    // And before one: the runs' tails serve resumes up to the group's head.
    let before = format!(
        "{}\nstore_ind_u64 r3, r2, 0\nstore_ind_u64 r3, r2, 8\nstore_ind_u64 r3, r2, 16\ntrap",
        src.trim_end_matches("\ntrap")
    );
    for profile in [GasProfile::Jar1, GasProfile::Gp] {
        for s in [src, &grouped, &before] {
            let c = case(s, regs, profile);
            agrees_with_the_reference(&Interpreter::new(), &c);
            #[cfg(jit)]
            agrees_with_the_reference(jit(), &c);
        }
    }
}
