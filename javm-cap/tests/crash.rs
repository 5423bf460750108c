//! Crash safety of the on-disk store: a child process is killed with SIGKILL in the
//! middle of a large `put` transaction; the reopened store holds all or none of that
//! put, and every earlier cap is intact and verifies.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use javm_cap::store::{CapStoreExt, Table};
use javm_cap::{Cap, CapStore, DataCap, PAGE_SIZE, RedbStore, cap_hash};

const CHILD_ENV: &str = "JAVM_CRASH_CHILD_STORE";
/// The large put: 128 data caps of 64 distinct pages each (32 MiB).
const BIG_CAPS: usize = 128;
const PAGES_PER_CAP: usize = 64;

fn data_cap(seed: u64, pages: usize) -> Cap {
    let mut bytes = vec![0u8; pages * PAGE_SIZE];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    Cap::Data(DataCap::from_exact_bytes(&bytes).unwrap())
}

fn big_put() -> Vec<Cap> {
    (0..BIG_CAPS as u64)
        .map(|i| data_cap(1000 + i, PAGES_PER_CAP))
        .collect()
}

/// The child's side: runs only when the parent sets `CHILD_ENV`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = RedbStore::open(std::path::Path::new(&dir)).unwrap();
    let caps = big_put();
    let refs: Vec<&Cap> = caps.iter().collect();
    println!("putting");
    store.put_caps(&refs).unwrap();
    println!("done");
}

/// The total size of the files in the store directory.
fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn sigkill_during_a_large_put_leaves_all_or_none() {
    let want: Vec<_> = big_put().iter().map(|c| cap_hash(c).unwrap()).collect();
    let earlier: Vec<Cap> = (0..8).map(|i| data_cap(i, 3)).collect();
    // The first round is not killed: it measures how much the store's files grow
    // during the put. The later rounds watch the files and kill the child once they
    // have grown by a fraction of that: the write transaction is then under way,
    // whatever the machine's speed (a timer cannot promise that on a shared machine).
    // The last rounds kill on timers instead, at fractions of the measured put time,
    // so that kills also land before the transaction and during the commit.
    let mut growth = None::<u64>;
    let mut put_time = Duration::ZERO;
    let size_fractions = [0.0, 0.25, 0.5, 0.75];
    let time_fractions = [0.0, 0.5, 0.9];
    let mut killed_mid_put = 0;
    let mut outcomes = Vec::new();
    for round in 0..=size_fractions.len() + time_fractions.len() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open(dir.path()).unwrap();
            s.put_caps(&earlier.iter().collect::<Vec<_>>()).unwrap();
        }
        let before = dir_size(dir.path());
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let start = Instant::now();
        while !line.contains("putting") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "child ended before putting"
            );
            assert!(start.elapsed() < Duration::from_secs(120));
        }
        let put_started = Instant::now();
        let (kind, mut grown_at_kill) = ("calibration", false);
        let kind = match round {
            0 => kind,
            r if r <= size_fractions.len() => {
                let grow = growth.unwrap();
                let target = before + 1 + (grow as f64 * size_fractions[r - 1]) as u64;
                // Poll until the files reach the target or the child ends.
                loop {
                    if dir_size(dir.path()) >= target {
                        grown_at_kill = true;
                        break;
                    }
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    assert!(put_started.elapsed() < Duration::from_secs(120));
                    std::thread::sleep(Duration::from_micros(200));
                }
                "size"
            }
            r => {
                let f = time_fractions[r - 1 - size_fractions.len()];
                std::thread::sleep(put_time.mul_f64(f));
                grown_at_kill = dir_size(dir.path()) > before;
                "time"
            }
        };
        if round > 0 {
            let _ = child.kill(); // SIGKILL; the child may already have ended
        }
        let mut rest = String::new();
        while out.read_line(&mut rest).unwrap_or(0) > 0 {}
        child.wait().unwrap();
        let finished = rest.contains("done");
        if round == 0 {
            assert!(finished, "the calibration round must finish");
            put_time = put_started.elapsed();
            growth = Some(dir_size(dir.path()).saturating_sub(before));
        }
        let waited = put_started.elapsed().as_millis();

        let s = RedbStore::open(dir.path()).unwrap();
        for c in &earlier {
            assert_eq!(s.get_cap(&cap_hash(c).unwrap()).unwrap().as_ref(), Some(c));
        }
        let present = want
            .iter()
            .filter(|h| s.contains(Table::Caps, h).unwrap())
            .count();
        assert!(
            present == 0 || present == want.len(),
            "after a {kind} kill at {waited} ms the store holds {present} of {} caps of one put",
            want.len()
        );
        let report = s.verify().unwrap();
        assert!(report.corrupt.is_empty(), "{:?}", report.corrupt);
        let pages = s.counts().unwrap()[&Table::Pages];
        let expect_pages = 8 * 3
            + if present > 0 {
                BIG_CAPS * PAGES_PER_CAP
            } else {
                0
            };
        assert_eq!(pages, expect_pages, "pages follow their caps");
        if !finished && grown_at_kill {
            killed_mid_put += 1;
        }
        outcomes.push((kind, waited, grown_at_kill, present == want.len(), finished));
    }
    eprintln!(
        "put takes {put_time:?}, files grow {growth:?} bytes; \
         (kill, after ms, files had grown, put present, child finished): {outcomes:?}"
    );
    assert!(
        killed_mid_put > 0,
        "no kill landed after the files grew and before the put finished: {outcomes:?}"
    );
}
