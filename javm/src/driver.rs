//! The engine-generic core of the [`crate::Vm`]: the drive loop over the call stack,
//! and what happens when a frame replies, faults, yields or runs out of gas.

use javm_cap::{CNodeCap, CNodeSlot, CacheDirectory, CapHash, CapHashOrRef, SlotIdx};
use javm_exec::{Engine, EngineError, Exit, Instance, Reg};

use crate::build::{BuildCtx, Frame, Origin, build_frame, slot_hash};
use crate::callstack::CallStack;
use crate::hostops::{self, OUT_OF_GAS_MARKER};
use crate::image_cache::ImageCache;
use crate::kernel_assist::KernelAssist;
use crate::settle::settle;
use crate::stats::{OpOutcome, VmStats};
use crate::vm::{CallResult, Fault, VmConfig, VmError};

/// What the running frame does next, decided by its exit or host op.
pub(crate) enum Step<I> {
    /// Keep running it.
    Continue,
    /// It faulted (an op error is a trap).
    Fault(Fault),
    /// It replied (HALT).
    Reply,
    /// It called a child (built, its gas already moved in).
    Call(Box<Frame<I>>),
    /// It yielded this marker.
    Yield(CapHash),
    /// The pool could not pay; `retry` is the host op to dispatch again on resume.
    OutOfGas {
        /// The op that could not be paid for (`None`: the engine's block entry).
        retry: Option<u32>,
    },
}

/// The driver on one engine.
pub(crate) struct Driver<E: Engine> {
    pub(crate) engine: E,
    pub(crate) images: ImageCache<E>,
    pub(crate) stack: CallStack<Frame<E::Instance>>,
    pub(crate) config: VmConfig,
    /// The pool at the start of the current `invoke`/`resume` (for `gas_used`).
    gas_start: u64,
    /// What the driver has done.
    pub(crate) stats: VmStats,
}

/// An internal invariant of the driver was broken.
pub(crate) fn internal(what: &str) -> VmError {
    VmError::Engine(EngineError::Internal(format!("driver: {what}")))
}

/// Empty slot 0 and return the hash it held.
pub(crate) fn take_slot0(cnode: &mut CNodeCap) -> Option<CapHash> {
    let h = slot_hash(cnode, SlotIdx(0));
    let _ = cnode.take(SlotIdx(0));
    h
}

/// Put `h` (or nothing) in slot 0.
pub(crate) fn put_slot0(cnode: &mut CNodeCap, h: Option<CapHash>) {
    // Every cnode has a slot 0.
    let _ = cnode.set_slot(
        SlotIdx(0),
        h.map(|h| CNodeSlot::Materialized(CapHashOrRef::Hash(h))),
    );
}

fn gas_of<I: Instance>(inst: &I) -> u64 {
    inst.gas().max(0) as u64
}

impl<E: Engine> Driver<E> {
    pub(crate) fn new(engine: E, config: VmConfig) -> Self {
        Driver {
            engine,
            images: ImageCache::new(config.image_cache_capacity),
            stack: CallStack::new(config.max_depth),
            config,
            gas_start: 0,
            stats: VmStats::default(),
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.stack.is_paused()
    }

    pub(crate) fn abandon(&mut self) {
        self.stack.clear();
    }

    pub(crate) fn cached_images(&self) -> usize {
        self.images.len()
    }

    pub(crate) fn invoke(
        &mut self,
        kernel: &mut dyn KernelAssist,
        cache: &CacheDirectory,
        instance: &CapHash,
        endpoint: u32,
        args: [u64; 4],
        budget: u64,
    ) -> Result<CallResult, VmError> {
        if !self.stack.is_empty() {
            return Err(VmError::Busy);
        }
        let pool = i64::try_from(budget).map_err(|_| VmError::InvalidGas(budget))?;
        let mut ctx = BuildCtx {
            engine: &self.engine,
            images: &mut self.images,
            cache,
            profile: self.config.profile,
        };
        let mut frame = build_frame(&mut ctx, instance, endpoint.into(), args, Origin::Top)?;
        let cost = frame.image.frame_cost(self.config.profile);
        self.gas_start = budget;
        if budget < cost {
            return Ok(CallResult::Faulted {
                reason: Fault::OutOfGas,
                reflected_slot0: take_slot0(&mut frame.cnode),
                gas_used: budget,
            });
        }
        frame.inst.set_gas(pool - cost as i64)?;
        self.stack
            .push_instance(frame)
            .map_err(|_| internal("the empty stack refused a frame"))?;
        self.stats.max_depth = self.stats.max_depth.max(1);
        self.drive(kernel, cache)
    }

    pub(crate) fn resume(
        &mut self,
        kernel: &mut dyn KernelAssist,
        cache: &CacheDirectory,
        scratchpad: Option<CapHash>,
    ) -> Result<CallResult, VmError> {
        self.stack.pop_reference().ok_or(VmError::NotPaused)?;
        let frame = self
            .stack
            .running_mut()
            .ok_or_else(|| internal("a reference entry without a yielder"))?;
        if scratchpad.is_some() {
            put_slot0(&mut frame.cnode, scratchpad);
        }
        self.gas_start = gas_of(&frame.inst);
        self.drive(kernel, cache)
    }

    pub(crate) fn top_up(&mut self, gas: u64) -> Result<(), VmError> {
        if !self.stack.is_paused() {
            return Err(VmError::NotPaused);
        }
        let i = self
            .stack
            .top_index()
            .ok_or_else(|| internal("paused without a yielder"))?;
        let frame = self
            .stack
            .frame_mut(i)
            .ok_or_else(|| internal("paused without a yielder"))?;
        let total = gas_of(&frame.inst)
            .checked_add(gas)
            .filter(|g| *g <= i64::MAX as u64)
            .ok_or(VmError::InvalidGas(gas))?;
        frame.inst.set_gas(total as i64)?;
        Ok(())
    }

    /// Run until the invocation halts, faults or pauses. A host failure discards the
    /// whole invocation.
    fn drive(
        &mut self,
        kernel: &mut dyn KernelAssist,
        cache: &CacheDirectory,
    ) -> Result<CallResult, VmError> {
        let r = self.drive_inner(kernel, cache);
        if r.is_err() {
            self.stack.clear();
        }
        debug_assert!(self.stack.invariants_hold());
        r
    }

    fn drive_inner(
        &mut self,
        kernel: &mut dyn KernelAssist,
        cache: &CacheDirectory,
    ) -> Result<CallResult, VmError> {
        loop {
            let frame = self
                .stack
                .running_mut()
                .ok_or_else(|| internal("no running instance"))?;
            let op = match frame.retry_op.take() {
                Some(op) => Ok(op),
                None => match frame.inst.run()? {
                    Exit::HostCall(op) => Ok(op),
                    // An op number that does not fit 32 bits names no op.
                    Exit::Ecall => u32::try_from(frame.inst.reg(Reg::R11)).map_err(|_| {
                        self.stats.unknown_ops += 1;
                        Step::Fault(Fault::Trap)
                    }),
                    Exit::Halt => Ok(hostops::HALT),
                    Exit::Trap => Err(Step::Fault(Fault::Trap)),
                    Exit::Panic => Err(Step::Fault(Fault::Panic(
                        frame
                            .inst
                            .panic_reason()
                            .ok_or_else(|| internal("a panic without a reason"))?,
                    ))),
                    Exit::PageFault(a) => Err(Step::Fault(Fault::PageFault(a))),
                    Exit::OutOfGas => Err(Step::OutOfGas { retry: None }),
                    other => {
                        return Err(internal(&format!("the driver cannot handle exit {other}")));
                    }
                },
            };
            let step = match op {
                Ok(op) => {
                    let step = hostops::dispatch(self, kernel, cache, op)?;
                    self.stats.record_op(
                        op,
                        match step {
                            Step::Fault(_) => OpOutcome::Trapped,
                            Step::OutOfGas { .. } => OpOutcome::OutOfGas,
                            _ => OpOutcome::Ok,
                        },
                    );
                    step
                }
                Err(step) => step,
            };
            let done = match step {
                Step::Continue => None,
                Step::Fault(f) => self.fault(f)?,
                Step::Reply => self.reply(cache)?,
                Step::Call(child) => {
                    self.stack.push_instance(*child).map_err(|_| {
                        internal("HOST_CALL passed the depth check but not the push")
                    })?;
                    self.stats.calls += 1;
                    self.stats.max_depth = self.stats.max_depth.max(self.stack.depth());
                    None
                }
                Step::Yield(marker) => match self.route(kernel, &marker) {
                    Some(catcher) => Some(self.pause(catcher, marker)?),
                    None => self.fault(Fault::Trap)?,
                },
                Step::OutOfGas { retry } => Some(self.out_of_gas(kernel, retry)?),
            };
            if let Some(result) = done {
                return Ok(result);
            }
        }
    }

    /// The nearest waiting instance below the running one whose catcher catches
    /// `marker`.
    fn route(&mut self, kernel: &mut dyn KernelAssist, marker: &CapHash) -> Option<usize> {
        let top = self.stack.top_index()?;
        (0..top).rev().find(|&j| {
            self.stack.frame(j).is_some_and(|f| {
                f.image
                    .image()
                    .yield_marker_slot()
                    .and_then(|s| slot_hash(&f.cnode, s))
                    .is_some_and(|c| kernel.catches(&c, marker))
            })
        })
    }

    fn pause(&mut self, catcher: usize, marker: CapHash) -> Result<CallResult, VmError> {
        let gas = self
            .stack
            .running_mut()
            .map(|f| gas_of(&f.inst))
            .ok_or_else(|| internal("pause without a running instance"))?;
        if !self.stack.push_reference(catcher) {
            return Err(internal(
                "a routed yield's catcher is not below the yielder",
            ));
        }
        self.stats.pauses += 1;
        if marker == OUT_OF_GAS_MARKER {
            self.stats.out_of_gas_pauses += 1;
        }
        Ok(CallResult::Paused {
            marker_payload: marker,
            gas_used: self.gas_start.saturating_sub(gas),
        })
    }

    fn out_of_gas(
        &mut self,
        kernel: &mut dyn KernelAssist,
        retry: Option<u32>,
    ) -> Result<CallResult, VmError> {
        let frame = self
            .stack
            .running_mut()
            .ok_or_else(|| internal("out of gas without a running instance"))?;
        frame.retry_op = retry;
        frame.inst.set_gas(0)?;
        if let Some(catcher) = self.route(kernel, &OUT_OF_GAS_MARKER) {
            return self.pause(catcher, OUT_OF_GAS_MARKER);
        }
        let reflected = self
            .stack
            .frame_mut(0)
            .and_then(|f| take_slot0(&mut f.cnode));
        self.stack.clear();
        Ok(CallResult::Faulted {
            reason: Fault::OutOfGas,
            reflected_slot0: reflected,
            gas_used: self.gas_start,
        })
    }

    /// The running frame faulted: at the top level the invocation is `Faulted`;
    /// nested, the caller continues with the fault's status in φ8.
    fn fault(&mut self, fault: Fault) -> Result<Option<CallResult>, VmError> {
        let mut f = self
            .stack
            .pop_instance()
            .ok_or_else(|| internal("fault without a running instance"))?;
        let slot0 = take_slot0(&mut f.cnode);
        let gas = gas_of(&f.inst);
        let Some(caller) = self.stack.running_mut() else {
            return Ok(Some(CallResult::Faulted {
                reason: fault,
                reflected_slot0: slot0,
                gas_used: self.gas_start.saturating_sub(gas),
            }));
        };
        let (status, detail) = match fault {
            Fault::Trap => (hostops::CALL_TRAP, 0),
            Fault::Panic(_) => (hostops::CALL_PANIC, 0),
            Fault::PageFault(a) => (hostops::CALL_PAGE_FAULT, u64::from(a)),
            Fault::OutOfGas => return Err(internal("a nested out of gas is not a fault")),
        };
        self.stats.nested_faults += 1;
        put_slot0(&mut caller.cnode, slot0);
        caller.inst.set_reg(Reg::R7, detail);
        caller.inst.set_reg(Reg::R8, status);
        caller.inst.set_gas(gas as i64)?;
        Ok(None)
    }

    /// The running frame replied: settle it; at the top level the invocation halts,
    /// nested, φ7, slot 0 and the post-instance flow back to the caller.
    fn reply(&mut self, cache: &CacheDirectory) -> Result<Option<CallResult>, VmError> {
        let mut f = self
            .stack
            .pop_instance()
            .ok_or_else(|| internal("reply without a running instance"))?;
        let slot0 = take_slot0(&mut f.cnode);
        let ret = f.inst.reg(Reg::R7);
        let gas = gas_of(&f.inst);
        let Some(caller) = self.stack.running_mut() else {
            let post = settle(cache, &f)?;
            self.stats.settles += 1;
            return Ok(Some(CallResult::Halt {
                return_value: ret,
                post_instance_hash: post,
                reflected_slot0: slot0,
                gas_used: self.gas_start.saturating_sub(gas),
            }));
        };
        if let Origin::Slot {
            slot,
            write_back: true,
        } = f.origin
        {
            let post = settle(cache, &f)?;
            caller.cnode.set(slot, Some(CapHashOrRef::Hash(post)))?;
            self.stats.settles += 1;
        }
        put_slot0(&mut caller.cnode, slot0);
        caller.inst.set_reg(Reg::R7, ret);
        caller.inst.set_reg(Reg::R8, hostops::CALL_OK);
        caller.inst.set_gas(gas as i64)?;
        Ok(None)
    }
}
