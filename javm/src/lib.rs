//! JAVM: a gas-metered virtual machine for the PVM instruction set.
//!
//! The [`Vm`] driver runs content-addressed instances on either engine (the
//! interpreter or the x86-64 recompiler, identical in gas and state): it builds an
//! instance from its caps, dispatches the host-op table ([`hostops`]), keeps the call
//! stack of calls between instances, routes yields to catchers, and settles each
//! halt into a new published instance. The embedder supplies a [`KernelAssist`]
//! (host functions ≥ 64, yield catchers, storage quotas). [`EngineVm`] is the same
//! driver on an engine chosen at compile time (any [`javm_exec::Engine`]), and
//! [`VmStats`] counts what a driver did.
//!
//! ```
//! use javm::{CallResult, HostReturn, InProcessKernel, Vm, OUT_OF_GAS_MARKER};
//! use javm_cap::{CacheDirectory, SlotIdx};
//! # let dir = tempfile::tempdir().unwrap();
//! # std::fs::write(dir.path().join("w.s"), ".code\nmain:\n load_imm r7, 5\n ecalli 64\n ecalli 0\n").unwrap();
//! # std::fs::write(dir.path().join("w.toml"), "code = \"w.s\"\n[[endpoint]]\nindex = 0\nentry = \"main\"\n").unwrap();
//! # std::fs::write(dir.path().join("c.s"), ".code\nmain:\n load_imm r7, 3\n load_imm r8, 0\n ecalli 26\n ecalli 0\n").unwrap();
//! # std::fs::write(dir.path().join("c.toml"), "code = \"c.s\"\nyield_marker_slot = 4\n[[data]]\nslot = 4\ntext = \"catcher\"\n[[endpoint]]\nindex = 0\nentry = \"main\"\n").unwrap();
//! // Publish a worker (r7 = 5, then host function 64, then reply) and a catcher that
//! // calls it from slot 3 and catches out of gas (its yield-marker slot 4).
//! let cache = CacheDirectory::new();
//! let worker = javm::manifest::load(&dir.path().join("w.toml"))?.publish(&cache, &[])?;
//! let catcher_image = javm::manifest::load(&dir.path().join("c.toml"))?;
//! let catcher_cap = catcher_image.data[0].2.clone();
//! let catcher = catcher_image.publish(&cache, &[(SlotIdx(3), worker)])?;
//!
//! // Host function 64 doubles r7; the catcher catches the out-of-gas marker.
//! let mut kernel = InProcessKernel::new();
//! kernel.register(64, |guest| {
//!     guest.set_reg(7, guest.reg(7) * 2);
//!     Ok(HostReturn::Continue)
//! });
//! let catcher_hash = javm_cap::cap_hash(&javm_cap::Cap::Data(catcher_cap))?;
//! kernel.add_catcher(catcher_hash, OUT_OF_GAS_MARKER);
//!
//! let mut vm = Vm::new(javm::auto_engine(), kernel)?;
//! // Enough gas for the catcher's frame but not for the worker's: a caught pause.
//! let r = vm.invoke_cached(&cache, &catcher, 0, [0; 4], 3_300)?;
//! assert!(matches!(r, CallResult::Paused { marker_payload, .. } if marker_payload == OUT_OF_GAS_MARKER));
//! vm.top_up(1_000_000)?;
//! match vm.call_resume(&cache, None)? {
//!     CallResult::Halt { return_value, post_instance_hash, .. } => {
//!         assert_eq!(return_value, 10);
//!         // The post-state is published: invoke it again the same way.
//!         assert!(cache.get_blob(&post_instance_hash)?.is_some());
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`vectors`] runs the Gray Paper conformance vectors on any engine, [`image`] and
//! [`manifest`] build images, and the `javm` binary (`src/main.rs`) is the
//! command-line tool.

#![forbid(unsafe_code)]

pub mod bench;
pub mod build;
mod callstack;
mod driver;
pub mod hostops;
pub mod image;
mod image_cache;
pub mod kernel_assist;
pub mod manifest;
pub mod runner;
mod settle;
mod stats;
pub mod vectors;
pub mod vm;

pub use build::BuildError;
pub use kernel_assist::{
    Guest, HostError, HostReturn, InProcessKernel, KernelAssist, KernelCall, QuotaError, Recording,
};
pub use vm::{
    CallResult, EngineVm, Fault, MAX_CALL_DEPTH, OUT_OF_GAS_MARKER, OpCount, Vm, VmConfig, VmError,
    VmStats, auto_engine, jit_available,
};
