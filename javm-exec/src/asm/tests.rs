use super::*;
use crate::blob::{StandardProgram, parse_code_blob};
use crate::disasm::{disassemble, disassemble_standard, format_instruction};
use crate::isa::{Args, CodeView, Opcode, Reg};

fn asm(src: &str) -> Assembly {
    assemble(src).unwrap_or_else(|e| panic!("{e}"))
}

fn err(src: &str) -> AsmErrorKind {
    assemble(src).unwrap_err().kind
}

/// `.metadata` prefixes the standard blob with a metadata blob; `.code_blob` asks
/// for a code blob, which cannot hold data or metadata; metadata has no labels.
#[test]
fn metadata_section_and_code_blob_directive() {
    let a = assemble(".metadata\n.ascii \"svc\"\n.code\ntrap\n").unwrap();
    assert_eq!(a.metadata.as_deref(), Some(&b"svc"[..]));
    let blob = a.blob(false).unwrap();
    assert_eq!(&blob[..4], b"\x03svc");
    assert_eq!(&blob[4..], &a.standard_blob().unwrap()[..]);
    let a = assemble(".code_blob\ntrap\n").unwrap();
    assert_eq!(a.blob(false).unwrap(), a.code_blob());
    let a = assemble(".code_blob\n.ro\n.u8 1\n.code\ntrap\n").unwrap();
    assert!(
        a.blob(false)
            .unwrap_err()
            .to_string()
            .contains("code blob cannot hold")
    );
    let e = assemble(".metadata\nname: .u8 1\n").unwrap_err();
    assert!(e.to_string().contains("metadata"), "{e}");
}

#[test]
fn assembles_the_worked_example_e1_bytes() {
    let a = asm("load_imm r1, 10\nload_imm r2, 3\ndiv_u_64 r3, r1, r2\nadd_imm_64 r4, r3, 1\ntrap");
    assert_eq!(
        a.code,
        [
            0x33, 0x01, 0x0a, 0x33, 0x02, 0x03, 0xcb, 0x21, 0x03, 0x95, 0x34, 0x01, 0x00
        ]
    );
    assert_eq!(a.bitmask, [0b0100_1001, 0b0001_0010]);
}

#[test]
fn labels_backward_and_forward() {
    let a = asm(
        "start: load_imm r1, 3\nfallthrough\nloop: add_imm_64 r1, r1, -1\n\
                 branch_ne_imm r1, 0, loop\njump end\nfallthrough\nend: trap",
    );
    assert_eq!(a.label("start"), Some(0));
    assert_eq!(a.label("loop"), Some(4));
    let p = a.program().unwrap();
    let v = p.view();
    let br = v.decode(p.pcs()[3]);
    assert_eq!(br.opcode, Some(Opcode::BranchNeImm));
    assert_eq!(br.args.target(), Some(4));
    let jump = v.decode(p.pcs()[4]);
    assert_eq!(jump.opcode, Some(Opcode::Jump));
    assert_eq!(jump.args.target(), a.label("end").map(i64::from));
}

#[test]
fn long_branches_relax_to_wider_offsets() {
    let mut src = String::from("top: fallthrough\n");
    for _ in 0..300 {
        src.push_str("load_imm_64 r1, 0x123456789\n");
    }
    src.push_str("jump top\nbranch_eq r1, r2, top\n");
    let a = asm(&src);
    let p = a.program().unwrap();
    let v = p.view();
    let last = *p.pcs().iter().rev().nth(1).unwrap();
    assert_eq!(v.decode(last).args.target(), Some(0));
}

#[test]
fn data_sections_labels_and_jump_addresses() {
    let a = asm(
        ".ro\nmsg: .ascii \"hi\\n\"\n.rw\n.align 8\nval: .u64 0x1122334455667788\n.code\n\
         load_imm r7, msg\nload_imm r8, val+1\nload_imm r0, %ret\njump ret\nret: trap\n.stack 4096\n.heap 1",
    );
    assert_eq!(a.ro_data, b"hi\n");
    assert_eq!(a.rw_data, 0x1122334455667788u64.to_le_bytes());
    assert_eq!((a.stack_size, a.heap_pages), (4096, 1));
    assert_eq!(a.jump_table, vec![a.label("ret").unwrap()]);
    let p = a.program().unwrap();
    let v = p.view();
    assert_eq!(
        v.decode(0).args,
        Args::RegImm {
            a: Reg::R7,
            x: 0x10000
        }
    );
    // rw data starts at 0x20000 + Q(3) = 0x30000.
    assert_eq!(
        v.decode(p.pcs()[1]).args,
        Args::RegImm {
            a: Reg::R8,
            x: 0x30001
        }
    );
    assert_eq!(v.decode(p.pcs()[2]).args, Args::RegImm { a: Reg::R0, x: 2 });
}

#[test]
fn immediates_accept_32_bit_patterns() {
    let a = asm("load_imm r1, 0xFFFFFFFF\nload_imm r2, -1\nstore_u8 r1, 0xFEFF0000");
    let p = a.program().unwrap();
    let v = p.view();
    assert_eq!(v.decode(0).args, Args::RegImm { a: Reg::R1, x: -1 });
    assert_eq!(
        v.decode(p.pcs()[1]).args,
        Args::RegImm { a: Reg::R2, x: -1 }
    );
    assert_eq!(
        v.decode(p.pcs()[2]).args,
        Args::RegImm {
            a: Reg::R1,
            x: -0x0101_0000
        }
    );
}

#[test]
fn raw_and_nostart_bytes() {
    let a = asm("fallthrough\n.raw 4, 0x12\n.nostart 0\ntrap");
    assert_eq!(a.code, [1, 4, 0x12, 0, 0]);
    assert_eq!(a.bitmask, [0b1_0011]);
}

#[test]
fn errors_name_line_and_problem() {
    assert_eq!(assemble("trap\nfoo r1").unwrap_err().line, 2);
    assert_eq!(err("foo r1"), AsmErrorKind::UnknownMnemonic("foo".into()));
    assert!(matches!(
        err("add_64 r1, r2"),
        AsmErrorKind::OperandCount {
            expected: 3,
            got: 2,
            ..
        }
    ));
    assert!(matches!(
        err("add_64 r1, r2, 5"),
        AsmErrorKind::OperandKind { index: 3, .. }
    ));
    assert!(matches!(
        err("load_imm r13, 5"),
        AsmErrorKind::OperandKind { .. }
    ));
    assert!(matches!(
        err("load_imm r1, 0x1_0000_0000"),
        AsmErrorKind::OutOfRange { .. }
    ));
    assert_eq!(
        err("jump nowhere"),
        AsmErrorKind::UndefinedLabel("nowhere".into())
    );
    assert_eq!(
        err("a: trap\na: trap"),
        AsmErrorKind::DuplicateLabel("a".into())
    );
    assert!(matches!(
        err(".ro\nd: .u8 1\n.code\njump d"),
        AsmErrorKind::WrongLabelKind(..)
    ));
    assert!(matches!(
        err("x: trap\nload_imm r1, x"),
        AsmErrorKind::WrongLabelKind(..)
    ));
    assert!(matches!(err(".ro\ntrap"), AsmErrorKind::WrongSection(..)));
    assert_eq!(
        err(".bogus"),
        AsmErrorKind::UnknownDirective(".bogus".into())
    );
    assert!(matches!(err(".u8 256"), AsmErrorKind::WrongSection(..)));
    assert!(matches!(
        err(".ro\n.u8 256"),
        AsmErrorKind::OutOfRange { .. }
    ));
    assert!(matches!(
        err(".ascii \"unterminated"),
        AsmErrorKind::Syntax(_) | AsmErrorKind::WrongSection(..)
    ));
    assert!(matches!(err("r1: trap"), AsmErrorKind::Syntax(_)));
    assert_eq!(
        err("load_imm r1, 1\nmid: load_imm r2, 2\njump mid"),
        AsmErrorKind::NotABlockStart("mid".into())
    );
    assert_eq!(
        err(".jump_table mid\nload_imm r1, 1\nmid: trap"),
        AsmErrorKind::NotABlockStart("mid".into())
    );
    assert_eq!(
        err("jump end\nend:"),
        AsmErrorKind::NotABlockStart("end".into())
    );
    // @N, @label and label+offset branch anywhere, on purpose.
    assert!(assemble("load_imm r1, 1\nmid: load_imm r2, 2\njump @3").is_ok());
    let a = assemble("load_imm r1, 1\nmid: load_imm r2, 2\njump @mid\n.jump_table @mid").unwrap();
    assert_eq!(a.jump_table, vec![3]);
    let p = a.program().unwrap();
    assert_eq!(p.view().decode(6).args.target(), Some(3));
    assert!(matches!(
        err("jump @nowhere"),
        AsmErrorKind::UndefinedLabel(_)
    ));
}

#[test]
fn comments_and_blank_lines() {
    let a =
        asm("; header\n\n  # another\nfallthrough ; trailing\n.ro\n.ascii \"a;b#c\" ; quoted\n");
    assert_eq!(a.code, [1]);
    assert_eq!(a.ro_data, b"a;b#c");
}

#[test]
fn disassembly_reassembles_to_identical_bytes() {
    let src = ".stack 8192\n.ro\n.ascii \"data\"\n.rw\n.u32 7\n.code\n.jump_table l2\n\
               l1: load_imm r1, 100000\nfallthrough\nl2: store_imm_u32 0x20000, -5\nbranch_lt_s r1, r2, l1\n\
               .raw 4\n.nostart 1, 2\nload_imm_jump_ind r1, r1, 5, -70000\ntrap";
    let a = asm(src);
    let blob = a.standard_blob().unwrap();
    let sp = StandardProgram::parse(&blob).unwrap();
    let text = disassemble_standard(&sp);
    let b = asm(&text);
    assert_eq!(b.standard_blob().unwrap(), blob, "disassembly:\n{text}");
}

#[test]
fn non_canonical_encodings_disassemble_as_raw_and_reassemble_exactly() {
    // load_imm r1, 5 with a 2-byte immediate (05 00): not the shortest form.
    let blob = crate::blob::encode_code_blob(&[0x33, 0x01, 0x05, 0x00, 0x00], &[0b1_0001], &[]);
    let p = parse_code_blob(&blob).unwrap();
    let text = disassemble(&p);
    assert!(
        text.contains(".raw 0x33, 0x01, 0x05, 0x00 ; = load_imm r1, 5"),
        "{text}"
    );
    let a = asm(&text);
    assert_eq!(a.code_blob(), blob);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn instruction() -> impl Strategy<Value = (Opcode, Args)> {
        proptest::sample::select(Opcode::ALL.to_vec()).prop_flat_map(|op| {
            crate::isa::encode_tests_support::args_of(op.format()).prop_map(move |a| (op, a))
        })
    }

    proptest! {
        /// disasm(asm(text)) == text for canonical text.
        #[test]
        fn text_round_trips(insns in proptest::collection::vec(instruction(), 1..40)) {
            // Targets must be valid positions for exact round trips of @N; point
            // every branch at position 0.
            let lines: Vec<String> = insns
                .iter()
                .map(|(op, args)| {
                    let mut a = *args;
                    match &mut a {
                        Args::Offset { target }
                        | Args::RegImmOffset { target, .. }
                        | Args::RegRegOffset { target, .. } => *target = 0,
                        _ => {}
                    }
                    format_instruction(*op, &a)
                })
                .collect();
            let src = lines.join("\n");
            let a = assemble(&src).unwrap();
            let p = a.program().unwrap();
            let view = CodeView::new(p.code(), p.bitmask());
            let text: Vec<String> = p.pcs()[..p.pcs().len() - 1]
                .iter()
                .map(|&pc| {
                    let d = view.decode(pc);
                    format_instruction(d.opcode.unwrap(), &d.args)
                })
                .collect();
            prop_assert_eq!(text, lines);
        }

        /// Assembling random text never panics.
        #[test]
        fn random_text_never_panics(s in "[ -~\n]{0,200}") {
            let _ = assemble(&s);
        }
    }
}
