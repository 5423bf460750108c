//! Encoding one instruction: the inverse of [`super::CodeView::decode`].
//!
//! The encoder always picks the shortest encoding (minimal immediate lengths, zero
//! padding bits), so `decode(encode(i)) == i` for every encodable instruction, while
//! `encode(decode(bytes))` may be shorter than `bytes` when they were not minimal.

use thiserror::Error;

use super::decode::sign_extend;
use super::{Args, Format, Opcode};

/// Why an instruction cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The operands do not have the opcode's format.
    #[error("`{mnemonic}` takes operands `{}`, got `{}`", .expected.operands(), .got.operands())]
    WrongFormat {
        /// The opcode's mnemonic.
        mnemonic: &'static str,
        /// The opcode's format.
        expected: Format,
        /// The operands' format.
        got: Format,
    },
    /// An immediate does not fit in a sign-extended 32-bit field.
    #[error("immediate {0} does not fit in a sign-extended 32-bit field")]
    ImmediateOutOfRange(i64),
    /// A branch target is more than 2^31 bytes away from the branch.
    #[error("branch target {target} is out of reach of pc {pc}")]
    TargetOutOfRange {
        /// The branch's position.
        pc: u32,
        /// The requested target.
        target: i64,
    },
}

/// The bytes of one encoded instruction (at most 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    bytes: [u8; 16],
    len: u8,
}

impl Encoded {
    /// The encoded bytes; the first is the opcode.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn push(&mut self, b: u8) {
        self.bytes[usize::from(self.len)] = b;
        self.len += 1;
    }

    fn push_le(&mut self, v: u64, n: u32) {
        for i in 0..n {
            self.push((v >> (8 * i)) as u8);
        }
    }
}

/// The number of bytes (0..=4) needed to encode `v` as a sign-extended immediate.
pub fn imm_len(v: i64) -> Result<u32, EncodeError> {
    (0..=4)
        .find(|&n| sign_extend(v as u64, n) == v)
        .ok_or(EncodeError::ImmediateOutOfRange(v))
}

/// Encode `opcode` with `args`, for an instruction placed at `pc` (needed to turn
/// absolute branch targets into offsets).
pub fn encode(opcode: Opcode, args: &Args, pc: u32) -> Result<Encoded, EncodeError> {
    if args.format() != opcode.format() {
        return Err(EncodeError::WrongFormat {
            mnemonic: opcode.mnemonic(),
            expected: opcode.format(),
            got: args.format(),
        });
    }
    let offset = |target: i64| -> Result<i64, EncodeError> {
        let off = target - i64::from(pc);
        if i32::try_from(off).is_ok() {
            Ok(off)
        } else {
            Err(EncodeError::TargetOutOfRange { pc, target })
        }
    };
    let mut out = Encoded {
        bytes: [0; 16],
        len: 0,
    };
    out.push(opcode.byte());
    let nib = |lo: u8, hi: u8| lo | (hi << 4);
    match *args {
        Args::NoArgs => {}
        Args::Imm { x } => {
            out.push_le(x as u64, imm_len(x)?);
        }
        Args::RegImm64 { a, x } => {
            out.push(a as u8);
            out.push_le(x, 8);
        }
        Args::ImmImm { x, y } => {
            let (lx, ly) = (imm_len(x)?, imm_len(y)?);
            out.push(lx as u8);
            out.push_le(x as u64, lx);
            out.push_le(y as u64, ly);
        }
        Args::Offset { target } => {
            let off = offset(target)?;
            out.push_le(off as u64, imm_len(off)?);
        }
        Args::RegImm { a, x } => {
            out.push(a as u8);
            out.push_le(x as u64, imm_len(x)?);
        }
        Args::RegImmImm { a, x, y } => {
            let (lx, ly) = (imm_len(x)?, imm_len(y)?);
            out.push(nib(a as u8, lx as u8));
            out.push_le(x as u64, lx);
            out.push_le(y as u64, ly);
        }
        Args::RegImmOffset { a, x, target } => {
            let off = offset(target)?;
            let (lx, ly) = (imm_len(x)?, imm_len(off)?);
            out.push(nib(a as u8, lx as u8));
            out.push_le(x as u64, lx);
            out.push_le(off as u64, ly);
        }
        Args::RegReg { d, a } => out.push(nib(d as u8, a as u8)),
        Args::RegRegImm { a, b, x } => {
            out.push(nib(a as u8, b as u8));
            out.push_le(x as u64, imm_len(x)?);
        }
        Args::RegRegOffset { a, b, target } => {
            let off = offset(target)?;
            out.push(nib(a as u8, b as u8));
            out.push_le(off as u64, imm_len(off)?);
        }
        Args::RegRegImmImm { a, b, x, y } => {
            let (lx, ly) = (imm_len(x)?, imm_len(y)?);
            out.push(nib(a as u8, b as u8));
            out.push(lx as u8);
            out.push_le(x as u64, lx);
            out.push_le(y as u64, ly);
        }
        Args::RegRegReg { d, a, b } => {
            out.push(nib(a as u8, b as u8));
            out.push(d as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::isa::{CodeView, Reg};
    use proptest::prelude::*;

    fn reg() -> impl Strategy<Value = Reg> {
        (0usize..13).prop_map(|i| Reg::new(i).unwrap())
    }

    fn imm() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::from(i32::MIN)),
            Just(i64::from(i32::MAX)),
            -200i64..200,
            any::<i32>().prop_map(i64::from),
        ]
    }

    /// Any operands of `format`, with targets within reach of pc 1000.
    pub(crate) fn args_of(format: Format) -> BoxedStrategy<Args> {
        let target = prop_oneof![Just(1000i64), 0i64..3000, -50i64..50];
        match format {
            Format::NoArgs => Just(Args::NoArgs).boxed(),
            Format::Imm => imm().prop_map(|x| Args::Imm { x }).boxed(),
            Format::RegImm64 => (reg(), any::<u64>())
                .prop_map(|(a, x)| Args::RegImm64 { a, x })
                .boxed(),
            Format::ImmImm => (imm(), imm())
                .prop_map(|(x, y)| Args::ImmImm { x, y })
                .boxed(),
            Format::Offset => target.prop_map(|target| Args::Offset { target }).boxed(),
            Format::RegImm => (reg(), imm())
                .prop_map(|(a, x)| Args::RegImm { a, x })
                .boxed(),
            Format::RegImmImm => (reg(), imm(), imm())
                .prop_map(|(a, x, y)| Args::RegImmImm { a, x, y })
                .boxed(),
            Format::RegImmOffset => (reg(), imm(), target)
                .prop_map(|(a, x, target)| Args::RegImmOffset { a, x, target })
                .boxed(),
            Format::RegReg => (reg(), reg())
                .prop_map(|(d, a)| Args::RegReg { d, a })
                .boxed(),
            Format::RegRegImm => (reg(), reg(), imm())
                .prop_map(|(a, b, x)| Args::RegRegImm { a, b, x })
                .boxed(),
            Format::RegRegOffset => (reg(), reg(), target)
                .prop_map(|(a, b, target)| Args::RegRegOffset { a, b, target })
                .boxed(),
            Format::RegRegImmImm => (reg(), reg(), imm(), imm())
                .prop_map(|(a, b, x, y)| Args::RegRegImmImm { a, b, x, y })
                .boxed(),
            Format::RegRegReg => (reg(), reg(), reg())
                .prop_map(|(d, a, b)| Args::RegRegReg { d, a, b })
                .boxed(),
        }
    }

    fn op_and_args() -> impl Strategy<Value = (Opcode, Args)> {
        proptest::sample::select(Opcode::ALL.to_vec())
            .prop_flat_map(|op| args_of(op.format()).prop_map(move |a| (op, a)))
    }

    proptest! {
        /// decode ∘ encode = id, for an instruction alone and followed by another.
        #[test]
        fn decoding_inverts_encoding((op, args) in op_and_args(), follow in any::<bool>()) {
            let pc = 1000u32;
            let enc = encode(op, &args, pc).unwrap();
            let mut code = vec![1u8; pc as usize]; // fallthroughs before it
            code.extend_from_slice(enc.as_slice());
            if follow {
                code.push(0);
            }
            let mut mask = vec![0u8; code.len().div_ceil(8)];
            for i in 0..=pc as usize {
                mask[i / 8] |= 1 << (i % 8);
            }
            if follow {
                let i = code.len() - 1;
                mask[i / 8] |= 1 << (i % 8);
            }
            let v = CodeView::new(&code, &mask);
            let d = v.decode(pc);
            prop_assert_eq!(d.opcode, Some(op));
            prop_assert_eq!(d.args, args);
            prop_assert_eq!(d.skip as usize + 1, enc.as_slice().len());
        }
    }

    #[test]
    fn minimal_lengths() {
        assert_eq!(imm_len(0).unwrap(), 0);
        assert_eq!(imm_len(-1).unwrap(), 1);
        assert_eq!(imm_len(127).unwrap(), 1);
        assert_eq!(imm_len(128).unwrap(), 2);
        assert_eq!(imm_len(-0x8000_0000).unwrap(), 4);
        assert!(imm_len(0x8000_0000).is_err());
    }

    #[test]
    fn wrong_format_is_an_error() {
        let e = encode(Opcode::Add64, &Args::NoArgs, 0).unwrap_err();
        assert!(matches!(e, EncodeError::WrongFormat { .. }));
    }
}
