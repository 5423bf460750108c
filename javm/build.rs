//! Defines the `jit` cfg (see `jit_cfg.rs`).

include!("jit_cfg.rs");
