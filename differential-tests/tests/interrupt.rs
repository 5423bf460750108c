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

/// A loop whose head is an interrupt point and whose second block is not: r1 and
/// r2 count the iterations begun and completed.
const TWO_BLOCKS: &str = "load_imm r1, 0\nfallthrough\nL: add_imm_64 r1, r1, 1\n\
    branch_eq_imm r1, 0, @X\nadd_imm_64 r2, r2, 1\njump L\nX: trap";

/// Requests at arbitrary moments — while the code runs, between runs, while the
/// instance moves to another thread — stop the run at the loop head with exactly
/// the gas of the iterations run: the request is never lost, and the gas counter
/// is biased at most once and always restored (the recompiler's signal path,
/// `javm-jit-x86/src/signal.rs`).
fn requests_at_any_moment_keep_the_gas_exact<E: Engine>(e: &E)
where
    E::Instance: Send + 'static,
{
    // Enough gas for seconds of looping, so that a lost request ends the run out of
    // gas (and fails the test) rather than never.
    const GAS: i64 = 1 << 36;
    let c = Case::asm(TWO_BLOCKS).gas(GAS);
    let costs = c.program.block_costs(c.schedule());
    let head = c.program.block_starting_at(c.program.pcs()[2]).unwrap() as usize;
    let (entry, per_iteration) = (
        costs[0].cost as i64,
        (costs[head].cost + costs[head + 1].cost) as i64,
    );
    let mut inst = c.instance(e);
    let handle = inst.interrupt_handle();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let requester = {
        let (handle, stop) = (handle.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut x = 0x2545_f491_4f6c_dd1d_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::thread::sleep(Duration::from_micros(x % 300));
                handle.interrupt();
            }
        })
    };
    let mut last = 0;
    for round in 0..300 {
        // Every third round on a thread of its own.
        let exit;
        (inst, exit) = if round % 3 == 0 {
            std::thread::spawn(move || {
                let exit = inst.run();
                (inst, exit)
            })
            .join()
            .unwrap()
        } else {
            let exit = inst.run();
            (inst, exit)
        };
        assert_eq!(exit, Ok(Exit::Interrupted), "round {round}");
        let regs = inst.regs();
        let iterations = regs[2] as i64;
        assert_eq!(regs[1], regs[2], "round {round}: stopped at the loop head");
        assert!(iterations >= last);
        last = iterations;
        assert_eq!(
            GAS - inst.gas(),
            entry + iterations * per_iteration,
            "round {round}: gas of {iterations} iterations"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    requester.join().unwrap();
}

engine_tests!(
    requests_at_any_moment_keep_the_gas_exact,
    stops_an_endless_loop_from_another_thread,
    a_pending_request_stops_at_the_first_loop_head,
    straight_line_code_is_not_interrupted,
    a_request_taken_elsewhere_does_not_stop_the_run,
    handles_outlive_their_instances,
);
