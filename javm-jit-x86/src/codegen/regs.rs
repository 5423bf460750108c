//! The fixed register assignment.
//!
//! All 13 guest registers live in host registers for the whole run. RDX is the only
//! scratch register; R15 holds the gas counter. A guest access names its base
//! register itself, with the 32-bit address size (DESIGN-DECISIONS §88), and the
//! fault handler reads that register from the signal's context. Guest memory
//! and the context just below it are addressed through the GS segment, whose base
//! the run loop sets to the guest window (DESIGN-DECISIONS §87). Shifts use BMI2 (`shlx`/`shrx`/`sarx`/`rorx`), so RCX
//! can hold a guest register; the few lowerings that need RAX, RCX or RDX implicitly
//! (division, one-operand multiplies, rotates by a register) save the borrowed
//! register in the context and restore it before writing the destination, so every
//! aliasing of destination and sources is handled by one sequence.

/// Host register number of each guest register r0..r12.
pub(crate) const GUEST: [u8; 13] = [
    5,  // r0  → rbp
    3,  // r1  → rbx
    12, // r2  → r12
    13, // r3  → r13
    14, // r4  → r14
    6,  // r5  → rsi
    7,  // r6  → rdi
    8,  // r7  → r8
    9,  // r8  → r9
    10, // r9  → r10
    11, // r10 → r11
    0,  // r11 → rax
    1,  // r12 → rcx
];

/// The host register of guest register `r`.
#[inline]
pub(crate) fn host(r: javm_exec::Reg) -> u8 {
    GUEST[r.index()]
}

/// Host register number of RDX (the scratch register).
pub(crate) const RDX: u8 = 2;
/// RDI: the trampoline's first argument (the guest base), and guest register r6.
pub(crate) const RDI: u8 = 7;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_injective_and_avoids_reserved_registers() {
        let mut seen = [false; 16];
        for &r in &GUEST {
            assert!(!seen[r as usize], "register {r} mapped twice");
            seen[r as usize] = true;
            assert!(
                r != RDX && r != 4 && r != 15,
                "rdx, rsp and r15 (the gas counter) are reserved"
            );
        }
    }
}
