//! Instruction semantics that are pure functions of register values (docs/ISA.md §4).
//!
//! Every arithmetic edge case is written once, here: division and remainder by zero,
//! `MIN / -1` at both widths, shift-count masking, 32-bit sign extension of results.
//! The interpreter calls these; the recompiler's tests and constant folding use them
//! as the reference. All functions are `const` and total.

/// `sx32(v)`: sign-extend bit 31 of the low 32 bits to 64 bits.
#[inline(always)]
pub const fn sx32(v: u64) -> u64 {
    v as u32 as i32 as i64 as u64
}

/// Sign-extend the low 8 bits.
#[inline(always)]
pub const fn sx8(v: u64) -> u64 {
    v as u8 as i8 as i64 as u64
}

/// Sign-extend the low 16 bits.
#[inline(always)]
pub const fn sx16(v: u64) -> u64 {
    v as u16 as i16 as i64 as u64
}

/// `add_32`.
#[inline(always)]
pub const fn add32(a: u64, b: u64) -> u64 {
    sx32(a.wrapping_add(b))
}

/// `sub_32`.
#[inline(always)]
pub const fn sub32(a: u64, b: u64) -> u64 {
    sx32(a.wrapping_sub(b))
}

/// `mul_32`: low 32 bits of the product, sign-extended.
#[inline(always)]
pub const fn mul32(a: u64, b: u64) -> u64 {
    sx32((a as u32).wrapping_mul(b as u32) as u64)
}

/// `div_u_32`: `2^64 - 1` when the low 32 bits of `b` are zero.
#[inline(always)]
pub const fn div_u32(a: u64, b: u64) -> u64 {
    match (a as u32).checked_div(b as u32) {
        Some(q) => sx32(q as u64),
        None => u64::MAX,
    }
}

/// `div_s_32`: `2^64 - 1` on zero; `MIN / -1` gives `MIN` (sign-extended).
#[inline(always)]
pub const fn div_s32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32 as i32, b as u32 as i32);
    if b == 0 {
        u64::MAX
    } else if a == i32::MIN && b == -1 {
        a as i64 as u64
    } else {
        (a / b) as i64 as u64
    }
}

/// `rem_u_32`: the dividend (sign-extended) when the divisor is zero.
#[inline(always)]
pub const fn rem_u32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32, b as u32);
    if b == 0 {
        sx32(a as u64)
    } else {
        sx32((a % b) as u64)
    }
}

/// `rem_s_32`: `MIN % -1` is 0; `x % 0` is `x`; otherwise the sign of the dividend.
#[inline(always)]
pub const fn rem_s32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32 as i32, b as u32 as i32);
    if b == 0 {
        a as i64 as u64
    } else if a == i32::MIN && b == -1 {
        0
    } else {
        (a % b) as i64 as u64
    }
}

/// `shlo_l_32`: shift by `b mod 32`.
#[inline(always)]
pub const fn shl32(a: u64, b: u64) -> u64 {
    sx32(((a as u32) << (b & 31)) as u64)
}

/// `shlo_r_32`: logical shift by `b mod 32`, result sign-extended.
#[inline(always)]
pub const fn shr32(a: u64, b: u64) -> u64 {
    sx32(((a as u32) >> (b & 31)) as u64)
}

/// `shar_r_32`: arithmetic shift (rounds toward −∞) by `b mod 32`.
#[inline(always)]
pub const fn sar32(a: u64, b: u64) -> u64 {
    ((a as u32 as i32) >> (b & 31)) as i64 as u64
}

/// `shlo_l_64`: shift by `b mod 64`.
#[inline(always)]
pub const fn shl64(a: u64, b: u64) -> u64 {
    a << (b & 63)
}

/// `shlo_r_64`: logical shift by `b mod 64`.
#[inline(always)]
pub const fn shr64(a: u64, b: u64) -> u64 {
    a >> (b & 63)
}

/// `shar_r_64`: arithmetic shift (rounds toward −∞) by `b mod 64`.
#[inline(always)]
pub const fn sar64(a: u64, b: u64) -> u64 {
    ((a as i64) >> (b & 63)) as u64
}

/// `rot_l_64`.
#[inline(always)]
pub const fn rotl64(a: u64, b: u64) -> u64 {
    a.rotate_left((b & 63) as u32)
}

/// `rot_r_64`.
#[inline(always)]
pub const fn rotr64(a: u64, b: u64) -> u64 {
    a.rotate_right((b & 63) as u32)
}

/// `rot_l_32`: rotate the low 32 bits, result sign-extended.
#[inline(always)]
pub const fn rotl32(a: u64, b: u64) -> u64 {
    sx32((a as u32).rotate_left((b & 31) as u32) as u64)
}

/// `rot_r_32`: rotate the low 32 bits, result sign-extended.
#[inline(always)]
pub const fn rotr32(a: u64, b: u64) -> u64 {
    sx32((a as u32).rotate_right((b & 31) as u32) as u64)
}

/// `div_u_64`: `2^64 - 1` on zero.
#[inline(always)]
pub const fn div_u64(a: u64, b: u64) -> u64 {
    match a.checked_div(b) {
        Some(q) => q,
        None => u64::MAX,
    }
}

/// `div_s_64`: `2^64 - 1` on zero; `MIN / -1` gives `MIN`.
#[inline(always)]
pub const fn div_s64(a: u64, b: u64) -> u64 {
    let (sa, sb) = (a as i64, b as i64);
    if sb == 0 {
        u64::MAX
    } else if sa == i64::MIN && sb == -1 {
        a
    } else {
        (sa / sb) as u64
    }
}

/// `rem_u_64`: the dividend on zero.
#[inline(always)]
pub const fn rem_u64(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { a % b }
}

/// `rem_s_64`: `MIN % -1` is 0; `x % 0` is `x`; otherwise the sign of the dividend.
#[inline(always)]
pub const fn rem_s64(a: u64, b: u64) -> u64 {
    let (sa, sb) = (a as i64, b as i64);
    if sb == 0 {
        a
    } else if sa == i64::MIN && sb == -1 {
        0
    } else {
        (sa % sb) as u64
    }
}

/// `mul_upper_s_s`: high 64 bits of the signed 128-bit product.
#[inline(always)]
pub const fn mul_upper_ss(a: u64, b: u64) -> u64 {
    ((a as i64 as i128 * b as i64 as i128) >> 64) as u64
}

/// `mul_upper_u_u`: high 64 bits of the unsigned 128-bit product.
#[inline(always)]
pub const fn mul_upper_uu(a: u64, b: u64) -> u64 {
    ((a as u128 * b as u128) >> 64) as u64
}

/// `mul_upper_s_u`: high 64 bits of `signed(a) × unsigned(b)` (floor).
#[inline(always)]
pub const fn mul_upper_su(a: u64, b: u64) -> u64 {
    ((a as i64 as i128 * b as i128) >> 64) as u64
}

/// `set_lt_u`.
#[inline(always)]
pub const fn set_lt_u(a: u64, b: u64) -> u64 {
    (a < b) as u64
}

/// `set_lt_s`.
#[inline(always)]
pub const fn set_lt_s(a: u64, b: u64) -> u64 {
    ((a as i64) < (b as i64)) as u64
}

/// `max` (signed).
#[inline(always)]
pub const fn max_s(a: u64, b: u64) -> u64 {
    if (a as i64) > (b as i64) { a } else { b }
}

/// `min` (signed).
#[inline(always)]
pub const fn min_s(a: u64, b: u64) -> u64 {
    if (a as i64) < (b as i64) { a } else { b }
}

/// `max_u`.
#[inline(always)]
pub const fn max_u(a: u64, b: u64) -> u64 {
    if a > b { a } else { b }
}

/// `min_u`.
#[inline(always)]
pub const fn min_u(a: u64, b: u64) -> u64 {
    if a < b { a } else { b }
}

/// `count_set_bits_32`.
#[inline(always)]
pub const fn popcnt32(a: u64) -> u64 {
    (a as u32).count_ones() as u64
}

/// `leading_zero_bits_32` (32 for zero).
#[inline(always)]
pub const fn clz32(a: u64) -> u64 {
    (a as u32).leading_zeros() as u64
}

/// `trailing_zero_bits_32` (32 for zero).
#[inline(always)]
pub const fn ctz32(a: u64) -> u64 {
    (a as u32).trailing_zeros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN32: u64 = 0xFFFF_FFFF_8000_0000; // i32::MIN sign-extended
    const NEG1: u64 = u64::MAX;

    #[test]
    fn division_by_zero_both_widths() {
        assert_eq!(div_u32(7, 0), NEG1);
        assert_eq!(div_s32(7, 0), NEG1);
        assert_eq!(div_u64(7, 0), NEG1);
        assert_eq!(div_s64(7, 0), NEG1);
        assert_eq!(rem_u32(0x1_8000_0001, 0), 0xFFFF_FFFF_8000_0001);
        assert_eq!(rem_s32(0xFFFF_FFFF_FFFF_FFF9, 0), NEG1 - 6);
        assert_eq!(rem_u64(7, 0), 7);
        assert_eq!(rem_s64(NEG1, 0), NEG1);
        // 32-bit ops see only the low half of the divisor: 2^32 is zero.
        assert_eq!(div_u32(9, 1 << 32), NEG1);
        assert_eq!(rem_s32(9, 1 << 32), 9);
    }

    #[test]
    fn min_over_minus_one_both_widths() {
        assert_eq!(div_s32(MIN32, NEG1), MIN32);
        assert_eq!(rem_s32(MIN32, NEG1), 0);
        // Upper halves are ignored: 0x1234_5678_8000_0000 is i32::MIN too.
        assert_eq!(div_s32(0x1234_5678_8000_0000, 0xFFFF_FFFF), MIN32);
        let min64 = i64::MIN as u64;
        assert_eq!(div_s64(min64, NEG1), min64);
        assert_eq!(rem_s64(min64, NEG1), 0);
    }

    #[test]
    fn signed_division_truncates_and_remainder_follows_dividend() {
        assert_eq!(div_s64((-7i64) as u64, 2), (-3i64) as u64);
        assert_eq!(rem_s64((-7i64) as u64, 2), (-1i64) as u64);
        assert_eq!(rem_s64(7, (-2i64) as u64), 1);
        assert_eq!(div_s32((-7i64) as u64, 2), (-3i64) as u64);
        assert_eq!(rem_s32((-7i64) as u64, 2), (-1i64) as u64);
    }

    #[test]
    fn unsigned_32_bit_quotient_is_sign_extended() {
        assert_eq!(div_u32(0xFFFF_FFFF, 1), NEG1);
    }

    #[test]
    fn thirty_two_bit_ops_ignore_non_canonical_upper_halves() {
        let junk = 0xDEAD_BEEF_0000_0000;
        assert_eq!(add32(junk | 1, 2), 3);
        assert_eq!(add32(0x7FFF_FFFF, 1), MIN32);
        assert_eq!(sub32(junk, 1), NEG1);
        assert_eq!(mul32(junk | 0x10000, 0x10000), 0);
        assert_eq!(shr32(junk | 0x8000_0000, 31), 1);
        assert_eq!(
            shr32(0x8000_0000, 0),
            MIN32,
            "logical shift result is sign-extended"
        );
        assert_eq!(sar32(junk | 0x8000_0000, 31), NEG1);
        assert_eq!(rotr32(junk | 1, 1), MIN32);
        assert_eq!(popcnt32(junk), 0);
        assert_eq!(clz32(junk), 32);
        assert_eq!(ctz32(junk), 32);
    }

    #[test]
    fn shift_counts_are_masked() {
        assert_eq!(shl64(1, 64), 1);
        assert_eq!(shl64(1, 65), 2);
        assert_eq!(shl32(1, 32), 1);
        assert_eq!(shl32(1, 33), 2);
        assert_eq!(shr64(0x8000_0000_0000_0000, 127), 1);
        assert_eq!(sar64(0x8000_0000_0000_0000, 63 + 64), NEG1);
        assert_eq!(rotl64(1, 64 + 1), 2);
        assert_eq!(rotl32(1, 32 + 1), 2);
    }

    #[test]
    fn arithmetic_shift_rounds_toward_minus_infinity() {
        assert_eq!(sar64(NEG1, 1), NEG1);
        assert_eq!(sar64((-3i64) as u64, 1), (-2i64) as u64);
        assert_eq!(sar32((-3i64) as u64, 1), (-2i64) as u64);
    }

    #[test]
    fn high_multiplies() {
        assert_eq!(mul_upper_uu(NEG1, NEG1), NEG1 - 1);
        assert_eq!(mul_upper_ss(NEG1, NEG1), 0);
        assert_eq!(mul_upper_ss(i64::MIN as u64, i64::MIN as u64), 1 << 62);
        // signed(-1) × unsigned(2^64 - 1) = -(2^64 - 1): high half is -1.
        assert_eq!(mul_upper_su(NEG1, NEG1), NEG1);
        assert_eq!(mul_upper_su(2, NEG1), 1);
    }

    #[test]
    fn compare_and_select() {
        assert_eq!(set_lt_s(NEG1, 0), 1);
        assert_eq!(set_lt_u(NEG1, 0), 0);
        assert_eq!(max_s(NEG1, 0), 0);
        assert_eq!(max_u(NEG1, 0), NEG1);
        assert_eq!(min_s(NEG1, 0), NEG1);
        assert_eq!(min_u(NEG1, 0), 0);
    }

    #[test]
    fn extensions() {
        assert_eq!(sx8(0x80), 0xFFFF_FFFF_FFFF_FF80);
        assert_eq!(sx16(0x1_8000), 0xFFFF_FFFF_FFFF_8000);
        assert_eq!(sx32(0x1_0000_0000), 0);
    }
}
