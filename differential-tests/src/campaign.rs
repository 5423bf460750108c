//! Differential campaigns: many generated cases through the oracle, with coverage
//! accounting and, on a divergence, proptest shrinking to a minimal case.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use javm_exec::{Engine, Exit, GasProfile, Opcode, PageKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::generate::{Spec, spec};
use crate::oracle::{Case, Divergence, Trace, compare};
use crate::structured::structured_spec;

/// Names of the exit kinds, in [`Coverage::exits`] order (`other`: an exit this
/// harness does not know yet).
pub const EXIT_KINDS: [&str; 9] = [
    "halt",
    "panic",
    "trap",
    "out-of-gas",
    "page-fault",
    "host-call",
    "ecall",
    "interrupted",
    "other",
];

fn exit_index(e: &Exit) -> usize {
    match e {
        Exit::Halt => 0,
        Exit::Panic => 1,
        Exit::Trap => 2,
        Exit::OutOfGas => 3,
        Exit::PageFault(_) => 4,
        Exit::HostCall(_) => 5,
        Exit::Ecall => 6,
        Exit::Interrupted => 7,
        _ => 8,
    }
}

/// Upper bounds (exclusive) of the executed-blocks buckets of [`Coverage::blocks`];
/// the last bucket is everything from 1000 up.
pub const BLOCK_BUCKETS: [u64; 5] = [1, 2, 10, 100, 1000];

fn bucket(blocks: u64) -> usize {
    BLOCK_BUCKETS
        .iter()
        .position(|&b| blocks < b)
        .unwrap_or(BLOCK_BUCKETS.len())
}

/// How often each opcode ran, each exit kind was reached and each page kind was
/// materialized, and how many blocks cases ran, over a campaign.
#[derive(Clone, Debug)]
pub struct Coverage {
    /// Cases run.
    pub cases: u64,
    /// Executions per opcode byte.
    pub opcodes: [u64; 256],
    /// Exits per kind, in [`EXIT_KINDS`] order.
    pub exits: [u64; 9],
    /// Cases that materialized a page of each kind (pinned, copy-on-write, zero).
    pub page_kinds: [u64; 3],
    /// Cases by executed blocks: 0, 1, 2–9, 10–99, 100–999, 1000+.
    pub blocks: [u64; 6],
    /// Cases that ran at least 100 blocks and ended in a halt.
    pub long_halts: u64,
    /// Successful host page-access changes per mode (in `PageAccess::ALL` order).
    pub page_changes: [u64; 5],
}

impl Default for Coverage {
    fn default() -> Self {
        Coverage {
            cases: 0,
            opcodes: [0; 256],
            exits: [0; 9],
            page_kinds: [0; 3],
            blocks: [0; 6],
            long_halts: 0,
            page_changes: [0; 5],
        }
    }
}

impl Coverage {
    /// Count one case.
    pub fn add(&mut self, t: &Trace) {
        self.cases += 1;
        for &(op, n) in &t.executed {
            self.opcodes[usize::from(op.byte())] += n;
        }
        for e in &t.exits {
            self.exits[exit_index(e)] += 1;
        }
        self.blocks[bucket(t.blocks)] += 1;
        for (a, &b) in self.page_changes.iter_mut().zip(&t.page_changes) {
            *a += u64::from(b);
        }
        if t.blocks >= 100 && t.exits.last() == Some(&Exit::Halt) {
            self.long_halts += 1;
        }
        for (i, k) in [
            PageKind::PinnedCapRo,
            PageKind::UnpinnedCapCow,
            PageKind::EphemeralZero,
        ]
        .iter()
        .enumerate()
        {
            if t.touched_kinds.contains(k) {
                self.page_kinds[i] += 1;
            }
        }
    }

    /// Merge another campaign's counts.
    pub fn merge(&mut self, o: &Coverage) {
        self.cases += o.cases;
        for (a, b) in self.opcodes.iter_mut().zip(o.opcodes) {
            *a += b;
        }
        for (a, b) in self.exits.iter_mut().zip(o.exits) {
            *a += b;
        }
        for (a, b) in self.page_kinds.iter_mut().zip(o.page_kinds) {
            *a += b;
        }
        for (a, b) in self.blocks.iter_mut().zip(o.blocks) {
            *a += b;
        }
        self.long_halts += o.long_halts;
        for (a, b) in self.page_changes.iter_mut().zip(o.page_changes) {
            *a += b;
        }
    }

    /// The executed-blocks distribution, one line: the share of cases per bucket and
    /// of cases that ran 100+ blocks and halted.
    pub fn blocks_report(&self) -> String {
        let pct = |n: u64| 100.0 * n as f64 / self.cases.max(1) as f64;
        let names = ["0", "1", "2-9", "10-99", "100-999", "1000+"];
        let parts: Vec<String> = names
            .iter()
            .zip(self.blocks)
            .map(|(k, n)| format!("{k}: {:.1}%", pct(n)))
            .collect();
        format!(
            "blocks per case: {}; 100+ blocks and halted: {:.1}%",
            parts.join(", "),
            pct(self.long_halts)
        )
    }

    /// Opcodes that never ran.
    pub fn missing_opcodes(&self) -> Vec<Opcode> {
        Opcode::ALL
            .into_iter()
            .filter(|op| self.opcodes[usize::from(op.byte())] == 0)
            .collect()
    }

    /// Exit kinds never reached.
    pub fn missing_exits(&self) -> Vec<&'static str> {
        EXIT_KINDS
            .iter()
            .zip(self.exits)
            .filter(|(k, n)| *n == 0 && **k != "other")
            .map(|(k, _)| *k)
            .collect()
    }

    /// A multi-line report.
    pub fn report(&self) -> String {
        let ran = 141 - self.missing_opcodes().len();
        let least = Opcode::ALL
            .iter()
            .min_by_key(|op| self.opcodes[usize::from(op.byte())])
            .map(|op| {
                format!(
                    "{} ({})",
                    op.mnemonic(),
                    self.opcodes[usize::from(op.byte())]
                )
            })
            .unwrap_or_default();
        let exits: Vec<String> = EXIT_KINDS
            .iter()
            .zip(self.exits)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        format!(
            "{} cases; {ran}/141 opcodes executed (least: {least}); exits: {}; cases touching \
             pinned / copy-on-write / zero pages: {} / {} / {}; host page-access changes \
             (unmapped / zero-ro / zero-rw / ro / rw): {}; {}",
            self.cases,
            exits.join(", "),
            self.page_kinds[0],
            self.page_kinds[1],
            self.page_kinds[2],
            self.page_changes.map(|n| n.to_string()).join(" / "),
            self.blocks_report()
        )
    }
}

/// What a campaign runs.
#[derive(Clone, Copy, Debug)]
pub struct CampaignConfig {
    /// Cases to run.
    pub cases: u32,
    /// Seed of the generator (the same seed gives the same cases).
    pub seed: u64,
    /// Gas profile; `None` mixes both.
    pub profile: Option<GasProfile>,
}

/// A divergence, shrunk to a minimal case.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The minimal case.
    pub spec: Spec,
    /// What differed.
    pub divergence: Divergence,
}

/// The result of a campaign.
#[derive(Clone, Debug)]
pub struct CampaignResult {
    /// Coverage of the cases that ran before any failure.
    pub coverage: Coverage,
    /// The first divergence, shrunk; `None` if the engines always agreed.
    pub failure: Option<Failure>,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// The campaign's cases: one third of [`spec`]'s random programs (edge operands,
/// early faults and panics), two thirds of [`structured_spec`]'s long-running ones.
pub fn case_spec(profile: Option<GasProfile>) -> impl Strategy<Value = Spec> {
    let profiles = match profile {
        Some(p) => Just(p).boxed(),
        None => prop_oneof![Just(GasProfile::Jar1), Just(GasProfile::Gp)].boxed(),
    };
    prop_oneof![
        1 => spec(profile).boxed(),
        2 => structured_spec(profiles).boxed(),
    ]
}

/// Run `cfg.cases` generated cases on engines `a` and `b`.
pub fn run_campaign<A: Engine, B: Engine>(a: &A, b: &B, cfg: &CampaignConfig) -> CampaignResult {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
    let config = Config {
        cases: cfg.cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let coverage = RefCell::new(Coverage::default());
    let failed = RefCell::new(false);
    let start = Instant::now();
    let result = runner.run(&case_spec(cfg.profile), |s| {
        let case = Case::from(&s);
        match compare(a, b, &case) {
            Ok(trace) => {
                if !*failed.borrow() {
                    coverage.borrow_mut().add(&trace);
                }
                Ok(())
            }
            Err(d) => {
                *failed.borrow_mut() = true;
                Err(TestCaseError::fail(d.what))
            }
        }
    });
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(_, spec)) => {
            let divergence =
                compare(a, b, &Case::from(&spec))
                    .err()
                    .unwrap_or_else(|| Divergence {
                        exit_index: 0,
                        what: "the divergence did not reproduce (flaky engine?)".to_owned(),
                        localized: String::new(),
                    });
            Some(Failure { spec, divergence })
        }
        Err(TestError::Abort(reason)) => Some(Failure {
            spec: Spec::from_bytes(&[]),
            divergence: Divergence {
                exit_index: 0,
                what: format!("campaign aborted: {reason}"),
                localized: String::new(),
            },
        }),
    };
    CampaignResult {
        coverage: coverage.into_inner(),
        failure,
        elapsed: start.elapsed(),
    }
}
