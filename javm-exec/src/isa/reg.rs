//! The 13 PVM registers.

use std::fmt;

/// One of the 13 general-purpose 64-bit registers `r0..r12` (GP: φ0..φ12).
///
/// A `Reg` always names a real register, so indexing a `[u64; 13]` with
/// [`Reg::index`] never needs a bounds check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[allow(missing_docs, reason = "r0..r12 are self-describing")]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
    R11,
    R12,
}

/// Number of registers.
pub const NUM_REGS: usize = 13;

impl Reg {
    /// All registers in order.
    pub const ALL: [Reg; NUM_REGS] = [
        Reg::R0,
        Reg::R1,
        Reg::R2,
        Reg::R3,
        Reg::R4,
        Reg::R5,
        Reg::R6,
        Reg::R7,
        Reg::R8,
        Reg::R9,
        Reg::R10,
        Reg::R11,
        Reg::R12,
    ];

    /// The register a raw operand field names: `min(12, v)` (docs/ISA.md §3.3).
    #[inline]
    pub const fn from_field(v: u8) -> Reg {
        let i = if v > 12 { 12 } else { v };
        Reg::ALL[i as usize]
    }

    /// The register with index `i`, if `i < 13`.
    pub const fn new(i: usize) -> Option<Reg> {
        if i < NUM_REGS {
            Some(Reg::ALL[i])
        } else {
            None
        }
    }

    /// The register's index, `0..13`.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The assembler's ABI alias (GP comments: RA, SP, T0..T2, S0, S1, A0..A5).
    pub const fn abi_name(self) -> &'static str {
        [
            "ra", "sp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
        ][self as usize]
    }

    /// Parse `r0`..`r12` or an ABI alias (`ra`, `sp`, `t0`..`t2`, `s0`, `s1`, `a0`..`a5`).
    pub fn parse(s: &str) -> Option<Reg> {
        // Reject spellings such as `r07` so each register has one name.
        if let Some(n) = s.strip_prefix('r')
            && let Ok(i) = n.parse::<usize>()
            && n == i.to_string()
        {
            return Reg::new(i);
        }
        Reg::ALL.into_iter().find(|r| r.abi_name() == s)
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", *self as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_clamp_to_r12() {
        assert_eq!(Reg::from_field(0), Reg::R0);
        assert_eq!(Reg::from_field(12), Reg::R12);
        assert_eq!(Reg::from_field(13), Reg::R12);
        assert_eq!(Reg::from_field(255), Reg::R12);
    }

    #[test]
    fn names_round_trip() {
        for r in Reg::ALL {
            assert_eq!(Reg::parse(&r.to_string()), Some(r));
            assert_eq!(Reg::parse(r.abi_name()), Some(r));
        }
        assert_eq!(Reg::parse("r13"), None);
        assert_eq!(Reg::parse("r07"), None);
        assert_eq!(Reg::parse("x1"), None);
    }
}
