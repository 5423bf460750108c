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

#[test]
fn sigkill_during_a_large_put_leaves_all_or_none() {
    let want: Vec<_> = big_put().iter().map(|c| cap_hash(c).unwrap()).collect();
    let earlier: Vec<Cap> = (0..8).map(|i| data_cap(i, 3)).collect();
    // The first round is not killed: it measures how long the put takes, and the
    // kills then land at fractions of that time, most of them inside the write
    // transaction (hashing and encoding 32 MiB take a small part of it).
    let mut put_time = None::<Duration>;
    let fractions = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95];
    let mut killed_mid_put = 0;
    let mut outcomes = Vec::new();
    for round in 0..=fractions.len() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RedbStore::open(dir.path()).unwrap();
            s.put_caps(&earlier.iter().collect::<Vec<_>>()).unwrap();
        }
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
        let delay = put_time.map(|t| t.mul_f64(fractions[round - 1]));
        if let Some(d) = delay {
            std::thread::sleep(d);
            child.kill().unwrap(); // SIGKILL
        }
        let mut rest = String::new();
        while out.read_line(&mut rest).unwrap_or(0) > 0 {}
        child.wait().unwrap();
        let finished = rest.contains("done");
        if delay.is_none() {
            assert!(finished, "the calibration round must finish");
            put_time = Some(put_started.elapsed());
        }
        let delay = delay.unwrap_or_default().as_millis();

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
            "after a kill at {delay} ms the store holds {present} of {} caps of one put",
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
        if !finished && round >= 3 {
            killed_mid_put += 1;
        }
        outcomes.push((delay, present == want.len(), finished));
    }
    eprintln!("put takes {put_time:?}; (kill after ms, put present, child finished): {outcomes:?}");
    assert!(
        killed_mid_put > 0,
        "no kill past half the put's time landed before it finished: {outcomes:?}"
    );
}
