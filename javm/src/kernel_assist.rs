//! [`KernelAssist`]: what the embedder supplies to a [`crate::Vm`] — which yields it
//! catches, storage quotas, and host functions (ops ≥ 64) — plus an in-process
//! implementation, [`InProcessKernel`], and a recording test double, [`Recording`].
//!
//! Host functions see the running instance through a [`Guest`]: its registers, its
//! memory (with the guest's access rights, all-or-nothing) and its gas.

use std::collections::{HashMap, HashSet};
use std::fmt;

use javm_cap::CapHash;
use javm_exec::{Instance, MemoryError, NUM_REGS, Reg};

/// The running instance, as a host function sees it.
pub struct Guest<'a> {
    inst: &'a mut dyn Instance,
}

impl<'a> Guest<'a> {
    pub(crate) fn new(inst: &'a mut dyn Instance) -> Self {
        Guest { inst }
    }

    /// Register φ`index` (0..13; any other index reads 0).
    pub fn reg(&self, index: usize) -> u64 {
        Reg::new(index).map_or(0, |r| self.inst.reg(r))
    }

    /// All 13 registers.
    pub fn regs(&self) -> [u64; NUM_REGS] {
        self.inst.regs()
    }

    /// Set register φ`index` (an index outside 0..13 is ignored).
    pub fn set_reg(&mut self, index: usize, value: u64) {
        if let Some(r) = Reg::new(index) {
            self.inst.set_reg(r, value);
        }
    }

    /// Read `buf.len()` bytes at `addr` with the guest's read rights.
    pub fn read(&self, addr: u32, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.inst.read_memory(addr, buf)
    }

    /// Write `data` at `addr` with the guest's write rights (all-or-nothing, no gas).
    pub fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), MemoryError> {
        self.inst.write_memory(addr, data)
    }

    /// Remaining gas of the invocation's pool.
    pub fn gas(&self) -> u64 {
        self.inst.gas().max(0) as u64
    }

    /// Deduct `amount` gas; false (changing nothing) if the pool holds less. A host
    /// function that cannot pay returns [`HostReturn::OutOfGas`]; it is called again,
    /// with the same registers, if the invocation is resumed after a top-up, so it
    /// should charge before it changes anything.
    pub fn charge_gas(&mut self, amount: u64) -> bool {
        let have = self.inst.gas().max(0) as u64;
        if amount > have {
            return false;
        }
        self.inst.set_gas((have - amount) as i64).is_ok()
    }
}

impl fmt::Debug for Guest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guest")
            .field("regs", &self.inst.regs())
            .finish_non_exhaustive()
    }
}

/// How a host function ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostReturn {
    /// The guest continues after its `ecalli`/`ecall`.
    Continue,
    /// The guest traps (an op error).
    Trap,
    /// The gas pool could not pay (see [`Guest::charge_gas`]): handled as out of gas.
    OutOfGas,
}

/// A failure of the embedder itself (not of the guest): the invocation ends with
/// [`crate::VmError::Host`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HostError(pub String);

/// Why a storage-quota debit was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// No quota with this id.
    #[error("no storage quota {0}")]
    Unknown(u64),
    /// The quota holds less than the debit.
    #[error("storage quota {quota} holds {left} bytes, {wanted} wanted")]
    Exhausted {
        /// The quota.
        quota: u64,
        /// What it holds.
        left: u64,
        /// What was asked.
        wanted: u64,
    },
}

/// What the embedder provides to the driver. Every method has a default that grants
/// nothing: no catchers, no quotas, every host function traps.
pub trait KernelAssist {
    /// Whether the catcher whose cap hash is `catcher` (the cap in a waiting
    /// instance's yield-marker slot) catches yields of `marker`.
    fn catches(&mut self, catcher: &CapHash, marker: &CapHash) -> bool {
        let _ = (catcher, marker);
        false
    }

    /// Bytes left in storage quota `quota` (`None`: no such quota). Asked before a
    /// debit, so the driver never reads memory for a request the quota cannot pay.
    fn quota_available(&self, quota: u64) -> Option<u64> {
        let _ = quota;
        None
    }

    /// Debit `bytes` from storage quota `quota`; on error nothing is debited.
    fn debit_quota(&mut self, quota: u64, bytes: u64) -> Result<(), QuotaError> {
        let _ = bytes;
        Err(QuotaError::Unknown(quota))
    }

    /// Host function `op` (≥ 64), called when the guest executes `ecalli op` (or
    /// `ecall` with φ11 = `op`). Arguments are in φ7..φ12 by convention.
    fn host_function(&mut self, op: u32, guest: &mut Guest<'_>) -> Result<HostReturn, HostError> {
        let _ = (op, guest);
        Ok(HostReturn::Trap)
    }
}

impl<K: KernelAssist + ?Sized> KernelAssist for &mut K {
    fn catches(&mut self, catcher: &CapHash, marker: &CapHash) -> bool {
        (**self).catches(catcher, marker)
    }
    fn quota_available(&self, quota: u64) -> Option<u64> {
        (**self).quota_available(quota)
    }
    fn debit_quota(&mut self, quota: u64, bytes: u64) -> Result<(), QuotaError> {
        (**self).debit_quota(quota, bytes)
    }
    fn host_function(&mut self, op: u32, guest: &mut Guest<'_>) -> Result<HostReturn, HostError> {
        (**self).host_function(op, guest)
    }
}

/// A host function registered with [`InProcessKernel::register`].
pub type HostFn = Box<dyn FnMut(&mut Guest<'_>) -> Result<HostReturn, HostError> + Send>;

/// An in-process [`KernelAssist`]: tables of yield catchers, storage quotas and gas
/// meters, and host functions registered as closures.
#[derive(Default)]
pub struct InProcessKernel {
    catchers: HashMap<CapHash, HashSet<CapHash>>,
    quotas: HashMap<u64, u64>,
    meters: HashMap<u64, u64>,
    functions: HashMap<u32, HostFn>,
}

impl InProcessKernel {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Let `catcher` catch yields of `marker`.
    pub fn add_catcher(&mut self, catcher: CapHash, marker: CapHash) -> &mut Self {
        self.catchers.entry(catcher).or_default().insert(marker);
        self
    }

    /// Stop `catcher` catching `marker`; returns whether it did.
    pub fn remove_catcher(&mut self, catcher: &CapHash, marker: &CapHash) -> bool {
        self.catchers
            .get_mut(catcher)
            .is_some_and(|m| m.remove(marker))
    }

    /// Set storage quota `quota` to `bytes`; returns the previous value.
    pub fn set_quota(&mut self, quota: u64, bytes: u64) -> Option<u64> {
        self.quotas.insert(quota, bytes)
    }

    /// Bytes left in storage quota `quota`.
    pub fn quota(&self, quota: u64) -> Option<u64> {
        self.quotas.get(&quota).copied()
    }

    /// Set gas meter `meter` to `gas`; returns the previous value.
    pub fn set_meter(&mut self, meter: u64, gas: u64) -> Option<u64> {
        self.meters.insert(meter, gas)
    }

    /// Gas left in meter `meter`.
    pub fn meter(&self, meter: u64) -> Option<u64> {
        self.meters.get(&meter).copied()
    }

    /// Take up to `amount` gas out of meter `meter` (to top up a paused invocation
    /// with [`crate::Vm::top_up`]); returns what was taken (0 for an unknown meter).
    pub fn withdraw(&mut self, meter: u64, amount: u64) -> u64 {
        match self.meters.get_mut(&meter) {
            Some(left) => {
                let taken = amount.min(*left);
                *left -= taken;
                taken
            }
            None => 0,
        }
    }

    /// Register host function `op` (must be ≥ 64; lower ops belong to the driver,
    /// and registering one returns false and changes nothing).
    pub fn register(
        &mut self,
        op: u32,
        f: impl FnMut(&mut Guest<'_>) -> Result<HostReturn, HostError> + Send + 'static,
    ) -> bool {
        if op < crate::hostops::FIRST_HOST_FUNCTION {
            return false;
        }
        self.functions.insert(op, Box::new(f));
        true
    }
}

impl fmt::Debug for InProcessKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ops: Vec<_> = self.functions.keys().collect();
        ops.sort();
        f.debug_struct("InProcessKernel")
            .field("catchers", &self.catchers.len())
            .field("quotas", &self.quotas)
            .field("meters", &self.meters)
            .field("functions", &ops)
            .finish()
    }
}

impl KernelAssist for InProcessKernel {
    fn catches(&mut self, catcher: &CapHash, marker: &CapHash) -> bool {
        self.catchers
            .get(catcher)
            .is_some_and(|m| m.contains(marker))
    }

    fn quota_available(&self, quota: u64) -> Option<u64> {
        self.quota(quota)
    }

    fn debit_quota(&mut self, quota: u64, bytes: u64) -> Result<(), QuotaError> {
        let left = self
            .quotas
            .get_mut(&quota)
            .ok_or(QuotaError::Unknown(quota))?;
        if *left < bytes {
            return Err(QuotaError::Exhausted {
                quota,
                left: *left,
                wanted: bytes,
            });
        }
        *left -= bytes;
        Ok(())
    }

    fn host_function(&mut self, op: u32, guest: &mut Guest<'_>) -> Result<HostReturn, HostError> {
        match self.functions.get_mut(&op) {
            Some(f) => f(guest),
            None => Ok(HostReturn::Trap),
        }
    }
}

/// One call the driver made into a [`Recording`] kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelCall {
    /// [`KernelAssist::catches`] and its answer.
    Catches {
        /// The catcher.
        catcher: CapHash,
        /// The marker.
        marker: CapHash,
        /// The answer.
        caught: bool,
    },
    /// [`KernelAssist::debit_quota`] and its outcome.
    DebitQuota {
        /// The quota.
        quota: u64,
        /// The debit.
        bytes: u64,
        /// The outcome.
        result: Result<(), QuotaError>,
    },
    /// [`KernelAssist::host_function`]: the op, the registers it saw, its outcome.
    HostFunction {
        /// The op.
        op: u32,
        /// Registers at the call.
        regs: [u64; NUM_REGS],
        /// The outcome.
        result: Result<HostReturn, HostError>,
    },
}

/// A test double for embedders' tests: wraps a kernel and records every call the
/// driver makes into it, in order.
#[derive(Debug, Default)]
pub struct Recording<K> {
    /// The wrapped kernel.
    pub inner: K,
    /// The calls so far.
    pub calls: Vec<KernelCall>,
}

impl<K> Recording<K> {
    /// Record the calls made into `inner`.
    pub fn new(inner: K) -> Self {
        Recording {
            inner,
            calls: Vec::new(),
        }
    }
}

impl<K: KernelAssist> KernelAssist for Recording<K> {
    fn catches(&mut self, catcher: &CapHash, marker: &CapHash) -> bool {
        let caught = self.inner.catches(catcher, marker);
        self.calls.push(KernelCall::Catches {
            catcher: *catcher,
            marker: *marker,
            caught,
        });
        caught
    }

    fn quota_available(&self, quota: u64) -> Option<u64> {
        self.inner.quota_available(quota)
    }

    fn debit_quota(&mut self, quota: u64, bytes: u64) -> Result<(), QuotaError> {
        let result = self.inner.debit_quota(quota, bytes);
        self.calls.push(KernelCall::DebitQuota {
            quota,
            bytes,
            result,
        });
        result
    }

    fn host_function(&mut self, op: u32, guest: &mut Guest<'_>) -> Result<HostReturn, HostError> {
        let regs = guest.regs();
        let result = self.inner.host_function(op, guest);
        self.calls.push(KernelCall::HostFunction {
            op,
            regs,
            result: result.clone(),
        });
        result
    }
}
