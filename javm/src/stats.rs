//! [`VmStats`]: counters of what a driver did — host ops by outcome, calls, faults,
//! pauses and the deepest call stack. Embedders export them as metrics; the
//! driver-level differential campaigns use them to show which paths they reached.

use crate::hostops::{FIRST_HOST_FUNCTION, HOST_CALL};

/// Dispatches of one host op, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCount {
    /// The op completed (a yield counts here whether or not a catcher took it).
    pub ok: u64,
    /// The op trapped the running instance.
    pub trapped: u64,
    /// The pool could not pay for the op.
    pub out_of_gas: u64,
}

impl OpCount {
    /// All dispatches.
    pub fn total(&self) -> u64 {
        self.ok + self.trapped + self.out_of_gas
    }
}

/// How a dispatched op ended, for [`VmStats::record_op`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpOutcome {
    Ok,
    Trapped,
    OutOfGas,
}

/// Counters of a driver since it was built or its stats were reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmStats {
    /// Named host ops, indexed by op number (0 = HALT/REPLY … 26 = HOST_CALL); the
    /// entries of unnamed numbers stay zero.
    pub ops: [OpCount; HOST_CALL as usize + 1],
    /// Host functions (ops ≥ 64) handed to the kernel.
    pub host_functions: OpCount,
    /// Dispatches of ops that do not exist (they trap).
    pub unknown_ops: u64,
    /// Nested frames pushed by HOST_CALL.
    pub calls: u64,
    /// Nested frames that faulted back to their caller.
    pub nested_faults: u64,
    /// Invocations paused by a caught yield (out of gas included).
    pub pauses: u64,
    /// Of those, pauses for the out-of-gas marker.
    pub out_of_gas_pauses: u64,
    /// Post-instances published (top-level and nested replies).
    pub settles: u64,
    /// The deepest call stack seen (instances).
    pub max_depth: usize,
}

impl Default for VmStats {
    fn default() -> Self {
        VmStats {
            ops: [OpCount::default(); HOST_CALL as usize + 1],
            host_functions: OpCount::default(),
            unknown_ops: 0,
            calls: 0,
            nested_faults: 0,
            pauses: 0,
            out_of_gas_pauses: 0,
            settles: 0,
            max_depth: 0,
        }
    }
}

impl VmStats {
    /// Count one dispatch of `op`.
    pub(crate) fn record_op(&mut self, op: u32, outcome: OpOutcome) {
        let count = if op >= FIRST_HOST_FUNCTION {
            &mut self.host_functions
        } else if crate::hostops::op_name(op).is_some()
            && let Some(c) = self.ops.get_mut(op as usize)
        {
            c
        } else {
            self.unknown_ops += 1;
            return;
        };
        match outcome {
            OpOutcome::Ok => count.ok += 1,
            OpOutcome::Trapped => count.trapped += 1,
            OpOutcome::OutOfGas => count.out_of_gas += 1,
        }
    }

    /// Add `other`'s counts to these (the deepest stack is the larger one).
    pub fn merge(&mut self, other: &VmStats) {
        for (a, b) in self.ops.iter_mut().zip(other.ops.iter()) {
            a.ok += b.ok;
            a.trapped += b.trapped;
            a.out_of_gas += b.out_of_gas;
        }
        self.host_functions.ok += other.host_functions.ok;
        self.host_functions.trapped += other.host_functions.trapped;
        self.host_functions.out_of_gas += other.host_functions.out_of_gas;
        self.unknown_ops += other.unknown_ops;
        self.calls += other.calls;
        self.nested_faults += other.nested_faults;
        self.pauses += other.pauses;
        self.out_of_gas_pauses += other.out_of_gas_pauses;
        self.settles += other.settles;
        self.max_depth = self.max_depth.max(other.max_depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_counted_by_number_and_outcome() {
        let mut s = VmStats::default();
        s.record_op(26, OpOutcome::Ok);
        s.record_op(26, OpOutcome::OutOfGas);
        s.record_op(3, OpOutcome::Trapped);
        s.record_op(6, OpOutcome::Trapped);
        s.record_op(63, OpOutcome::Trapped);
        s.record_op(64, OpOutcome::Ok);
        s.record_op(u32::MAX, OpOutcome::Trapped);
        assert_eq!(
            s.ops[26],
            OpCount {
                ok: 1,
                trapped: 0,
                out_of_gas: 1
            }
        );
        assert_eq!(s.ops[3].trapped, 1);
        assert_eq!(s.ops[6].total(), 0, "op 6 does not exist");
        assert_eq!(s.unknown_ops, 2);
        assert_eq!(s.host_functions.ok, 1);
        assert_eq!(s.host_functions.trapped, 1);
        let mut t = VmStats {
            max_depth: 3,
            ..VmStats::default()
        };
        t.merge(&s);
        t.merge(&s);
        assert_eq!(t.ops[26].ok, 2);
        assert_eq!(t.unknown_ops, 4);
        assert_eq!(t.max_depth, 3);
    }
}
