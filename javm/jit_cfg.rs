// The `jit` cfg: the recompiler is compiled in (cargo feature `jit`, on by default)
// and the target can run it (x86-64 Linux). Code says `#[cfg(jit)]` instead of
// repeating the three conditions. Included by the build scripts of `javm` and
// `differential-tests`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(jit)");
    println!("cargo::rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if std::env::var_os("CARGO_FEATURE_JIT").is_some() && arch == "x86_64" && os == "linux" {
        println!("cargo::rustc-cfg=jit");
    }
}
