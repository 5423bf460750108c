//! The disassembler: the inverse of [`crate::asm::assemble`].
//!
//! Every instruction prints in the assembler's syntax with its PC as a comment.
//! Branch targets and jump-table entries in ϖ get labels `L<pc>`; targets outside ϖ
//! (which panic when taken) print as absolute positions `@N`. An instruction whose
//! bytes are not the shortest encoding (possible in blobs from other toolchains)
//! prints as `.raw` bytes with its decoded form in a comment, invalid opcodes print as
//! `.raw`, and bytes that no instruction start covers print as `.nostart`.
//! Reassembling a disassembly reproduces the program: the exact bytes for assembler
//! output, and for other blobs too unless branch relaxation settles on a different,
//! equally valid, offset width for some branch.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::blob::StandardProgram;
use crate::isa::{Args, CodeView, Opcode, encode};
use crate::program::Program;

/// Format one instruction's mnemonic and operands, with targets as `@N`.
pub fn format_instruction(op: Opcode, args: &Args) -> String {
    format_with_targets(op, args, &|t| format!("@{t}"))
}

/// Format one instruction, naming static targets with `target`.
pub fn format_with_targets(op: Opcode, args: &Args, target: &dyn Fn(i64) -> String) -> String {
    let mut s = op.mnemonic().to_owned();
    let abs = op.has_absolute_address();
    let ops: Vec<String> = match *args {
        Args::NoArgs => vec![],
        Args::Imm { x } => vec![value(x)],
        Args::RegImm64 { a, x } => vec![a.to_string(), unsigned(x)],
        Args::ImmImm { x, y } => vec![address(x), value(y)],
        Args::Offset { target: t } => vec![target(t)],
        Args::RegImm { a, x } => vec![a.to_string(), if abs { address(x) } else { value(x) }],
        Args::RegImmImm { a, x, y } => vec![a.to_string(), value(x), value(y)],
        Args::RegImmOffset { a, x, target: t } => vec![a.to_string(), value(x), target(t)],
        Args::RegReg { d, a } => vec![d.to_string(), a.to_string()],
        Args::RegRegImm { a, b, x } => vec![a.to_string(), b.to_string(), value(x)],
        Args::RegRegOffset { a, b, target: t } => vec![a.to_string(), b.to_string(), target(t)],
        Args::RegRegImmImm { a, b, x, y } => {
            vec![a.to_string(), b.to_string(), value(x), value(y)]
        }
        Args::RegRegReg { d, a, b } => vec![d.to_string(), a.to_string(), b.to_string()],
    };
    if !ops.is_empty() {
        s.push(' ');
        s.push_str(&ops.join(", "));
    }
    s
}

/// A signed value: decimal when small, hexadecimal otherwise.
fn value(x: i64) -> String {
    if x.unsigned_abs() < 0x1_0000 {
        x.to_string()
    } else if x < 0 {
        format!("-{:#x}", x.unsigned_abs())
    } else {
        format!("{x:#x}")
    }
}

fn unsigned(x: u64) -> String {
    if x < 0x1_0000 {
        x.to_string()
    } else {
        format!("{x:#x}")
    }
}

/// An absolute address: the 32-bit pattern in hexadecimal.
fn address(x: i64) -> String {
    format!("{:#x}", x as u32)
}

fn bytes_directive(name: &str, bytes: &[u8]) -> String {
    let list: Vec<String> = bytes.iter().map(|b| format!("{b:#04x}")).collect();
    format!(".{name} {}", list.join(", "))
}

/// Disassemble a program's code and jump table.
pub fn disassemble(program: &Program) -> String {
    let mut out = String::new();
    let view = program.view();
    let pcs = program.pcs();
    // Labels for every target in ϖ.
    let valid = |t: i64| program.resolve_target(t).block().is_some();
    let mut labels: BTreeSet<i64> = pcs[..pcs.len() - 1]
        .iter()
        .filter_map(|&pc| view.decode(pc).args.target())
        .filter(|&t| valid(t))
        .collect();
    labels.extend(
        program
            .jump_table()
            .iter()
            .map(|&t| i64::from(t))
            .filter(|&t| valid(t)),
    );
    let name = |t: i64| {
        if labels.contains(&t) {
            format!("L{t}")
        } else {
            format!("@{t}")
        }
    };
    if !program.jump_table().is_empty() {
        let entries: Vec<String> = program
            .jump_table()
            .iter()
            .map(|&t| name(i64::from(t)))
            .collect();
        for chunk in entries.chunks(8) {
            let _ = writeln!(out, ".jump_table {}", chunk.join(", "));
        }
    }
    let code = program.code();
    for w in pcs.windows(2) {
        let (pc, next) = (w[0], w[1]);
        if labels.contains(&i64::from(pc)) {
            let _ = writeln!(out, "L{pc}:");
        }
        let bytes = &code[pc as usize..next as usize];
        let (line, ends_block) = instruction_line(view, pc, bytes, &name);
        let _ = writeln!(out, "    {line:<40}; @{pc}");
        if ends_block {
            out.push('\n');
        }
    }
    out
}

/// One position's line, and whether it ends a basic block.
fn instruction_line(
    view: CodeView<'_>,
    pc: u32,
    bytes: &[u8],
    name: &dyn Fn(i64) -> String,
) -> (String, bool) {
    let d = view.decode(pc);
    match d.opcode {
        Some(op) => {
            let text = format_with_targets(op, &d.args, name);
            let canonical = encode(op, &d.args, pc).is_ok_and(|e| e.as_slice() == bytes);
            if canonical {
                (text, op.is_terminator())
            } else {
                (
                    format!("{} ; = {text}", bytes_directive("raw", bytes)),
                    op.is_terminator(),
                )
            }
        }
        None if view.bit(u64::from(pc)) => (bytes_directive("raw", bytes), false),
        None => (bytes_directive("nostart", bytes), false),
    }
}

/// Disassemble a GP code blob's program: [`disassemble`] under a `.code_blob`
/// directive, so that the assembler writes a code blob again.
pub fn disassemble_code_blob(program: &Program) -> String {
    format!("; GP code blob\n.code_blob\n{}", disassemble(program))
}

/// Disassemble a standard program preceded by a metadata blob: the metadata as a
/// `.metadata` section, then [`disassemble_standard`]. Reassembles to the same bytes.
pub fn disassemble_with_metadata(metadata: &[u8], sp: &StandardProgram) -> String {
    let mut out = format!("; metadata: {} bytes\n.metadata\n", metadata.len());
    for chunk in metadata.chunks(16) {
        let _ = writeln!(out, "    {}", bytes_directive("bytes", chunk));
    }
    out.push_str(".code\n");
    out.push_str(&disassemble_standard(sp));
    out
}

/// Disassemble a standard program: sizes, data sections and code.
pub fn disassemble_standard(sp: &StandardProgram) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; standard program: {} bytes read-only data, {} bytes read-write data, \
         {} heap pages, {} bytes of stack, {} bytes of code",
        sp.ro_data.len(),
        sp.rw_data.len(),
        sp.heap_pages,
        sp.stack_size,
        sp.program.code().len()
    );
    if sp.stack_size > 0 {
        let _ = writeln!(out, ".stack {}", sp.stack_size);
    }
    if sp.heap_pages > 0 {
        let _ = writeln!(out, ".heap {}", sp.heap_pages);
    }
    for (name, data) in [("ro", &sp.ro_data), ("rw", &sp.rw_data)] {
        if data.is_empty() {
            continue;
        }
        let _ = writeln!(out, ".{name}");
        for chunk in data.chunks(16) {
            let _ = writeln!(out, "    {}", bytes_directive("bytes", chunk));
        }
    }
    out.push_str(".code\n");
    out.push_str(&disassemble(&sp.program));
    out
}
