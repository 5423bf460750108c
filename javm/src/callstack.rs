//! The call stack of a [`crate::Vm`] invocation: instance entries (one per running or
//! waiting instance) and reference entries (pushed when a yield is routed to a
//! catcher), with the invariants of the design:
//!
//! * only the top entry runs; every other entry waits;
//! * a reference entry is only ever the top, and it targets a lower instance entry
//!   (the catcher);
//! * at most `max_depth` instance entries (256 by default).

/// One entry of the stack.
#[derive(Debug)]
pub(crate) enum Entry<F> {
    /// A running or waiting instance.
    Instance(F),
    /// A routed yield: the instance below it is paused, and the catcher at
    /// `target` accepted its marker.
    Reference {
        /// Index of the catcher's instance entry.
        target: usize,
    },
}

/// The depth limit was reached: the call that would exceed it traps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DepthExceeded;

/// A stack of [`Entry`]s.
#[derive(Debug)]
pub(crate) struct CallStack<F> {
    entries: Vec<Entry<F>>,
    max_depth: usize,
}

impl<F> CallStack<F> {
    /// An empty stack holding at most `max_depth` instances.
    pub(crate) fn new(max_depth: usize) -> Self {
        CallStack {
            entries: Vec::new(),
            max_depth,
        }
    }

    /// The depth limit.
    pub(crate) fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Number of instance entries.
    pub(crate) fn depth(&self) -> usize {
        self.entries.len() - usize::from(self.is_paused())
    }

    /// Whether nothing is on the stack.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the top is a reference entry (a yield is waiting for `call_resume`).
    pub(crate) fn is_paused(&self) -> bool {
        matches!(self.entries.last(), Some(Entry::Reference { .. }))
    }

    /// Push an instance on top of a running one (or onto the empty stack).
    pub(crate) fn push_instance(&mut self, frame: F) -> Result<(), DepthExceeded> {
        if self.depth() >= self.max_depth || self.is_paused() {
            return Err(DepthExceeded);
        }
        self.entries.push(Entry::Instance(frame));
        Ok(())
    }

    /// Record a routed yield of the top instance, caught by the instance at `target`
    /// (which must lie below the top). Returns false, changing nothing, otherwise.
    pub(crate) fn push_reference(&mut self, target: usize) -> bool {
        let top = self.entries.len().wrapping_sub(1);
        if self.is_paused()
            || target >= top
            || !matches!(self.entries.get(target), Some(Entry::Instance(_)))
        {
            return false;
        }
        self.entries.push(Entry::Reference { target });
        true
    }

    /// Remove the top reference entry; returns its target, `None` if the top is not a
    /// reference.
    pub(crate) fn pop_reference(&mut self) -> Option<usize> {
        match self.entries.last() {
            Some(Entry::Reference { target }) => {
                let t = *target;
                self.entries.pop();
                Some(t)
            }
            _ => None,
        }
    }

    /// Remove the top instance entry (`None` if the top is not an instance).
    pub(crate) fn pop_instance(&mut self) -> Option<F> {
        match self.entries.last() {
            Some(Entry::Instance(_)) => match self.entries.pop() {
                Some(Entry::Instance(f)) => Some(f),
                _ => None,
            },
            _ => None,
        }
    }

    /// Index of the top instance entry (the running one, or the paused yielder).
    pub(crate) fn top_index(&self) -> Option<usize> {
        let n = self.entries.len();
        match self.entries.last()? {
            Entry::Instance(_) => Some(n - 1),
            Entry::Reference { .. } => n.checked_sub(2),
        }
    }

    /// The instance at `index`.
    pub(crate) fn frame(&self, index: usize) -> Option<&F> {
        match self.entries.get(index)? {
            Entry::Instance(f) => Some(f),
            Entry::Reference { .. } => None,
        }
    }

    /// The instance at `index`, mutably.
    pub(crate) fn frame_mut(&mut self, index: usize) -> Option<&mut F> {
        match self.entries.get_mut(index)? {
            Entry::Instance(f) => Some(f),
            Entry::Reference { .. } => None,
        }
    }

    /// The running instance: the top entry, if it is an instance.
    pub(crate) fn running_mut(&mut self) -> Option<&mut F> {
        match self.entries.last_mut()? {
            Entry::Instance(f) => Some(f),
            Entry::Reference { .. } => None,
        }
    }

    /// Drop everything.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Whether the invariants hold (for tests and debug assertions).
    pub(crate) fn invariants_hold(&self) -> bool {
        let n = self.entries.len();
        self.depth() <= self.max_depth
            && self.entries.iter().enumerate().all(|(i, e)| match e {
                Entry::Instance(_) => true,
                Entry::Reference { target } => {
                    i + 1 == n
                        && *target + 1 < i
                        && matches!(self.entries.get(*target), Some(Entry::Instance(_)))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limit_and_references() {
        let mut s: CallStack<u32> = CallStack::new(3);
        assert!(s.is_empty());
        for i in 0..3 {
            s.push_instance(i).unwrap();
        }
        assert_eq!(s.push_instance(9), Err(DepthExceeded));
        assert_eq!(s.depth(), 3);
        // A reference must target an instance below the top.
        assert!(!s.push_reference(2));
        assert!(!s.push_reference(7));
        assert!(s.push_reference(0));
        assert!(s.invariants_hold());
        assert!(s.is_paused());
        assert_eq!(s.depth(), 3);
        assert_eq!(s.top_index(), Some(2));
        assert!(s.running_mut().is_none());
        // Nothing is pushed above a reference.
        assert!(!s.push_reference(1));
        assert_eq!(s.pop_instance(), None);
        assert_eq!(s.pop_reference(), Some(0));
        assert_eq!(s.pop_instance(), Some(2));
        assert_eq!(s.frame(1), Some(&1));
        assert_eq!(s.top_index(), Some(1));
        s.clear();
        assert!(s.is_empty() && s.invariants_hold());
    }
}
