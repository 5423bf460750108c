//! Parsing assembly source into code items, data sections and labels.

use std::collections::HashMap;

use super::{AsmError, AsmErrorKind as K};
use crate::isa::{Opcode, Reg};

/// One instruction operand as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Operand {
    /// `r0`..`r12` or an ABI alias.
    Reg(Reg),
    /// An integer literal.
    Num(i128),
    /// `name`, `name+N` or `name-N`.
    Label { name: String, offset: i128 },
    /// `%name`: the dynamic-jump address of `name`'s jump-table entry.
    JumpAddr(String),
    /// `@N`: an absolute code position.
    Pos(i128),
    /// `@name`: the position of a code label, exempt from the block-start check.
    LabelPos(String),
}

impl std::fmt::Display for Operand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operand::Reg(r) => write!(f, "{r}"),
            Operand::Num(n) => write!(f, "{n}"),
            Operand::Label { name, offset: 0 } => f.write_str(name),
            Operand::Label { name, offset } => write!(f, "{name}{offset:+}"),
            Operand::JumpAddr(n) => write!(f, "%{n}"),
            Operand::Pos(p) => write!(f, "@{p}"),
            Operand::LabelPos(n) => write!(f, "@{n}"),
        }
    }
}

/// A piece of the code section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum CodeItem {
    Insn {
        op: Opcode,
        operands: Vec<Operand>,
    },
    /// Raw bytes; `start` marks the first byte as an instruction start.
    Raw {
        bytes: Vec<u8>,
        start: bool,
    },
}

/// Where a label points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LabelDef {
    /// Before code item `index`.
    Code(usize),
    /// At an offset in the read-only data.
    Ro(u32),
    /// At an offset in the read-write data.
    Rw(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Code,
    Ro,
    Rw,
    Metadata,
}

impl Section {
    fn name(self) -> &'static str {
        match self {
            Section::Code => "code",
            Section::Ro => "read-only data",
            Section::Rw => "read-write data",
            Section::Metadata => "metadata",
        }
    }
}

/// The parsed source.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub(super) code: Vec<(usize, CodeItem)>,
    pub(super) labels: HashMap<String, (LabelDef, usize)>,
    pub(super) ro: Vec<u8>,
    pub(super) rw: Vec<u8>,
    pub(super) heap_pages: u16,
    pub(super) stack_size: u32,
    /// The metadata blob's bytes, if a `.metadata` section appeared.
    pub(super) metadata: Option<Vec<u8>>,
    /// `.code_blob`: the output is a GP code blob.
    pub(super) code_blob: bool,
    /// Jump-table entries as written (a label or `@N`), with their lines.
    pub(super) jump_table: Vec<(usize, Operand)>,
}

pub(super) fn parse(src: &str) -> Result<Parsed, AsmError> {
    let mut p = Parsed::default();
    let mut section = Section::Code;
    for (i, raw_line) in src.lines().enumerate() {
        let line = i + 1;
        let err = |kind| AsmError { line, kind };
        let mut rest = strip_comment(raw_line).trim();
        // Leading label definitions.
        while let Some((name, after)) = split_label(rest) {
            if Reg::parse(name).is_some() {
                return Err(err(K::Syntax(format!(
                    "{name}: a label cannot be named like a register"
                ))));
            }
            let def = match section {
                Section::Code => LabelDef::Code(p.code.len()),
                Section::Ro => LabelDef::Ro(p.ro.len() as u32),
                Section::Rw => LabelDef::Rw(p.rw.len() as u32),
                Section::Metadata => {
                    return Err(err(K::WrongSection("a label", section.name())));
                }
            };
            if p.labels.insert(name.to_owned(), (def, line)).is_some() {
                return Err(err(K::DuplicateLabel(name.to_owned())));
            }
            rest = after.trim();
        }
        if rest.is_empty() {
            continue;
        }
        let (word, args) = match rest.find(char::is_whitespace) {
            Some(at) => (&rest[..at], rest[at..].trim()),
            None => (rest, ""),
        };
        if let Some(directive) = word.strip_prefix('.') {
            directive_line(&mut p, &mut section, directive, args, line).map_err(err)?;
            continue;
        }
        if section != Section::Code {
            return Err(err(K::WrongSection("an instruction", section.name())));
        }
        let op =
            Opcode::from_mnemonic(word).ok_or_else(|| err(K::UnknownMnemonic(word.to_owned())))?;
        let operands = split_operands(args)
            .into_iter()
            .map(parse_operand)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        p.code.push((line, CodeItem::Insn { op, operands }));
    }
    Ok(p)
}

fn directive_line(
    p: &mut Parsed,
    section: &mut Section,
    name: &str,
    args: &str,
    line: usize,
) -> Result<(), K> {
    let count = |expected: usize, form: &'static str| -> Result<Vec<&str>, K> {
        let ops = split_operands(args);
        if ops.len() == expected {
            Ok(ops)
        } else {
            Err(K::OperandCount {
                mnemonic: format!(".{name}"),
                expected,
                form,
                got: ops.len(),
            })
        }
    };
    match name {
        "code" | "ro" | "rw" | "metadata" => {
            count(0, "no operands")?;
            *section = match name {
                "code" => Section::Code,
                "ro" => Section::Ro,
                "rw" => Section::Rw,
                _ => {
                    p.metadata.get_or_insert_with(Vec::new);
                    Section::Metadata
                }
            };
        }
        "code_blob" => {
            count(0, "no operands")?;
            p.code_blob = true;
        }
        "stack" => {
            let n = number(count(1, "bytes")?[0])?;
            p.stack_size = in_range(n, 0, (1 << 24) - 1, "a stack size (below 16 MiB)")? as u32;
        }
        "heap" => {
            let n = number(count(1, "pages")?[0])?;
            p.heap_pages = in_range(n, 0, i128::from(u16::MAX), "a heap page count (u16)")? as u16;
        }
        "jump_table" => {
            if *section != Section::Code {
                return Err(K::WrongSection(".jump_table", section.name()));
            }
            for op in split_operands(args) {
                match parse_operand(op)? {
                    o @ (Operand::Label { offset: 0, .. }
                    | Operand::Pos(_)
                    | Operand::LabelPos(_)) => p.jump_table.push((line, o)),
                    other => {
                        return Err(K::OperandKind {
                            mnemonic: ".jump_table".into(),
                            index: p.jump_table.len() + 1,
                            expected: "a code label or @position",
                            got: other.to_string(),
                        });
                    }
                }
            }
        }
        "raw" | "nostart" => {
            if *section != Section::Code {
                return Err(K::WrongSection("raw code bytes", section.name()));
            }
            let bytes = byte_list(args, 1)?;
            if bytes.is_empty() {
                return Err(K::Syntax(format!(".{name} needs at least one byte")));
            }
            p.code.push((
                line,
                CodeItem::Raw {
                    bytes,
                    start: name == "raw",
                },
            ));
        }
        "u8" | "byte" | "bytes" | "u16" | "u32" | "u64" => {
            let width = match name {
                "u16" => 2,
                "u32" => 4,
                "u64" => 8,
                _ => 1,
            };
            let d = data(*section, p).ok_or(K::WrongSection("data", section.name()))?;
            d.extend(byte_list(args, width)?);
        }
        "ascii" => {
            let d = data(*section, p).ok_or(K::WrongSection("data", section.name()))?;
            d.extend(string_literal(args)?);
        }
        "zero" => {
            let d = data(*section, p).ok_or(K::WrongSection("data", section.name()))?;
            let n = in_range(
                number(count(1, "bytes")?[0])?,
                0,
                1 << 24,
                "a size (at most 16 MiB)",
            )?;
            d.resize(d.len() + n as usize, 0);
        }
        "align" => {
            let d = data(*section, p).ok_or(K::WrongSection("data", section.name()))?;
            let n = in_range(
                number(count(1, "bytes")?[0])?,
                1,
                4096,
                "an alignment (1..=4096)",
            )?;
            d.resize(d.len().div_ceil(n as usize) * n as usize, 0);
        }
        _ => return Err(K::UnknownDirective(format!(".{name}"))),
    }
    Ok(())
}

/// The data buffer of `s`, `None` in the code section.
fn data(s: Section, p: &mut Parsed) -> Option<&mut Vec<u8>> {
    match s {
        Section::Ro => Some(&mut p.ro),
        Section::Rw => Some(&mut p.rw),
        Section::Metadata => p.metadata.as_mut(),
        Section::Code => None,
    }
}

/// Remove a trailing comment (`;` or `#` outside a string literal).
fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if in_str && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_str = !in_str,
            ';' | '#' if !in_str => return &line[..i],
            _ => {}
        }
        escaped = false;
    }
    line
}

/// `name: rest` → `(name, rest)` if the line starts with a label definition.
fn split_label(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))?;
    let (name, rest) = s.split_at(end);
    let rest = rest.strip_prefix(':')?;
    is_identifier(name).then_some((name, rest))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn split_operands(args: &str) -> Vec<&str> {
    if args.trim().is_empty() {
        return Vec::new();
    }
    args.split(',').map(str::trim).collect()
}

/// Parse an integer literal: decimal, `0x` hex or `0b` binary, optional sign and `_`.
pub(super) fn number(s: &str) -> Result<i128, K> {
    let bad = || K::Syntax(s.to_owned());
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let (radix, body) = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, h.to_owned())
    } else if let Some(b) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        (2, b.to_owned())
    } else {
        (10, digits)
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return Err(bad());
    }
    let v = u128::from_str_radix(&body, radix).map_err(|_| bad())?;
    let v = i128::try_from(v).map_err(|_| bad())?;
    Ok(if neg { -v } else { v })
}

fn in_range(v: i128, lo: i128, hi: i128, field: &'static str) -> Result<i128, K> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(K::OutOfRange { value: v, field })
    }
}

fn parse_operand(s: &str) -> Result<Operand, K> {
    if s.is_empty() {
        return Err(K::Syntax("empty operand".into()));
    }
    if let Some(r) = Reg::parse(s) {
        return Ok(Operand::Reg(r));
    }
    if let Some(p) = s.strip_prefix('@') {
        if is_identifier(p) {
            return Ok(Operand::LabelPos(p.to_owned()));
        }
        return Ok(Operand::Pos(number(p)?));
    }
    if let Some(name) = s.strip_prefix('%') {
        return if is_identifier(name) {
            Ok(Operand::JumpAddr(name.to_owned()))
        } else {
            Err(K::Syntax(s.to_owned()))
        };
    }
    if s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return Ok(Operand::Num(number(s)?));
    }
    let (name, offset) = match s.find(['+', '-']) {
        Some(at) => (
            s[..at].trim(),
            number(s[at..].trim().replace(' ', "").as_str())?,
        ),
        None => (s, 0),
    };
    if !is_identifier(name) {
        return Err(K::Syntax(s.to_owned()));
    }
    Ok(Operand::Label {
        name: name.to_owned(),
        offset,
    })
}

/// Comma-separated integers, each stored little-endian in `width` bytes. Accepts
/// values in `[-2^(8w-1), 2^(8w))`.
fn byte_list(args: &str, width: u32) -> Result<Vec<u8>, K> {
    let lo = -(1i128 << (8 * width - 1));
    let hi = (1i128 << (8 * width)) - 1;
    let field = match width {
        1 => "a byte",
        2 => "16 bits",
        4 => "32 bits",
        _ => "64 bits",
    };
    let mut out = Vec::new();
    for a in split_operands(args) {
        let v = in_range(number(a)?, lo, hi, field)?;
        out.extend_from_slice(&(v as u64).to_le_bytes()[..width as usize]);
    }
    Ok(out)
}

/// A double-quoted string with `\n \t \r \0 \\ \" \xHH` escapes.
fn string_literal(args: &str) -> Result<Vec<u8>, K> {
    let bad = || K::Syntax(args.to_owned());
    let inner = args
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(bad)?;
    let mut out = Vec::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == '"' {
                return Err(bad());
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next().ok_or_else(bad)? {
            'n' => out.push(b'\n'),
            't' => out.push(b'\t'),
            'r' => out.push(b'\r'),
            '0' => out.push(0),
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).map_err(|_| bad())?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}
