//! The x86-64 recompiler engine of JAVM — **not built yet**.
//!
//! This crate will hold the `Recompiler` implementation of [`javm_exec::Engine`]:
//! single-pass code generation with dynasm-rs from the shared predecoded
//! [`javm_exec::Program`], a pooled 4 GiB guest window per instance with a guard
//! region, SIGSEGV-driven page materialization through the shared
//! [`javm_exec::memory::PageMap`], and W^X code buffers. It only builds on x86-64
//! Linux. Until it lands, every tool that is asked for the JIT says so and points to
//! `--engine=interp`; this crate deliberately exports nothing that could pretend to
//! run code.
