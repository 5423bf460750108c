//! Data caps and memory: READ_DATA_CAP copies a data cap's bytes into the running
//! instance's memory, MINT_DATA_CAP publishes bytes of its memory as a data cap paid
//! for from a storage quota.

use javm_cap::{CacheDirectory, Cap, CapHashOrRef, CapKind, DataCap};
use javm_exec::memory::PAGE_SIZE;
use javm_exec::{Instance, PageState};

use super::{READ_DATA_CAP, trap};
use crate::build::{BuildError, Frame, get_kind};
use crate::driver::Step;
use crate::kernel_assist::KernelAssist;
use crate::vm::VmError;

const SPACE: u64 = 1 << 32;

/// φ7 slot, φ8 address, φ9 length: copy `min(len, data length)` bytes; φ7 = count.
/// The first write to a page costs what a guest store would (`COW_COST` under
/// `jar1`); a range the guest could not write traps.
pub(super) fn read_data_cap<I: Instance>(
    f: &mut Frame<I>,
    cache: &CacheDirectory,
) -> Result<Step<I>, VmError> {
    let slot = f.slot_arg(7);
    let (addr, len) = (f.reg(8), f.reg(9));
    let Some(h) = f.slot_cap(slot) else {
        return Ok(trap());
    };
    let cap = match get_kind(cache, &h, CapKind::Data) {
        Ok(c) => c,
        Err(e) if e.is_host_failure() => return Err(e.into()),
        Err(_) => return Ok(trap()),
    };
    let Cap::Data(d) = &*cap else {
        return Ok(trap());
    };
    let count = len.min(d.len());
    if addr >= SPACE || addr + count > SPACE {
        return Ok(trap());
    }
    if count > 0 {
        let bytes = d
            .read(0, count as usize)
            .ok_or(VmError::Build(BuildError::MissingPage { start: addr }))?;
        let first = addr / u64::from(PAGE_SIZE);
        let end = (addr + count).div_ceil(u64::from(PAGE_SIZE));
        let fresh = (first..end)
            .filter(|p| {
                f.inst.page_state((p * u64::from(PAGE_SIZE)) as u32) != PageState::PresentRw
            })
            .count() as u64;
        let charge = fresh * f.schedule.cow_cost();
        let gas = f.inst.gas().max(0) as u64;
        if gas < charge {
            return Ok(Step::OutOfGas {
                retry: Some(READ_DATA_CAP),
            });
        }
        if f.inst.write_memory(addr as u32, &bytes).is_err() {
            return Ok(trap());
        }
        f.inst.set_gas((gas - charge) as i64)?;
    }
    f.set_reg(7, count);
    Ok(Step::Continue)
}

/// φ7 address, φ8 length, φ9 quota, φ10 dst: publish the bytes (zero-padded to a
/// page multiple) as a data cap at dst, debiting the padded length from the quota.
/// An unreadable range, a pinned dst or a quota that cannot pay traps.
pub(super) fn mint_data_cap<I: Instance>(
    f: &mut Frame<I>,
    kernel: &mut dyn KernelAssist,
    cache: &CacheDirectory,
) -> Result<Step<I>, VmError> {
    let (addr, len, quota) = (f.reg(7), f.reg(8), f.reg(9));
    let dst = f.slot_arg(10);
    if !f.in_range(dst) || f.pinned(dst) || addr >= SPACE || len > SPACE - addr {
        return Ok(trap());
    }
    let padded = len.div_ceil(u64::from(PAGE_SIZE)) * u64::from(PAGE_SIZE);
    // Ask before reading, so an unpaid request never makes the host allocate.
    if kernel
        .quota_available(quota)
        .is_none_or(|left| left < padded)
    {
        return Ok(trap());
    }
    let mut buf = vec![0u8; len as usize];
    if f.inst.read_memory(addr as u32, &mut buf).is_err() {
        return Ok(trap());
    }
    if kernel.debit_quota(quota, padded).is_err() {
        return Ok(trap());
    }
    let h = cache.put_cap(Cap::Data(DataCap::from_bytes(&buf)?))?;
    f.cnode.set(dst, Some(CapHashOrRef::Hash(h)))?;
    Ok(Step::Continue)
}
