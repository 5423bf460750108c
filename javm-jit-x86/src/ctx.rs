//! The instance context: the only host state compiled code touches besides guest
//! memory, and the exit protocol between compiled code and the run loop.
//!
//! The context sits in the page just below an instance's guest window, so compiled
//! code reaches every field at a fixed negative displacement from the window base,
//! which it addresses through the GS segment (`gs:[disp]`; the run loop sets the
//! thread's GS base to the window, `signal::set_gs_base`). Guest addresses are
//! 32-bit offsets *added* to that base, so no guest access can reach below the
//! window: the context holds nothing the guest can read or write. While compiled
//! code runs, the gas counter lives in R15; the context's `gas` holds it between
//! runs (the trampoline loads it, the exit path stores it back).

use std::mem::offset_of;

/// Size of the context page below the guest window.
pub(crate) const CTX_PAGE: usize = 4096;

/// Register save slots (13 guest registers, padded).
pub(crate) const REG_SLOTS: usize = 16;

/// The context. `#[repr(C)]`: compiled code addresses its fields by offset. It is
/// placed at the *end* of the context page ([`CTX_GAP`] bytes before it), just
/// below the guest base.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct JitContext {
    /// Guest registers while the guest is not running.
    pub(crate) regs: [u64; REG_SLOTS],
    /// The module's dynamic jump table (absolute native addresses, 0 = invalid).
    pub(crate) jt_ptr: u64,
    /// Unused (compiled code never moves RSP, so the exit path finds the host's
    /// stack where the trampoline left it); keeps the fields after it where the
    /// 8-bit displacements of `codegen` expect them.
    pub(crate) spare: u64,
    /// The exit's argument, written by the fault handler. [`ExitKind::Fault`]: the
    /// first bad byte; [`ExitKind::HostError`]: errno.
    pub(crate) fault_addr: u64,
    /// Scratch slots for multi-instruction lowerings (division, high multiplies).
    pub(crate) t0: u64,
    /// Second scratch slot.
    pub(crate) t1: u64,
    /// RAX while a lowering borrows it.
    pub(crate) save_rax: u64,
    /// RCX while a lowering borrows it.
    pub(crate) save_rcx: u64,
    /// Unused; keeps the size a multiple of 16.
    pub(crate) reserved: u64,
    /// Unused (exits return their kind in a register, [`pack_exit`]); keeps the
    /// fields after it where the 8-bit displacements of `codegen` expect them.
    pub(crate) unused: u32,
    /// A dynamic jump's table index while it is checked, for the exit that
    /// reports it (halt or panic at that instruction).
    pub(crate) exit_idx: u32,
    /// Remaining gas (minus `i64::MAX`, wrapping, while [`Kick::biased`] is set: while
    /// stepping, or when an interrupt is requested; see `instance.rs`).
    pub(crate) gas: i64,
}

/// Bytes of the context; it occupies the last `CTX_SIZE` bytes of the context page.
pub(crate) const CTX_SIZE: usize = std::mem::size_of::<JitContext>();
const _: () = assert!(CTX_SIZE <= CTX_PAGE && CTX_SIZE.is_multiple_of(16));

/// Bytes between the end of [`JitContext`] and the guest base: room for the
/// [`Kick`] outside the struct.
pub(crate) const CTX_GAP: usize = 16;
const _: () = assert!(CTX_SIZE + CTX_GAP <= CTX_PAGE);

/// Entries of a jump table (its entry 0 included) that the context page holds
/// inline, at its start ([`off::JT_INLINE`]): a module with a table of at most
/// this many entries has it copied there when an instance starts, and its dynamic
/// jumps index it through the GS segment directly, with no load of the table's
/// address first (`codegen/lower.rs`, `djump`).
pub(crate) const JT_INLINE_ENTRIES: usize = 256;
const _: () = assert!(JT_INLINE_ENTRIES * 8 + CTX_SIZE + CTX_GAP <= CTX_PAGE);

/// Whether a jump table of `entries` entries (entry 0 included) is held inline in
/// the context page: the one rule the code generator and the instance follow.
pub(crate) const fn jt_inline(entries: usize) -> bool {
    entries <= JT_INLINE_ENTRIES
}

/// How another thread stops a running instance (`signal.rs`, "Interrupts"): the
/// kernel thread id of the thread that entered the instance's code last, which the
/// instance's interrupt notifier signals, and whether the gas counter currently
/// carries the interrupt bias. It lies in the context page, in the gap after
/// [`JitContext`] (so no Rust reference to the context covers it), and every access
/// to it is atomic: the requesting thread reads `tid`, and the signal handler swaps
/// `biased` on the running thread, between any two instructions of the run loop.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Kick {
    /// Thread id (`gettid`) of the last thread that entered; 0 before the first
    /// entry, and cleared by every request and every exit with the bias, so that
    /// an entry that finds its own id here has no request to look for.
    pub(crate) tid: std::sync::atomic::AtomicI32,
    /// 1 while `gas` holds the bias (`i64::MAX` subtracted, wrapping).
    pub(crate) biased: std::sync::atomic::AtomicU8,
}

/// Distance of the [`Kick`] below the guest base.
pub(crate) const KICK: usize = 8;
const _: () = assert!(KICK <= CTX_GAP && std::mem::size_of::<Kick>() <= KICK);

/// Displacement of a context field from the guest base.
const fn disp(field: usize) -> i32 {
    field as i32 - (CTX_SIZE + CTX_GAP) as i32
}

/// Base-relative displacements of the context fields (`gs:[off::X]` in compiled
/// code).
pub(crate) mod off {
    use super::*;
    pub(crate) const GAS: i32 = disp(offset_of!(JitContext, gas));
    pub(crate) const REGS: i32 = disp(offset_of!(JitContext, regs));
    pub(crate) const EXIT_IDX: i32 = disp(offset_of!(JitContext, exit_idx));
    pub(crate) const JT_PTR: i32 = disp(offset_of!(JitContext, jt_ptr));
    pub(crate) const T0: i32 = disp(offset_of!(JitContext, t0));
    pub(crate) const T1: i32 = disp(offset_of!(JitContext, t1));
    pub(crate) const SAVE_RAX: i32 = disp(offset_of!(JitContext, save_rax));
    pub(crate) const SAVE_RCX: i32 = disp(offset_of!(JitContext, save_rcx));
    /// The inline jump table's entry 0, at the start of the context page.
    pub(crate) const JT_INLINE: i32 = -(CTX_PAGE as i32);

    /// Displacement of guest register `i`'s save slot.
    pub(crate) const fn reg(i: usize) -> i32 {
        REGS + 8 * i as i32
    }
}

/// Why compiled code returned to the run loop. Written by exit stubs and by the
/// fault handler; decoded by `instance.rs` against the program's instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum ExitKind {
    /// `trap` at the exit index.
    Trap = 1,
    /// A panic at the exit index (invalid instruction, bad branch or jump target, jar1 sbrk).
    Panic = 2,
    /// A dynamic jump to the halt address at the exit index.
    Halt = 3,
    /// `ecalli` or `ecall`; the exit index is the call's index among the module's host
    /// calls (`codegen::HostSite`: its block, PC and immediate).
    HostCall = 5,
    /// Left at the entry of block the exit index, before it is charged: not enough gas,
    /// or the gas counter carries a bias (stepping, or an interrupt request; the run
    /// loop tells which; the block's cost is still deducted where
    /// `codegen::subtracts_first` holds).
    OutOfGas = 6,
    /// A rejected access at the exit index; `fault_addr` is the first bad byte.
    Fault = 7,
    /// The access at the exit index is for the run loop to perform: a store the write
    /// shadow does not allow outright, or a load that wraps past 2^32.
    Emulate = 9,
    /// GP `sbrk` at the exit index: the run loop performs it.
    Sbrk = 10,
    /// The fault handler could not change a page's protection (`fault_addr` = errno).
    HostError = 11,
    /// The fault handler met a fault the page states say cannot happen.
    Inconsistent = 12,
}

/// How compiled code reports an exit: the exit path is entered with this in RDX and
/// the trampoline returns it. `idx` is the exit's index (see [`ExitKind`]); the
/// fault handler sends its exits the same way.
pub(crate) const fn pack_exit(kind: ExitKind, idx: u32) -> u64 {
    ((idx as u64) << 32) | kind as u64
}

/// The kind (not yet decoded) and index of a [`pack_exit`] value.
pub(crate) const fn unpack_exit(exit: u64) -> (u32, u32) {
    (exit as u32, (exit >> 32) as u32)
}

impl ExitKind {
    /// Decode the kind half of a [`pack_exit`] value.
    pub(crate) fn from_u32(v: u32) -> Option<ExitKind> {
        use ExitKind::*;
        Some(match v {
            1 => Trap,
            2 => Panic,
            3 => Halt,
            5 => HostCall,
            6 => OutOfGas,
            7 => Fault,
            9 => Emulate,
            10 => Sbrk,
            11 => HostError,
            12 => Inconsistent,
            _ => return None,
        })
    }
}
