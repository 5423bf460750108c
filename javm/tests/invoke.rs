//! `javm store invoke`: the shipped caller/greeter pair, persistence across processes
//! (each `javm` run is a new process reopening the on-disk store), and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use javm::{CallResult, InProcessKernel, Vm};
use javm_cap::{CacheDirectory, RedbStore};
use javm_exec::EngineKind;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn javm(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_javm"))
        .args(args)
        .arg("--store")
        .arg(store)
        .current_dir(root())
        .env_remove("JAVM_STORE")
        .output()
        .expect("javm runs")
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn usage_error(o: &Output, mentions: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(
        err.contains(mentions),
        "{err:?} should mention {mentions:?}"
    );
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

fn put(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["store", "put"];
    a.extend(args);
    a.push("--json");
    json(&javm(store, &a))
}

fn engines() -> Vec<&'static str> {
    if javm::jit_available() {
        vec!["interp", "jit"]
    } else {
        vec!["interp"]
    }
}

/// Publish the greeter and a caller of it; returns the caller's instance hash.
fn publish_pair(store: &Path) -> (String, String) {
    let g = put(store, &["examples/greeter.toml"]);
    let g = g["instance"].as_str().unwrap().to_owned();
    let slot = format!("3={g}");
    let c = put(store, &["examples/caller.toml", "--slot", &slot]);
    (g, c["instance"].as_str().unwrap().to_owned())
}

#[test]
fn invoke_in_two_processes_equals_two_invokes_in_one() {
    let dir = tempfile::tempdir().unwrap();
    for engine in engines() {
        let store = dir.path().join(engine);
        let (_, caller) = publish_pair(&store);
        // Two processes: invoke, then invoke the printed post-instance.
        let invoke = |h: &str| {
            json(&javm(
                &store,
                &["store", "invoke", h, "--engine", engine, "--json"],
            ))["results"][0]
                .clone()
        };
        let first = invoke(&caller);
        assert_eq!(first["result"], "halt");
        assert_eq!(first["return_value"], format!("{:#x}", 1161));
        let post = first["post_instance"].as_str().unwrap().to_owned();
        let second = invoke(&post);
        assert_eq!(second["result"], "halt");

        // The same two invokes in one process, on a fresh copy of the store taken
        // before any invoke.
        let store2 = dir.path().join(format!("{engine}-one-process"));
        let (_, caller2) = publish_pair(&store2);
        assert_eq!(caller2, caller);
        let cache =
            CacheDirectory::with_store(std::sync::Arc::new(RedbStore::open(&store2).unwrap()));
        let kind: EngineKind = engine.parse().unwrap();
        let mut vm = Vm::new(kind, InProcessKernel::new()).unwrap();
        let h = javm_cap::hash::parse_hex(&caller).unwrap();
        let a = vm.invoke_cached(&cache, &h, 0, [0; 4], 10_000_000).unwrap();
        let CallResult::Halt {
            post_instance_hash,
            return_value,
            gas_used,
            ..
        } = a
        else {
            panic!("{a:?}")
        };
        assert_eq!(javm_cap::hash::hex(&post_instance_hash), post);
        assert_eq!(
            (return_value, gas_used),
            (1161, hex_u64(&first["gas_used"]))
        );
        let b = vm
            .invoke_cached(&cache, &post_instance_hash, 0, [0; 4], 10_000_000)
            .unwrap();
        let CallResult::Halt {
            post_instance_hash: p2,
            return_value: r2,
            ..
        } = b
        else {
            panic!("{b:?}")
        };
        assert_eq!(
            javm_cap::hash::hex(&p2),
            second["post_instance"].as_str().unwrap()
        );
        assert_eq!(r2, hex_u64(&second["return_value"]));
    }
}

#[test]
fn bad_invokes_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (g, _) = publish_pair(&store);
    let data = put(&store, &["examples/greeter.toml"])["data"][0]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing = "ab".repeat(32);
    usage_error(&javm(&store, &["store", "invoke", &missing]), "not found");
    usage_error(
        &javm(&store, &["store", "invoke", &data]),
        "is a data cap, not an instance cap",
    );
    usage_error(
        &javm(&store, &["store", "invoke", &g, "--endpoint", "7"]),
        "endpoint 7 is not defined",
    );
    usage_error(&javm(&store, &["store", "invoke", "xyz"]), "not a cap hash");
    usage_error(
        &javm(
            &store,
            &["store", "invoke", &g, "--gas", "18446744073709551615"],
        ),
        "above the maximum",
    );

    // Corrupt the greeter's page in the file: the invoke reads it and refuses.
    let file = store.join("caps.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let needle = b"hello, world";
    let hits: Vec<usize> = (0..bytes.len() - needle.len())
        .filter(|&i| &bytes[i..i + needle.len()] == needle)
        .collect();
    assert!(!hits.is_empty());
    for i in hits {
        bytes[i] ^= 0x20;
    }
    std::fs::write(&file, &bytes).unwrap();
    usage_error(&javm(&store, &["store", "invoke", &g]), "corrupt");
}

/// A 64-bit value of the CLI's JSON output: a `0x…` hex string.
fn hex_u64(v: &serde_json::Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    u64::from_str_radix(s.strip_prefix("0x").expect("0x prefix"), 16).unwrap()
}
