//! Program files of the peer benchmark (`.pbp`, "PVMBNCH1"): a standard program
//! blob with what it takes to run it the same way everywhere — entry PC, gas
//! limit, initial registers, argument bytes, a host-call policy and the expected
//! result. The compiled C programs the peer comparisons run
//! (`differential-tests/programs/peerbench`, `tools/peer-extra/programs`) come in
//! this form; `tests/recorded.rs` runs them on every engine and records their
//! results.
//!
//! The file: a little-endian header of at least 240 bytes (magic, header size,
//! flags, a 32-byte name, entry PC, host-call mode and register, expectation
//! flags, gas limit, host-call value, expected A0 and host-call count, 13
//! registers, 8 layout words, blob and argument lengths), then the argument
//! bytes, then the blob.

/// File magic.
const MAGIC: &[u8; 8] = b"PVMBNCH1";
/// The version-1 header size (a file may declare a larger one).
const HEADER_V1: usize = 240;

/// What a host call (`ecalli`) does to the machine before the run resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostCalls {
    /// A host call ends the run.
    Forbidden,
    /// Register `.0` receives the number of host calls so far, this one included.
    Counter(usize),
    /// Register `.0` receives `.1`.
    Constant(usize, u64),
}

/// One program file.
#[derive(Clone, Debug)]
pub struct PbpProgram {
    /// The name in the header.
    pub name: String,
    /// Where execution starts.
    pub entry_pc: u32,
    /// The gas the run starts with.
    pub gas_limit: u64,
    /// The registers the standard layout gives the program (the file records
    /// them so that every VM can be checked against them).
    pub regs: [u64; 13],
    /// The host-call policy.
    pub host_calls: HostCalls,
    /// Whether the run must end with a halt.
    pub expect_halt: bool,
    /// A0 at the end, if the file says.
    pub expect_a0: Option<u64>,
    /// Host calls made, if the file says.
    pub expect_host_calls: Option<u64>,
    /// The argument bytes.
    pub args: Vec<u8>,
    /// The standard program blob.
    pub blob: Vec<u8>,
}

/// Read a program file, or say what is wrong with it.
pub fn parse(b: &[u8]) -> Result<PbpProgram, String> {
    if b.get(..8) != Some(&MAGIC[..]) {
        return Err("not a program file (bad magic)".into());
    }
    let u32_at = |o: usize| -> Result<u32, String> {
        b.get(o..o + 4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| format!("truncated header at byte {o}"))
    };
    let u64_at = |o: usize| -> Result<u64, String> {
        b.get(o..o + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| format!("truncated header at byte {o}"))
    };
    let header = u32_at(8)? as usize;
    if header < HEADER_V1 || b.len() < header {
        return Err(format!("header of {header} bytes in a file of {}", b.len()));
    }
    let raw = &b[16..48];
    let name_end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let name = String::from_utf8_lossy(&raw[..name_end]).into_owned();
    let reg = u32_at(56)? as usize;
    if reg > 12 {
        return Err(format!("host-call register {reg} out of range"));
    }
    let host_calls = match u32_at(52)? {
        0 => HostCalls::Forbidden,
        1 => HostCalls::Counter(reg),
        2 => HostCalls::Constant(reg, u64_at(72)?),
        m => return Err(format!("unknown host-call mode {m}")),
    };
    let expect = u32_at(60)?;
    let mut regs = [0u64; 13];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = u64_at(96 + 8 * i)?;
    }
    // After the registers: eight layout words (not needed: the blob defines the
    // layout), then the blob and argument lengths.
    let lengths = 96 + 13 * 8 + 8 * 4;
    let blob_len = u32_at(lengths)? as usize;
    let args_len = u32_at(lengths + 4)? as usize;
    let rest = &b[header..];
    if rest.len() != args_len.saturating_add(blob_len) {
        return Err(format!(
            "{} payload bytes for {args_len} of arguments and {blob_len} of blob",
            rest.len()
        ));
    }
    Ok(PbpProgram {
        name,
        entry_pc: u32_at(48)?,
        gas_limit: u64_at(64)?,
        regs,
        host_calls,
        expect_halt: expect & 1 != 0,
        expect_a0: (expect & 2 != 0).then_some(u64_at(80)?),
        expect_host_calls: (expect & 4 != 0).then_some(u64_at(88)?),
        args: rest[..args_len].to_vec(),
        blob: rest[args_len..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with the given payload and fields (the rest zero).
    fn file(mode: u32, reg: u32, args: &[u8], blob: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_V1];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&(HEADER_V1 as u32).to_le_bytes());
        h[16..20].copy_from_slice(b"demo");
        h[48..52].copy_from_slice(&5u32.to_le_bytes());
        h[52..56].copy_from_slice(&mode.to_le_bytes());
        h[56..60].copy_from_slice(&reg.to_le_bytes());
        h[60..64].copy_from_slice(&3u32.to_le_bytes());
        h[64..72].copy_from_slice(&1000u64.to_le_bytes());
        h[72..80].copy_from_slice(&9u64.to_le_bytes());
        h[80..88].copy_from_slice(&42u64.to_le_bytes());
        h[96..104].copy_from_slice(&7u64.to_le_bytes());
        let lengths = 96 + 13 * 8 + 8 * 4;
        h[lengths..lengths + 4].copy_from_slice(&(blob.len() as u32).to_le_bytes());
        h[lengths + 4..lengths + 8].copy_from_slice(&(args.len() as u32).to_le_bytes());
        h.extend_from_slice(args);
        h.extend_from_slice(blob);
        h
    }

    #[test]
    fn reads_every_field() {
        let p = parse(&file(2, 7, &[1, 2], &[3, 4, 5])).expect("a good file");
        assert_eq!(p.name, "demo");
        assert_eq!(p.entry_pc, 5);
        assert_eq!(p.gas_limit, 1000);
        assert_eq!(p.regs[0], 7);
        assert_eq!(p.host_calls, HostCalls::Constant(7, 9));
        assert!(p.expect_halt);
        assert_eq!(p.expect_a0, Some(42));
        assert_eq!(p.expect_host_calls, None);
        assert_eq!((p.args, p.blob), (vec![1, 2], vec![3, 4, 5]));
        assert_eq!(
            parse(&file(1, 0, &[], &[])).unwrap().host_calls,
            HostCalls::Counter(0)
        );
    }

    #[test]
    fn refuses_what_is_not_a_whole_file() {
        let good = file(0, 0, &[1], &[2, 3]);
        assert!(
            parse(&good[..100])
                .unwrap_err()
                .contains("header of 240 bytes")
        );
        assert!(parse(&good[..10]).unwrap_err().contains("truncated"));
        assert!(
            parse(&good[..good.len() - 1])
                .unwrap_err()
                .contains("payload")
        );
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(parse(&bad).unwrap_err().contains("magic"));
        let mut bad = good.clone();
        bad[52] = 3;
        assert!(parse(&bad).unwrap_err().contains("mode"));
        let mut bad = good;
        bad[56] = 13;
        assert!(parse(&bad).unwrap_err().contains("register"));
    }
}
