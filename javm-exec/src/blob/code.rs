//! The GP code blob (docs/ISA.md §2.1):
//! `E(|j|) ‖ E1(z) ‖ E(|c|) ‖ E_z(j[0]) … E_z(j[|j|−1]) ‖ c ‖ k`.
//!
//! `z` is the jump-table entry width (0 is legal when the table is empty); `k` packs
//! `|c|` bitmask bits LSB-first into `ceil(|c| / 8)` bytes. The parse must consume the
//! blob exactly.

use super::BlobError;
use super::codec::{Reader, write_compact, write_fixed};
use crate::program::{MAX_CODE_LEN, MAX_JUMP_TABLE_LEN, Program};

/// The three parts of a code blob, checked for size but not yet validated as a
/// program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeParts {
    /// Jump table (target PCs).
    pub jump_table: Vec<u32>,
    /// Code bytes.
    pub code: Vec<u8>,
    /// Bitmask bytes.
    pub bitmask: Vec<u8>,
}

/// Read a code blob into its parts from `r`, consuming exactly the blob.
pub fn read_code_parts(r: &mut Reader<'_>) -> Result<CodeParts, BlobError> {
    let jump_len = r.compact("jump table length")?;
    if jump_len > MAX_JUMP_TABLE_LEN as u64 {
        return Err(BlobError::TooLarge {
            what: "jump table length",
            value: jump_len,
            limit: MAX_JUMP_TABLE_LEN as u64,
        });
    }
    let z = r.fixed(1, "jump table entry width")? as u8;
    if z > 4 {
        return Err(BlobError::JumpEntryWidth(z));
    }
    let code_len = r.compact("code length")?;
    if code_len > MAX_CODE_LEN as u64 {
        return Err(BlobError::TooLarge {
            what: "code length",
            value: code_len,
            limit: MAX_CODE_LEN as u64,
        });
    }
    // Check the total before allocating anything.
    let table_bytes = jump_len * u64::from(z);
    let mask_len = code_len.div_ceil(8);
    let needed = table_bytes + code_len + mask_len;
    if needed > r.remaining() as u64 {
        return Err(BlobError::Truncated {
            what: "jump table, code and bitmask",
            offset: r.offset(),
            needed,
            available: r.remaining(),
        });
    }
    let mut jump_table = Vec::with_capacity(jump_len as usize);
    for _ in 0..jump_len {
        jump_table.push(r.fixed(u32::from(z), "jump table entry")? as u32);
    }
    let code = r.take(code_len, "code")?.to_vec();
    let bitmask = r.take(mask_len, "bitmask")?.to_vec();
    Ok(CodeParts {
        jump_table,
        code,
        bitmask,
    })
}

/// Parse and validate a complete code blob.
pub fn parse_code_blob(bytes: &[u8]) -> Result<Program, BlobError> {
    let mut r = Reader::new(bytes);
    let parts = read_code_parts(&mut r)?;
    r.finish()?;
    Ok(Program::new(parts.code, parts.bitmask, parts.jump_table)?)
}

/// Encode a code blob, with the narrowest jump-table entry width that fits.
pub fn encode_code_blob(code: &[u8], bitmask: &[u8], jump_table: &[u32]) -> Vec<u8> {
    let max = jump_table.iter().copied().max().unwrap_or(0);
    let z: u32 = if jump_table.is_empty() {
        0
    } else {
        (1..=4).find(|&n| n == 4 || max < 1 << (8 * n)).unwrap_or(4)
    };
    let mut out = Vec::with_capacity(16 + code.len() + bitmask.len() + jump_table.len() * 4);
    write_compact(&mut out, jump_table.len() as u64);
    out.push(z as u8);
    write_compact(&mut out, code.len() as u64);
    for &t in jump_table {
        write_fixed(&mut out, u64::from(t), z);
    }
    out.extend_from_slice(code);
    out.extend_from_slice(bitmask);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_vector_program() {
        // inst_store_imm_indirect_u64_with_offset_nok's program.
        let p = parse_code_blob(&[0, 0, 7, 73, 23, 1, 170, 153, 136, 119, 1]).unwrap();
        assert_eq!(p.code().len(), 7);
        assert_eq!(p.pcs(), &[0, 7]);
    }

    #[test]
    fn round_trips() {
        let blob = encode_code_blob(&[1, 0], &[0b11], &[1, 300]);
        let p = parse_code_blob(&blob).unwrap();
        assert_eq!(p.jump_table(), &[1, 300]);
        assert_eq!(
            encode_code_blob(p.code(), p.bitmask(), p.jump_table()),
            blob
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            parse_code_blob(&[]),
            Err(BlobError::Truncated { .. })
        ));
        assert!(matches!(
            parse_code_blob(&[0, 5, 0]),
            Err(BlobError::JumpEntryWidth(5))
        ));
        assert!(matches!(
            parse_code_blob(&[0, 0, 2, 1]),
            Err(BlobError::Truncated {
                what: "jump table, code and bitmask",
                ..
            })
        ));
        assert!(matches!(
            parse_code_blob(&[0, 0, 1, 0, 1, 9]),
            Err(BlobError::TrailingBytes {
                offset: 5,
                extra: 1
            })
        ));
        assert!(matches!(
            parse_code_blob(&[0, 0, 1, 0, 0xFF]),
            Err(BlobError::Program(_))
        ));
        // A huge declared code length is refused before any allocation.
        assert!(matches!(
            parse_code_blob(&[0, 0, 0xEF, 0xFF, 0xFF, 0xFF]),
            Err(BlobError::TooLarge {
                what: "code length",
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_code_blob(&bytes);
        }

        #[test]
        fn truncations_of_a_valid_blob_are_errors(cut in 0usize..13) {
            let blob = encode_code_blob(&[1, 0x33, 0x01, 0x05, 0], &[0b1_0011], &[1]);
            prop_assume!(cut < blob.len());
            prop_assert!(parse_code_blob(&blob[..cut]).is_err());
        }
    }
}
