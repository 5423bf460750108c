//! `javm run IMAGE`: a fresh instance of an image (a manifest or a bundle from `javm
//! image build`) invoked by the `Vm` driver in memory. Nothing is stored; `--arg`
//! bytes become a data cap in slot 0, the argument slot of a call.

use std::path::Path;
use std::process::ExitCode;

use javm::{InProcessKernel, Vm, VmConfig};
use javm_cap::wire::BUNDLE_MAGIC;
use javm_cap::{CacheDirectory, Cap, DataCap, SlotIdx};
use javm_exec::EngineKind;
use serde_json::json;

use super::out::{CliError, outln};
use super::store::{exit_code, load_image, print_result, result_json};
use super::{FormatArg, RunArgs};

/// Whether `path` names an image: a manifest (`.toml`) or a bundle.
pub(super) fn is_image(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        return true;
    }
    if super::load::is_stdio(path) {
        return super::load::read(path).is_ok_and(|b| b.starts_with(BUNDLE_MAGIC));
    }
    let mut magic = [0u8; BUNDLE_MAGIC.len()];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| magic == *BUNDLE_MAGIC)
}

pub(super) fn run_image(
    args: &RunArgs,
    kind: EngineKind,
    input: &[u8],
    gas: u64,
) -> Result<ExitCode, CliError> {
    if args.trace {
        return Err(
            "--trace is for program files; run the image's assembly source to trace it".into(),
        );
    }
    if args.entry != 0 {
        return Err(
            "--entry is for program files; an image starts at an endpoint: --endpoint N".into(),
        );
    }
    if args.format != FormatArg::Auto {
        return Err("--format is for program files, not image manifests or bundles".into());
    }
    let built = load_image(&args.program)?;
    let cache = CacheDirectory::new();
    let mut slots = Vec::new();
    if !input.is_empty() {
        let data = DataCap::from_bytes(input).map_err(|e| format!("--arg: {e}"))?;
        let h = cache.put_cap(Cap::Data(data)).map_err(|e| e.to_string())?;
        slots.push((SlotIdx(0), h));
    }
    let instance = built.publish(&cache, &slots).map_err(|e| e.to_string())?;
    let config = VmConfig {
        profile: args.profile.into(),
        ..VmConfig::default()
    };
    let mut vm =
        Vm::with_config(kind, InProcessKernel::new(), config).map_err(|e| e.to_string())?;
    let r = vm
        .invoke_cached(&cache, &instance, args.endpoint, [0; 4], gas)
        .map_err(|e| e.to_string())?;
    if args.json {
        let mut v = result_json(&r);
        v["engine"] = json!(kind.name());
        v["profile"] = json!(config.profile.name());
        outln!("{v}");
    } else {
        print_result(&r)?;
    }
    Ok(exit_code(&r))
}
