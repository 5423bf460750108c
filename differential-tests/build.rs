//! Defines the `jit` cfg, as the `javm` crate does (one definition).

include!("../javm/jit_cfg.rs");
