//! Content hashes: SHA-256 over a canonical, domain-separated encoding.
//!
//! Every hashed object starts with a domain tag, so two different kinds of object can
//! never hash alike even if their payload bytes happen to coincide. Variable-length
//! fields are hashed with an explicit little-endian length prefix ([`Hasher::bytes`]).

use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 content hash.
pub type CapHash = [u8; 32];

/// The all-zero hash, used for the canonical empty (all-zero) page.
pub const ZERO_HASH: CapHash = [0u8; 32];

/// Incremental hasher for canonical encodings.
///
/// ```
/// use javm_cap::Hasher;
/// let mut h = Hasher::new(b"example");
/// h.u32(7).bytes(b"payload");
/// let digest = h.finish();
/// assert_ne!(digest, javm_cap::ZERO_HASH);
/// ```
#[derive(Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// Start a hash in the given domain (a short ASCII tag naming the object kind).
    pub fn new(domain: &[u8]) -> Self {
        let mut h = Hasher(Sha256::new());
        h.bytes(domain);
        h
    }

    /// Append a `u32` in little-endian order.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.update(v.to_le_bytes());
        self
    }

    /// Append a `u64` in little-endian order.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.update(v.to_le_bytes());
        self
    }

    /// Append a byte string, prefixed with its length as a `u64`.
    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        self.u64(data.len() as u64);
        self.0.update(data);
        self
    }

    /// Append raw bytes with no length prefix (for fixed-size fields only).
    pub fn raw(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(data);
        self
    }

    /// Finish and return the digest.
    pub fn finish(self) -> CapHash {
        self.0.finalize().into()
    }
}

/// Plain SHA-256 of `data` (no domain tag). Used for page contents, whose hash is the
/// hash of the 4 KiB page itself (docs/CAPS.md).
pub fn sha256(data: &[u8]) -> CapHash {
    Sha256::digest(data).into()
}

/// Lowercase hexadecimal of a hash (64 characters).
pub fn hex(hash: &CapHash) -> String {
    use std::fmt::Write;
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Parse 64 hexadecimal digits as a hash.
pub fn parse_hex(s: &str) -> Option<CapHash> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate() {
        let mut a = Hasher::new(b"a");
        a.bytes(b"x");
        let mut b = Hasher::new(b"b");
        b.bytes(b"x");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn length_prefix_prevents_concatenation_collisions() {
        let mut a = Hasher::new(b"d");
        a.bytes(b"ab").bytes(b"c");
        let mut b = Hasher::new(b"d");
        b.bytes(b"a").bytes(b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn hex_round_trips() {
        let h = sha256(b"x");
        assert_eq!(parse_hex(&hex(&h)), Some(h));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn sha256_known_answer() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            sha256(b"abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256 known-answer test"
        );
    }
}
