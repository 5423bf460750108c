//! Structured program generators for differential testing.
//!
//! A [`Spec`] describes one test case: a gas profile and budget, initial registers, a
//! memory layout built from fixed *slots* (so that interesting addresses are known
//! in advance), a list of instructions and a jump table. [`Spec::source`] renders the
//! program as assembly text with a label `L<i>` on every instruction, which makes
//! shrunk failures readable and lets them be kept as regression files.
//!
//! The generated programs are valid (the assembler encodes them, with a correct
//! bitmask) and use every opcode. Operands are biased to edge values (0, 1, −1,
//! `i64::MIN`, `i32::MIN`, 2^31, 2^32 − 1, 2^32, 0xFFFFFFFC, non-canonical upper
//! halves), registers and immediates to addresses around region and page boundaries,
//! holes, read-only pages and the top of the address space. Branches go forwards and
//! backwards (loops end by running out of gas), mostly to block starts but also into
//! the middle of blocks and outside the code; jump tables mix valid and invalid
//! entries; some positions hold invalid opcodes. Gas budgets are random, so out of gas
//! happens at every kind of point.
//!
//! Two sources of randomness share these tables: proptest strategies ([`spec`], with
//! shrinking) and [`Spec::from_bytes`] (for cargo-fuzz).

use std::fmt::Write;
use std::sync::Arc;

use javm_exec::asm::assemble;
use javm_exec::disasm::format_with_targets;
use javm_exec::isa::{Args, Format};
use javm_exec::{GasProfile, MemoryLayout, Opcode, PageKind, Program, Reg};
use proptest::prelude::*;
use proptest::sample::select;

/// Candidate region starts (page-aligned). Adjacent slots make page-crossing
/// accesses possible; gaps between them are holes.
pub const SLOTS: [u32; 9] = [
    0x0000_0000,
    0x0001_0000,
    0x0001_1000,
    0x0001_3000,
    0x0002_0000,
    0x0002_1000,
    0x0003_0000,
    0xFFFF_E000,
    0xFFFF_F000,
];

/// Page kinds a slot can have.
pub const KINDS: [PageKind; 3] = [
    PageKind::PinnedCapRo,
    PageKind::UnpinnedCapCow,
    PageKind::EphemeralZero,
];

/// Interesting 64-bit values for registers and `load_imm_64`.
pub const EDGE_U64: &[u64] = &[
    0,
    1,
    2,
    4,
    6,
    7,
    8,
    31,
    32,
    63,
    64,
    u64::MAX,
    u64::MAX - 1,
    i64::MIN as u64,
    i64::MAX as u64,
    0x8000_0000,
    0xFFFF_FFFF,
    0x1_0000_0000,
    0x1_0000_0001,
    0xFFFF_FFFC,
    0xFFFF_FFF8,
    0xFFFF_0000,
    0xFFFF_FFFF_8000_0000,
    0xFFFF_FFFF_FFFF_FFFC,
    0xDEAD_BEEF_0000_0001,
    0x1234_5678_8000_0000,
    0x0000_0001_FFFF_FFFF,
    0x1_0001_0000,
];

/// Interesting immediates (sign-extended 32-bit values).
pub const EDGE_I32: &[i32] = &[
    0,
    1,
    -1,
    2,
    -2,
    3,
    4,
    -4,
    7,
    8,
    -8,
    31,
    32,
    33,
    63,
    64,
    65,
    127,
    128,
    255,
    4095,
    4096,
    -4096,
    i32::MAX,
    i32::MIN,
    -65536, // 0xFFFF0000, the halt address
];

/// Addresses around the slots: region starts, ends, page boundaries, the top.
pub fn interesting_addresses() -> Vec<u32> {
    let mut v = Vec::new();
    for &s in &SLOTS {
        for d in [0u32, 1, 4, 8, 0xFF8, 0xFFC, 0xFFE, 0xFFF, 0x1000, 0x1FFC] {
            v.push(s.wrapping_add(d));
        }
        v.push(s.wrapping_sub(1));
        v.push(s.wrapping_sub(4));
    }
    v.extend([
        0x1_2000,
        0x1_2FFC,
        0x4_0000,
        0xFFFF_0000,
        0xFFFF_FFF8,
        0xFFFF_FFFC,
    ]);
    v.sort_unstable();
    v.dedup();
    v
}

/// Addresses inside the regions that `regions` maps (page starts, page ends, the
/// last bytes of each region), so that generated accesses mostly succeed.
pub fn mapped_addresses(regions: &[RegionSpec]) -> Vec<u32> {
    let mut v = Vec::new();
    for r in regions {
        for p in 0..r.pages {
            let page = r.start.wrapping_add(p * 4096);
            v.extend([0u32, 1, 8, 0x800, 0xFF8, 0xFFC, 0xFFE, 0xFFF].map(|d| page.wrapping_add(d)));
        }
    }
    if v.is_empty() {
        v.push(0x1_0000);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Undefined opcode bytes, for invalid instructions.
pub fn invalid_opcodes() -> Vec<u8> {
    (0..=255u8)
        .filter(|&b| Opcode::from_u8(b).is_none())
        .collect()
}

/// One mapped region: a slot, its length in pages, its kind and initial contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionSpec {
    /// Start address (one of [`SLOTS`]).
    pub start: u32,
    /// Length in pages (1 or 2).
    pub pages: u32,
    /// Page kind.
    pub kind: PageKind,
    /// Seed of the initial contents (0: all zero).
    pub fill: u8,
}

/// A branch target or jump-table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// The instruction with this index (modulo the program length): a label if it
    /// starts a block, else `@label`, a deliberate panic.
    Insn(u32),
    /// A raw position (usually outside the code).
    Pos(i64),
}

/// One code item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// An instruction; operands are taken from these fields as its format needs.
    Insn {
        /// The opcode.
        op: Opcode,
        /// Registers, in operand order.
        regs: [Reg; 3],
        /// Immediates, in operand order.
        imms: [i32; 2],
        /// `load_imm_64`'s immediate.
        wide: u64,
        /// Static target, if the format has one.
        target: TargetSpec,
    },
    /// An undefined opcode byte (executing it panics).
    Invalid(u8),
}

/// A complete differential test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Gas profile.
    pub profile: GasProfile,
    /// Initial gas.
    pub gas: i64,
    /// Initial registers.
    pub regs: [u64; 13],
    /// Mapped regions (overlapping ones are dropped when the layout is built).
    pub regions: Vec<RegionSpec>,
    /// Initial heap top for GP `sbrk`.
    pub heap_top: u64,
    /// The code.
    pub items: Vec<Item>,
    /// The jump table.
    pub jump_table: Vec<TargetSpec>,
    /// Seed of the deterministic host actions after host calls.
    pub host_seed: u64,
}

/// Whether item `i` of `items` starts a basic block holding a valid instruction.
fn starts_block(items: &[Item], i: usize) -> bool {
    let after_terminator =
        i == 0 || matches!(&items[i - 1], Item::Insn { op, .. } if op.is_terminator());
    after_terminator && matches!(items.get(i), Some(Item::Insn { .. }))
}

fn target_text(items: &[Item], t: &TargetSpec) -> String {
    match t {
        TargetSpec::Pos(p) => format!("@{p}"),
        TargetSpec::Insn(_) if items.is_empty() => "@0".to_owned(),
        TargetSpec::Insn(ix) => {
            let j = *ix as usize % items.len();
            if starts_block(items, j) {
                format!("L{j}")
            } else {
                format!("@L{j}")
            }
        }
    }
}

/// Code items and a jump table as assembly text, with a label `L<i>` on item `i`.
pub fn render(items: &[Item], jump_table: &[TargetSpec]) -> String {
    let mut out = String::new();
    if !jump_table.is_empty() {
        let entries: Vec<String> = jump_table.iter().map(|t| target_text(items, t)).collect();
        let _ = writeln!(out, ".jump_table {}", entries.join(", "));
    }
    for (i, item) in items.iter().enumerate() {
        let text = match item {
            Item::Invalid(b) => format!(".raw {b:#04x}"),
            Item::Insn {
                op,
                regs,
                imms,
                wide,
                target,
            } => {
                let args = args_for(*op, regs, imms, *wide);
                let t = target_text(items, target);
                format_with_targets(*op, &args, &|_| t.clone())
            }
        };
        let _ = writeln!(out, "L{i}: {text}");
    }
    out
}

impl Spec {
    /// The program as assembly text.
    pub fn source(&self) -> String {
        render(&self.items, &self.jump_table)
    }

    /// The program, assembled.
    pub fn program(&self) -> Arc<Program> {
        let src = self.source();
        let a =
            assemble(&src).unwrap_or_else(|e| panic!("generated source must assemble: {e}\n{src}"));
        Arc::new(
            a.program()
                .unwrap_or_else(|e| panic!("generated program invalid: {e}")),
        )
    }

    /// The memory layout (regions that would overlap an earlier one are dropped).
    pub fn layout(&self) -> MemoryLayout {
        let mut l = MemoryLayout::new();
        for r in &self.regions {
            let contents: Vec<u8> = if r.kind == PageKind::EphemeralZero || r.fill == 0 {
                Vec::new()
            } else {
                (0..r.pages as usize * 4096)
                    .map(|i| r.fill.wrapping_add((i * 7 % 251) as u8))
                    .collect()
            };
            let _ = l.add_region(
                u64::from(r.start),
                u64::from(r.pages) * 4096,
                r.kind,
                &contents,
            );
        }
        l.set_heap_top(self.heap_top);
        l
    }

    /// Build a spec from fuzzer bytes (the same value tables as [`spec`]).
    pub fn from_bytes(data: &[u8]) -> Spec {
        let mut u = Bytes { data, pos: 0 };
        let invalid = invalid_opcodes();
        let profile = if u.bit() {
            GasProfile::Gp
        } else {
            GasProfile::Jar1
        };
        let gas = i64::from(u.u32() % 100_000);
        let regions: Vec<RegionSpec> = (0..1 + u.byte() % 6)
            .map(|_| RegionSpec {
                start: SLOTS[usize::from(u.byte()) % SLOTS.len()],
                pages: 1 + u32::from(u.bit()),
                kind: KINDS[usize::from(u.byte()) % KINDS.len()],
                fill: u.byte(),
            })
            .collect();
        // Addresses mostly inside the mapped regions, sometimes around them.
        let mut addrs = mapped_addresses(&regions);
        addrs.extend(interesting_addresses().into_iter().step_by(4));
        let mut regs = [0u64; 13];
        for r in &mut regs {
            *r = u.u64_value(&addrs);
        }
        let heap_top = u64::from(SLOTS[usize::from(u.byte()) % SLOTS.len()]);
        let n = 1 + usize::from(u.byte()) % 40;
        let items = (0..n)
            .map(|_| {
                if u.byte() < 8 {
                    Item::Invalid(invalid[usize::from(u.byte()) % invalid.len()])
                } else {
                    Item::Insn {
                        op: Opcode::ALL[usize::from(u.byte()) % Opcode::ALL.len()],
                        regs: [u.reg(), u.reg(), u.reg()],
                        imms: [u.i32_value(&addrs), u.i32_value(&addrs)],
                        wide: u.u64_value(&addrs),
                        target: u.target(),
                    }
                }
            })
            .collect();
        let jump_table = (0..u.byte() % 5)
            .map(|_| match u.target() {
                TargetSpec::Pos(p) => TargetSpec::Pos(p.unsigned_abs() as i64),
                t => t,
            })
            .collect();
        Spec {
            profile,
            gas,
            regs,
            regions,
            heap_top,
            items,
            jump_table,
            host_seed: u.u64(),
        }
    }
}

/// Operands for `op` from the generated fields.
fn args_for(op: Opcode, r: &[Reg; 3], x: &[i32; 2], wide: u64) -> Args {
    let (a, b, d) = (r[0], r[1], r[2]);
    let (x, y) = (i64::from(x[0]), i64::from(x[1]));
    // Targets are rendered separately; 0 is a placeholder.
    match op.format() {
        Format::NoArgs => Args::NoArgs,
        Format::Imm => Args::Imm { x },
        Format::RegImm64 => Args::RegImm64 { a, x: wide },
        Format::ImmImm => Args::ImmImm { x, y },
        Format::Offset => Args::Offset { target: 0 },
        Format::RegImm => Args::RegImm { a, x },
        Format::RegImmImm => Args::RegImmImm { a, x, y },
        Format::RegImmOffset => Args::RegImmOffset { a, x, target: 0 },
        Format::RegReg => Args::RegReg { d, a },
        Format::RegRegImm => Args::RegRegImm { a, b, x },
        Format::RegRegOffset => Args::RegRegOffset { a, b, target: 0 },
        Format::RegRegImmImm => Args::RegRegImmImm { a, b, x, y },
        Format::RegRegReg => Args::RegRegReg { d, a, b },
    }
}

/// A cursor over fuzzer bytes that reads zeros once exhausted.
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn bit(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
    fn reg(&mut self) -> Reg {
        Reg::ALL[usize::from(self.byte()) % 13]
    }
    fn u64_value(&mut self, addrs: &[u32]) -> u64 {
        match self.byte() % 4 {
            0 => EDGE_U64[usize::from(self.byte()) % EDGE_U64.len()],
            1 => u64::from(addrs[usize::from(self.byte()) % addrs.len()]),
            2 => u64::from(self.byte()),
            _ => self.u64(),
        }
    }
    fn i32_value(&mut self, addrs: &[u32]) -> i32 {
        match self.byte() % 4 {
            0 => EDGE_I32[usize::from(self.byte()) % EDGE_I32.len()],
            1 => addrs[usize::from(self.byte()) % addrs.len()] as i32,
            2 => i32::from(self.byte() as i8),
            _ => self.u32() as i32,
        }
    }
    fn target(&mut self) -> TargetSpec {
        if self.byte() < 16 {
            TargetSpec::Pos(i64::from(self.byte() as i8) * 64)
        } else {
            TargetSpec::Insn(u32::from(self.byte()))
        }
    }
}

// ---- proptest strategies ----

/// Any register.
pub fn reg() -> impl Strategy<Value = Reg> {
    (0usize..13).prop_map(|i| Reg::ALL[i])
}

/// A 64-bit value: edge values, addresses (mostly `mapped` ones), small numbers.
pub fn value_u64(mapped: Vec<u32>) -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => select(EDGE_U64),
        2 => select(mapped).prop_map(u64::from),
        1 => select(interesting_addresses()).prop_map(u64::from),
        1 => 0u64..256,
        1 => any::<u64>(),
    ]
}

fn value_i32(mapped: Vec<u32>) -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => select(EDGE_I32),
        1 => select(mapped).prop_map(|a| a as i32),
        1 => select(interesting_addresses()).prop_map(|a| a as i32),
        3 => -64i32..64,
        1 => any::<i32>(),
    ]
}

/// Branch targets: instruction indices, or raw positions before or after the code
/// (within reach of a 32-bit offset).
fn target() -> impl Strategy<Value = TargetSpec> {
    prop_oneof![
        9 => (0u32..64).prop_map(TargetSpec::Insn),
        1 => prop_oneof![Just(-1i64), Just(-100), Just(100_000), Just(0x7FFF_0000)].prop_map(TargetSpec::Pos),
    ]
}

/// Jump-table entries: instruction indices, or raw positions (as `u32`).
pub fn table_entry() -> impl Strategy<Value = TargetSpec> {
    prop_oneof![
        9 => (0u32..64).prop_map(TargetSpec::Insn),
        1 => prop_oneof![Just(1i64), Just(100_000), Just(0xFFFF_FFFF)].prop_map(TargetSpec::Pos),
    ]
}

/// `jump_ind r0, 0`: a return, which halts while r0 holds 0xFFFF0000.
fn ret() -> Item {
    Item::Insn {
        op: Opcode::JumpInd,
        regs: [Reg::R0; 3],
        imms: [0, 0],
        wide: 0,
        target: TargetSpec::Insn(0),
    }
}

/// Registers that always hold an interesting address (see [`spec`]).
pub const POINTERS: [Reg; 3] = [Reg::R2, Reg::R3, Reg::R4];

/// A load or store through a pointer register with a small offset, or at an
/// interesting absolute address: most of these reach mapped memory.
pub fn memory_item(mapped: Vec<u32>) -> impl Strategy<Value = Item> {
    let mem_ops: Vec<Opcode> = Opcode::ALL
        .into_iter()
        .filter(|o| o.memory_access().is_some())
        .collect();
    (
        select(mem_ops),
        reg(),
        select(POINTERS.to_vec()),
        -16i32..16,
        prop_oneof![4 => select(mapped.clone()), 1 => select(interesting_addresses())],
        value_i32(mapped),
    )
        .prop_map(|(op, value, pointer, offset, addr, imm)| {
            // Operand positions differ by format: the base is rA for
            // store_imm_ind_*, rB for load_ind_*/store_ind_*; absolute forms use X.
            let (regs, imms) = match op.format() {
                Format::RegImmImm => ([pointer, value, value], [offset, imm]),
                Format::RegRegImm => ([value, pointer, value], [offset, imm]),
                _ => ([value, pointer, value], [addr as i32, imm]),
            };
            Item::Insn {
                op,
                regs,
                imms,
                wide: 0,
                target: TargetSpec::Insn(0),
            }
        })
}

/// One code item: any opcode with edge operands, a load or store that mostly hits
/// `mapped`, an invalid opcode or a return.
pub fn item(mapped: Vec<u32>) -> impl Strategy<Value = Item> {
    let imm = || value_i32(mapped.clone());
    prop_oneof![
        30 => (select(Opcode::ALL.to_vec()), [reg(), reg(), reg()], [imm(), imm()], value_u64(mapped.clone()), target())
            .prop_map(|(op, regs, imms, wide, target)| Item::Insn { op, regs, imms, wide, target }),
        8 => memory_item(mapped.clone()),
        1 => select(invalid_opcodes()).prop_map(Item::Invalid),
        1 => Just(ret()),
    ]
}

/// A code item that does not end a basic block: an instruction of any
/// non-terminator opcode with edge operands, or a load or store that mostly hits
/// `mapped`. Straight-line code between host ops, so that scenarios get to the ops.
pub fn straight_item(mapped: Vec<u32>) -> impl Strategy<Value = Item> {
    let imm = || value_i32(mapped.clone());
    let ops: Vec<Opcode> = Opcode::ALL
        .into_iter()
        .filter(|o| !o.is_terminator())
        .collect();
    prop_oneof![
        3 => (select(ops), [reg(), reg(), reg()], [imm(), imm()], value_u64(mapped.clone()))
            .prop_map(|(op, regs, imms, wide)| Item::Insn { op, regs, imms, wide, target: TargetSpec::Insn(0) }),
        2 => memory_item(mapped.clone()),
    ]
}

/// A region at one of [`SLOTS`], one or two pages, of any kind.
pub fn region() -> impl Strategy<Value = RegionSpec> {
    (
        select(SLOTS.to_vec()),
        1u32..=2,
        select(KINDS.to_vec()),
        any::<u8>(),
    )
        .prop_map(|(start, pages, kind, fill)| RegionSpec {
            start,
            pages,
            kind,
            fill,
        })
}

fn gas() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => 0i64..200,
        3 => 0i64..5_000,
        2 => 0i64..100_000,
    ]
}

/// A strategy for whole test cases; `profile` fixes the gas profile (else both).
///
/// Regions come first, so that pointer registers and absolute addresses can be drawn
/// mostly from inside the mapped regions (and sometimes from around them).
pub fn spec(profile: Option<GasProfile>) -> impl Strategy<Value = Spec> {
    let profile = match profile {
        Some(p) => Just(p).boxed(),
        None => prop_oneof![Just(GasProfile::Jar1), Just(GasProfile::Gp)].boxed(),
    };
    (profile, proptest::collection::vec(region(), 1..6)).prop_flat_map(|(profile, regions)| {
        let mapped = mapped_addresses(&regions);
        let pointer =
            || prop_oneof![4 => select(mapped.clone()), 1 => select(interesting_addresses())];
        (
            Just(profile),
            gas(),
            // Half the time r0 holds the halt address, as in a standard program; the
            // pointer registers hold addresses, mostly mapped ones.
            (
                proptest::array::uniform13(value_u64(mapped.clone())),
                any::<bool>(),
                [pointer(), pointer(), pointer()],
            )
                .prop_map(|(mut r, halt, pointers)| {
                    if halt {
                        r[0] = 0xFFFF_0000;
                    }
                    for (p, a) in POINTERS.iter().zip(pointers) {
                        r[p.index()] = u64::from(a);
                    }
                    r
                }),
            Just(regions),
            select(SLOTS.to_vec()).prop_map(u64::from),
            proptest::collection::vec(item(mapped.clone()), 1..40),
            proptest::collection::vec(table_entry(), 0..5),
            any::<u64>(),
        )
            .prop_map(
                |(profile, gas, regs, regions, heap_top, items, jump_table, host_seed)| Spec {
                    profile,
                    gas,
                    regs,
                    regions,
                    heap_top,
                    items,
                    jump_table,
                    host_seed,
                },
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn generated_programs_assemble_and_use_labels() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..200 {
            let s = spec(None).new_tree(&mut runner).unwrap().current();
            let p = s.program();
            assert!(!p.instructions().is_empty());
            let _ = s.layout();
        }
    }

    #[test]
    fn fuzzer_bytes_always_give_a_valid_spec() {
        for seed in 0..200u64 {
            let data: Vec<u8> = (0..300)
                .map(|i| (seed.wrapping_mul(31).wrapping_add(i * 17) % 251) as u8)
                .collect();
            let s = Spec::from_bytes(&data);
            let _ = s.program();
        }
        let _ = Spec::from_bytes(&[]).program();
    }
}
