//! Turning parsed source into code: label resolution, branch relaxation, encoding.
//!
//! Instruction sizes depend on branch offsets, which depend on sizes. Layout starts
//! with every offset at its widest (4 bytes) and recomputes minimal sizes from the
//! resulting positions until nothing changes; with label targets sizes only shrink,
//! so this converges to the minimal layout. Absolute `@N` targets can make sizes
//! oscillate; after a bounded number of rounds the layout only grows, and any
//! instruction left shorter than its slot has its offset sign-extended to fill it
//! (which decodes identically).

use std::collections::HashMap;

use super::parse::{CodeItem, LabelDef, Operand, Parsed, parse};
use super::{AsmError, AsmErrorKind as K, Assembly};
use crate::blob::standard::{RO_BASE, ZONE};
use crate::isa::{Args, Format, Opcode, encode};

/// Assemble `src` (see the module docs for the format).
pub fn assemble(src: &str) -> Result<Assembly, AsmError> {
    let mut p = parse(src)?;
    let ctx = Context::new(&mut p)?;

    // Slots: initial sizes with the widest offsets.
    let mut slots: Vec<u32> = Vec::with_capacity(p.code.len());
    for (line, item) in &p.code {
        let size = match item {
            CodeItem::Raw { bytes, .. } => bytes.len() as u32,
            CodeItem::Insn { op, operands } => {
                let args = ctx
                    .args(*op, operands, 0, None)
                    .map_err(|kind| AsmError { line: *line, kind })?;
                encoded_len(*op, &args, 0, true).map_err(|kind| AsmError { line: *line, kind })?
            }
        };
        slots.push(size);
    }
    let mut grow_only = false;
    for round in 0.. {
        let positions = positions(&slots)?;
        let mut next = slots.clone();
        for (i, (line, item)) in p.code.iter().enumerate() {
            if let CodeItem::Insn { op, operands } = item
                && is_branch(*op)
            {
                let pc = positions[i];
                let args = ctx
                    .args(*op, operands, pc, Some(&positions))
                    .map_err(|kind| AsmError { line: *line, kind })?;
                let len = encoded_len(*op, &args, pc, false)
                    .map_err(|kind| AsmError { line: *line, kind })?;
                next[i] = if grow_only { len.max(slots[i]) } else { len };
            }
        }
        if next == slots {
            break;
        }
        slots = next;
        if round == 64 {
            grow_only = true;
        }
    }

    // Encode.
    let positions = positions(&slots)?;
    let code_len = positions.last().copied().unwrap_or(0) as usize;
    let mut code = Vec::with_capacity(code_len);
    let mut bitmask = vec![0u8; code_len.div_ceil(8)];
    for (i, (line, item)) in p.code.iter().enumerate() {
        let pc = positions[i];
        let err = |kind| AsmError { line: *line, kind };
        match item {
            CodeItem::Raw { bytes, start } => {
                if *start {
                    bitmask[pc as usize / 8] |= 1 << (pc % 8);
                }
                code.extend_from_slice(bytes);
            }
            CodeItem::Insn { op, operands } => {
                bitmask[pc as usize / 8] |= 1 << (pc % 8);
                let args = ctx.args(*op, operands, pc, Some(&positions)).map_err(err)?;
                let enc = encode(*op, &args, pc).map_err(|e| err(K::Syntax(e.to_string())))?;
                let mut bytes = enc.as_slice().to_vec();
                // Fill a slot wider than the minimal encoding by sign-extending the
                // trailing offset (only after non-converging absolute targets).
                let fill = if matches!(args.target(), Some(t) if t < i64::from(pc)) {
                    0xFF
                } else {
                    0
                };
                bytes.resize(slots[i] as usize, fill);
                code.extend_from_slice(&bytes);
            }
        }
    }

    check_block_starts(&p, &ctx)?;

    let mut jump_table = Vec::with_capacity(ctx.jump_table.len());
    for (line, entry) in &ctx.jump_table {
        let t = ctx
            .target(entry, Some(&positions))
            .map_err(|kind| AsmError { line: *line, kind })?;
        let t = u32::try_from(t).map_err(|_| AsmError {
            line: *line,
            kind: K::OutOfRange {
                value: i128::from(t),
                field: "a jump-table entry (u32)",
            },
        })?;
        jump_table.push(t);
    }
    let mut code_labels: Vec<(String, u32)> = ctx
        .labels
        .iter()
        .filter_map(|(name, (def, _))| match def {
            LabelDef::Code(i) => Some((name.clone(), positions[*i])),
            _ => None,
        })
        .collect();
    code_labels.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));

    Ok(Assembly {
        code,
        bitmask,
        jump_table,
        ro_data: std::mem::take(&mut p.ro),
        rw_data: std::mem::take(&mut p.rw),
        heap_pages: p.heap_pages,
        stack_size: p.stack_size,
        metadata: p.metadata.take(),
        code_blob: p.code_blob,
        code_labels,
    })
}

/// Every label used as a branch target or jump-table entry must name a basic-block
/// start: the first item, or an item after a terminator, holding a valid instruction
/// (`.raw` bytes count by their first byte).
fn check_block_starts(p: &Parsed, ctx: &Context) -> Result<(), AsmError> {
    let opcode = |i: usize| match p.code.get(i) {
        Some((_, CodeItem::Insn { op, .. })) => Some(*op),
        Some((_, CodeItem::Raw { bytes, start: true })) => {
            bytes.first().and_then(|&b| Opcode::from_u8(b))
        }
        _ => None,
    };
    let starts_block = |i: usize| -> bool {
        let after_terminator = i == 0 || opcode(i - 1).is_some_and(Opcode::is_terminator);
        after_terminator && opcode(i).is_some()
    };
    let check = |line: usize, o: &Operand| -> Result<(), AsmError> {
        if let Operand::Label { name, offset: 0 } = o
            && let Ok(LabelDef::Code(i)) = ctx.label(name)
            && !starts_block(i)
        {
            return Err(AsmError {
                line,
                kind: K::NotABlockStart(name.clone()),
            });
        }
        Ok(())
    };
    for (line, item) in &p.code {
        if let CodeItem::Insn { op, operands } = item
            && let Some(last) = operands.last()
            && is_branch(*op)
        {
            check(*line, last)?;
        }
    }
    for (line, entry) in &ctx.jump_table {
        check(*line, entry)?;
    }
    Ok(())
}

/// Whether `op` has a static target (its size depends on the layout).
fn is_branch(op: Opcode) -> bool {
    matches!(
        op.format(),
        Format::Offset | Format::RegImmOffset | Format::RegRegOffset
    )
}

/// Position of every code item, plus the end of the code as the last element.
fn positions(slots: &[u32]) -> Result<Vec<u32>, AsmError> {
    let mut out = Vec::with_capacity(slots.len() + 1);
    let mut pc = 0u64;
    for &s in slots {
        out.push(pc as u32);
        pc += u64::from(s);
        if pc > crate::program::MAX_CODE_LEN as u64 {
            return Err(AsmError {
                line: 0,
                kind: K::OutOfRange {
                    value: i128::from(pc),
                    field: "the code size limit",
                },
            });
        }
    }
    out.push(pc as u32);
    Ok(out)
}

/// Encoded length; with `widest`, targets are assumed 4-byte offsets away.
fn encoded_len(op: Opcode, args: &Args, pc: u32, widest: bool) -> Result<u32, K> {
    let mut args = *args;
    if widest {
        let far = i64::from(pc) + (1 << 30);
        match &mut args {
            Args::Offset { target }
            | Args::RegImmOffset { target, .. }
            | Args::RegRegOffset { target, .. } => *target = far,
            _ => {}
        }
    }
    encode(op, &args, pc)
        .map(|e| e.as_slice().len() as u32)
        .map_err(|e| K::Syntax(e.to_string()))
}

struct Context {
    labels: HashMap<String, (LabelDef, usize)>,
    rw_base: u32,
    jump_table: Vec<(usize, Operand)>,
    jump_index: HashMap<String, usize>,
}

impl Context {
    fn new(p: &mut Parsed) -> Result<Context, AsmError> {
        let rw_base = (2 * ZONE + (p.ro.len() as u64).div_ceil(ZONE) * ZONE) as u32;
        let mut jump_table = std::mem::take(&mut p.jump_table);
        let mut jump_index = HashMap::new();
        for (i, (_, e)) in jump_table.iter().enumerate() {
            if let Operand::Label { name, .. } = e {
                jump_index.entry(name.clone()).or_insert(i);
            }
        }
        // `%name` operands add entries for labels not already in the table.
        for (line, item) in &p.code {
            if let CodeItem::Insn { operands, .. } = item {
                for o in operands {
                    if let Operand::JumpAddr(name) = o
                        && !jump_index.contains_key(name)
                    {
                        jump_index.insert(name.clone(), jump_table.len());
                        jump_table.push((
                            *line,
                            Operand::Label {
                                name: name.clone(),
                                offset: 0,
                            },
                        ));
                    }
                }
            }
        }
        Ok(Context {
            labels: std::mem::take(&mut p.labels),
            rw_base,
            jump_table,
            jump_index,
        })
    }

    fn label(&self, name: &str) -> Result<LabelDef, K> {
        self.labels
            .get(name)
            .map(|&(d, _)| d)
            .ok_or_else(|| K::UndefinedLabel(name.to_owned()))
    }

    /// A branch target: a code label (+offset) or `@N`.
    fn target(&self, o: &Operand, positions: Option<&[u32]>) -> Result<i64, K> {
        let v: i128 = match o {
            Operand::Pos(p) => *p,
            Operand::LabelPos(name) => match self.label(name)? {
                LabelDef::Code(i) => i128::from(positions.map_or(0, |p| p[i])),
                _ => return Err(K::WrongLabelKind(name.clone(), "data")),
            },
            Operand::Label { name, offset } => match self.label(name)? {
                LabelDef::Code(i) => {
                    let pc = positions.map_or(0, |p| p[i]);
                    i128::from(pc) + offset
                }
                _ => return Err(K::WrongLabelKind(name.clone(), "data")),
            },
            other => {
                return Err(K::Syntax(format!("`{other}` is not a branch target")));
            }
        };
        i64::try_from(v).map_err(|_| K::OutOfRange {
            value: v,
            field: "a branch target",
        })
    }

    /// A value operand: a number, a data label (+offset) or `%label`.
    fn value(&self, o: &Operand) -> Result<i128, K> {
        match o {
            Operand::Num(n) => Ok(*n),
            Operand::JumpAddr(name) => {
                self.label(name)?;
                let i = self.jump_index.get(name).copied().unwrap_or(0);
                Ok(2 * (i as i128 + 1))
            }
            Operand::Label { name, offset } => match self.label(name)? {
                LabelDef::Ro(off) => Ok(i128::from(RO_BASE) + i128::from(off) + offset),
                LabelDef::Rw(off) => Ok(i128::from(self.rw_base) + i128::from(off) + offset),
                LabelDef::Code(_) => Err(K::WrongLabelKind(
                    name.clone(),
                    "code (use %label for its jump address)",
                )),
            },
            other => Err(K::Syntax(format!("`{other}` is not a value"))),
        }
    }

    /// Convert operands to `Args` for `op` placed at `pc`.
    fn args(
        &self,
        op: Opcode,
        ops: &[Operand],
        pc: u32,
        positions: Option<&[u32]>,
    ) -> Result<Args, K> {
        let (form, kinds) = spec(op.format());
        if ops.len() != kinds.len() {
            return Err(K::OperandCount {
                mnemonic: op.mnemonic().to_owned(),
                expected: kinds.len(),
                form,
                got: ops.len(),
            });
        }
        let kind_err = |i: usize, expected: &'static str| K::OperandKind {
            mnemonic: op.mnemonic().to_owned(),
            index: i + 1,
            expected,
            got: ops[i].to_string(),
        };
        let reg = |i: usize| match ops[i] {
            Operand::Reg(r) => Ok(r),
            _ => Err(kind_err(i, "a register")),
        };
        let imm = |i: usize| match &ops[i] {
            Operand::Reg(_) | Operand::Pos(_) | Operand::LabelPos(_) => {
                Err(kind_err(i, "an immediate"))
            }
            o => imm32(self.value(o)?),
        };
        let target = |i: usize| match &ops[i] {
            o @ (Operand::Pos(_) | Operand::LabelPos(_) | Operand::Label { .. }) => {
                let t = self.target(o, positions)?;
                // Before layout, any target is fine: it only sizes the slot.
                Ok(if positions.is_none() {
                    i64::from(pc)
                } else {
                    t
                })
            }
            _ => Err(kind_err(i, "a branch target (label or @N)")),
        };
        Ok(match op.format() {
            Format::NoArgs => Args::NoArgs,
            Format::Imm => Args::Imm { x: imm(0)? },
            Format::RegImm64 => Args::RegImm64 {
                a: reg(0)?,
                x: match &ops[1] {
                    Operand::Reg(_) | Operand::Pos(_) | Operand::LabelPos(_) => {
                        return Err(kind_err(1, "an immediate"));
                    }
                    o => imm64(self.value(o)?)?,
                },
            },
            Format::ImmImm => Args::ImmImm {
                x: imm(0)?,
                y: imm(1)?,
            },
            Format::Offset => Args::Offset { target: target(0)? },
            Format::RegImm => Args::RegImm {
                a: reg(0)?,
                x: imm(1)?,
            },
            Format::RegImmImm => Args::RegImmImm {
                a: reg(0)?,
                x: imm(1)?,
                y: imm(2)?,
            },
            Format::RegImmOffset => Args::RegImmOffset {
                a: reg(0)?,
                x: imm(1)?,
                target: target(2)?,
            },
            Format::RegReg => Args::RegReg {
                d: reg(0)?,
                a: reg(1)?,
            },
            Format::RegRegImm => Args::RegRegImm {
                a: reg(0)?,
                b: reg(1)?,
                x: imm(2)?,
            },
            Format::RegRegOffset => Args::RegRegOffset {
                a: reg(0)?,
                b: reg(1)?,
                target: target(2)?,
            },
            Format::RegRegImmImm => Args::RegRegImmImm {
                a: reg(0)?,
                b: reg(1)?,
                x: imm(2)?,
                y: imm(3)?,
            },
            Format::RegRegReg => Args::RegRegReg {
                d: reg(0)?,
                a: reg(1)?,
                b: reg(2)?,
            },
        })
    }
}

#[derive(Clone, Copy)]
enum Kind {
    R,
    I,
    T,
}

/// The operand form of each format, for error messages and counting.
fn spec(f: Format) -> (&'static str, &'static [Kind]) {
    use Kind::*;
    match f {
        Format::NoArgs => ("no operands", &[]),
        Format::Imm => ("X", &[I]),
        Format::RegImm64 => ("rA, X", &[R, I]),
        Format::ImmImm => ("X, Y", &[I, I]),
        Format::Offset => ("target", &[T]),
        Format::RegImm => ("rA, X", &[R, I]),
        Format::RegImmImm => ("rA, X, Y", &[R, I, I]),
        Format::RegImmOffset => ("rA, X, target", &[R, I, T]),
        Format::RegReg => ("rD, rA", &[R, R]),
        Format::RegRegImm => ("rA, rB, X", &[R, R, I]),
        Format::RegRegOffset => ("rA, rB, target", &[R, R, T]),
        Format::RegRegImmImm => ("rA, rB, X, Y", &[R, R, I, I]),
        Format::RegRegReg => ("rD, rA, rB", &[R, R, R]),
    }
}

/// A 32-bit immediate: values in `[-2^31, 2^31)`, plus `[2^31, 2^32)` and
/// `[2^64 - 2^31, 2^64)` read as the 32- or 64-bit pattern they sign-extend from.
fn imm32(v: i128) -> Result<i64, K> {
    let v = if (1i128 << 31..1i128 << 32).contains(&v) {
        v - (1i128 << 32)
    } else if ((1i128 << 64) - (1i128 << 31)..1i128 << 64).contains(&v) {
        v - (1i128 << 64)
    } else {
        v
    };
    i32::try_from(v).map(i64::from).map_err(|_| K::OutOfRange {
        value: v,
        field: "a sign-extended 32-bit immediate",
    })
}

/// A 64-bit immediate: `[-2^63, 2^64)`.
fn imm64(v: i128) -> Result<u64, K> {
    if (-(1i128 << 63)..1i128 << 64).contains(&v) {
        Ok(v as u64)
    } else {
        Err(K::OutOfRange {
            value: v,
            field: "64 bits",
        })
    }
}
