//! Control between instances: HOST_CALL (call the instance in a slot), HOST_YIELD
//! (yield a marker to a catcher), SET_IMAGE (run another image on the same state) and
//! DERIVE_SPAWN (publish a child instance of an image).

use std::sync::Arc;

use javm_cap::{CacheDirectory, Cap, CapHashOrRef, CapKind, InstanceCap, NUM_REGS};
use javm_exec::{Engine, Instance, InstanceInit};

use super::{HOST_CALL, SET_IMAGE, running, trap};
use crate::build::{
    BuildCtx, BuildError, Frame, Origin, apply_overlays, build_frame, get_kind, image_chain,
    slot_hash,
};
use crate::driver::{Driver, Step, internal, put_slot0, take_slot0};
use crate::settle::merge_dirty;
use crate::vm::VmError;

/// A build error inside a call: the host's failures end the invocation, anything
/// about the caps traps the caller.
fn guest_or_host<T, I>(r: Result<T, BuildError>) -> Result<Result<T, Step<I>>, VmError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.is_host_failure() => Err(e.into()),
        Err(_) => Ok(Err(trap())),
    }
}

/// φ7 instance slot (not 0), φ8 endpoint, φ9..φ12 arguments (the callee's φ7..φ10).
/// Charges the callee's `call_frame_cost` to the pool and moves the caller's slot 0
/// into the callee's.
pub(super) fn host_call<E: Engine>(
    d: &mut Driver<E>,
    cache: &CacheDirectory,
) -> Result<Step<E::Instance>, VmError> {
    let depth_ok = d.stack.depth() < d.stack.max_depth();
    let f = running(d)?;
    let slot = f.slot_arg(7);
    let endpoint = f.reg(8);
    let args = [f.reg(9), f.reg(10), f.reg(11), f.reg(12)];
    if slot.0 == 0 || !f.in_range(slot) || !depth_ok {
        return Ok(trap());
    }
    let Some(h) = slot_hash(&f.cnode, slot) else {
        return Ok(trap());
    };
    let origin = Origin::Slot {
        slot,
        write_back: !f.pinned(slot),
    };
    let mut ctx = BuildCtx {
        engine: &d.engine,
        images: &mut d.images,
        cache,
        profile: d.config.profile,
    };
    let mut child = match guest_or_host(build_frame(&mut ctx, &h, endpoint, args, origin))? {
        Ok(c) => c,
        Err(step) => return Ok(step),
    };
    let cost = child.image.frame_cost(d.config.profile);
    let f = running(d)?;
    let gas = f.inst.gas().max(0) as u64;
    if gas < cost {
        return Ok(Step::OutOfGas {
            retry: Some(HOST_CALL),
        });
    }
    child.inst.set_gas((gas - cost) as i64)?;
    let arg = take_slot0(&mut f.cnode);
    put_slot0(&mut child.cnode, arg);
    Ok(Step::Call(Box::new(child)))
}

/// φ7 marker slot: yield its cap to the nearest catcher below.
pub(super) fn host_yield<I: Instance>(f: &mut Frame<I>) -> Step<I> {
    let slot = f.slot_arg(7);
    match f.slot_cap(slot) {
        Some(marker) => Step::Yield(marker),
        None => trap(),
    }
}

/// φ7 image slot: continue at the next instruction in that image, with the same
/// registers, memory and cnode (the new image's pinned slots installed). The next PC
/// must start a basic block of the new code under the run's profile (else the call
/// traps); the new image's `call_frame_cost` is charged.
pub(super) fn set_image<E: Engine>(
    d: &mut Driver<E>,
    cache: &CacheDirectory,
) -> Result<Step<E::Instance>, VmError> {
    let profile = d.config.profile;
    let f = running(d)?;
    let slot = f.slot_arg(7);
    let Some(h) = f.slot_cap(slot) else {
        return Ok(trap());
    };
    let Some(next) = f.inst.next_pc() else {
        return Err(internal("SET_IMAGE from a finished instance"));
    };
    let capacity = f.cnode.capacity();
    let info = match guest_or_host(d.images.info(cache, &h))? {
        Ok(i) => i,
        Err(step) => return Ok(step),
    };
    if !info.program.is_block_start(next, profile)
        || info.image().pinned().iter().any(|p| p.slot.0 >= capacity)
    {
        return Ok(trap());
    }
    let cost = info.frame_cost(profile);
    let module_schedule = running(d)?.schedule;
    let module = d.images.module(&d.engine, &info, module_schedule)?;
    let f = d
        .stack
        .running_mut()
        .ok_or_else(|| internal("SET_IMAGE lost its frame"))?;
    let gas = f.inst.gas().max(0) as u64;
    if gas < cost {
        return Ok(Step::OutOfGas {
            retry: Some(SET_IMAGE),
        });
    }
    let overlays = merge_dirty(&f.inst, &f.overlays)?;
    let layout = apply_overlays(&f.base, &overlays)?;
    let inst = d.engine.instantiate(
        &module,
        InstanceInit {
            layout: Arc::new(layout),
            regs: f.inst.regs(),
            pc: next,
            gas: (gas - cost) as i64,
        },
    )?;
    f.inst = inst;
    f.overlays = overlays;
    f.chain = image_chain(&f.chain, &h);
    for p in info.image().pinned() {
        f.cnode.set(p.slot, Some(CapHashOrRef::Hash(p.hash)))?;
    }
    f.image = info;
    Ok(Step::Continue)
}

/// φ7 image slot, φ8 prepared-cnode slot (consumed), φ9 dst: publish a fresh child
/// instance of the image — its cnode the prepared one with the image's pinned slots
/// written over it and its initial slots filled where empty — and put it at dst.
pub(super) fn derive_spawn<E: Engine>(
    d: &mut Driver<E>,
    cache: &CacheDirectory,
) -> Result<Step<E::Instance>, VmError> {
    let f = running(d)?;
    let (img_slot, cn_slot, dst) = (f.slot_arg(7), f.slot_arg(8), f.slot_arg(9));
    if ![img_slot, cn_slot, dst].iter().all(|&s| f.in_range(s))
        || f.pinned(dst)
        || f.pinned(cn_slot)
    {
        return Ok(trap());
    }
    let (Some(img_h), Some(cn_h)) = (slot_hash(&f.cnode, img_slot), slot_hash(&f.cnode, cn_slot))
    else {
        return Ok(trap());
    };
    let parent_chain = f.chain;
    let info = match guest_or_host(d.images.info(cache, &img_h))? {
        Ok(i) => i,
        Err(step) => return Ok(step),
    };
    let cap = match guest_or_host(get_kind(cache, &cn_h, CapKind::CNode))? {
        Ok(c) => c,
        Err(step) => return Ok(step),
    };
    let Cap::CNode(prepared) = &*cap else {
        return Ok(trap());
    };
    let image = info.image();
    let mut cnode = prepared.clone();
    for p in image.pinned() {
        if cnode.set(p.slot, Some(CapHashOrRef::Hash(p.hash))).is_err() {
            return Ok(trap());
        }
    }
    for i in image.initial() {
        if cnode.slot(i.slot).is_none()
            && cnode.set(i.slot, Some(CapHashOrRef::Hash(i.hash))).is_err()
        {
            return Ok(trap());
        }
    }
    let cnode_h = cache.put_cap(Cap::CNode(cnode))?;
    let child = InstanceCap::new(
        image_chain(&parent_chain, &img_h),
        img_h,
        CapHashOrRef::Hash(cnode_h),
        Vec::new(),
        image.mem_size(),
        [0; NUM_REGS],
        0,
        0,
    )?;
    let child_h = cache.put_cap(Cap::Instance(child))?;
    let f = running(d)?;
    f.cnode.take(cn_slot)?;
    f.cnode.set(dst, Some(CapHashOrRef::Hash(child_h)))?;
    Ok(Step::Continue)
}
