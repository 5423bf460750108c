//! The dispatch loop: one `match` per instruction over [`Instruction`].
//!
//! The loop walks one block at a time: entering a block charges it and takes its
//! code, which ends with an `End` sentinel, so the inner loop walks it with one
//! pointer and no check of the block's end per op; each op that goes on leaves its
//! register write to the loop's head (`w!`). The instruction index is only
//! recomputed on the way out (`idx!()`). Invariants the loop relies on
//! (established by [`crate::Program`]):
//! * sequential execution moves from instruction `i` to `i + 1`;
//! * every block ends with a terminator, and the last instruction is the implicit
//!   `trap` at `len(code)`;
//! * blocks partition the instructions, so the block after block `b` is `b + 1`;
//! * a block id that is not in the block table ([`crate::Target::INVALID`]) marks a
//!   branch target outside ϖ.

use super::instance::{InterpInstance, Resume};
use super::memory::MemFault;
use super::op::Op as I;
use super::{NOT_A_TARGET, UNPRICED};
use crate::engine::{EngineError, Exit};
use crate::gas::GasProfile;
use crate::instruction::imm;
use crate::isa::Reg;
use crate::ops;
use crate::program::DynamicJump;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

// The dispatch loop's speed depends on where its code starts: the same machine
// code ran about 17% slower starting 32 bytes past a 64-byte boundary than
// starting on one (docs/BENCHMARKS.md, "Placement of the interpreter loop").
// Stable Rust cannot align a function, so `run_to_exit` goes into a section of its
// own whose alignment a directive raises to 64 bytes; the linker keeps that
// alignment when it merges the section into `.text`. Both live in this one module
// so that rustc puts them into the same codegen unit, hence the same object file
// and the same section (in different objects the directive would align only its
// own, empty, part). ELF only (the `.text.*` naming and the directive); elsewhere
// the loop is placed as any function.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod placed {
    use super::{EngineError, Exit, InterpInstance};

    // SAFETY: the directives emit no code or data; they only raise the alignment
    // of the section `run_to_exit` is placed in.
    std::arch::global_asm!(
        ".pushsection .text.javm_interp_loop,\"ax\",%progbits",
        ".p2align 6",
        ".popsection",
    );

    /// Run `inst` until an exit: the dispatch loop of [`Instance::run`], placed at
    /// the start of a 64-byte aligned section (above).
    ///
    /// [`Instance::run`]: crate::Instance::run
    // SAFETY: the section is an allocated, executable code section (`"ax"`, named
    // `.text.*` so that the linker places it in the `.text` output section); the
    // function's code is the same as anywhere else.
    #[unsafe(link_section = ".text.javm_interp_loop")]
    #[inline(never)]
    pub(in crate::interp) fn run_to_exit(inst: &mut InterpInstance) -> Result<Exit, EngineError> {
        super::run::<false, Exit>(inst)
    }
}

#[cfg(target_os = "linux")]
pub(super) use placed::run_to_exit;

/// Run `inst` until an exit: the dispatch loop of [`Instance::run`].
///
/// [`Instance::run`]: crate::Instance::run
#[cfg(not(target_os = "linux"))]
#[inline(never)]
pub(super) fn run_to_exit(inst: &mut InterpInstance) -> Result<Exit, EngineError> {
    run::<false, Exit>(inst)
}

/// Run `inst` until the next block boundary (or an exit).
#[inline(never)]
pub(super) fn run_step(inst: &mut InterpInstance) -> Result<Option<Exit>, EngineError> {
    run::<true, Option<Exit>>(inst)
}

/// What a run returns: the [`Exit`] for a run to an exit, `Option<Exit>` for a
/// step (`None`: it stopped before entering a block). A run returns its own type,
/// so that [`Instance::run`] passes it on without converting it.
///
/// [`Instance::run`]: crate::Instance::run
pub(super) trait Outcome: Sized {
    /// The run stopped at `exit`.
    fn exit(exit: Exit) -> Self;
    /// The run stopped before entering a block, which only a step does.
    fn stopped() -> Result<Self, EngineError>;
}

impl Outcome for Exit {
    #[inline(always)]
    fn exit(exit: Exit) -> Self {
        exit
    }

    fn stopped() -> Result<Self, EngineError> {
        Err(EngineError::Internal("run stopped without an exit".into()))
    }
}

impl Outcome for Option<Exit> {
    #[inline(always)]
    fn exit(exit: Exit) -> Self {
        Some(exit)
    }

    #[inline(always)]
    fn stopped() -> Result<Self, EngineError> {
        Ok(None)
    }
}

/// The walk of a block's `code` from slot `k`: the slots from `k` on, which end with
/// `End` as the whole code does (`None` for a slot past the last).
fn from_slot(code: &[I], k: usize) -> Option<&[I]> {
    code.get(k..).filter(|rest| rest.last() == Some(&I::End))
}

/// Run `inst` until an exit, or with `STEP` (and `O = Option<Exit>`) until the
/// next block boundary.
#[inline(always)]
#[allow(unsafe_code)]
pub(super) fn run<const STEP: bool, O: Outcome>(
    inst: &mut InterpInstance,
) -> Result<O, EngineError> {
    let module = &*inst.module;
    let program = &*module.program;
    let pcs = program.pcs();
    let blocks = &*module.blocks;
    let profile = module.schedule.profile();
    let gp = profile == GasProfile::Gp;
    // The instance's 16-slot register file, indexed with `& 15`: provably in bounds,
    // so register accesses carry no bounds check (slots 13..16 are never named).
    let regs: &mut [u64; 16] = &mut inst.regs;
    let mut gas = inst.gas;
    let mem = &mut inst.mem;
    let interrupt = inst.interrupt.flag();
    let pc_at = |i: usize| pcs.get(i).copied().unwrap_or(u32::MAX);

    // The index of the first instruction still to run, its block, and the block's
    // entry (for a resume at a block, the one just charged: not looked up twice).
    let (start, mut block, resumed): (usize, u32, Option<&super::BlockEntry>) = match inst.resume {
        Resume::Done(e) => return Err(EngineError::Finished(e)),
        Resume::BadPc => {
            inst.resume = Resume::Done(Exit::Panic);
            return Ok(O::exit(Exit::Panic));
        }
        Resume::At(i) => {
            let b = program.block_of(i);
            (i as usize, b, blocks.get(b as usize))
        }
        Resume::Enter(b) => {
            let e = blocks
                .get(b as usize)
                .filter(|e| e.need.load(Acquire) != NOT_A_TARGET)
                .ok_or_else(|| EngineError::Internal(format!("resume at unknown block {b}")))?;
            // As at every entry of a block that checks, in steps too.
            if e.poll.load(Relaxed) && interrupt.load(Relaxed) && interrupt.swap(false, Relaxed) {
                inst.pc = e.pc;
                return Ok(O::exit(Exit::Interrupted));
            }
            let mut need = e.need.load(Acquire);
            if need == UNPRICED {
                need = module.price(b);
            }
            if (gas as u64) < need {
                inst.gas = 0;
                inst.pc = e.pc;
                return Ok(O::exit(Exit::OutOfGas));
            }
            gas -= e.cost.load(Relaxed);
            (e.first as usize, b, Some(e))
        }
    };
    // The block whose code the walk is in: the resumed one, then the one each
    // `enter!` enters (`block` contains `start`: `Program::block_of` for a resume,
    // the entered block's first instruction otherwise).
    let mut entered: &super::BlockEntry = resumed.ok_or_else(|| {
        EngineError::Internal(format!("resume at instruction {start}, in no block"))
    })?;
    debug_assert!(
        (entered.first as usize..entered.end as usize).contains(&start),
        "instruction {start} is not in block {block}"
    );
    // The instructions still to run in the current block.
    let mut body = from_slot(
        entered.code(module),
        start.saturating_sub(entered.first as usize),
    )
    .ok_or_else(|| {
        EngineError::Internal(format!("resume at instruction {start}, past its block"))
    })?;

    // Leave the loop: save state and report `$exit`, resuming later per `$resume`.
    macro_rules! finish {
        ($exit:expr, $resume:expr, $pc:expr) => {{
            inst.gas = gas;
            inst.pc = $pc;
            inst.resume = $resume;
            return Ok(O::exit($exit));
        }};
    }
    // Exits that end the program.
    macro_rules! terminal {
        ($exit:expr) => {{
            let e = $exit;
            finish!(e, Resume::Done(e), pc_at(idx!()))
        }};
    }
    // Enter block `$b` (charging it), or panic at this instruction if `$b` is not a
    // block (a target outside ϖ). In step mode, stop before entering.
    macro_rules! enter {
        ($b:expr) => {{
            let b: u32 = $b;
            let Some(e) = blocks.get(b as usize) else {
                terminal!(Exit::Panic)
            };
            if STEP && e.need.load(Relaxed) == NOT_A_TARGET {
                terminal!(Exit::Panic)
            }
            // An interrupt request stops the run here, before the block is charged.
            if e.poll.load(Relaxed) && interrupt.load(Relaxed) && interrupt.swap(false, Relaxed) {
                finish!(Exit::Interrupted, Resume::Enter(b), e.pc)
            }
            if STEP {
                inst.gas = gas;
                inst.pc = e.pc;
                inst.resume = Resume::Enter(b);
                return O::stopped();
            }
            // Gas is never negative, so the unsigned compare is exact. A block not
            // priced yet fails it and is priced here, once per module.
            let need = e.need.load(Acquire);
            if (gas as u64) < need {
                if need == NOT_A_TARGET {
                    terminal!(Exit::Panic)
                }
                if need == UNPRICED && (gas as u64) >= module.price(b) {
                    // Priced, and the gas suffices: charge it below.
                } else {
                    gas = 0;
                    finish!(Exit::OutOfGas, Resume::Enter(b), e.pc)
                }
            }
            gas -= e.cost.load(Relaxed);
            entered = e;
            block = b;
            break;
        }};
    }
    macro_rules! branch {
        ($cond:expr, $target:expr) => {{
            if $cond {
                enter!($target.0)
            } else {
                enter!(block + 1)
            }
        }};
    }
    // Dynamic jump by the GP rule.
    macro_rules! djump {
        ($addr:expr) => {{
            match program.resolve_dynamic_jump($addr) {
                DynamicJump::Halt => terminal!(Exit::Halt),
                DynamicJump::Block(b) => enter!(b),
                DynamicJump::Panic => terminal!(Exit::Panic),
            }
        }};
    }
    macro_rules! r {
        ($r:expr) => {
            regs[$r.index() & 15]
        };
    }
    // The deferred write (`w!`): a register and its value. It always holds the
    // last register an op wrote (or `r0` at the start), so that the head, which
    // writes it before every op, changes nothing when no write is pending.
    let (mut wd, mut wv): (Reg, u64) = (Reg::R0, regs[0]);
    // The register write an op that goes on to the next op makes last: deferred to
    // the loop's head (`r!(wd) = wv`, before the next op's dispatch), so that
    // every such op ends the same way, with a jump to the head, and none through
    // a store shared with others placed wherever the compiler puts it (the loop's
    // speed follows those jumps; docs/BENCHMARKS.md, "One way out of an op"). An
    // op that writes a register and goes on makes its last write here: otherwise
    // the head would write an older value over it. An op that writes and then
    // leaves the walk (to a block entry, or out of the run) writes directly,
    // since it may not come back to the head, and records the write here too.
    macro_rules! w {
        ($r:expr, $v:expr) => {{
            let v: u64 = $v;
            wd = $r;
            wv = v;
        }};
    }
    // rD = f(rA, rB)
    macro_rules! op3 {
        ($o:expr, $f:expr) => {{
            let o = $o;
            w!(o.d, ($f)(r!(o.a), r!(o.b)));
        }};
    }
    // rA = f(rB, X)
    macro_rules! opi {
        ($o:expr, $f:expr) => {{
            let o = $o;
            w!(o.a, ($f)(r!(o.b), imm(o.x)));
        }};
    }
    // rA = f(X, rB)
    macro_rules! opi_alt {
        ($o:expr, $f:expr) => {{
            let o = $o;
            w!(o.a, ($f)(imm(o.x), r!(o.b)));
        }};
    }
    // rD = f(rA)
    macro_rules! op2 {
        ($o:expr, $f:expr) => {{
            let o = $o;
            w!(o.d, ($f)(r!(o.a)));
        }};
    }
    macro_rules! mem_fault {
        ($f:expr) => {
            match $f {
                MemFault::Exit(e @ Exit::PageFault(_)) => {
                    finish!(e, Resume::At(idx!() as u32), pc_at(idx!()))
                }
                MemFault::Exit(e) => terminal!(e),
                MemFault::OutOfGas => {
                    gas = 0;
                    finish!(Exit::OutOfGas, Resume::At(idx!() as u32), pc_at(idx!()))
                }
                MemFault::Limit(bytes) => {
                    inst.gas = gas;
                    inst.pc = pc_at(idx!());
                    inst.resume = Resume::At(idx!() as u32);
                    return Err(EngineError::MemoryLimit(bytes));
                }
            }
        };
    }
    // Accesses try the fast path through `view` first; the slow path may change the
    // page states and the buffer, so `view` is taken afresh after it.
    macro_rules! view {
        () => {
            match mem.view() {
                Some(v) => v,
                None => {
                    return Err(EngineError::Internal(
                        "the guest memory buffer does not cover the address space".into(),
                    ));
                }
            }
        };
    }
    let mut view = view!();
    macro_rules! load {
        ($dst:expr, $addr:expr, $n:literal, $conv:expr) => {{
            let addr: u32 = $addr;
            match view.load::<$n>(addr) {
                Some(bytes) => w!($dst, ($conv)(bytes)),
                None => {
                    match mem.load_slow::<$n>(addr, &mut gas) {
                        Ok(bytes) => w!($dst, ($conv)(bytes)),
                        Err(f) => mem_fault!(f),
                    }
                    view = view!();
                }
            }
        }};
    }
    macro_rules! store {
        ($addr:expr, $bytes:expr) => {{
            let (addr, bytes): (u32, _) = ($addr, $bytes);
            if !view.store(addr, bytes) {
                if let Err(f) = mem.store_slow(addr, bytes, &mut gas) {
                    mem_fault!(f)
                }
                view = view!();
            }
        }};
    }
    let u8_ = |b: [u8; 1]| u64::from(b[0]);
    let i8_ = |b: [u8; 1]| b[0] as i8 as u64;
    let u16_ = |b: [u8; 2]| u64::from(u16::from_le_bytes(b));
    let i16_ = |b: [u8; 2]| i16::from_le_bytes(b) as u64;
    let u32_ = |b: [u8; 4]| u64::from(u32::from_le_bytes(b));
    let i32_ = |b: [u8; 4]| i32::from_le_bytes(b) as u64;
    let u64_ = u64::from_le_bytes;
    let b1 = |v: u64| [v as u8];
    let b2 = |v: u64| (v as u16).to_le_bytes();
    let b4 = |v: u64| (v as u32).to_le_bytes();
    let b8 = |v: u64| v.to_le_bytes();
    // Address `base + X` reduced mod 2^32.
    let ea = |base: u64, x: i32| (base as u32).wrapping_add(x as u32);

    loop {
        // The walk over `body`, the code of the block `entered` (or its part from
        // a resume on), which ends with `End` (`op::block_code`, `from_slot`): `at` is the next
        // slot. Every op but `End` leaves this loop or moves `at` on by the slots
        // it covers, all before `End`, and `End` leaves; so `at` never passes
        // `End`, and no op pays for a check of the block's end.
        let mut at = body.as_ptr();
        debug_assert_eq!(body.last(), Some(&I::End));
        // The index of the instruction being executed (only needed on exits): the
        // block's first, plus the slot before `at` in the block's code.
        macro_rules! idx {
            () => {
                entered.first as usize
                    + (at as usize - entered.code(module).as_ptr() as usize)
                        / std::mem::size_of::<I>()
                    - 1
            };
        }
        loop {
            r!(wd) = wv;
            // SAFETY: `at` points at a slot of `body` (the walk above), a live
            // slice that the module owns for as long as this run borrows it.
            // Match on a reference so that each arm loads only its own operands.
            let ins = unsafe { &*at };
            at = at.wrapping_add(1);
            match *ins {
                // Control flow.
                I::End => {
                    return Err(EngineError::Internal(
                        "a block ended without a terminator".into(),
                    ));
                }
                I::Trap(_) => terminal!(Exit::Trap),
                I::Invalid => terminal!(Exit::Panic),
                I::Fallthrough(_) | I::Unlikely(_) => enter!(block + 1),
                I::Ecall(_) => finish!(
                    Exit::Ecall,
                    Resume::after_block(program, profile, block),
                    pc_at(idx!())
                ),
                I::Ecalli(o) => finish!(
                    Exit::HostCall(o.x as u32),
                    Resume::after_block(program, profile, block),
                    pc_at(idx!())
                ),
                I::Jump(o) => enter!(o.target.0),
                I::JumpInd(o) => djump!(ea(r!(o.a), o.x)),
                I::LoadImmJump(o) => {
                    r!(o.a) = imm(o.x);
                    w!(o.a, imm(o.x));
                    enter!(o.target.0)
                }
                I::LoadImmJumpInd(o) => {
                    // Read rB before writing rA (they may be the same register).
                    let addr = ea(r!(o.b), o.y);
                    r!(o.a) = imm(o.x);
                    w!(o.a, imm(o.x));
                    djump!(addr)
                }
                I::BranchEqImm(o) => branch!(r!(o.a) == imm(o.x), o.target),
                I::BranchNeImm(o) => branch!(r!(o.a) != imm(o.x), o.target),
                I::BranchLtUImm(o) => branch!(r!(o.a) < imm(o.x), o.target),
                I::BranchLeUImm(o) => branch!(r!(o.a) <= imm(o.x), o.target),
                I::BranchGeUImm(o) => branch!(r!(o.a) >= imm(o.x), o.target),
                I::BranchGtUImm(o) => branch!(r!(o.a) > imm(o.x), o.target),
                I::BranchLtSImm(o) => branch!((r!(o.a) as i64) < i64::from(o.x), o.target),
                I::BranchLeSImm(o) => branch!((r!(o.a) as i64) <= i64::from(o.x), o.target),
                I::BranchGeSImm(o) => branch!((r!(o.a) as i64) >= i64::from(o.x), o.target),
                I::BranchGtSImm(o) => branch!((r!(o.a) as i64) > i64::from(o.x), o.target),
                I::BranchEq(o) => branch!(r!(o.a) == r!(o.b), o.target),
                I::BranchNe(o) => branch!(r!(o.a) != r!(o.b), o.target),
                I::BranchLtU(o) => branch!(r!(o.a) < r!(o.b), o.target),
                I::BranchLtS(o) => branch!((r!(o.a) as i64) < (r!(o.b) as i64), o.target),
                I::BranchGeU(o) => branch!(r!(o.a) >= r!(o.b), o.target),
                I::BranchGeS(o) => branch!((r!(o.a) as i64) >= (r!(o.b) as i64), o.target),

                // Immediates and moves.
                I::LoadImm64(o) => w!(o.a, o.x()),
                I::LoadImm(o) => w!(o.a, imm(o.x)),
                I::MoveReg(o) => op2!(o, |a| a),
                I::Sbrk(o) => {
                    if !gp {
                        // jar1 grows memory through capabilities, not sbrk.
                        terminal!(Exit::Panic)
                    }
                    // `sbrk` may move the buffer: the view is taken afresh.
                    let grown = mem.sbrk(r!(o.a));
                    view = view!();
                    match grown {
                        Ok(v) => w!(o.d, v),
                        Err(e) => {
                            // A host failure: save the state so the caller can inspect it.
                            inst.gas = gas;
                            inst.pc = pc_at(idx!());
                            inst.resume = Resume::At(idx!() as u32);
                            return Err(e);
                        }
                    }
                }

                // Loads.
                I::LoadU8(o) => load!(o.a, o.x as u32, 1, u8_),
                I::LoadI8(o) => load!(o.a, o.x as u32, 1, i8_),
                I::LoadU16(o) => load!(o.a, o.x as u32, 2, u16_),
                I::LoadI16(o) => load!(o.a, o.x as u32, 2, i16_),
                I::LoadU32(o) => load!(o.a, o.x as u32, 4, u32_),
                I::LoadI32(o) => load!(o.a, o.x as u32, 4, i32_),
                I::LoadU64(o) => load!(o.a, o.x as u32, 8, u64_),
                I::LoadIndU8(o) => load!(o.a, ea(r!(o.b), o.x), 1, u8_),
                I::LoadIndI8(o) => load!(o.a, ea(r!(o.b), o.x), 1, i8_),
                I::LoadIndU16(o) => load!(o.a, ea(r!(o.b), o.x), 2, u16_),
                I::LoadIndI16(o) => load!(o.a, ea(r!(o.b), o.x), 2, i16_),
                I::LoadIndU32(o) => load!(o.a, ea(r!(o.b), o.x), 4, u32_),
                I::LoadIndI32(o) => load!(o.a, ea(r!(o.b), o.x), 4, i32_),
                I::LoadIndU64(o) => load!(o.a, ea(r!(o.b), o.x), 8, u64_),

                // Stores.
                I::StoreImmU8(o) => store!(o.x as u32, b1(imm(o.y))),
                I::StoreImmU16(o) => store!(o.x as u32, b2(imm(o.y))),
                I::StoreImmU32(o) => store!(o.x as u32, b4(imm(o.y))),
                I::StoreImmU64(o) => store!(o.x as u32, b8(imm(o.y))),
                I::StoreU8(o) => store!(o.x as u32, b1(r!(o.a))),
                I::StoreU16(o) => store!(o.x as u32, b2(r!(o.a))),
                I::StoreU32(o) => store!(o.x as u32, b4(r!(o.a))),
                I::StoreU64(o) => store!(o.x as u32, b8(r!(o.a))),
                I::StoreImmIndU8(o) => store!(ea(r!(o.a), o.x), b1(imm(o.y))),
                I::StoreImmIndU16(o) => store!(ea(r!(o.a), o.x), b2(imm(o.y))),
                I::StoreImmIndU32(o) => store!(ea(r!(o.a), o.x), b4(imm(o.y))),
                I::StoreImmIndU64(o) => store!(ea(r!(o.a), o.x), b8(imm(o.y))),
                I::StoreIndU8(o) => store!(ea(r!(o.b), o.x), b1(r!(o.a))),
                I::StoreIndU16(o) => store!(ea(r!(o.b), o.x), b2(r!(o.a))),
                I::StoreIndU32(o) => store!(ea(r!(o.b), o.x), b4(r!(o.a))),
                I::StoreIndU64(o) => store!(ea(r!(o.b), o.x), b8(r!(o.a))),

                // Two registers.
                I::CountSetBits64(o) => op2!(o, |a: u64| u64::from(a.count_ones())),
                I::CountSetBits32(o) => op2!(o, ops::popcnt32),
                I::LeadingZeroBits64(o) => op2!(o, |a: u64| u64::from(a.leading_zeros())),
                I::LeadingZeroBits32(o) => op2!(o, ops::clz32),
                I::TrailingZeroBits64(o) => op2!(o, |a: u64| u64::from(a.trailing_zeros())),
                I::TrailingZeroBits32(o) => op2!(o, ops::ctz32),
                I::SignExtend8(o) => op2!(o, ops::sx8),
                I::SignExtend16(o) => op2!(o, ops::sx16),
                I::ZeroExtend16(o) => op2!(o, |a: u64| a & 0xFFFF),
                I::ReverseBytes(o) => op2!(o, u64::swap_bytes),

                // Two registers and an immediate: rA = f(rB, X).
                I::AddImm32(o) => opi!(o, ops::add32),
                I::AndImm(o) => opi!(o, |a: u64, b: u64| a & b),
                I::XorImm(o) => opi!(o, |a: u64, b: u64| a ^ b),
                I::OrImm(o) => opi!(o, |a: u64, b: u64| a | b),
                I::MulImm32(o) => opi!(o, ops::mul32),
                I::SetLtUImm(o) => opi!(o, ops::set_lt_u),
                I::SetLtSImm(o) => opi!(o, ops::set_lt_s),
                I::ShloLImm32(o) => opi!(o, ops::shl32),
                I::ShloRImm32(o) => opi!(o, ops::shr32),
                I::SharRImm32(o) => opi!(o, ops::sar32),
                I::NegAddImm32(o) => opi_alt!(o, ops::sub32),
                I::SetGtUImm(o) => opi_alt!(o, ops::set_lt_u),
                I::SetGtSImm(o) => opi_alt!(o, ops::set_lt_s),
                I::ShloLImmAlt32(o) => opi_alt!(o, ops::shl32),
                I::ShloRImmAlt32(o) => opi_alt!(o, ops::shr32),
                I::SharRImmAlt32(o) => opi_alt!(o, ops::sar32),
                I::CmovIzImm(o) => w!(o.a, if r!(o.b) == 0 { imm(o.x) } else { r!(o.a) }),
                I::CmovNzImm(o) => w!(o.a, if r!(o.b) != 0 { imm(o.x) } else { r!(o.a) }),
                I::AddImm64(o) => opi!(o, u64::wrapping_add),
                I::MulImm64(o) => opi!(o, u64::wrapping_mul),
                I::ShloLImm64(o) => opi!(o, ops::shl64),
                I::ShloRImm64(o) => opi!(o, ops::shr64),
                I::SharRImm64(o) => opi!(o, ops::sar64),
                I::NegAddImm64(o) => opi_alt!(o, u64::wrapping_sub),
                I::ShloLImmAlt64(o) => opi_alt!(o, ops::shl64),
                I::ShloRImmAlt64(o) => opi_alt!(o, ops::shr64),
                I::SharRImmAlt64(o) => opi_alt!(o, ops::sar64),
                I::RotR64Imm(o) => opi!(o, ops::rotr64),
                I::RotR64ImmAlt(o) => opi_alt!(o, ops::rotr64),
                I::RotR32Imm(o) => opi!(o, ops::rotr32),
                I::RotR32ImmAlt(o) => opi_alt!(o, ops::rotr32),

                // Three registers: rD = f(rA, rB).
                I::Add32(o) => op3!(o, ops::add32),
                I::Sub32(o) => op3!(o, ops::sub32),
                I::Mul32(o) => op3!(o, ops::mul32),
                I::DivU32(o) => op3!(o, ops::div_u32),
                I::DivS32(o) => op3!(o, ops::div_s32),
                I::RemU32(o) => op3!(o, ops::rem_u32),
                I::RemS32(o) => op3!(o, ops::rem_s32),
                I::ShloL32(o) => op3!(o, ops::shl32),
                I::ShloR32(o) => op3!(o, ops::shr32),
                I::SharR32(o) => op3!(o, ops::sar32),
                I::Add64(o) => op3!(o, u64::wrapping_add),
                I::Sub64(o) => op3!(o, u64::wrapping_sub),
                I::Mul64(o) => op3!(o, u64::wrapping_mul),
                I::DivU64(o) => op3!(o, ops::div_u64),
                I::DivS64(o) => op3!(o, ops::div_s64),
                I::RemU64(o) => op3!(o, ops::rem_u64),
                I::RemS64(o) => op3!(o, ops::rem_s64),
                I::ShloL64(o) => op3!(o, ops::shl64),
                I::ShloR64(o) => op3!(o, ops::shr64),
                I::SharR64(o) => op3!(o, ops::sar64),
                I::And(o) => op3!(o, |a: u64, b: u64| a & b),
                I::Xor(o) => op3!(o, |a: u64, b: u64| a ^ b),
                I::Or(o) => op3!(o, |a: u64, b: u64| a | b),
                I::MulUpperSS(o) => op3!(o, ops::mul_upper_ss),
                I::MulUpperUU(o) => op3!(o, ops::mul_upper_uu),
                I::MulUpperSU(o) => op3!(o, ops::mul_upper_su),
                I::SetLtU(o) => op3!(o, ops::set_lt_u),
                I::SetLtS(o) => op3!(o, ops::set_lt_s),
                I::CmovIz(o) => w!(o.d, if r!(o.b) == 0 { r!(o.a) } else { r!(o.d) }),
                I::CmovNz(o) => w!(o.d, if r!(o.b) != 0 { r!(o.a) } else { r!(o.d) }),
                I::RotL64(o) => op3!(o, ops::rotl64),
                I::RotL32(o) => op3!(o, ops::rotl32),
                I::RotR64(o) => op3!(o, ops::rotr64),
                I::RotR32(o) => op3!(o, ops::rotr32),
                I::AndInv(o) => op3!(o, |a: u64, b: u64| a & !b),
                I::OrInv(o) => op3!(o, |a: u64, b: u64| a | !b),
                I::Xnor(o) => op3!(o, |a: u64, b: u64| !(a ^ b)),
                I::Max(o) => op3!(o, ops::max_s),
                I::MaxU(o) => op3!(o, ops::max_u),
                I::Min(o) => op3!(o, ops::min_s),
                I::MinU(o) => op3!(o, ops::min_u),

                // Fused runs (`crate::fuse`, `op.rs`): the registers each
                // instruction of the run writes, in the run's order, then the run's
                // later slots are skipped (for an index, up to its load, which runs
                // as written).
                I::Rotate(f) => {
                    let v = r!(f.x);
                    for s in f.shifts {
                        let amount = u64::from(s.amount);
                        r!(s.dst) = if s.left {
                            ops::shl64(v, amount)
                        } else {
                            ops::shr64(v, amount)
                        };
                    }
                    w!(f.d, ops::rotr64(v, u64::from(f.n)));
                    at = at.wrapping_add(2);
                }
                I::ZeroExtend(f) => {
                    w!(f.d, ops::shr64(ops::shl64(r!(f.s), 32), u64::from(f.k)));
                    at = at.wrapping_add(1);
                }
                I::Index(f) => {
                    let index = u64::from(r!(f.b) as u32) << f.scale;
                    w!(f.d, r!(f.a).wrapping_add(index));
                    at = at.wrapping_add(2);
                }
            }
        }
        // One place for every entry's instructions (each `enter!` breaks to here):
        // a whole block's code, which ends with `End`.
        body = entered.code(module);
    }
}
