//! JAVM: a gas-metered virtual machine for the PVM instruction set.
//!
//! This crate ties the engines together for users: [`vectors`] runs the Gray Paper
//! conformance vectors on any engine, and the `javm` binary (`src/main.rs`) is the
//! command-line tool. The `Vm` driver with its call stack, host operations and
//! capabilities (DESIGN.md §7) is not built yet.

#![forbid(unsafe_code)]

pub mod bench;
pub mod image;
pub mod manifest;
pub mod vectors;
