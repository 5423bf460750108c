//! `javm image build` and `javm store put|get|ls|verify|gc` on the shipped example
//! images, a store file with a flipped byte, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn javm(store: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_javm"));
    cmd.args(args);
    if args[0] == "store" {
        cmd.arg("--store").arg(store);
    }
    cmd.current_dir(root())
        .env_remove("JAVM_STORE")
        .output()
        .expect("javm runs")
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn usage_error(o: &Output, mentions: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(
        err.starts_with("error: ") && err.contains(mentions),
        "{err:?} should mention {mentions:?}"
    );
}

/// The hash printed on the line starting with `what`.
fn hash_of(out: &str, what: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(what))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no {what} line in {out}"))
        .to_string()
}

#[test]
fn examples_build_publish_list_get_verify_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let bundle = dir.path().join("greeter.img");
    let built = ok(&javm(
        &store,
        &[
            "image",
            "build",
            "examples/greeter.toml",
            "-o",
            bundle.to_str().unwrap(),
        ],
    ));
    let image_hash = built.split_whitespace().nth(1).unwrap().to_string();

    let g = ok(&javm(&store, &["store", "put", "examples/greeter.toml"]));
    assert_eq!(
        hash_of(&g, "image"),
        image_hash,
        "the bundle and the manifest are one image"
    );
    let again = ok(&javm(&store, &["store", "put", bundle.to_str().unwrap()]));
    assert_eq!(again, g, "publishing the bundle gives the same caps");
    let greeter = hash_of(&g, "instance");
    let data = hash_of(&g, "data");

    let slot = format!("3={greeter}");
    let c = ok(&javm(
        &store,
        &["store", "put", "examples/caller.toml", "--slot", &slot],
    ));
    let caller = hash_of(&c, "instance");
    let cnode = hash_of(&c, "cnode");
    let cn = ok(&javm(&store, &["store", "get", &cnode, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&cn).unwrap();
    assert_eq!(v["kind"], "cnode");
    assert_eq!(v["cap"]["slots"][0]["slot"], 3);
    assert_eq!(v["cap"]["slots"][0]["cap"], greeter.as_str());

    let raw = javm(&store, &["store", "get", &data, "--raw"]);
    assert_eq!(raw.status.code(), Some(0));
    assert_eq!(raw.stdout.len(), 4096);
    assert!(raw.stdout.starts_with(b"hello, world\0"));

    let inst = ok(&javm(&store, &["store", "get", &greeter]));
    assert!(inst.starts_with(&format!("instance {greeter}")), "{inst}");

    let ls = ok(&javm(&store, &["store", "ls"]));
    assert_eq!(
        ls.lines().count(),
        7,
        "greeter: data, image, cnode, instance; caller: image, cnode, instance\n{ls}"
    );
    let v = ok(&javm(&store, &["store", "verify"]));
    assert!(v.contains("checked 7 caps and 1 pages: 0 corrupt"), "{v}");

    // Keeping the caller keeps the greeter it refers to; the standalone fib goes.
    let fib = ok(&javm(&store, &["store", "put", "examples/fib.pvm"]));
    let gc = ok(&javm(&store, &["store", "gc", "--keep", &caller]));
    assert!(
        gc.contains("kept 7 caps and 1 pages; removed 3 caps"),
        "{gc}"
    );
    usage_error(
        &javm(&store, &["store", "get", &hash_of(&fib, "instance")]),
        "no cap",
    );
    ok(&javm(&store, &["store", "get", &greeter]));
}

#[test]
fn a_flipped_byte_is_reported_by_verify_and_get_and_nothing_else_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let g = ok(&javm(&store, &["store", "put", "examples/greeter.toml"]));
    let s = ok(&javm(&store, &["store", "put", "examples/sort.pvm"]));
    let file = store.join("caps.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let needle = b"hello, world";
    let hits: Vec<usize> = (0..bytes.len() - needle.len())
        .filter(|&i| &bytes[i..i + needle.len()] == needle)
        .collect();
    assert!(!hits.is_empty(), "the page is in the file");
    for i in &hits {
        bytes[i + 4] ^= 0x20; // "hellO, world"
    }
    std::fs::write(&file, &bytes).unwrap();

    let data = hash_of(&g, "data");
    let page = javm_cap::hash::hex(javm_cap::PageBytes::from_content(needle).unwrap().hash());
    let v = javm(&store, &["store", "verify"]);
    assert_eq!(v.status.code(), Some(1));
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(out.contains(&format!("corrupt page {page}")), "{out}");
    assert!(out.contains("1 corrupt"), "{out}");
    usage_error(
        &javm(&store, &["store", "get", &data]),
        &format!("corrupt page record {page}"),
    );
    // Everything else is intact: the other program's caps, and the greeter's image.
    for h in ["image", "cnode", "instance"] {
        ok(&javm(&store, &["store", "get", &hash_of(&s, h)]));
    }
    ok(&javm(&store, &["store", "get", &hash_of(&g, "image")]));
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    usage_error(&javm(&store, &["store", "get", "xyz"]), "not a cap hash");
    usage_error(
        &javm(&store, &["store", "put", "no-such-file.toml"]),
        "cannot read",
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "code = 5\n").unwrap();
    usage_error(
        &javm(&store, &["store", "put", bad.to_str().unwrap()]),
        "bad.toml",
    );
    std::fs::write(&bad, "code = \"x.s\"\nsurprise = 1\n").unwrap();
    usage_error(
        &javm(&store, &["store", "put", bad.to_str().unwrap()]),
        "surprise",
    );
    let junk = dir.path().join("junk.img");
    let mut b = javm_cap::wire::BUNDLE_MAGIC.to_vec();
    b.extend_from_slice(&[0xFF; 40]);
    std::fs::write(&junk, &b).unwrap();
    usage_error(
        &javm(&store, &["store", "put", junk.to_str().unwrap()]),
        "malformed",
    );
    let zero = "0".repeat(64);
    usage_error(&javm(&store, &["store", "gc", "--keep", &zero]), "no cap");
    usage_error(
        &javm(
            &store,
            &[
                "store",
                "put",
                "examples/caller.toml",
                "--slot",
                &format!("3={zero}"),
            ],
        ),
        "no cap",
    );
    usage_error(
        &javm(
            &store,
            &["store", "put", "examples/caller.toml", "--slot", "300=ab"],
        ),
        "0 to 255",
    );
    let not_dir = dir.path().join("file");
    std::fs::write(&not_dir, b"x").unwrap();
    usage_error(&javm(&not_dir, &["store", "ls"]), "store");
}
