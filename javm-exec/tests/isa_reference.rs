//! `docs/ISA.md`'s instruction table is generated from the ISA table (mnemonics,
//! formats, terminators, gas entries) and `Opcode::semantics`; this test fails when
//! the file is stale. Regenerate with
//! `JAVM_BLESS=1 cargo test -p javm-exec --test isa_reference` and review the diff.

use std::fmt::Write;
use std::path::Path;

use javm_exec::isa::{Cycles, Opcode, Slots};

const BEGIN: &str = "<!-- BEGIN GENERATED (javm-exec/tests/isa_reference.rs) -->";
const END: &str = "<!-- END GENERATED -->";

fn cycles(c: Cycles) -> String {
    match c {
        Cycles::Fixed(n) => n.to_string(),
        Cycles::Mem => "25·s".into(),
        Cycles::Branch => "20 (1 to a trap)".into(),
        Cycles::Rename => "0".into(),
    }
}

fn slots(s: Slots) -> String {
    match s {
        Slots::Fixed(n) => n.to_string(),
        Slots::Ov1(x, y) => format!("{x} if A = B, else {y}"),
        Slots::Ov2(x, y) => format!("{x} if A ∈ {{B, D}}, else {y}"),
        Slots::OvS(x, y) => format!("{x} if raw A = raw B, else {y}"),
    }
}

/// The generated section: one row per opcode, in opcode order.
fn table() -> String {
    let mut t = String::new();
    t.push_str(
        "| # | mnemonic | operands | semantics | ends block | jar1 cycles | jar1 slots |\n\
         |--:|---|---|---|---|---|---|\n",
    );
    for op in Opcode::ALL {
        let ends = match op {
            Opcode::Ecalli => "jar1 only",
            o if o.is_terminator() => "yes",
            _ => "",
        };
        let c = op.cost();
        let _ = writeln!(
            t,
            "| {} | `{}` | {} | {} | {} | {} | {} |",
            op.byte(),
            op.mnemonic(),
            op.format().operands(),
            op.semantics().replace('|', "\\|"),
            ends,
            cycles(c.cycles),
            slots(c.slots),
        );
    }
    t
}

#[test]
fn docs_isa_md_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ISA.md");
    let text = std::fs::read_to_string(&path).expect("docs/ISA.md exists");
    let start = text.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = text.find(END).expect("end marker");
    let current = text[start..end].trim();
    let generated = table();
    if std::env::var_os("JAVM_BLESS").is_some() {
        let new = format!("{}\n{}\n{}", &text[..start], generated.trim(), &text[end..]);
        std::fs::write(&path, new).expect("write docs/ISA.md");
        return;
    }
    assert_eq!(
        current,
        generated.trim(),
        "docs/ISA.md is stale: JAVM_BLESS=1 cargo test -p javm-exec --test isa_reference"
    );
}

#[test]
fn every_opcode_has_a_row_with_semantics() {
    let t = table();
    assert_eq!(t.lines().count(), 2 + Opcode::ALL.len());
    assert!(Opcode::ALL.iter().all(|op| !op.semantics().is_empty()));
}
