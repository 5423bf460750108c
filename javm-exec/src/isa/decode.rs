//! Decoding one instruction at a position (docs/ISA.md §3.1, §3.3).
//!
//! Reading follows ζ semantics: every byte past the end of the code reads as 0, and
//! every bitmask bit at or past the end of the code reads as 1. Decoding is total: any
//! position decodes to something (an [`Opcode`] with operands, or "not an instruction").

use super::{Args, Format, Opcode, Reg};

/// The largest skip: an instruction's operands span at most 24 bytes.
pub const MAX_SKIP: u32 = 24;

/// Code bytes plus the instruction-start bitmask (bit `i` = bit `i % 8` of byte `i / 8`).
#[derive(Clone, Copy, Debug)]
pub struct CodeView<'a> {
    code: &'a [u8],
    bitmask: &'a [u8],
}

impl<'a> CodeView<'a> {
    /// View `code` with `bitmask`. The bitmask may be shorter than the code; missing
    /// bits read as 0 (callers validate the length before building programs).
    pub fn new(code: &'a [u8], bitmask: &'a [u8]) -> Self {
        CodeView { code, bitmask }
    }

    /// The code bytes.
    pub fn code(&self) -> &'a [u8] {
        self.code
    }

    /// Code length in bytes (the code is at most 2^32 - 1 bytes; loaders enforce it).
    #[inline]
    pub fn len(&self) -> u32 {
        self.code.len() as u32
    }

    /// Whether the code is empty.
    pub fn is_empty(&self) -> bool {
        self.code.is_empty()
    }

    /// ζ: the byte at `pos`, or 0 past the end.
    #[inline]
    pub fn byte(&self, pos: u64) -> u8 {
        usize::try_from(pos)
            .ok()
            .and_then(|p| self.code.get(p))
            .copied()
            .unwrap_or(0)
    }

    /// Whether `pos` is marked as an instruction start (1 at or past the end of code).
    #[inline]
    pub fn bit(&self, pos: u64) -> bool {
        if pos >= self.code.len() as u64 {
            return true;
        }
        let byte = self.bitmask.get((pos / 8) as usize).copied().unwrap_or(0);
        byte & (1 << (pos % 8)) != 0
    }

    /// `skip(pc) = min(24, smallest j ≥ 0 with bit(pc + 1 + j) = 1)`.
    ///
    /// Where the 24 bits after `pc` all lie inside the code (every position but the
    /// last few), they are read as one word and the answer is its trailing zero
    /// count; near the end each bit is read with ζ semantics.
    #[inline]
    pub fn skip(&self, pc: u32) -> u32 {
        let start = u64::from(pc) + 1;
        if start + u64::from(MAX_SKIP) <= self.code.len() as u64 {
            // Bits start .. start + 24 lie in bitmask bytes start / 8 .. + 4 (a shift
            // of at most 7 plus 24 bits is 31 bits).
            let at = (start / 8) as usize;
            let mut word = [0u8; 4];
            for (i, b) in word.iter_mut().enumerate() {
                *b = self.bitmask.get(at + i).copied().unwrap_or(0);
            }
            let bits = (u32::from_le_bytes(word) >> (start % 8)) & ((1 << MAX_SKIP) - 1);
            return bits.trailing_zeros().min(MAX_SKIP);
        }
        (0..MAX_SKIP)
            .find(|&j| self.bit(start + u64::from(j)))
            .unwrap_or(MAX_SKIP)
    }

    /// Whether the position `pc` ends a basic block: a terminator, or a position that
    /// is not an instruction start (a block walk can land on one when `skip` is
    /// capped at 24; it is priced as opcode 0, `trap`, as the Lean reference does,
    /// and executing it panics). The position `len(code)` reads as `trap` (ζ).
    #[inline]
    pub fn ends_block(&self, pc: u32) -> bool {
        !self.bit(u64::from(pc)) || self.opcode_at(pc).is_some_and(Opcode::is_terminator)
    }

    /// The opcode executed at `pc`: `None` if `pc` is not an instruction start or its
    /// byte is not a defined opcode. (Past the end, ζ gives 0, i.e. `trap`.)
    #[inline]
    pub fn opcode_at(&self, pc: u32) -> Option<Opcode> {
        if self.bit(u64::from(pc)) {
            Opcode::from_u8(self.byte(u64::from(pc)))
        } else {
            None
        }
    }

    /// The 16 code bytes after `pc` as one little-endian word, bytes past the end
    /// reading 0 (ζ): every operand of the instruction at `pc` lies in them (the
    /// furthest, `RegRegImmImm`'s second immediate, ends 11 bytes after `pc`).
    /// Decoding extracts operands from this word with shifts and masks instead of
    /// a bounds-checked load per byte.
    #[inline]
    fn window(&self, pc: u32) -> u128 {
        let start = pc as usize + 1;
        let rest = self.code.get(start..).unwrap_or_default();
        match rest.first_chunk::<16>() {
            Some(bytes) => u128::from_le_bytes(*bytes),
            None => {
                let mut bytes = [0u8; 16];
                bytes[..rest.len()].copy_from_slice(rest);
                u128::from_le_bytes(bytes)
            }
        }
    }

    /// Decode the instruction at `pc`.
    pub fn decode(&self, pc: u32) -> Decoded {
        self.decode_with_skip(pc, self.skip(pc))
    }

    /// [`CodeView::decode`] for a caller that knows `skip(pc)` already (the loader,
    /// from the next position). `skip` must be `self.skip(pc)`.
    #[inline]
    pub fn decode_with_skip(&self, pc: u32, skip: u32) -> Decoded {
        debug_assert_eq!(skip, self.skip(pc), "skip at {pc}");
        let Some(opcode) = self.opcode_at(pc) else {
            return Decoded {
                opcode: None,
                skip,
                args: Args::NoArgs,
            };
        };
        let args = self.decode_args(opcode.format(), pc, skip);
        Decoded {
            opcode: Some(opcode),
            skip,
            args,
        }
    }

    /// Decode operands of `format` for an instruction at `pc` with skip `l`.
    /// Inlined, so that the loader's decoder reads the operands from registers
    /// (returned through memory, each was a store-forwarding stall).
    #[inline(always)]
    pub fn decode_args(&self, format: Format, pc: u32, l: u32) -> Args {
        let w = self.window(pc);
        let read = |off: u32, n: u32| window_bytes(w, off, n);
        // The `n ≤ 4`-byte immediate `off` bytes after `pc`, sign-extended (`X_n`).
        let imm = |off: u32, n: u32| sign_extend(read(off, n), n);
        let b1 = w as u8;
        let lo = Reg::from_field(b1 & 0x0F);
        let hi = Reg::from_field(b1 >> 4);
        let target = |off: i64| i64::from(pc) + off;
        match format {
            Format::NoArgs => Args::NoArgs,
            Format::Imm => Args::Imm {
                x: imm(1, l.min(4)),
            },
            Format::RegImm64 => Args::RegImm64 {
                a: lo,
                x: read(2, 8),
            },
            Format::ImmImm => {
                let lx = u32::from(b1 % 8).min(4);
                let ly = l.saturating_sub(lx + 1).min(4);
                Args::ImmImm {
                    x: imm(2, lx),
                    y: imm(2 + lx, ly),
                }
            }
            Format::Offset => Args::Offset {
                target: target(imm(1, l.min(4))),
            },
            Format::RegImm => Args::RegImm {
                a: lo,
                x: imm(2, l.saturating_sub(1).min(4)),
            },
            Format::RegImmImm | Format::RegImmOffset => {
                let lx = u32::from((b1 >> 4) % 8).min(4);
                let ly = l.saturating_sub(lx + 1).min(4);
                let x = imm(2, lx);
                let y = imm(2 + lx, ly);
                if format == Format::RegImmImm {
                    Args::RegImmImm { a: lo, x, y }
                } else {
                    Args::RegImmOffset {
                        a: lo,
                        x,
                        target: target(y),
                    }
                }
            }
            Format::RegReg => Args::RegReg { d: lo, a: hi },
            Format::RegRegImm => Args::RegRegImm {
                a: lo,
                b: hi,
                x: imm(2, l.saturating_sub(1).min(4)),
            },
            Format::RegRegOffset => Args::RegRegOffset {
                a: lo,
                b: hi,
                target: target(imm(2, l.saturating_sub(1).min(4))),
            },
            Format::RegRegImmImm => {
                let b2 = (w >> 8) as u8;
                let lx = u32::from(b2 % 8).min(4);
                let ly = l.saturating_sub(lx + 2).min(4);
                Args::RegRegImmImm {
                    a: lo,
                    b: hi,
                    x: imm(3, lx),
                    y: imm(3 + lx, ly),
                }
            }
            Format::RegRegReg => Args::RegRegReg {
                a: lo,
                b: hi,
                d: Reg::from_field((w >> 8) as u8),
            },
        }
    }
}

/// The `n ≤ 8` bytes that start `off` bytes after `pc` (`1 ≤ off`,
/// `off + n ≤ 17`), little-endian, from [`CodeView::window`]`(pc)`.
#[inline(always)]
fn window_bytes(w: u128, off: u32, n: u32) -> u64 {
    let v = (w >> (8 * (off - 1))) as u64;
    if n >= 8 {
        v
    } else {
        v & ((1u64 << (8 * n)) - 1)
    }
}

/// One decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The opcode, or `None` if the position is not an instruction start or holds an
    /// undefined opcode byte (executing it panics).
    pub opcode: Option<Opcode>,
    /// `skip(pc)`: the next instruction is at `pc + 1 + skip`.
    pub skip: u32,
    /// The operands (`NoArgs` when `opcode` is `None`).
    pub args: Args,
}

/// `X_n`: sign-extend the low `n` bytes of `v` (`n` in 0..=8; `X_0 = 0`).
#[inline]
pub const fn sign_extend(v: u64, n: u32) -> i64 {
    if n == 0 {
        return 0;
    }
    if n >= 8 {
        return v as i64;
    }
    let shift = 64 - 8 * n;
    ((v << shift) as i64) >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_extension() {
        assert_eq!(sign_extend(0xFF, 1), -1);
        assert_eq!(sign_extend(0x7F, 1), 127);
        assert_eq!(sign_extend(0x80_0000, 3), -0x80_0000);
        assert_eq!(sign_extend(0xFFFF_FFFF, 4), -1);
        assert_eq!(sign_extend(0x1234, 0), 0);
    }

    /// The word-at-a-time `skip` equals the definition, bit by bit, at every
    /// position of many random bitmasks (sparse and dense), near the end included.
    #[test]
    fn skip_matches_its_definition_everywhere() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..400 {
            let len = 1 + (next() % 120) as usize;
            let density = 1 + round % 40;
            let code = vec![0u8; len];
            let mut mask = vec![0u8; len.div_ceil(8)];
            for i in 0..len {
                if next() % density == 0 {
                    mask[i / 8] |= 1 << (i % 8);
                }
            }
            let v = CodeView::new(&code, &mask);
            for pc in 0..=len as u32 {
                let want = (0..MAX_SKIP)
                    .find(|&j| v.bit(u64::from(pc) + 1 + u64::from(j)))
                    .unwrap_or(MAX_SKIP);
                assert_eq!(v.skip(pc), want, "len {len}, pc {pc}, mask {mask:02x?}");
            }
        }
    }

    /// Operands come out of a 16-byte word; they must be the bytes ζ reads one at
    /// a time, at every position of short and long code (near the end, past it
    /// reads 0), for every offset and length an operand can have.
    #[test]
    fn window_reads_are_the_bytes_read_one_at_a_time() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for len in (0..40).chain([100, 257]) {
            let code: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let v = CodeView::new(&code, &[]);
            for pc in 0..=len as u32 + 2 {
                let w = v.window(pc);
                for off in 1..=16u32 {
                    for n in 0..=8u32.min(17 - off) {
                        let want = (0..n).fold(0u64, |acc, i| {
                            acc | u64::from(v.byte(u64::from(pc + off + i))) << (8 * i)
                        });
                        assert_eq!(
                            window_bytes(w, off, n),
                            want,
                            "len {len} pc {pc} off {off} n {n}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn skip_reads_ones_past_the_end_and_caps_at_24() {
        let code = [0u8; 40];
        let mut mask = [0u8; 5];
        mask[0] = 1; // only pc 0 is a start
        let v = CodeView::new(&code, &mask);
        assert_eq!(v.skip(0), 24, "long runs of zero bits cap at 24");
        let short = [0u8; 3];
        let v = CodeView::new(&short, &[1]);
        assert_eq!(v.skip(0), 2, "bit(3) = 1 because 3 = len");
    }

    #[test]
    fn worked_example_e1_decodes() {
        // docs/ISA.md §5.4 E1: 33 01 0a | 33 02 03 | cb 21 03 | 95 34 01 | 00
        let code = [
            0x33, 0x01, 0x0a, 0x33, 0x02, 0x03, 0xcb, 0x21, 0x03, 0x95, 0x34, 0x01, 0x00,
        ];
        let mask = [0b0100_1001, 0b0001_0010];
        let v = CodeView::new(&code, &mask);
        assert_eq!(v.decode(0).args, Args::RegImm { a: Reg::R1, x: 10 });
        let div = v.decode(6);
        assert_eq!(div.opcode, Some(Opcode::DivU64));
        assert_eq!(
            div.args,
            Args::RegRegReg {
                a: Reg::R1,
                b: Reg::R2,
                d: Reg::R3
            }
        );
        let add = v.decode(9);
        assert_eq!(
            add.args,
            Args::RegRegImm {
                a: Reg::R4,
                b: Reg::R3,
                x: 1
            }
        );
        assert_eq!(v.decode(12).opcode, Some(Opcode::Trap));
        assert_eq!(
            v.decode(13).opcode,
            Some(Opcode::Trap),
            "ζ past the end is trap"
        );
    }

    #[test]
    fn non_start_and_undefined_bytes_decode_as_not_an_instruction() {
        let code = [0x04, 0x33, 0x01];
        let v = CodeView::new(&code, &[0b001]);
        assert_eq!(v.decode(0).opcode, None, "byte 4 is not a defined opcode");
        assert_eq!(v.decode(1).opcode, None, "bit 1 is clear");
    }

    #[test]
    fn three_register_rd_uses_the_whole_byte() {
        // rD = min(12, byte2): 0x10 names r12, not r0 (docs/ISA.md §3.3).
        let code = [200, 0x21, 0x10];
        let v = CodeView::new(&code, &[1]);
        assert_eq!(
            v.decode(0).args,
            Args::RegRegReg {
                a: Reg::R1,
                b: Reg::R2,
                d: Reg::R12
            }
        );
    }

    #[test]
    fn branch_offsets_are_relative_and_may_be_negative() {
        // jump -3 at pc 2 → target -1.
        let code = [1, 1, 40, 0xFD];
        let v = CodeView::new(&code, &[0b0111]);
        assert_eq!(v.decode(2).args, Args::Offset { target: -1 });
    }
}
