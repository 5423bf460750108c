//! The GP standard program blob and its initialization Y(p, a) (docs/ISA.md §1.4):
//! `E3(|o|) ‖ E3(|w|) ‖ E2(z) ‖ E3(s) ‖ o ‖ w ‖ E4(|c|) ‖ c`, optionally preceded by
//! a metadata blob `E(|m|) ‖ m`.
//!
//! | Region | Addresses | Kind |
//! |---|---|---|
//! | read-only data `o` | `[0x10000, 0x10000 + P(|o|))` | pinned, read-only |
//! | read-write data `w` | `[0x20000 + Q(|o|), … + P(|w|))` | copy-on-write |
//! | heap (`z` pages) | following the data | zero, writable |
//! | stack (`s` bytes) | `[0xFEFE0000 − P(s), 0xFEFE0000)` | zero, writable |
//! | arguments `a` | `[0xFEFF0000, 0xFEFF0000 + P(|a|))` | pinned, read-only |
//!
//! `P` rounds up to 4 KiB and `Q` to 64 KiB. Registers start at 0 except
//! `φ0 = 0xFFFF0000` (return to halt), `φ1 = 0xFEFE0000` (stack pointer),
//! `φ7 = 0xFEFF0000` (arguments) and `φ8 = |a|`. GP `sbrk` grows from the end of the heap.

use std::sync::Arc;

use super::BlobError;
use super::code::{CodeParts, encode_code_blob, read_code_parts};
use super::codec::{Reader, write_compact, write_fixed};
use crate::isa::NUM_REGS;
use crate::memory::{LayoutError, MemoryLayout, PageKind, page_align_up};
use crate::program::{HALT_ADDRESS, Program};

/// GP `Z_Z`: the 64 KiB zone size and alignment.
pub const ZONE: u64 = 0x1_0000;
/// GP `Z_I`: the largest argument blob.
pub const MAX_INPUT: u64 = 1 << 24;
/// Base of read-only data.
pub const RO_BASE: u32 = 0x1_0000;
/// Initial stack pointer (the stack grows down from here).
pub const STACK_TOP: u32 = 0xFEFE_0000;
/// Base of the argument region.
pub const ARGS_BASE: u32 = 0xFEFF_0000;

fn q(x: u64) -> u64 {
    x.div_ceil(ZONE) * ZONE
}

/// A parsed standard program: data sections, sizes and the validated code.
#[derive(Clone, Debug)]
pub struct StandardProgram {
    /// Read-only data `o`.
    pub ro_data: Vec<u8>,
    /// Read-write data `w`.
    pub rw_data: Vec<u8>,
    /// Extra heap pages `z`.
    pub heap_pages: u16,
    /// Stack size `s` in bytes.
    pub stack_size: u32,
    /// The code.
    pub program: Arc<Program>,
}

impl StandardProgram {
    /// Parse a standard program blob with no metadata prefix.
    pub fn parse(bytes: &[u8]) -> Result<StandardProgram, BlobError> {
        Self::parse_from(Reader::new(bytes))
    }

    /// Parse a standard program blob preceded by a metadata blob `E(|m|) ‖ m`
    /// (the form JAM service code takes); the metadata is skipped.
    pub fn parse_with_metadata(bytes: &[u8]) -> Result<StandardProgram, BlobError> {
        Self::parse_keeping_metadata(bytes).map(|(_, sp)| sp)
    }

    /// [`StandardProgram::parse_with_metadata`], returning the metadata bytes too.
    pub fn parse_keeping_metadata(bytes: &[u8]) -> Result<(Vec<u8>, StandardProgram), BlobError> {
        let mut r = Reader::new(bytes);
        let len = r.compact("metadata length")?;
        let metadata = r.take(len, "metadata")?.to_vec();
        Ok((metadata, Self::parse_from(r)?))
    }

    fn parse_from(mut r: Reader<'_>) -> Result<StandardProgram, BlobError> {
        let ro_len = r.fixed(3, "read-only data length")?;
        let rw_len = r.fixed(3, "read-write data length")?;
        let heap_pages = r.fixed(2, "heap pages")? as u16;
        let stack_size = r.fixed(3, "stack size")? as u32;
        check_fits(ro_len, rw_len, heap_pages, stack_size)?;
        let ro_data = r.take(ro_len, "read-only data")?.to_vec();
        let rw_data = r.take(rw_len, "read-write data")?.to_vec();
        let code_len = r.fixed(4, "code blob length")?;
        let code_blob = r.take(code_len, "code blob")?;
        r.finish()?;
        let mut cr = Reader::new(code_blob);
        let CodeParts {
            jump_table,
            code,
            bitmask,
        } = read_code_parts(&mut cr)?;
        cr.finish()?;
        Ok(StandardProgram {
            ro_data,
            rw_data,
            heap_pages,
            stack_size,
            program: Arc::new(Program::new(code, bitmask, jump_table)?),
        })
    }

    /// Encode as a standard program blob (no metadata). Fails if the sections do
    /// not fit the format's fields or the address space.
    pub fn encode(&self) -> Result<Vec<u8>, BlobError> {
        let too_large = |what, value: u64, limit: u64| BlobError::TooLarge { what, value, limit };
        let limit3 = (1u64 << 24) - 1;
        for (what, len) in [
            ("read-only data length", self.ro_data.len() as u64),
            ("read-write data length", self.rw_data.len() as u64),
            ("stack size", u64::from(self.stack_size)),
        ] {
            if len > limit3 {
                return Err(too_large(what, len, limit3));
            }
        }
        check_fits(
            self.ro_data.len() as u64,
            self.rw_data.len() as u64,
            self.heap_pages,
            self.stack_size,
        )?;
        let p = &self.program;
        let code = encode_code_blob(p.code(), p.bitmask(), p.jump_table());
        let mut out = Vec::with_capacity(15 + self.ro_data.len() + self.rw_data.len() + code.len());
        write_fixed(&mut out, self.ro_data.len() as u64, 3);
        write_fixed(&mut out, self.rw_data.len() as u64, 3);
        write_fixed(&mut out, u64::from(self.heap_pages), 2);
        write_fixed(&mut out, u64::from(self.stack_size), 3);
        out.extend_from_slice(&self.ro_data);
        out.extend_from_slice(&self.rw_data);
        write_fixed(&mut out, code.len() as u64, 4);
        out.extend_from_slice(&code);
        Ok(out)
    }

    /// Prefix an encoded blob with a metadata blob.
    pub fn with_metadata(metadata: &[u8], blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(metadata.len() + blob.len() + 9);
        write_compact(&mut out, metadata.len() as u64);
        out.extend_from_slice(metadata);
        out.extend_from_slice(blob);
        out
    }

    /// Start of the read-write data (`0x20000 + Q(|o|)`).
    pub fn rw_base(&self) -> u64 {
        2 * ZONE + q(self.ro_data.len() as u64)
    }

    /// End of the read-write data and heap, where GP `sbrk` starts.
    pub fn heap_end(&self) -> u64 {
        self.rw_base()
            + page_align_up(self.rw_data.len() as u64)
            + u64::from(self.heap_pages) * 4096
    }

    /// The initial layout and registers of Y(p, a) for argument bytes `args`.
    pub fn initial_state(
        &self,
        args: &[u8],
    ) -> Result<(MemoryLayout, [u64; NUM_REGS]), StandardInitError> {
        if args.len() as u64 > MAX_INPUT {
            return Err(StandardInitError::ArgsTooLong(args.len()));
        }
        let mut l = MemoryLayout::new();
        let ro_size = page_align_up(self.ro_data.len() as u64);
        if ro_size > 0 {
            l.add_region(
                u64::from(RO_BASE),
                ro_size,
                PageKind::PinnedCapRo,
                &self.ro_data,
            )?;
        }
        let rw_size = page_align_up(self.rw_data.len() as u64);
        if rw_size > 0 {
            l.add_region(
                self.rw_base(),
                rw_size,
                PageKind::UnpinnedCapCow,
                &self.rw_data,
            )?;
        }
        if self.heap_pages > 0 {
            let heap = u64::from(self.heap_pages) * 4096;
            l.add_region(self.rw_base() + rw_size, heap, PageKind::EphemeralZero, &[])?;
        }
        let stack = page_align_up(u64::from(self.stack_size));
        if stack > 0 {
            l.add_region(
                u64::from(STACK_TOP) - stack,
                stack,
                PageKind::EphemeralZero,
                &[],
            )?;
        }
        let args_size = page_align_up(args.len() as u64);
        if args_size > 0 {
            l.add_region(u64::from(ARGS_BASE), args_size, PageKind::PinnedCapRo, args)?;
        }
        l.set_heap_top(self.heap_end());
        let mut regs = [0u64; NUM_REGS];
        regs[0] = u64::from(HALT_ADDRESS);
        regs[1] = u64::from(STACK_TOP);
        regs[7] = u64::from(ARGS_BASE);
        regs[8] = args.len() as u64;
        Ok((l, regs))
    }
}

/// Why a standard program could not be initialized.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StandardInitError {
    /// More than `Z_I` = 2^24 bytes of arguments.
    #[error("arguments are {0} bytes; at most 16 MiB are allowed")]
    ArgsTooLong(usize),
    /// The sections do not fit (only possible for a hand-built `StandardProgram`).
    #[error("invalid layout: {0}")]
    Layout(#[from] LayoutError),
}

/// GP validity: `5·Z_Z + Q(|o|) + Q(|w| + z·4096) + Q(s) + Z_I ≤ 2^32`.
fn check_fits(ro: u64, rw: u64, heap_pages: u16, stack: u32) -> Result<(), BlobError> {
    let needed =
        5 * ZONE + q(ro) + q(rw + u64::from(heap_pages) * 4096) + q(u64::from(stack)) + MAX_INPUT;
    if needed > 1 << 32 {
        Err(BlobError::LayoutTooLarge { needed })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::PageKind;
    use proptest::prelude::*;

    fn sample() -> StandardProgram {
        StandardProgram {
            ro_data: b"hello".to_vec(),
            rw_data: vec![1, 2, 3],
            heap_pages: 2,
            stack_size: 0x3000,
            program: Arc::new(Program::new(vec![0], vec![1], vec![]).unwrap()),
        }
    }

    #[test]
    fn encode_parse_round_trip_with_and_without_metadata() {
        let s = sample();
        let blob = s.encode().unwrap();
        let p = StandardProgram::parse(&blob).unwrap();
        assert_eq!(p.ro_data, s.ro_data);
        assert_eq!(p.rw_data, s.rw_data);
        assert_eq!((p.heap_pages, p.stack_size), (2, 0x3000));
        assert_eq!(p.program.hash(), s.program.hash());
        let meta = StandardProgram::with_metadata(b"name", &blob);
        let m = StandardProgram::parse_with_metadata(&meta).unwrap();
        assert_eq!(m.program.hash(), s.program.hash());
        assert!(StandardProgram::parse(&meta).is_err());
    }

    #[test]
    fn initial_layout_and_registers() {
        let (l, regs) = sample().initial_state(b"args").unwrap();
        assert_eq!(l.kind_of(0x10000), Some(PageKind::PinnedCapRo));
        assert_eq!(l.source(0x10000).unwrap().bytes()[..5], *b"hello");
        // Q(|o|) = 64 KiB, so read-write data starts at 0x30000.
        assert_eq!(l.kind_of(0x2F000), None);
        assert_eq!(l.kind_of(0x30000), Some(PageKind::UnpinnedCapCow));
        assert_eq!(l.kind_of(0x31000), Some(PageKind::EphemeralZero));
        assert_eq!(l.kind_of(0x32000), Some(PageKind::EphemeralZero));
        assert_eq!(l.kind_of(0x33000), None);
        assert_eq!(l.kind_of(0xFEFD_D000), Some(PageKind::EphemeralZero));
        assert_eq!(l.kind_of(0xFEFD_C000), None);
        assert_eq!(l.kind_of(0xFEFF_0000), Some(PageKind::PinnedCapRo));
        assert_eq!(l.heap_top(), 0x33000);
        assert_eq!(regs[0], 0xFFFF_0000);
        assert_eq!(regs[1], 0xFEFE_0000);
        assert_eq!(regs[7], 0xFEFF_0000);
        assert_eq!(regs[8], 4);
    }

    #[test]
    fn oversized_layouts_and_args_are_rejected() {
        // The header's field widths cap the formula at about 320 MiB, so every parsed
        // blob fits; the rule itself still rejects oversized sections.
        assert!(check_fits(0xFF_FFFF, 0xFF_FFFF, u16::MAX, 0xFF_FFFF).is_ok());
        assert!(matches!(
            check_fits(1 << 32, 0, 0, 0),
            Err(BlobError::LayoutTooLarge { .. })
        ));
        let mut s = sample();
        s.ro_data = vec![0; 1 << 24];
        assert!(matches!(s.encode(), Err(BlobError::TooLarge { .. })));
        assert!(matches!(
            sample().initial_state(&vec![0; (1 << 24) + 1]),
            Err(StandardInitError::ArgsTooLong(_))
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = StandardProgram::parse(&bytes);
            let _ = StandardProgram::parse_with_metadata(&bytes);
        }

        #[test]
        fn truncations_are_errors(cut in 0usize..40) {
            let blob = sample().encode().unwrap();
            prop_assume!(cut < blob.len());
            prop_assert!(StandardProgram::parse(&blob[..cut]).is_err());
        }
    }
}
