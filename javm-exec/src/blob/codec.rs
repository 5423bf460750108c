//! Integer encodings of the JAM codec: the compact natural `E(x)` and fixed-width
//! little-endian `E_n(x)`, behind a bounds-checked [`Reader`].

use super::BlobError;

/// A cursor over a blob that never reads out of bounds.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Read from the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Current offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Take the next `n` bytes.
    pub fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], BlobError> {
        let truncated = BlobError::Truncated {
            what,
            offset: self.pos,
            needed: n,
            available: self.remaining(),
        };
        let n = usize::try_from(n).map_err(|_| truncated.clone())?;
        if n > self.remaining() {
            return Err(truncated);
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// `E_n`: an `n`-byte (`n ≤ 8`) little-endian integer.
    pub fn fixed(&mut self, n: u32, what: &'static str) -> Result<u64, BlobError> {
        let b = self.take(u64::from(n), what)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
    }

    /// `E`: a compact natural, which must be in its shortest form.
    pub fn compact(&mut self, what: &'static str) -> Result<u64, BlobError> {
        let offset = self.pos;
        let first = self.take(1, what)?[0];
        let l = first.leading_ones();
        let value = if l == 8 {
            self.fixed(8, what)?
        } else {
            let high = u64::from(first) & ((1u64 << (7 - l)) - 1);
            let low = self.fixed(l, what)?;
            high << (8 * l) | low
        };
        if compact_len(value) != (self.pos - offset) as u32 {
            return Err(BlobError::NonCanonicalVarint { what, offset });
        }
        Ok(value)
    }

    /// Fail unless every byte was consumed.
    pub fn finish(&self) -> Result<(), BlobError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(BlobError::TrailingBytes {
                offset: self.pos,
                extra: self.remaining(),
            })
        }
    }
}

/// Length in bytes of the compact encoding of `x`.
pub fn compact_len(x: u64) -> u32 {
    (0..8)
        .find(|&l| x < 1u64 << (7 * (l + 1)))
        .map_or(9, |l| l + 1)
}

/// Append `E(x)`, the compact natural encoding of `x`.
pub fn write_compact(out: &mut Vec<u8>, x: u64) {
    let n = compact_len(x);
    if n == 9 {
        out.push(0xFF);
        out.extend_from_slice(&x.to_le_bytes());
        return;
    }
    let l = n - 1;
    let prefix = (0xFFu16 << (8 - l)) as u8;
    out.push(prefix | (x >> (8 * l)) as u8);
    out.extend_from_slice(&x.to_le_bytes()[..l as usize]);
}

/// Append `E_n(x)`: the low `n` bytes of `x`, little-endian.
pub fn write_fixed(out: &mut Vec<u8>, x: u64, n: u32) {
    out.extend_from_slice(&x.to_le_bytes()[..n as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let enc = |x| {
            let mut v = vec![];
            write_compact(&mut v, x);
            v
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [127]);
        assert_eq!(enc(128), [0x80, 0x80]);
        assert_eq!(enc(0x3FFF), [0xBF, 0xFF]);
        assert_eq!(enc(0x4000), [0xC0, 0x00, 0x40]);
        assert_eq!(
            enc(u64::MAX),
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn non_canonical_and_truncated_are_errors() {
        assert!(matches!(
            Reader::new(&[0x80, 0x05]).compact("x"),
            Err(BlobError::NonCanonicalVarint { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xC0, 0x00]).compact("x"),
            Err(BlobError::Truncated { .. })
        ));
        assert!(matches!(
            Reader::new(&[]).compact("x"),
            Err(BlobError::Truncated { .. })
        ));
    }

    proptest! {
        #[test]
        fn compact_round_trips(x in any::<u64>(), shift in 0u32..64) {
            for v in [x, x >> shift] {
                let mut buf = vec![];
                write_compact(&mut buf, v);
                prop_assert_eq!(buf.len() as u32, compact_len(v));
                let mut r = Reader::new(&buf);
                prop_assert_eq!(r.compact("x").unwrap(), v);
                prop_assert!(r.finish().is_ok());
            }
        }

        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut r = Reader::new(&bytes);
            let _ = r.compact("x");
            let _ = r.fixed(3, "y");
            let _ = r.take(u64::MAX, "z");
        }
    }
}
