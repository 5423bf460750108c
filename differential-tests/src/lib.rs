//! Test suites that span crates: the Gray Paper conformance vectors
//! (`tests/vectors.rs`) and the engine behaviour and gas suites (`tests/`), written
//! against the [`javm_exec::Engine`] trait so that every case runs on every engine.
//!
//! The program generators and the interpreter-versus-recompiler oracle of the
//! differential harness will live in this library; they are not built yet.
