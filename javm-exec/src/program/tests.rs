use super::*;
use crate::gas::MemTier;
use crate::isa::Opcode;

fn mask(starts: &[u32], len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len.div_ceil(8)];
    for &s in starts {
        m[s as usize / 8] |= 1 << (s % 8);
    }
    m
}

fn program(code: &[u8], starts: &[u32], jt: &[u32]) -> Program {
    Program::new(code.to_vec(), mask(starts, code.len()), jt.to_vec()).unwrap()
}

#[test]
fn blocks_partition_positions_and_end_with_the_implicit_trap() {
    // load_imm r1, 1; fallthrough; load_imm r2, 2   (runs off the end)
    let p = program(&[0x33, 0x01, 0x01, 1, 0x33, 0x02, 0x02], &[0, 3, 4], &[]);
    assert_eq!(p.pcs(), &[0, 3, 4, 7]);
    assert_eq!(
        p.blocks(),
        &[
            Block {
                pc: 0,
                first: 0,
                end: 2
            },
            Block {
                pc: 4,
                first: 2,
                end: 4
            }
        ]
    );
    assert_eq!(p.instructions()[3].opcode(), Some(Opcode::Trap));
    assert_eq!(p.block_of(3), 1);
    assert_eq!(p.block_starting_at(4), Some(1));
    assert_eq!(p.block_starting_at(3), None);
}

#[test]
fn empty_code_is_one_implicit_trap() {
    let p = Program::new(vec![], vec![], vec![]).unwrap();
    assert_eq!(p.pcs(), &[0]);
    assert_eq!(p.blocks().len(), 1);
    assert_eq!(p.block_costs(GasSchedule::Gp)[0].cost, 1);
    assert_eq!(
        p.block_costs(GasSchedule::Jar1(MemTier::new(1).unwrap()))[0].cost,
        1
    );
}

#[test]
fn static_targets_must_be_block_starts() {
    // 0: jump +5 (→ 5, block start after jump? no: 2 is), 2: load_imm r1, 1; 5: trap
    // Positions 0, 2, 5. Blocks: [0], [2, 5]. Target 5 is mid-block → invalid.
    let p = program(&[40, 5, 0x33, 0x01, 0x01, 0], &[0, 2, 5], &[]);
    match p.instructions()[0] {
        Instruction::Jump(o) => assert_eq!(o.target, Target::INVALID),
        other => panic!("unexpected {other:?}"),
    }
    // Jump to 2 (a block start) resolves to block 1.
    let p = program(&[40, 2, 0x33, 0x01, 0x01, 0], &[0, 2, 5], &[]);
    match p.instructions()[0] {
        Instruction::Jump(o) => assert_eq!(o.target, Target(1)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn targets_outside_the_code_or_on_invalid_opcodes_are_invalid() {
    // 0: jump +3 → 3 = len (implicit trap): not in ϖ.
    let p = program(&[1, 40, 2], &[0, 1], &[]);
    assert!(matches!(p.instructions()[1], Instruction::Jump(o) if o.target == Target::INVALID));
    // A block start with an undefined opcode byte (4) is not in ϖ.
    let p = program(&[1, 4, 40, 0xFF], &[0, 1, 2], &[1]);
    assert_eq!(p.jump_targets(), &[Target::INVALID]);
    assert!(matches!(p.instructions()[2], Instruction::Jump(o) if o.target == Target::INVALID));
}

#[test]
fn jump_table_resolution_and_dynamic_jump_rule() {
    // 0: fallthrough; 1: trap. Table: [1, 0, 7].
    let p = program(&[1, 0], &[0, 1], &[1, 0, 7]);
    assert_eq!(p.jump_targets(), &[Target(1), Target(0), Target::INVALID]);
    assert_eq!(p.resolve_dynamic_jump(HALT_ADDRESS), DynamicJump::Halt);
    assert_eq!(p.resolve_dynamic_jump(0), DynamicJump::Panic);
    assert_eq!(p.resolve_dynamic_jump(1), DynamicJump::Panic, "odd");
    assert_eq!(p.resolve_dynamic_jump(2), DynamicJump::Block(1));
    assert_eq!(p.resolve_dynamic_jump(4), DynamicJump::Block(0));
    assert_eq!(
        p.resolve_dynamic_jump(6),
        DynamicJump::Panic,
        "entry not in ϖ"
    );
    assert_eq!(
        p.resolve_dynamic_jump(8),
        DynamicJump::Panic,
        "outside the table"
    );
}

#[test]
fn capped_skip_lands_on_a_non_start_position() {
    // One instruction start at 0 followed by 30 bytes with clear bits.
    let mut code = vec![0x33, 0x01, 0x01];
    code.resize(31, 0x33);
    let p = program(&code, &[0], &[]);
    // skip(0) = 24 → position 25 (not a start) → skip(25) = 5 (len = 31) → 31.
    assert_eq!(p.pcs(), &[0, 25, 31]);
    assert_eq!(p.instructions()[1], Instruction::Invalid);
}

#[test]
fn bad_bitmasks_are_rejected() {
    assert!(matches!(
        Program::new(vec![0; 9], vec![1], vec![]),
        Err(ProgramError::BitmaskLength {
            got: 1,
            expected: 2,
            ..
        })
    ));
    assert_eq!(
        Program::new(vec![0; 3], vec![0b1000_0001], vec![]).unwrap_err(),
        ProgramError::BitmaskPadding
    );
}

#[test]
fn hash_depends_on_every_part() {
    let a = program(&[1, 0], &[0, 1], &[]).hash();
    let b = program(&[1, 0], &[0, 1], &[1]).hash();
    let c = program(&[1, 1], &[0, 1], &[]).hash();
    let d = program(&[1, 0], &[0], &[]).hash();
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
    assert_eq!(a, program(&[1, 0], &[0, 1], &[]).hash());
}

/// The positions by their definition: every byte is visited, and a position marks
/// `pc + 1 + skip(pc)`.
fn positions_by_definition(view: CodeView<'_>) -> Vec<u32> {
    let len = view.len();
    let mut is_pos = vec![false; len as usize + 1];
    is_pos[0] = true;
    is_pos[len as usize] = true;
    for pc in 0..len {
        if view.bit(u64::from(pc)) {
            is_pos[pc as usize] = true;
        }
        if is_pos[pc as usize] {
            is_pos[(pc + 1 + view.skip(pc)) as usize] = true;
        }
    }
    (0..=len).filter(|&pc| is_pos[pc as usize]).collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Loading walks positions one skip at a time and resolves targets through a
    /// rank table of block starts; both must give what the definitions give: every
    /// byte visited for positions, a binary search over the blocks for targets.
    #[test]
    fn positions_and_targets_match_their_definitions(
        code in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        density in 0u32..5,
        seed in proptest::prelude::any::<u64>(),
        table in proptest::collection::vec(0u32..420, 0..8),
    ) {
        // Sparse to dense bitmasks, so that gaps of more than 24 bytes occur.
        let mut state = seed | 1;
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
        let starts: Vec<u32> = (0..code.len() as u32)
            .filter(|_| next() % 32 < u64::from(density * density + 1))
            .collect();
        let p = Program::new(code.clone(), mask(&starts, code.len()), table.clone()).unwrap();
        proptest::prop_assert_eq!(p.pcs().to_vec(), positions_by_definition(p.view()));
        proptest::prop_assert_eq!(p.blocks().to_vec(), blocks_by_definition(&p));
        // Pricing walks a block through the loader's tables; the walk and every
        // price must be what the model's own walk over the bytes gives.
        for block in p.blocks() {
            let walk: Vec<_> = p.block_walk(block).collect();
            proptest::prop_assert_eq!(&walk, &model::BlockWalk::new(p.view(), block.pc).collect::<Vec<_>>());
            for schedule in [GasSchedule::Gp, GasSchedule::Jar1(MemTier::new(1).unwrap()), GasSchedule::Jar1(MemTier::new(4).unwrap())] {
                proptest::prop_assert_eq!(
                    model::block_cost_of(p.view(), block.pc, walk.iter().copied(), schedule),
                    model::block_cost(p.view(), block.pc, schedule)
                );
            }
        }
        // Nothing is decoded until asked; the interrupt points decode only what
        // they need.
        let polls = p.interrupt_points().to_vec();
        proptest::prop_assert!(p.instructions.get().is_none());
        proptest::prop_assert_eq!(polls, interrupt_points_by_definition(&p));
        let decoded = instructions_by_definition(&p);
        proptest::prop_assert_eq!(p.instructions(), &decoded[..]);
        for (i, &pc) in p.pcs().iter().enumerate() {
            if let Some(raw) = p.view().decode(pc).args.target()
                && p.instructions()[i] != Instruction::Invalid
            {
                proptest::prop_assert_eq!(p.instructions()[i].target(), Some(resolve_by_definition(&p, raw)));
            }
            proptest::prop_assert_eq!(p.opcode(i as u32), p.view().decode(pc).opcode);
        }
        for (i, &t) in table.iter().enumerate() {
            proptest::prop_assert_eq!(p.jump_targets()[i], resolve_by_definition(&p, i64::from(t)));
            proptest::prop_assert_eq!(p.resolve_target(i64::from(t)), resolve_by_definition(&p, i64::from(t)));
        }
        // A block at a time (the interpreter's way) decodes what the whole table
        // holds, and so does any range, however it is cut.
        for b in p.blocks() {
            proptest::prop_assert_eq!(&p.decode_range(b.first, b.end)[..], &decoded[b.first as usize..b.end as usize]);
        }
        let n = decoded.len() as u32;
        let (from, to) = ((seed % u64::from(n + 2)) as u32, (seed >> 32) as u32 % (n + 2));
        let want = decoded.get(from.min(n) as usize..to.min(n).max(from.min(n)) as usize).unwrap();
        proptest::prop_assert_eq!(&p.decode_range(from, to)[..], want);
        // Decoded in parts on several threads, the table is the same.
        for threads in [2, 3, 7] {
            let again = Program::new(p.code().to_vec(), p.bitmask().to_vec(), p.jump_table().to_vec()).unwrap();
            proptest::prop_assert_eq!(again.instructions_on(threads), &decoded[..]);
        }
    }
}

/// The blocks by their definition: each ends at a position that ends a block
/// ([`CodeView::ends_block`]) or at the last position.
fn blocks_by_definition(p: &Program) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut first = 0;
    for (i, &pc) in p.pcs().iter().enumerate() {
        if p.view().ends_block(pc) || i + 1 == p.pcs().len() {
            blocks.push(Block {
                pc: p.pcs()[first as usize],
                first,
                end: i as u32 + 1,
            });
            first = i as u32 + 1;
        }
    }
    blocks
}

/// A static target resolved by the rule of ϖ with a binary search over the blocks
/// and the opcodes decoded afresh (loading uses a bit table and its opcode table).
fn resolve_by_definition(p: &Program, target: i64) -> Target {
    let opcode = |i: u32| p.view().decode(p.pcs()[i as usize]).opcode;
    build::resolve_target(
        target,
        p.code().len() as u32,
        p.blocks(),
        |pc| p.block_starting_at(pc),
        |i| opcode(i).is_some(),
        |i| opcode(i).is_some_and(Opcode::is_terminator),
    )
}

/// Every position decoded on its own, by [`CodeView::decode`], its targets resolved
/// by [`resolve_by_definition`].
fn instructions_by_definition(p: &Program) -> Vec<Instruction> {
    p.pcs()
        .iter()
        .map(|&pc| {
            let d = p.view().decode(pc);
            Instruction::resolve(d.opcode, &d.args, &|t| resolve_by_definition(p, t))
        })
        .collect()
}

/// [`Program::interrupt_points`] by its definition: every block that some
/// instruction of the same or a later block targets, and every jump-table target.
fn interrupt_points_by_definition(p: &Program) -> Vec<bool> {
    let mut polls = vec![false; p.blocks().len()];
    for (b, block) in p.blocks().iter().enumerate() {
        for ins in &p.instructions()[block.first as usize..block.end as usize] {
            if let Some(t) = ins.target().and_then(|t| t.block())
                && t as usize <= b
            {
                polls[t as usize] = true;
            }
        }
    }
    for t in p.jump_targets().iter().filter_map(|t| t.block()) {
        polls[t as usize] = true;
    }
    polls
}
