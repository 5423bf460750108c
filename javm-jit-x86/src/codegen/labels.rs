//! The code generator's own labels, for the jumps it makes once or more per block and
//! per store: block entries, exit stubs and their tails, store slow paths.
//!
//! dynasm keeps 16 bytes per dynamic label and 32 per relocation, and resolves every
//! relocation at the end, backward ones included; for a program of one-byte blocks
//! that bookkeeping was most of the compiler's memory (about 180 bytes per PVM byte).
//! Here a label is a 4-byte offset and only a forward jump leaves a record (8 bytes),
//! which `Labels::patch` resolves in the finished code. A backward jump is encoded at
//! once, in its 2-byte form when the target is near. dynasm's labels remain for the
//! rarer local jumps of single lowerings (division, fused runs, checked copies).

use dynasmrt::DynasmApi;

use super::Cg;

/// A position in the code, bound once. Labels are numbered in the order they are
/// made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Label(u32);

/// A condition code (the low nibble of `jcc`'s opcode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Cc {
    /// Below (unsigned <).
    B = 0x2,
    /// Above or equal (unsigned ≥).
    Ae = 0x3,
    /// Equal.
    E = 0x4,
    /// Not equal.
    Ne = 0x5,
    /// Below or equal (unsigned ≤).
    Be = 0x6,
    /// Above (unsigned >).
    A = 0x7,
    /// Less (signed <).
    L = 0xC,
    /// Greater or equal (signed ≥).
    Ge = 0xD,
    /// Less or equal (signed ≤).
    Le = 0xE,
    /// Greater (signed >).
    G = 0xF,
}

const UNBOUND: u32 = u32::MAX;

/// A forward jump to patch: the offset of its displacement field and its label; the
/// field is one byte if `short`, else four.
#[derive(Clone, Copy)]
struct Fixup {
    at: u32,
    label: u32,
    short: bool,
}

/// The labels of one compilation.
#[derive(Default)]
pub(crate) struct Labels {
    at: Vec<u32>,
    fixups: Vec<Fixup>,
}

impl Labels {
    /// These buffers emptied, with room for about `labels` labels and `fixups`
    /// forward jumps (for the next compilation: see `codegen::Scratch`).
    pub(crate) fn reuse(mut self, labels: usize, fixups: usize) -> Labels {
        self.at.clear();
        self.at.reserve(labels);
        self.fixups.clear();
        self.fixups.reserve(fixups);
        self
    }

    /// Labels this set has room for without growing.
    pub(crate) fn capacity(&self) -> usize {
        self.at.capacity()
    }

    /// A new, unbound label.
    pub(crate) fn make(&mut self) -> Label {
        self.at.push(UNBOUND);
        Label(self.at.len() as u32 - 1)
    }

    /// The offset `l` is bound to.
    pub(crate) fn offset(&self, l: Label) -> Result<u32, String> {
        match self.at.get(l.0 as usize) {
            Some(&o) if o != UNBOUND => Ok(o),
            _ => Err(format!("label {} is not bound", l.0)),
        }
    }

    /// Write every forward jump's displacement into `code`, except those to labels
    /// that are not bound: they lead into another part of the code (`link.rs`),
    /// which the caller resolves; they are returned as (offset of the 4-byte
    /// field, label).
    pub(crate) fn patch(&self, code: &mut [u8]) -> Result<Vec<(u32, Label)>, String> {
        let mut unbound = Vec::new();
        for f in &self.fixups {
            let Ok(target) = self.offset(Label(f.label)) else {
                if f.short {
                    return Err(format!("short jump at {:#x} to an unbound label", f.at));
                }
                unbound.push((f.at, Label(f.label)));
                continue;
            };
            let target = i64::from(target);
            let at = f.at as usize;
            if f.short {
                let rel = i8::try_from(target - (i64::from(f.at) + 1))
                    .map_err(|_| format!("short jump at {:#x} out of range", f.at))?;
                *code.get_mut(at).ok_or("jump outside the code")? = rel as u8;
            } else {
                let rel = i32::try_from(target - (i64::from(f.at) + 4))
                    .map_err(|_| "native code exceeds 2 GiB".to_string())?;
                code.get_mut(at..at + 4)
                    .ok_or("jump outside the code")?
                    .copy_from_slice(&rel.to_le_bytes());
            }
        }
        Ok(unbound)
    }
}

impl Cg<'_> {
    /// A new, unbound label.
    pub(crate) fn label(&mut self) -> Label {
        self.labels.make()
    }

    /// Bind `l` here.
    pub(crate) fn bind(&mut self, l: Label) {
        let here = self.ops.offset().0 as u32;
        if let Some(slot) = self.labels.at.get_mut(l.0 as usize) {
            *slot = here;
        }
    }

    /// The displacement from the end of a jump whose displacement field starts
    /// `field` bytes from here and is `size` bytes long, if `l` is bound already.
    fn backward(&self, l: Label, field: usize, size: usize) -> Option<i64> {
        let target = *self.labels.at.get(l.0 as usize)?;
        (target != UNBOUND).then(|| i64::from(target) - (self.ops.offset().0 + field + size) as i64)
    }

    /// Record a forward jump whose displacement field starts here.
    fn fixup(&mut self, l: Label, short: bool) {
        let at = self.ops.offset().0 as u32;
        self.labels.fixups.push(Fixup {
            at,
            label: l.0,
            short,
        });
    }

    /// `jmp l`: two bytes back to a near bound label, else five.
    pub(crate) fn jmp(&mut self, l: Label) {
        if let Some(rel) = self.backward(l, 1, 1).and_then(|r| i8::try_from(r).ok()) {
            self.ops.extend(&[0xEB, rel as u8]);
            return;
        }
        self.ops.push(0xE9);
        self.rel32(l);
    }

    /// `jcc l`: two bytes back to a near bound label, else six.
    pub(crate) fn jcc(&mut self, cc: Cc, l: Label) {
        if let Some(rel) = self.backward(l, 1, 1).and_then(|r| i8::try_from(r).ok()) {
            self.ops.extend(&[0x70 | cc as u8, rel as u8]);
            return;
        }
        self.ops.extend(&[0x0F, 0x80 | cc as u8]);
        self.rel32(l);
    }

    /// `jmp l` in two bytes, `l` ahead and at most 127 bytes past the jump (checked
    /// when the code is patched).
    pub(crate) fn jmp_short(&mut self, l: Label) {
        self.ops.push(0xEB);
        self.fixup(l, true);
        self.ops.push(0);
    }

    /// `jcc l` in two bytes, as [`Cg::jmp_short`].
    pub(crate) fn jcc_short(&mut self, cc: Cc, l: Label) {
        self.ops.push(0x70 | cc as u8);
        self.fixup(l, true);
        self.ops.push(0);
    }

    /// The 32-bit displacement of a jump to `l` that ends after it. (Code is at
    /// most 2 GiB, which `compile` checks, so a backward displacement fits.)
    fn rel32(&mut self, l: Label) {
        match self.backward(l, 0, 4) {
            Some(rel) => {
                let rel = rel as i32;
                self.ops.extend(&rel.to_le_bytes());
            }
            None => {
                self.fixup(l, false);
                self.ops.extend(&[0; 4]);
            }
        }
    }
}
