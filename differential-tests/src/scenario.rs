//! Driver-level differential scenarios: several instances calling each other through
//! the [`javm::Vm`] host ops, run on two engines and compared whole.
//!
//! A [`Scenario`] is a handful of images whose code mixes generated instructions (the
//! program generator's [`item`]s) with *host-op snippets* — registers loaded with
//! operands that mean something to the op (slots that hold caps, mapped addresses,
//! lengths around page sizes, endpoints, quotas), then `ecalli op` or `ecall` —
//! plus their memory (pinned, copy-on-write and zero mappings over data caps), one
//! published instance per image whose cnode holds other instances, images, data
//! caps, cnodes and caps the store does not have, a kernel (catchers for two markers
//! and for out of gas, two storage quotas, host functions that read, write, charge,
//! trap and fail), and the embedder's actions: an invoke, resumes with top-ups and
//! scratchpads after pauses, and a second invoke of the settled post-instance.
//!
//! Every image starts (usually) with a prologue of the same length, so SET_IMAGE from
//! one image into another lands on a block start and continues; generated branches,
//! `ecalli`s with random numbers, loops that run out of gas and faults mix with it.
//!
//! [`run`] plays a scenario on one engine and records everything observable: each
//! action's result (the whole `CallResult`, post-instance hashes included, or the
//! error), every call the driver made into the kernel with the registers the guest
//! had, the kernel's quotas at the end and the driver's [`VmStats`]. [`compare`] runs
//! two engines and reports the first difference.

use std::fmt::Write;

use javm::image::{BuiltImage, ImageSpec};
use javm::{
    CallResult, EngineVm, HostError, HostReturn, InProcessKernel, KernelCall, Recording, VmConfig,
    VmStats,
};
use javm_cap::{
    CNodeCap, CacheDirectory, Cap, CapHash, CapHashOrRef, DataCap, Endpoint, InstanceCap,
    MemoryMapping, SlotIdx, SlotPath, cap_hash, sha256,
};
use javm_exec::asm::assemble;
use javm_exec::{Engine, GasProfile, Opcode, PageKind, Reg};
use proptest::prelude::*;
use proptest::sample::select;

use crate::generate::{
    EDGE_U64, Item, POINTERS, RegionSpec, SLOTS, TargetSpec, interesting_addresses, item,
    mapped_addresses, region, render, straight_item, table_entry, value_u64,
};

/// The host ops the snippets call (the driver's table plus unknown numbers).
pub const SNIPPET_OPS: [u32; 22] = [
    0, 1, 2, 3, 4, 5, 16, 17, 18, 20, 22, 23, 26, 64, 65, 66, 67, 70, 6, 19, 63, 200,
];

/// Slots the snippets name: the populated ones, the image's data slots, a slot past
/// small cnodes, one whose register has high bits set, and the root's last slot.
const SLOT_OPERANDS: [u64; 16] = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    255,
    0x103,
    1 << 40,
];

/// Lengths around page sizes.
const LENGTHS: [u64; 10] = [0, 1, 7, 8, 100, 4095, 4096, 4097, 8192, 1 << 20];

/// Endpoints the snippets and invokes name (1 is defined by some images).
const ENDPOINTS: [u64; 5] = [0, 1, 2, 63, 64];

/// Storage quotas: 0 holds 8192 bytes, 1 holds 100, 7 does not exist.
const QUOTAS: [u64; 3] = [0, 1, 7];

/// The host function that fails the host (the invocation ends with an error).
pub const HOST_FAILURE_OP: u32 = 67;

/// The lowest slot of the instance's extra cnode slots (1..=5 are data slots).
const FIRST_EXTRA_SLOT: u32 = 6;
/// The highest slot the scenario fills.
const LAST_SLOT: u32 = 12;
/// Levels of the cnode tower (see [`Scenario::setup`]).
const TOWER: usize = 6;

/// A host op call: registers φ7..φ12 to load (`None`: left as they are), then
/// `ecalli op`, or (`via_ecall`) φ11 = op and `ecall`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOp {
    /// The op.
    pub op: u32,
    /// φ7..φ12.
    pub regs: [Option<u64>; 6],
    /// Dispatch through `ecall` instead of `ecalli`.
    pub via_ecall: bool,
    /// For DERIVE_SPAWN: then HOST_CALL the spawned child (at φ9's slot, endpoint 0).
    pub call_spawned: bool,
}

/// One piece of an image's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// A generated instruction (or invalid byte).
    Code(Item),
    /// A host-op snippet.
    Op(HostOp),
    /// A loop of this many iterations (about 5 gas each): burns gas, so that out of
    /// gas strikes inside nested calls too.
    Spin(u32),
}

/// The first block of an image: `load_imm r7, slot`, `load_imm r8, 0`, `ecalli op`,
/// with the slot and op in 1..=127 so that every prologue has the same length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prologue {
    /// φ7.
    pub slot: u8,
    /// The op.
    pub op: u8,
}

/// One image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageGen {
    /// Its first block, if any.
    pub prologue: Option<Prologue>,
    /// The rest of the code.
    pub body: Vec<Piece>,
    /// The jump table.
    pub jump_table: Vec<TargetSpec>,
    /// Memory: pinned regions map a pinned data cap, copy-on-write ones an initial
    /// data cap, zero ones nothing (regions that would overlap are dropped).
    pub regions: Vec<RegionSpec>,
    /// Bytes of each data cap short of its mapping (a zero tail), 0..=2 pages.
    pub short_pages: u8,
    /// Endpoint 0's registers.
    pub regs: [u64; 13],
    /// Body piece where endpoint 1 enters (defined only if that is a block start).
    pub endpoint1: Option<u8>,
    /// The yield-marker slot (its cnode slot holds a catcher).
    pub yield_slot: Option<u8>,
}

/// What one of an instance's extra cnode slots holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotFill {
    /// A later instance (modulo the ones after this one; for the last instance, a
    /// fresh instance of image 0, see [`Scenario::setup`]).
    Instance(u8),
    /// An image.
    Image(u8),
    /// A cap of the data pool ([`DATA_POOL`]).
    Data(u8),
    /// A cnode of the cnode pool (see [`Scenario::setup`]).
    CNode(u8),
    /// A hash the store does not hold.
    Missing,
}

/// One instance (of the image with the same index). Slots 1..=4 hold the image's
/// data caps; slots 6..=9 have fixed roles, so that snippets find what their op
/// needs; slots 10..=12 hold anything (the yield-marker slot a catcher).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceGen {
    /// Slot 6, an image (SET_IMAGE, DERIVE_SPAWN).
    pub image: Option<u8>,
    /// Slot 7, the next instance (`Instance(0)`) or another cap (HOST_CALL).
    pub callee: Option<SlotFill>,
    /// Slot 8, a level of the cnode tower (DERIVE_SPAWN's prepared cnode).
    pub spawn: Option<u8>,
    /// Slot 9, a data cap (a marker for HOST_YIELD, bytes for READ_DATA_CAP).
    pub marker: Option<u8>,
    /// Slots 10..=12.
    pub extra: Vec<Option<SlotFill>>,
    /// The data cap in slot 0 (the argument a top-level invoke passes).
    pub slot0: Option<u8>,
    /// The instance's own registers (its non-zero ones override the endpoint's).
    pub regs: Option<[u64; 13]>,
    /// Cut `mem_size` to the start of this region (mappings at or above vanish).
    pub mem_cut: Option<u8>,
}

/// A marker a catcher catches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerGen {
    /// A cap of the data pool.
    Data(u8),
    /// The out-of-gas marker.
    OutOfGas,
}

/// The embedder's actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actions {
    /// Endpoint of the first invoke (of instance 0).
    pub endpoint: u32,
    /// Its arguments.
    pub args: [u64; 4],
    /// Its gas budget.
    pub gas: u64,
    /// After each pause (in order, while paused): gas to top up, and the data cap to
    /// put in the resumed instance's slot 0.
    pub resumes: Vec<(u64, Option<u8>)>,
    /// After a halt: invoke the post-instance again (endpoint, arguments, gas).
    pub again: Option<(u32, [u64; 4], u64)>,
}

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The gas profile.
    pub profile: GasProfile,
    /// The call-depth limit.
    pub max_depth: usize,
    /// Images (1..=4).
    pub images: Vec<ImageGen>,
    /// Instances, one per image; instance 0 is invoked.
    pub instances: Vec<InstanceGen>,
    /// Catchers: (catcher cap of the data pool, marker).
    pub catchers: Vec<(u8, MarkerGen)>,
    /// The embedder's actions.
    pub actions: Actions,
}

/// The data pool: markers, catchers, a two-page cap and a short one.
pub const DATA_POOL: [&[u8]; 6] = [
    b"marker-a",
    b"marker-b",
    b"catcher-x",
    b"catcher-y",
    &[0x5A; 8192],
    b"0123456789",
];

/// The published caps of a scenario.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Every cap, in an order a store accepts.
    pub caps: Vec<Cap>,
    /// The instance invoked first.
    pub top: CapHash,
    /// Hashes of the data pool.
    pub data: Vec<CapHash>,
    /// The images' sources, for reports.
    pub sources: Vec<String>,
}

fn item_insn(op: Opcode, regs: [Reg; 3], imm: i32, wide: u64) -> Item {
    Item::Insn {
        op,
        regs,
        imms: [imm, 0],
        wide,
        target: TargetSpec::Insn(0),
    }
}

/// `rX = v` as one instruction.
fn load(reg: Reg, v: u64) -> Item {
    match i32::try_from(v as i64) {
        Ok(x) => item_insn(Opcode::LoadImm, [reg; 3], x, 0),
        Err(_) => item_insn(Opcode::LoadImm64, [reg; 3], 0, v),
    }
}

impl HostOp {
    fn items(&self) -> Vec<Item> {
        let mut v = Vec::new();
        for (i, r) in self.regs.iter().enumerate() {
            if let (Some(val), Some(reg)) = (r, Reg::new(7 + i)) {
                v.push(load(reg, *val));
            }
        }
        if self.via_ecall {
            v.push(load(Reg::R11, u64::from(self.op)));
            v.push(item_insn(Opcode::Ecall, [Reg::R0; 3], 0, 0));
        } else {
            v.push(item_insn(Opcode::Ecalli, [Reg::R0; 3], self.op as i32, 0));
        }
        if self.op == 18
            && self.call_spawned
            && let Some(dst) = self.regs[2]
        {
            v.push(load(Reg::R7, dst));
            v.push(load(Reg::R8, 0));
            v.push(item_insn(Opcode::Ecalli, [Reg::R0; 3], 26, 0));
        }
        v
    }
}

impl ImageGen {
    /// The code items, and the item index where each body piece starts.
    fn items(&self) -> (Vec<Item>, Vec<usize>) {
        let mut items = Vec::new();
        if let Some(p) = self.prologue {
            items.push(load(Reg::R7, u64::from(p.slot)));
            items.push(load(Reg::R8, 0));
            items.push(item_insn(Opcode::Ecalli, [Reg::R0; 3], i32::from(p.op), 0));
        }
        let mut starts = Vec::new();
        for piece in &self.body {
            starts.push(items.len());
            match piece {
                Piece::Code(i) => items.push(i.clone()),
                Piece::Op(op) => items.extend(op.items()),
                &Piece::Spin(n) => {
                    // r5 = 0; fallthrough; head: r5 += 1; branch_ne_imm r5, n, head
                    items.push(load(Reg::R5, 0));
                    items.push(item_insn(Opcode::Fallthrough, [Reg::R0; 3], 0, 0));
                    let head = items.len() as u32;
                    items.push(Item::Insn {
                        op: Opcode::AddImm64,
                        regs: [Reg::R5, Reg::R5, Reg::R5],
                        imms: [1, 0],
                        wide: 0,
                        target: TargetSpec::Insn(0),
                    });
                    items.push(Item::Insn {
                        op: Opcode::BranchNeImm,
                        regs: [Reg::R5; 3],
                        imms: [n as i32, 0],
                        wide: 0,
                        target: TargetSpec::Insn(head),
                    });
                }
            }
        }
        // Straight-line code reaching the end replies.
        items.push(item_insn(Opcode::Ecalli, [Reg::R0; 3], 0, 0));
        (items, starts)
    }

    /// The image's assembly text.
    pub fn source(&self) -> String {
        let (items, _) = self.items();
        render(&items, &self.jump_table)
    }

    /// Regions that do not overlap an earlier one.
    fn kept_regions(&self) -> Vec<&RegionSpec> {
        let mut kept: Vec<&RegionSpec> = Vec::new();
        for r in &self.regions {
            let (s, e) = (
                u64::from(r.start),
                u64::from(r.start) + u64::from(r.pages) * 4096,
            );
            let clash = kept.iter().any(|k| {
                let (ks, ke) = (
                    u64::from(k.start),
                    u64::from(k.start) + u64::from(k.pages) * 4096,
                );
                s < ke && ks < e
            });
            if !clash && e <= 1 << 32 {
                kept.push(r);
            }
        }
        kept
    }

    fn build(&self) -> Result<BuiltImage, String> {
        let (items, starts) = self.items();
        let src = render(&items, &self.jump_table);
        let a = assemble(&src).map_err(|e| format!("generated source must assemble: {e}"))?;
        let program = a.program().map_err(|e| format!("generated program: {e}"))?;
        let mut endpoints = vec![(
            0usize,
            Endpoint {
                entry_pc: 0,
                regs: self.regs,
            },
        )];
        if let Some(p) = self.endpoint1
            && !starts.is_empty()
        {
            let i = starts[usize::from(p) % starts.len()];
            let pc = a.label(&format!("L{i}"));
            if let Some(pc) = pc
                && pc != 0
                && program.is_block_start(pc, GasProfile::Gp)
            {
                endpoints.push((
                    1,
                    Endpoint {
                        entry_pc: pc,
                        regs: self.regs,
                    },
                ));
            }
        }
        let mut mappings = Vec::new();
        let mut data = Vec::new();
        for (i, r) in self.kept_regions().into_iter().enumerate() {
            let size = u64::from(r.pages) * 4096;
            let source = match r.kind {
                PageKind::EphemeralZero => None,
                kind => {
                    let slot = SlotIdx(1 + i as u32);
                    let short = (u64::from(self.short_pages) * 4096).min(size);
                    let bytes: Vec<u8> = (0..(size - short) as usize)
                        .map(|j| r.fill.wrapping_add((j * 7 % 251) as u8))
                        .collect();
                    let cap = DataCap::from_bytes(&bytes).map_err(|e| e.to_string())?;
                    data.push((slot, kind == PageKind::PinnedCapRo, cap));
                    Some(SlotPath::new(vec![slot]).map_err(|e| e.to_string())?)
                }
            };
            mappings.push(MemoryMapping {
                start: u64::from(r.start),
                size,
                source,
            });
        }
        javm::image::build(ImageSpec {
            code: a.code,
            bitmask: a.bitmask,
            jump_table: a.jump_table,
            endpoints,
            mappings,
            data,
            yield_marker_slot: self.yield_slot.map(|s| SlotIdx(u32::from(s))),
        })
        .map_err(|e| format!("generated image: {e}"))
    }
}

impl Scenario {
    /// Build and hash every cap of the scenario.
    pub fn setup(&self) -> Result<Setup, String> {
        let mut caps = Vec::new();
        let data: Vec<CapHash> = DATA_POOL
            .iter()
            .map(|b| {
                let cap = Cap::Data(DataCap::from_bytes(b).map_err(|e| e.to_string())?);
                let h = cap_hash(&cap).map_err(|e| e.to_string())?;
                caps.push(cap);
                Ok(h)
            })
            .collect::<Result<_, String>>()?;
        let put = |caps: &mut Vec<Cap>, cap: Cap| -> Result<CapHash, String> {
            let h = cap_hash(&cap).map_err(|e| e.to_string())?;
            caps.push(cap);
            Ok(h)
        };
        let mut built = Vec::new();
        let mut images = Vec::new();
        let mut sources = Vec::new();
        for g in &self.images {
            let b = g.build()?;
            for c in b.caps() {
                put(&mut caps, c)?;
            }
            images.push(cap_hash(&Cap::Image(b.image.clone())).map_err(|e| e.to_string())?);
            sources.push(g.source());
            built.push(b);
        }
        // The cnode pool: an empty one-slot cnode, a root-sized one with the
        // two-page data cap at slot 3, and a tower for DERIVE_SPAWN: level 0 holds
        // image 0 at slot 6 and marker 0 at slot 9, level k also level k − 1 at
        // slot 8, so a child spawned with level k can spawn k more generations.
        let mut pool = vec![CNodeCap::new(0).map_err(|e| e.to_string())?];
        let mut c2 = CNodeCap::new(8).map_err(|e| e.to_string())?;
        let _ = c2.set(SlotIdx(3), Some(CapHashOrRef::Hash(data[4])));
        pool.push(c2);
        let mut cnodes: Vec<CapHash> = pool
            .into_iter()
            .map(|c| put(&mut caps, Cap::CNode(c)))
            .collect::<Result<_, _>>()?;
        let mut below: Option<CapHash> = None;
        for _ in 0..TOWER {
            let mut t = CNodeCap::new(4).map_err(|e| e.to_string())?;
            let _ = t.set(SlotIdx(6), Some(CapHashOrRef::Hash(images[0])));
            let _ = t.set(SlotIdx(9), Some(CapHashOrRef::Hash(data[0])));
            if let Some(b) = below {
                let _ = t.set(SlotIdx(8), Some(CapHashOrRef::Hash(b)));
            }
            let h = put(&mut caps, Cap::CNode(t))?;
            cnodes.push(h);
            below = Some(h);
        }
        let tower = |k: u8| cnodes[2 + usize::from(k) % TOWER];
        // A leaf, which the last instance calls: a fresh instance of image 0 with its
        // data caps, image 0 in slot 6 and marker 0 in slot 9.
        let (leaf_cnode, leaf) = built[0]
            .fresh_instance(&[(SlotIdx(6), images[0]), (SlotIdx(9), data[0])])
            .map_err(|e| e.to_string())?;
        put(&mut caps, leaf_cnode)?;
        let leaf = put(&mut caps, leaf)?;
        let n = self.instances.len().min(self.images.len());
        let mut inst_hashes = vec![[0u8; 32]; n];
        for i in (0..n).rev() {
            let InstanceGen {
                image,
                callee,
                spawn,
                marker,
                extra,
                slot0,
                regs,
                mem_cut,
            } = &self.instances[i];
            let b = &built[i];
            let mut cnode = b.image.root_cnode();
            let resolve = |fill: &SlotFill| -> Option<CapHash> {
                Some(match fill {
                    SlotFill::Instance(j) => {
                        let later = n - i - 1;
                        if later == 0 {
                            leaf
                        } else {
                            inst_hashes[i + 1 + usize::from(*j) % later]
                        }
                    }
                    SlotFill::Image(j) => images[usize::from(*j) % images.len()],
                    SlotFill::Data(j) => data[usize::from(*j) % data.len()],
                    SlotFill::CNode(j) => cnodes[usize::from(*j) % cnodes.len()],
                    SlotFill::Missing => sha256(b"javm/scenario/missing"),
                })
            };
            let fills = [
                image.map(SlotFill::Image),
                *callee,
                None,
                marker.map(SlotFill::Data),
            ]
            .into_iter()
            .chain(extra.iter().copied());
            for (k, fill) in fills.enumerate() {
                let slot = SlotIdx(FIRST_EXTRA_SLOT + k as u32);
                if slot.0 > LAST_SLOT || cnode.slot(slot).is_some() {
                    continue;
                }
                let h = if slot.0 == 8 {
                    spawn.map(tower)
                } else {
                    fill.as_ref().and_then(resolve)
                };
                if let Some(h) = h {
                    let _ = cnode.set(slot, Some(CapHashOrRef::Hash(h)));
                }
            }
            if let Some(s) = b.image.yield_marker_slot()
                && !b.image.is_pinned(s)
            {
                // Catchers are data caps 2 and 3.
                let c = data[2 + (s.0 as usize % 2)];
                let _ = cnode.set(s, Some(CapHashOrRef::Hash(c)));
            }
            if let &Some(d) = slot0 {
                let _ = cnode.set(
                    SlotIdx(0),
                    Some(CapHashOrRef::Hash(data[usize::from(d) % data.len()])),
                );
            }
            let image_hash = images[i];
            let cnode_hash = put(&mut caps, Cap::CNode(cnode))?;
            let regions = self.images[i].kept_regions();
            let mem_size = match mem_cut {
                &Some(k) if !regions.is_empty() => {
                    u64::from(regions[usize::from(k) % regions.len()].start)
                }
                _ => b.image.mem_size(),
            };
            let inst = InstanceCap::new(
                image_hash,
                image_hash,
                CapHashOrRef::Hash(cnode_hash),
                Vec::new(),
                mem_size,
                regs.unwrap_or([0; 13]),
                0,
                0,
            )
            .map_err(|e| e.to_string())?;
            inst_hashes[i] = put(&mut caps, Cap::Instance(inst))?;
        }
        Ok(Setup {
            caps,
            top: inst_hashes[0],
            data,
            sources,
        })
    }

    /// A readable description (for failure reports).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "profile {}, max depth {}, catchers {:?}",
            self.profile, self.max_depth, self.catchers
        );
        for (i, g) in self.images.iter().enumerate() {
            let _ = writeln!(
                out,
                "image {i}: regions {:?}, short {}, endpoint1 {:?}, yield slot {:?}\n\
                 registers {:x?}\n{}",
                g.regions,
                g.short_pages,
                g.endpoint1,
                g.yield_slot,
                g.regs,
                g.source()
            );
        }
        for (i, g) in self.instances.iter().enumerate() {
            let _ = writeln!(out, "instance {i}: {g:?}");
        }
        let _ = writeln!(out, "actions: {:?}", self.actions);
        out
    }
}

/// The kernel of a scenario: the driver's own [`InProcessKernel`] with the scenario's
/// catchers, two storage quotas (0: 8192 bytes, 1: 100 bytes) and four host
/// functions (every other op ≥ 64 traps, the in-process kernel's rule):
///
/// * 64: copy `φ9 & 0xFF` bytes from φ7 to φ8 in guest memory; φ7 = their sum (trap
///   if either range is not accessible);
/// * 65: charge `φ7 & 0xFFFF` gas (out of gas if the pool cannot pay);
/// * 66: trap;
/// * 67 ([`HOST_FAILURE_OP`]): fail the host.
pub fn scenario_kernel(s: &Scenario, setup: &Setup) -> InProcessKernel {
    let mut k = InProcessKernel::new();
    for &(c, m) in &s.catchers {
        let catcher = setup.data[2 + usize::from(c) % 2];
        let marker = match m {
            MarkerGen::Data(d) => setup.data[usize::from(d) % 2],
            MarkerGen::OutOfGas => javm::OUT_OF_GAS_MARKER,
        };
        k.add_catcher(catcher, marker);
    }
    k.set_quota(0, 8192);
    k.set_quota(1, 100);
    k.register(64, |g| {
        let mut buf = vec![0u8; (g.reg(9) & 0xFF) as usize];
        let (Ok(from), Ok(to)) = (u32::try_from(g.reg(7)), u32::try_from(g.reg(8))) else {
            return Ok(HostReturn::Trap);
        };
        if g.read(from, &mut buf).is_err() || g.write(to, &buf).is_err() {
            return Ok(HostReturn::Trap);
        }
        g.set_reg(7, buf.iter().map(|&b| u64::from(b)).sum());
        Ok(HostReturn::Continue)
    });
    k.register(65, |g| {
        Ok(if g.charge_gas(g.reg(7) & 0xFFFF) {
            HostReturn::Continue
        } else {
            HostReturn::OutOfGas
        })
    });
    k.register(66, |_| Ok(HostReturn::Trap));
    k.register(HOST_FAILURE_OP, |_| {
        Err(HostError("the scenario's host failure".into()))
    });
    k
}

/// One action's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An invoke.
    Invoke(Result<CallResult, String>),
    /// A top-up before a resume.
    TopUp(Result<(), String>),
    /// A resume.
    Resume(Result<CallResult, String>),
}

/// Everything observable of a scenario on one engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The actions' results, in order.
    pub events: Vec<Event>,
    /// Every call into the kernel, with the guest registers host functions saw.
    pub kernel_calls: Vec<KernelCall>,
    /// Quotas 0 and 1 at the end.
    pub quotas: [u64; 2],
    /// The driver's counters.
    pub stats: VmStats,
    /// Whether an invocation was left paused.
    pub paused: bool,
}

/// Play `s` (built as `setup`) on `engine`.
pub fn run<E: Engine>(engine: E, s: &Scenario, setup: &Setup) -> Outcome {
    let cache = CacheDirectory::new();
    for c in &setup.caps {
        // The caps were hashed when they were built; publishing cannot fail.
        let _ = cache.put_cap(c.clone());
    }
    let config = VmConfig {
        profile: s.profile,
        max_depth: s.max_depth,
        ..VmConfig::default()
    };
    let kernel = Recording::new(scenario_kernel(s, setup));
    let mut vm = EngineVm::new(engine, kernel, config);
    let a = &s.actions;
    let mut events = Vec::new();
    let err = |e: javm::VmError| e.to_string();
    let mut r = vm
        .invoke_cached(&cache, &setup.top, a.endpoint, a.args, a.gas)
        .map_err(err);
    events.push(Event::Invoke(r.clone()));
    let mut resumes = a.resumes.iter();
    while let Ok(CallResult::Paused { .. }) = &r {
        let Some(&(gas, pad)) = resumes.next() else {
            break;
        };
        let t = vm.top_up(gas).map_err(err);
        events.push(Event::TopUp(t));
        let pad = pad.map(|d| setup.data[usize::from(d) % setup.data.len()]);
        r = vm.call_resume(&cache, pad).map_err(err);
        events.push(Event::Resume(r.clone()));
    }
    if let (
        Ok(CallResult::Halt {
            post_instance_hash, ..
        }),
        Some((ep, args, gas)),
    ) = (&r, a.again)
    {
        let r2 = vm
            .invoke_cached(&cache, post_instance_hash, ep, args, gas)
            .map_err(err);
        events.push(Event::Invoke(r2));
    }
    let paused = vm.is_paused();
    Outcome {
        events,
        quotas: [0, 1].map(|q| vm.kernel().inner.quota(q).unwrap_or(0)),
        kernel_calls: vm.kernel().calls.clone(),
        stats: vm.stats().clone(),
        paused,
    }
}

/// Play `s` on engines `a` (the oracle) and `b`; `Err` names the first difference.
pub fn compare<A: Engine, B: Engine>(a: A, b: B, s: &Scenario) -> Result<Outcome, String> {
    let setup = s.setup()?;
    let x = run(a, s, &setup);
    let y = run(b, s, &setup);
    if x == y {
        return Ok(x);
    }
    let what = if let Some((i, (ex, ey))) = x
        .events
        .iter()
        .zip(&y.events)
        .enumerate()
        .find(|(_, (p, q))| p != q)
    {
        format!("action {i}: {ex:?}\n  versus {ey:?}")
    } else if x.events.len() != y.events.len() {
        format!("{} actions versus {}", x.events.len(), y.events.len())
    } else if let Some((i, (cx, cy))) = x
        .kernel_calls
        .iter()
        .zip(&y.kernel_calls)
        .enumerate()
        .find(|(_, (p, q))| p != q)
    {
        format!("kernel call {i}: {cx:?}\n  versus {cy:?}")
    } else if x.kernel_calls.len() != y.kernel_calls.len() {
        format!(
            "{} kernel calls versus {}",
            x.kernel_calls.len(),
            y.kernel_calls.len()
        )
    } else if x.stats != y.stats {
        format!("stats: {:?}\n  versus {:?}", x.stats, y.stats)
    } else {
        format!(
            "quotas {:?} paused {} versus quotas {:?} paused {}",
            x.quotas, x.paused, y.quotas, y.paused
        )
    };
    Err(what)
}

// ---- proptest strategies ----

fn slot_operand() -> impl Strategy<Value = u64> {
    select(SLOT_OPERANDS.to_vec())
}

fn operand(mapped: Vec<u32>) -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => slot_operand(),
        2 => select(mapped).prop_map(u64::from),
        1 => select(LENGTHS.to_vec()),
        1 => select(EDGE_U64),
    ]
}

fn address(mapped: Vec<u32>) -> impl Strategy<Value = u64> {
    prop_oneof![
        5 => select(mapped).prop_map(u64::from),
        1 => select(interesting_addresses()).prop_map(u64::from),
        1 => Just(1u64 << 32),
    ]
}

/// A host-op snippet whose operands fit its op: usually the slot with the role the
/// op needs (see [`InstanceGen`]), sometimes any slot.
pub fn host_op(mapped: Vec<u32>) -> BoxedStrategy<HostOp> {
    let m = mapped.clone();
    (
        select(SNIPPET_OPS.to_vec()),
        proptest::array::uniform6(operand(mapped.clone())),
        proptest::array::uniform3(slot_operand()),
        address(m.clone()),
        address(m),
        select(LENGTHS.to_vec()),
        (
            prop_oneof![4 => Just(0u64), 1 => select(ENDPOINTS.to_vec())],
            select(QUOTAS.to_vec()),
            0u64..=17,
            0u64..=0x1FFFF,
        ),
        (
            proptest::bits::u8::masked(0x3F),
            any::<u8>(),
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.6),
        ),
    )
        .prop_map(
            |(
                op,
                generic,
                slots,
                a1,
                a2,
                len,
                (ep, quota, size_log, small),
                (keep, coin, ecall, follow),
            )| {
                // Registers the op reads get operands of the right sort; the others
                // keep generic values or are not loaded at all.
                let mut r: [Option<u64>; 6] =
                    std::array::from_fn(|i| (keep >> i & 1 == 1).then_some(generic[i]));
                // Four times in five the slot with the op's role.
                let role = |i: usize, slot: u64| {
                    if (coin >> (2 * i)) % 5 < 4 {
                        slot
                    } else {
                        slots[i]
                    }
                };
                let spawned = 10 + slots[2] % 3;
                match op {
                    0 => r[0] = Some(generic[0] & 0xFFFF),
                    1 | 2 => {
                        r[0] = Some(role(0, 6 + slots[0] % 4));
                        r[1] = Some(role(1, 10 + slots[1] % 3));
                    }
                    4 | 20 => {
                        r[0] = Some(slots[0]);
                        r[1] = Some(slots[1]);
                    }
                    3 => {
                        r[0] = Some(match coin % 3 {
                            0 => 10 + slots[0] % 3,
                            1 => 1 + slots[0] % 4,
                            _ => slots[0],
                        })
                    }
                    16 => r[0] = Some(role(0, 9)),
                    17 => r[0] = Some(role(0, 6)),
                    5 => {
                        r[0] = Some(role(0, 10 + slots[0] % 3));
                        r[1] = Some(size_log);
                    }
                    18 => {
                        r[0] = Some(role(0, 6));
                        r[1] = Some(role(1, 8));
                        r[2] = Some(role(2, spawned));
                    }
                    22 => {
                        r[0] = Some(role(0, 9));
                        r[1] = Some(a1);
                        r[2] = Some(len);
                    }
                    23 => {
                        r[0] = Some(a1);
                        r[1] = Some(len);
                        r[2] = Some(quota);
                        r[3] = Some(role(0, 10 + slots[0] % 3));
                    }
                    26 => {
                        r[0] = Some(role(0, 7));
                        r[1] = Some(ep);
                    }
                    64 => {
                        r[0] = Some(a1);
                        r[1] = Some(a2);
                        r[2] = Some(len & 0x1FF);
                    }
                    65 => r[0] = Some(small),
                    _ => {}
                }
                HostOp {
                    op,
                    regs: r,
                    via_ecall: ecall,
                    call_spawned: follow,
                }
            },
        )
        .boxed()
}

fn piece(mapped: Vec<u32>) -> BoxedStrategy<Piece> {
    prop_oneof![
        4 => straight_item(mapped.clone()).prop_map(Piece::Code),
        1 => item(mapped.clone()).prop_map(Piece::Code),
        6 => host_op(mapped).prop_map(Piece::Op),
        1 => select(vec![10u32, 1_000, 20_000]).prop_map(Piece::Spin),
    ]
    .boxed()
}

/// Prologues: the first image mostly calls or switches image; the others (callees)
/// mostly yield, switch image or call a host function.
fn prologue(first: bool) -> impl Strategy<Value = Option<Prologue>> {
    let ops = if first {
        vec![17u8, 17, 26, 26, 26, 20, 16, 1, 64]
    } else {
        vec![16u8, 16, 16, 17, 17, 26, 65, 64, 20, 1]
    };
    prop::option::weighted(
        0.9,
        (select(ops), 1u8..=12, prop::bool::weighted(0.7)).prop_map(|(op, any_slot, role)| {
            let slot = match (op, role) {
                (17, true) => 6,
                (26, true) => 7,
                (16, true) => 9,
                _ => any_slot,
            };
            Prologue { slot, op }
        }),
    )
}

fn image_gen(first: bool) -> BoxedStrategy<ImageGen> {
    proptest::collection::vec(region(), 0..4)
        .prop_flat_map(move |regions| {
            let mapped = mapped_addresses(&regions);
            (
            prologue(first),
            // Mixed code, or (a third of the images) a script of host ops only,
            // which gets further before something traps.
            prop_oneof![
                2 => proptest::collection::vec(piece(mapped.clone()), 1..14),
                1 => proptest::collection::vec(host_op(mapped.clone()).prop_map(Piece::Op), 1..6),
            ],
            proptest::collection::vec(table_entry(), 0..3),
            Just(regions),
            0u8..=2,
            (
                proptest::array::uniform13(value_u64(mapped.clone())),
                any::<bool>(),
                [
                    select(mapped.clone()),
                    select(mapped.clone()),
                    select(mapped.clone()),
                ],
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
            prop::option::of(any::<u8>()),
            prop::option::weighted(0.9, 10u8..=12),
        )
            .prop_map(
                |(prologue, body, jump_table, regions, short_pages, regs, endpoint1, yield_slot)| {
                    ImageGen {
                        prologue,
                        body,
                        jump_table,
                        regions,
                        short_pages,
                        regs,
                        endpoint1,
                        yield_slot,
                    }
                },
            )
        })
        .boxed()
}

fn slot_fill() -> impl Strategy<Value = SlotFill> {
    prop_oneof![
        4 => any::<u8>().prop_map(SlotFill::Instance),
        2 => any::<u8>().prop_map(SlotFill::Image),
        2 => (0u8..6).prop_map(SlotFill::Data),
        2 => (0u8..8).prop_map(SlotFill::CNode),
        1 => Just(SlotFill::Missing),
    ]
}

fn instance_gen() -> BoxedStrategy<InstanceGen> {
    (
        prop::option::weighted(0.9, any::<u8>()),
        prop::option::weighted(
            0.9,
            prop_oneof![3 => Just(SlotFill::Instance(0)), 1 => slot_fill()],
        ),
        prop::option::weighted(0.8, 0u8..TOWER as u8),
        prop::option::weighted(0.8, prop_oneof![3 => 0u8..2, 1 => 0u8..6]),
        proptest::collection::vec(prop::option::weighted(0.6, slot_fill()), 3),
        prop::option::weighted(0.3, 0u8..6),
        prop::option::weighted(0.2, proptest::array::uniform13(select(EDGE_U64))),
        prop::option::weighted(0.15, any::<u8>()),
    )
        .prop_map(
            |(image, callee, spawn, marker, extra, slot0, regs, mem_cut)| InstanceGen {
                image,
                callee,
                spawn,
                marker,
                extra,
                slot0,
                regs,
                mem_cut,
            },
        )
        .boxed()
}

fn gas_budget() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => 0u64..3_000,
        2 => 3_000u64..30_000,
        2 => 30_000u64..300_000,
    ]
}

fn args(mapped: Vec<u32>) -> impl Strategy<Value = [u64; 4]> {
    proptest::array::uniform4(operand(mapped))
}

fn actions() -> BoxedStrategy<Actions> {
    let mapped: Vec<u32> = SLOTS.iter().map(|&s| s + 8).collect();
    (
        prop_oneof![27 => Just(0u32), 2 => Just(1), 1 => Just(2)],
        args(mapped.clone()),
        gas_budget(),
        proptest::collection::vec(
            (
                prop_oneof![Just(0u64), Just(2_000), Just(50_000), Just(500_000)],
                prop::option::of(0u8..6),
            ),
            0..4,
        ),
        prop::option::weighted(
            0.7,
            (
                prop_oneof![9 => Just(0u32), 1 => Just(1)],
                args(mapped),
                gas_budget(),
            ),
        ),
    )
        .prop_map(|(endpoint, args, gas, resumes, again)| Actions {
            endpoint,
            args,
            gas,
            resumes,
            again,
        })
        .boxed()
}

/// A strategy for whole scenarios.
pub fn scenario() -> impl Strategy<Value = Scenario> {
    (1usize..=4).prop_flat_map(|n| {
        (
            prop_oneof![4 => Just(GasProfile::Jar1), 1 => Just(GasProfile::Gp)],
            select(vec![2usize, 4, 256]),
            (
                image_gen(true),
                proptest::collection::vec(image_gen(false), n - 1),
            )
                .prop_map(|(first, mut rest)| {
                    rest.insert(0, first);
                    rest
                }),
            proptest::collection::vec(instance_gen(), n),
            proptest::collection::vec(
                (
                    0u8..2,
                    prop_oneof![
                        2 => (0u8..2).prop_map(MarkerGen::Data),
                        1 => Just(MarkerGen::OutOfGas),
                    ],
                ),
                1..6,
            ),
            actions(),
        )
            .prop_map(
                |(profile, max_depth, images, instances, catchers, actions)| Scenario {
                    profile,
                    max_depth,
                    images,
                    instances,
                    catchers,
                    actions,
                },
            )
    })
}

/// Counts of how a campaign's actions ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Results {
    /// Halts.
    pub halts: u64,
    /// Faults: trap, panic, page fault, out of gas.
    pub faults: [u64; 4],
    /// Pauses.
    pub pauses: u64,
    /// Actions that returned a `VmError` (or a refused top-up).
    pub errors: u64,
}

impl Results {
    fn add(&mut self, o: &Outcome) {
        for e in &o.events {
            match e {
                Event::Invoke(r) | Event::Resume(r) => match r {
                    Ok(CallResult::Halt { .. }) => self.halts += 1,
                    Ok(CallResult::Paused { .. }) => self.pauses += 1,
                    Ok(CallResult::Faulted { reason, .. }) => match reason {
                        javm::Fault::Trap => self.faults[0] += 1,
                        javm::Fault::Panic(_) => self.faults[1] += 1,
                        javm::Fault::PageFault(_) => self.faults[2] += 1,
                        javm::Fault::OutOfGas => self.faults[3] += 1,
                        // A fault kind this harness does not know yet.
                        _ => self.errors += 1,
                    },
                    Err(_) => self.errors += 1,
                },
                Event::TopUp(Err(_)) => self.errors += 1,
                Event::TopUp(Ok(())) => {}
            }
        }
    }

    /// Add another campaign's counts.
    pub fn merge(&mut self, o: &Results) {
        self.halts += o.halts;
        self.pauses += o.pauses;
        self.errors += o.errors;
        for (a, b) in self.faults.iter_mut().zip(o.faults) {
            *a += b;
        }
    }
}

/// The result of a scenario campaign.
#[derive(Clone, Debug)]
pub struct ScenarioCampaign {
    /// Scenarios that agreed (all of them, unless one diverged).
    pub scenarios: u64,
    /// The oracle's driver counters over those scenarios.
    pub stats: VmStats,
    /// How their actions ended.
    pub results: Results,
    /// The first divergence, shrunk: the scenario and what differed.
    pub failure: Option<(Scenario, String)>,
    /// Wall-clock time.
    pub elapsed: std::time::Duration,
}

impl ScenarioCampaign {
    /// A one-paragraph report of what the campaign reached.
    pub fn report(&self) -> String {
        let s = &self.stats;
        let ops: Vec<String> = s
            .ops
            .iter()
            .enumerate()
            .filter(|(op, _)| javm::hostops::op_name(*op as u32).is_some())
            .map(|(op, c)| format!("{op}:{}/{}/{}", c.ok, c.trapped, c.out_of_gas))
            .collect();
        format!(
            "{} scenarios; results: {} halts, faults trap/panic/page/oog {:?}, {} pauses, {} \
             errors; ops ok/trapped/oog {}; host functions {}/{}/{}, unknown ops {}; {} calls, \
             {} nested faults, {} pauses ({} out of gas), {} settles, deepest stack {}",
            self.scenarios,
            self.results.halts,
            self.results.faults,
            self.results.pauses,
            self.results.errors,
            ops.join(" "),
            s.host_functions.ok,
            s.host_functions.trapped,
            s.host_functions.out_of_gas,
            s.unknown_ops,
            s.calls,
            s.nested_faults,
            s.pauses,
            s.out_of_gas_pauses,
            s.settles,
            s.max_depth
        )
    }
}

/// Run `cases` generated scenarios (from `seed`) on engines made by `a` (the oracle)
/// and `b`; on a divergence, shrink it.
pub fn run_scenarios<A: Engine, B: Engine>(
    a: impl Fn() -> A,
    b: impl Fn() -> B,
    cases: u32,
    seed: u64,
) -> ScenarioCampaign {
    use proptest::test_runner::{
        Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
    };
    use std::cell::RefCell;

    let mut rng_seed = [0u8; 32];
    rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
    rng_seed[8..16].copy_from_slice(b"scenario");
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed));
    let stats = RefCell::new(VmStats::default());
    let results = RefCell::new(Results::default());
    let count = RefCell::new(0u64);
    let failed = RefCell::new(false);
    let start = std::time::Instant::now();
    let r = runner.run(&scenario(), |s| match compare(a(), b(), &s) {
        Ok(o) => {
            if !*failed.borrow() {
                *count.borrow_mut() += 1;
                stats.borrow_mut().merge(&o.stats);
                results.borrow_mut().add(&o);
            }
            Ok(())
        }
        Err(what) => {
            *failed.borrow_mut() = true;
            Err(TestCaseError::fail(what))
        }
    });
    let failure = match r {
        Ok(()) => None,
        Err(TestError::Fail(_, s)) => {
            let what = compare(a(), b(), &s)
                .err()
                .unwrap_or_else(|| "the divergence did not reproduce".to_owned());
            Some((s, what))
        }
        Err(TestError::Abort(reason)) => Some((
            Scenario {
                profile: GasProfile::Jar1,
                max_depth: 1,
                images: Vec::new(),
                instances: Vec::new(),
                catchers: Vec::new(),
                actions: Actions {
                    endpoint: 0,
                    args: [0; 4],
                    gas: 0,
                    resumes: Vec::new(),
                    again: None,
                },
            },
            format!("campaign aborted: {reason}"),
        )),
    };
    ScenarioCampaign {
        scenarios: count.into_inner(),
        stats: stats.into_inner(),
        results: results.into_inner(),
        failure,
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn prologues_have_one_length() {
        let pcs: HashSet<Option<u32>> = [(1u8, 17u8), (12, 64), (9, 1), (5, 26)]
            .iter()
            .map(|&(slot, op)| {
                let g = ImageGen {
                    prologue: Some(Prologue { slot, op }),
                    body: vec![Piece::Op(HostOp {
                        op: 0,
                        regs: [None; 6],
                        via_ecall: false,
                        call_spawned: false,
                    })],
                    jump_table: Vec::new(),
                    regions: Vec::new(),
                    short_pages: 0,
                    regs: [0; 13],
                    endpoint1: None,
                    yield_slot: None,
                };
                assemble(&g.source()).unwrap().label("L3")
            })
            .collect();
        assert_eq!(pcs.len(), 1, "{pcs:?}");
    }

    #[test]
    fn generated_scenarios_build() {
        let mut runner = TestRunner::deterministic();
        for _ in 0..100 {
            let s = scenario().new_tree(&mut runner).unwrap().current();
            let setup = s
                .setup()
                .unwrap_or_else(|e| panic!("{e}\n{}", s.describe()));
            assert!(!setup.caps.is_empty());
        }
    }
}
