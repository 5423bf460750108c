//! Image manifests: what each field does, every error, and hostile input.

use std::path::Path;

use javm::manifest::{ManifestError, parse};
use javm_cap::{PageSlot, SlotIdx};
use proptest::prelude::*;

fn build(dir: &Path, toml: &str) -> Result<javm::image::BuiltImage, ManifestError> {
    parse(toml, Path::new("test.toml"), dir)
}

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.s"),
        "main:\n trap\nsecond:\n load_imm r7, 1\n add_imm_64 r7, r7, 1\n ecalli 0\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("std.s"),
        ".ro\n.ascii \"ro\"\n.rw\n.ascii \"rw\"\n.stack 4096\n.code\ntrap\n",
    )
    .unwrap();
    std::fs::write(d.path().join("blob.bin"), [1u8, 2, 3]).unwrap();
    d
}

#[test]
fn endpoints_by_label_or_pc_with_registers() {
    let d = setup();
    let b = build(
        d.path(),
        "code = \"p.s\"\n[[endpoint]]\nindex = 5\nentry = \"second\"\nregs = { r7 = 9, r12 = 3 }\n\
         [[endpoint]]\nindex = 0\nentry = 0\n",
    )
    .unwrap();
    let e = b.image.endpoint(5).unwrap();
    assert_eq!(e.entry_pc, 1);
    assert_eq!((e.regs[0], e.regs[7], e.regs[12]), (0xFFFF_0000, 9, 3));
    assert!(b.image.endpoint(1).is_none());
}

#[test]
fn data_sources_and_mappings() {
    let d = setup();
    let b = build(
        d.path(),
        "code = \"p.s\"\nyield_marker_slot = 9\n\
         [[data]]\nslot = 3\npinned = true\ntext = \"hi\"\n\
         [[data]]\nslot = 4\nhex = \"00 ff\"\nsize = 8192\n\
         [[data]]\nslot = 5\nfile = \"blob.bin\"\n\
         [[data]]\nslot = 6\nzeros = 5000\n\
         [[mapping]]\nstart = 0x30000\nsource = 3\n\
         [[mapping]]\nstart = 0x40000\nsource = 4\n\
         [[mapping]]\nstart = 0x50000\nsize = 0x3000\n",
    )
    .unwrap();
    let img = &b.image;
    assert_eq!(
        img.pinned().iter().map(|s| s.slot).collect::<Vec<_>>(),
        vec![SlotIdx(3)]
    );
    assert_eq!(img.initial().len(), 3);
    assert_eq!(img.yield_marker_slot(), Some(SlotIdx(9)));
    let by_slot = |s| &b.data.iter().find(|d| d.0 == SlotIdx(s)).unwrap().2;
    assert_eq!(by_slot(4).len(), 8192);
    assert_eq!(by_slot(4).read(0, 3).unwrap(), vec![0, 0xff, 0]);
    assert_eq!(by_slot(5).read(0, 4).unwrap(), vec![1, 2, 3, 0]);
    assert_eq!(by_slot(6).pages(), &[PageSlot::Empty, PageSlot::Empty]);
    assert_eq!(
        img.mappings()[1].size,
        0x2000,
        "a mapping defaults to its data's size"
    );
    assert_eq!(img.mem_size(), 0x53000);
}

#[test]
fn standard_sections_bring_the_standard_layout() {
    let d = setup();
    let b = build(d.path(), "code = \"std.s\"\n").unwrap();
    assert_eq!(b.image.pinned()[0].slot, SlotIdx(1));
    assert_eq!(b.image.initial()[0].slot, SlotIdx(2));
    assert_eq!(b.image.endpoint(0).unwrap().regs[1], 0xFEFE_0000);
}

#[test]
fn every_error_names_the_problem() {
    let d = setup();
    let cases = [
        ("code = \"nope.s\"\n", "cannot read"),
        ("code = \"p.s\"\nbogus = 1\n", "bogus"),
        ("code = 3\n", "test.toml"),
        ("code = \"blob.bin\"\n", "neither assembly"),
        (
            "code = \"p.s\"\n[[endpoint]]\nindex = 64\nentry = 0\n",
            "out of range",
        ),
        (
            "code = \"p.s\"\n[[endpoint]]\nindex = 1\nentry = \"nolabel\"\n",
            "no code label `nolabel`",
        ),
        (
            "code = \"p.s\"\n[[endpoint]]\nindex = 1\nentry = 0\nregs = { r13 = 1 }\n",
            "not a register",
        ),
        (
            "code = \"p.s\"\n[[endpoint]]\nindex = 1\nentry = 2\n",
            "not the start of a basic block",
        ),
        (
            "code = \"p.s\"\n[[endpoint]]\nindex = 1\nentry = 1\n[[endpoint]]\nindex = 1\nentry = 1\n",
            "twice",
        ),
        (
            "code = \"p.s\"\n[[data]]\nslot = 3\ntext = \"a\"\nhex = \"00\"\n",
            "exactly one",
        ),
        (
            "code = \"p.s\"\n[[data]]\nslot = 3\nhex = \"0\"\n",
            "odd number",
        ),
        (
            "code = \"p.s\"\n[[data]]\nslot = 3\nhex = \"zz\"\n",
            "not a hex byte",
        ),
        (
            "code = \"p.s\"\n[[data]]\nslot = 3\nhex = \"é1\"\n",
            "not a hex digit",
        ),
        (
            "code = \"p.s\"\n[[data]]\nslot = 3\nzeros = 99999999999999\n",
            "4 GiB",
        ),
        (
            "code = \"p.s\"\n[[data]]\nslot = 3\nfile = \"missing.bin\"\n",
            "cannot read",
        ),
        (
            "code = \"p.s\"\n[[data]]\nslot = 300\ntext = \"a\"\n",
            "out of range",
        ),
        (
            "code = \"p.s\"\n[[data]]\nslot = 3\ntext = \"a\"\n[[data]]\nslot = 3\ntext = \"b\"\n",
            "used twice",
        ),
        (
            "code = \"p.s\"\n[[mapping]]\nstart = 0x1000\n",
            "needs a size or a source",
        ),
        (
            "code = \"p.s\"\n[[mapping]]\nstart = 0x1000\nsource = 7\n",
            "no data slot 7",
        ),
        (
            "code = \"p.s\"\n[[mapping]]\nstart = 0x1001\nsize = 0x1000\n",
            "not page-aligned",
        ),
        (
            "code = \"p.s\"\n[[mapping]]\nstart = 0x1000\nsize = 0x2000\n[[mapping]]\nstart = 0x2000\nsize = 0x1000\n",
            "overlaps",
        ),
        (
            "code = \"p.s\"\n[[data]]\nslot = 3\nzeros = 8192\n[[mapping]]\nstart = 0x1000\nsize = 0x1000\nsource = 3\n",
            "more than its mapping",
        ),
    ];
    for (toml, mentions) in cases {
        let e = build(d.path(), toml)
            .err()
            .unwrap_or_else(|| panic!("accepted: {toml}"));
        let msg = e.to_string();
        assert!(
            msg.contains(mentions),
            "{toml:?}: {msg:?} should mention {mentions:?}"
        );
        assert!(!msg.contains('\n'), "one line: {msg:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let d = setup();
        let _ = build(d.path(), &text);
    }

    #[test]
    fn manifest_shaped_garbage_never_panics(
        fields in prop::collection::vec(
            (prop::sample::select(vec!["code", "index", "entry", "slot", "pinned", "text", "hex",
                "zeros", "size", "start", "source", "regs", "yield_marker_slot", "file"]),
             prop::sample::select(vec!["\"p.s\"", "\"std.s\"", "0", "-1", "4294967296", "true",
                "\"main\"", "{ r1 = 2 }", "18446744073709551615", "\"ff\"", "0x1000", "[1]"])),
            0..12),
        tables in prop::collection::vec(prop::sample::select(vec!["[[endpoint]]", "[[data]]", "[[mapping]]", ""]), 0..4),
    ) {
        let d = setup();
        let mut text = String::from("code = \"p.s\"\n");
        let mut t = tables.iter();
        for (i, (k, v)) in fields.iter().enumerate() {
            if i % 3 == 0 && let Some(h) = t.next() {
                text.push_str(h);
                text.push('\n');
            }
            text.push_str(&format!("{k} = {v}\n"));
        }
        let _ = build(d.path(), &text);
    }
}
