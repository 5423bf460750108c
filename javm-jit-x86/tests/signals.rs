//! The fault handler's policy: faults that are not guest accesses of the running
//! instance go to the previous handler (the process dies loudly instead of a fault
//! being swallowed or guessed at), and code is never writable and executable.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::{WORKLOAD, program, run_workload, schedule};
use javm_exec::Engine;
use javm_jit_x86::Recompiler;

/// Run this test binary's test `name` in a child process with `JAVM_CHILD` set.
fn child(name: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("JAVM_CHILD", "1")
        .output()
        .unwrap()
}

#[test]
fn a_host_fault_is_passed_on_not_swallowed() {
    if std::env::var_os("JAVM_CHILD").is_some() {
        // Install the handler and run guest code that faults, then fault in host code.
        let jit = Recompiler::new().unwrap();
        let m = jit.prepare(&program(WORKLOAD), schedule()).unwrap();
        run_workload(&jit, &m, 100);
        // SAFETY: deliberately reads an inaccessible page to raise SIGSEGV in host
        // code; this child process is expected to die from it.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            std::ptr::read_volatile(p.cast::<u8>());
        }
        unreachable!("the host fault was swallowed");
    }
    let out = child("a_host_fault_is_passed_on_not_swallowed");
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{out:?}");
}

#[test]
fn no_mapping_is_writable_and_executable() {
    let jit = Recompiler::new().unwrap();
    let mut modules = Vec::new();
    for i in 0..20 {
        modules.push(
            jit.prepare(&program(&format!("load_imm r1, {i}\ntrap")), schedule())
                .unwrap(),
        );
    }
    run_workload(&jit, &modules[0], 10);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let rwx: Vec<&str> = maps
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|p| p.starts_with("rwx"))
        })
        .collect();
    assert!(rwx.is_empty(), "writable and executable mappings: {rwx:#?}");
}

#[test]
fn both_fault_signals_are_handled() {
    let _jit = Recompiler::new().unwrap();
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: querying the current action into a zeroed sigaction.
        let act = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut act), 0);
            act
        };
        assert!(act.sa_flags & libc::SA_SIGINFO != 0, "signal {sig}");
        assert!(
            act.sa_flags & libc::SA_ONSTACK != 0,
            "signal {sig}: runs on the alternate stack"
        );
        assert_ne!(act.sa_sigaction, libc::SIG_DFL, "signal {sig}");
    }
}
