//! `InterruptHandle`: another thread stops a running instance at a loop head, before
//! the block is charged, and the run resumes from there; a request made before a run
//! stops both engines at the same place; an unused handle changes nothing.

use std::time::Duration;

use differential_tests::{Case, engine_tests};
use javm_exec::{Engine, Exit, Instance};

/// An endless loop: r1 counts iterations.
const SPIN: &str = "load_imm r1, 0\nfallthrough\nL: add_imm_64 r1, r1, 1\njump L";

fn stops_an_endless_loop_from_another_thread<E: Engine>(e: &E) {
    let c = Case::asm(SPIN).gas(i64::MAX);
    let mut inst = c.instance(e);
    let handle = inst.interrupt_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        handle.interrupt();
    });
    assert_eq!(inst.run(), Ok(Exit::Interrupted));
    t.join().unwrap();
    let loop_head = c.program.pcs()[2];
    assert_eq!(inst.pc(), loop_head);
    assert_eq!(inst.next_pc(), Some(loop_head));
    // Gas is exactly what the iterations cost: the interrupted block is not charged.
    let costs = c.program.block_costs(c.schedule());
    let head = c.program.block_starting_at(loop_head).unwrap() as usize;
    let (entry, per_iteration) = (costs[0].cost as i64, costs[head].cost as i64);
    let iterations = inst.regs()[1] as i64;
    assert!(iterations > 0);
    assert_eq!(i64::MAX - inst.gas(), entry + iterations * per_iteration);
    // The run goes on from there, and stops again when asked.
    let handle = inst.interrupt_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        handle.interrupt();
    });
    assert_eq!(inst.run(), Ok(Exit::Interrupted));
    t.join().unwrap();
    assert!(inst.regs()[1] as i64 > iterations);
}

/// A request pending before the run stops it at the first loop head, the same
/// place on every engine; the next run goes on as if nothing happened.
fn a_pending_request_stops_at_the_first_loop_head<E: Engine>(e: &E) {
    let c = Case::asm(SPIN).gas(1_000);
    let mut inst = c.instance(e);
    inst.interrupt_handle().interrupt();
    assert_eq!(inst.run(), Ok(Exit::Interrupted));
    assert_eq!((inst.pc(), inst.regs()[1]), (c.program.pcs()[2], 0));
    assert!(
        !inst.interrupt_handle().is_pending(),
        "the run took the request"
    );
    assert_eq!(inst.run(), Ok(Exit::OutOfGas));
    let uninterrupted = c.run(e);
    assert_eq!(
        (inst.gas(), inst.regs()),
        (uninterrupted.gas, uninterrupted.regs)
    );
}

/// Straight-line code and non-loop blocks never check: a program without loops
/// runs to its end with a request pending.
fn straight_line_code_is_not_interrupted<E: Engine>(e: &E) {
    let c = Case::asm("load_imm r1, 1\nfallthrough\nadd_imm_64 r1, r1, 1\ntrap");
    let mut inst = c.instance(e);
    inst.interrupt_handle().interrupt();
    assert_eq!(inst.run(), Ok(Exit::Trap));
    assert!(inst.interrupt_handle().is_pending());
}

/// A request taken by someone else before the run reaches a check stops nothing
/// (the recompiler's polled mirror is left set, and its exit finds nothing to take);
/// a request made after a reset stops the fresh run.
fn a_request_taken_elsewhere_does_not_stop_the_run<E: Engine>(e: &E) {
    let c = Case::asm(SPIN).gas(1_000);
    let mut inst = c.instance(e);
    let handle = inst.interrupt_handle();
    handle.interrupt();
    assert!(handle.take());
    assert_eq!(inst.run(), Ok(Exit::OutOfGas));
    let uninterrupted = c.run(e);
    assert_eq!(
        (inst.gas(), inst.regs()),
        (uninterrupted.gas, uninterrupted.regs)
    );
    // Pending across a reset: the fresh run stops at its first loop head.
    handle.interrupt();
    inst.reset(c.regs, 0, 1_000).unwrap();
    assert_eq!(inst.run(), Ok(Exit::Interrupted));
    assert_eq!((inst.pc(), inst.regs()[1]), (c.program.pcs()[2], 0));
    // Taken before the reset: the fresh run does not stop.
    handle.interrupt();
    assert!(handle.take());
    inst.reset(c.regs, 0, 1_000).unwrap();
    assert_eq!(inst.run(), Ok(Exit::OutOfGas));
}

/// Instances come and go while another thread keeps interrupting through handles
/// that outlive them: each request lands on a live instance or on nothing.
fn handles_outlive_their_instances<E: Engine>(e: &E) {
    let c = Case::asm(SPIN).gas(i64::MAX);
    let (tx, rx) = std::sync::mpsc::channel::<javm_exec::InterruptHandle>();
    let t = std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok(h) = rx.recv() {
            held.push(h);
            for h in &held {
                h.interrupt();
            }
        }
        held.len()
    });
    for _ in 0..200 {
        let mut inst = c.instance(e);
        let handle = inst.interrupt_handle();
        tx.send(handle.clone()).unwrap();
        // Stops once the other thread's request arrives.
        assert_eq!(inst.run(), Ok(Exit::Interrupted));
    }
    drop(tx);
    assert_eq!(t.join().unwrap(), 200);
}

engine_tests!(
    stops_an_endless_loop_from_another_thread,
    a_pending_request_stops_at_the_first_loop_head,
    straight_line_code_is_not_interrupted,
    a_request_taken_elsewhere_does_not_stop_the_run,
    handles_outlive_their_instances,
);
