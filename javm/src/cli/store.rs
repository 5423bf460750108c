//! `javm image build` and `javm store ...`: publishing images into the on-disk cap
//! store and inspecting it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use javm::image::{BuiltImage, check_entries, from_standard};
use javm::{CallResult, InProcessKernel, Vm};
use javm_cap::hash::{hex, parse_hex};
use javm_cap::store::{CapStoreExt, StoreError};
use javm_cap::wire::{BUNDLE_MAGIC, decode_bundle, encode_bundle};
use javm_cap::{
    CNodeSlot, CacheDirectory, Cap, CapHash, CapHashOrRef, DataCap, PageSlot, RedbStore, SlotIdx,
    cap_hash,
};
use javm_exec::{EngineKind, Program};
use serde_json::{Value, json};

use super::FormatArg;
use super::load::{load, read};
use super::out::{CliError, json_regs, json_u64, outln};

/// Where the store lives: `--store`, else `$JAVM_STORE`, else `javm-store` in the
/// user's data directory.
pub(crate) fn store_dir(arg: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = arg {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("JAVM_STORE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    dirs::data_dir()
        .map(|d| d.join("javm-store"))
        .ok_or_else(|| "no user data directory is known here; pass --store DIR".into())
}

pub(crate) fn open(dir: &Path) -> Result<RedbStore, String> {
    RedbStore::open(dir).map_err(|e| e.to_string())
}

fn hash_arg(s: &str) -> Result<CapHash, String> {
    parse_hex(s).ok_or_else(|| format!("`{s}` is not a cap hash (64 hexadecimal digits)"))
}

/// Read an image from a manifest (`.toml`), a bundle written by `javm image build`,
/// assembly source or a program blob (which gets the standard layout).
pub(crate) fn load_image(path: &Path) -> Result<BuiltImage, String> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        return javm::manifest::load(path).map_err(|e| e.to_string());
    }
    let bytes = read(path)?;
    let name = super::load::display(path);
    if bytes.starts_with(BUNDLE_MAGIC) {
        let caps = decode_bundle(&bytes).map_err(|e| format!("{name}: {e}"))?;
        return image_from_bundle(caps).map_err(|e| format!("{name}: {e}"));
    }
    let sp = load(path, FormatArg::Auto)?.into_standard();
    from_standard(&sp).map_err(|e| format!("{name}: {e}"))
}

/// Check a decoded bundle: an image first, then exactly the data caps it names.
fn image_from_bundle(caps: Vec<Cap>) -> Result<BuiltImage, String> {
    let mut it = caps.into_iter();
    let Some(Cap::Image(image)) = it.next() else {
        return Err("a bundle must start with an image".into());
    };
    let mut given = Vec::new();
    for c in it {
        let Cap::Data(d) = c else {
            return Err(format!(
                "a bundle holds an image and data caps, not a {}",
                c.kind()
            ));
        };
        given.push((
            cap_hash(&Cap::Data(d.clone())).map_err(|e| e.to_string())?,
            d,
        ));
    }
    let mut data = Vec::new();
    for (list, pinned) in [(image.pinned(), true), (image.initial(), false)] {
        for s in list {
            let d = given
                .iter()
                .find(|(h, _)| *h == s.hash)
                .ok_or_else(|| format!("the bundle lacks the data cap of slot {}", s.slot.0))?;
            data.push((s.slot, pinned, d.1.clone()));
        }
    }
    let program = Program::new(
        image.code().to_vec(),
        image.bitmask().to_vec(),
        image.jump_table().to_vec(),
    )
    .map_err(|e| format!("the image's code does not load: {e}"))?;
    check_entries(&image, &program).map_err(|e| e.to_string())?;
    Ok(BuiltImage {
        image,
        data,
        program: Arc::new(program),
    })
}

/// `javm image build MANIFEST -o FILE`.
pub(crate) fn image_build(input: &Path, output: &Path) -> Result<ExitCode, CliError> {
    let built = load_image(input)?;
    let mut caps = vec![Cap::Image(built.image.clone())];
    caps.extend(built.data.iter().map(|(_, _, d)| Cap::Data(d.clone())));
    let bytes = encode_bundle(&caps).map_err(|e| e.to_string())?;
    super::load::write(output, &bytes)?;
    let h = cap_hash(&caps[0]).map_err(|e| e.to_string())?;
    // With `-o -` standard output holds the bundle; the summary goes to stderr.
    if super::load::is_stdio(output) {
        eprintln!("image {} ({} bytes) -> <stdout>", hex(&h), bytes.len());
    } else {
        outln!(
            "image {} ({} bytes) -> {}",
            hex(&h),
            bytes.len(),
            output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Parse `N=HASH`.
fn slot_arg(s: &str) -> Result<(SlotIdx, CapHash), String> {
    let (n, h) = s
        .split_once('=')
        .ok_or_else(|| format!("--slot `{s}`: expected SLOT=HASH"))?;
    let n: u32 = n
        .parse()
        .ok()
        .filter(|&n| n < 256)
        .ok_or_else(|| format!("--slot `{s}`: the slot must be 0 to 255"))?;
    Ok((SlotIdx(n), hash_arg(h)?))
}

/// `javm store put FILE [--slot N=HASH]...`.
pub(crate) fn put(
    dir: &Path,
    file: &Path,
    slots: &[String],
    json: bool,
) -> Result<ExitCode, CliError> {
    let built = load_image(file)?;
    let store = open(dir)?;
    let mut extra = Vec::new();
    for s in slots {
        let (slot, hash) = slot_arg(s)?;
        if store.get_cap(&hash).map_err(|e| e.to_string())?.is_none() {
            return Err(format!("--slot {}: no cap {} in the store", slot.0, hex(&hash)).into());
        }
        extra.push((slot, hash));
    }
    let (cnode, instance) = built.fresh_instance(&extra).map_err(|e| match e {
        javm::image::ImageError::SlotTaken(s) => {
            format!("--slot {s}: the image already puts its own data cap in that slot")
        }
        e => e.to_string(),
    })?;
    let image = Cap::Image(built.image.clone());
    let image_hash = cap_hash(&image).map_err(|e| e.to_string())?;
    let cnode_hash = cap_hash(&cnode).map_err(|e| e.to_string())?;
    let data: Vec<Cap> = built
        .data
        .iter()
        .map(|(_, _, d)| Cap::Data(d.clone()))
        .collect();
    let mut all: Vec<&Cap> = data.iter().collect();
    all.extend([&image, &cnode, &instance]);
    let hashes = store.put_caps(&all).map_err(|e| e.to_string())?;
    let instance_hash = hashes[hashes.len() - 1];
    if json {
        let data: Vec<Value> = built
            .data
            .iter()
            .zip(&hashes)
            .map(|((slot, pinned, _), h)| json!({"slot": slot.0, "pinned": pinned, "hash": hex(h)}))
            .collect();
        outln!(
            "{}",
            json!({"data": data, "image": hex(&image_hash), "cnode": hex(&cnode_hash),
                   "instance": hex(&instance_hash)})
        );
    } else {
        for ((slot, pinned, _), h) in built.data.iter().zip(&hashes) {
            let how = if *pinned { "pinned" } else { "initial" };
            outln!("data     {}  slot {} ({how})", hex(h), slot.0);
        }
        outln!("image    {}", hex(&image_hash));
        outln!("cnode    {}", hex(&cnode_hash));
        outln!("instance {}", hex(&instance_hash));
    }
    Ok(ExitCode::SUCCESS)
}

fn target(t: &CapHashOrRef) -> String {
    match t {
        CapHashOrRef::Hash(h) => hex(h),
        CapHashOrRef::Ref(r) => format!("ref {}", r.id()),
    }
}

fn pages_json(pages: &[PageSlot]) -> Vec<Value> {
    pages
        .iter()
        .map(|p| match p {
            PageSlot::Empty => Value::Null,
            PageSlot::Loaded(b) => json!(hex(b.hash())),
            PageSlot::Missing(h) => json!({"missing": hex(h)}),
        })
        .collect()
}

/// The JSON description of a cap (`store get --json`).
fn describe(hash: &CapHash, cap: &Cap) -> Value {
    let body = match cap {
        Cap::Data(d) => json!({"len": d.len(), "pages": pages_json(d.pages())}),
        Cap::CNode(c) => {
            let slots: Vec<Value> = c
                .iter()
                .map(|(i, s)| match s {
                    CNodeSlot::Materialized(t) => json!({"slot": i.0, "cap": target(t)}),
                    CNodeSlot::Missing(h) => json!({"slot": i.0, "missing": hex(h)}),
                })
                .collect();
            json!({"size_log": c.size_log(), "slots": slots})
        }
        Cap::Image(img) => {
            let endpoints: Vec<Value> = (0..javm_cap::cap::MAX_ENDPOINTS)
                .filter_map(|i| {
                    img.endpoint(i).map(
                        |e| json!({"index": i, "entry_pc": e.entry_pc, "regs": json_regs(&e.regs)}),
                    )
                })
                .collect();
            let mappings: Vec<Value> = img
                .mappings()
                .iter()
                .map(|m| {
                    json!({"start": m.start, "size": m.size,
                           "source": m.source.as_ref().map(|p| p.steps().iter().map(|s| s.0).collect::<Vec<_>>())})
                })
                .collect();
            let list = |l: &[javm_cap::SlotHash]| -> Vec<Value> {
                l.iter()
                    .map(|s| json!({"slot": s.slot.0, "hash": hex(&s.hash)}))
                    .collect()
            };
            json!({"code_len": img.code().len(), "jump_table_len": img.jump_table().len(),
                   "endpoints": endpoints, "mappings": mappings, "pinned": list(img.pinned()),
                   "initial": list(img.initial()), "mem_size": json_u64(img.mem_size()),
                   "yield_marker_slot": img.yield_marker_slot().map(|s| s.0)})
        }
        Cap::Instance(i) => {
            let overlays: Vec<Value> = i
                .rw_overlays()
                .iter()
                .map(|o| json!({"start": o.start(), "pages": pages_json(o.pages())}))
                .collect();
            json!({"image": hex(i.image_hash()), "image_hash_chain": hex(i.image_hash_chain()),
                   "root_cnode": target(i.root_cnode()), "mem_size": json_u64(i.mem_size()),
                   "regs": json_regs(i.regs()), "pc": i.pc(),
                   "gas_remaining": json_u64(i.gas_remaining()),
                   "rw_overlays": overlays})
        }
    };
    json!({"hash": hex(hash), "kind": cap.kind().name(), "cap": body})
}

fn print_human(v: &Value) -> Result<(), CliError> {
    outln!(
        "{} {}",
        v["kind"].as_str().unwrap_or("?"),
        v["hash"].as_str().unwrap_or("?")
    );
    if let Some(fields) = v["cap"].as_object() {
        for (k, val) in fields {
            let s = match val {
                Value::Array(a) if a.len() > 8 => format!("[{} entries]", a.len()),
                other => other.to_string(),
            };
            outln!("  {k}: {s}");
        }
    }
    Ok(())
}

/// `javm store get HASH [--json | --raw]`.
pub(crate) fn get(dir: &Path, hash: &str, json: bool, raw: bool) -> Result<ExitCode, CliError> {
    let h = hash_arg(hash)?;
    let store = open(dir)?;
    let cap = store
        .get_cap(&h)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| StoreError::NotFound(h).to_string())?;
    if raw {
        let Cap::Data(d) = &cap else {
            return Err(format!("--raw needs a data cap; {hash} is a {}", cap.kind()).into());
        };
        return write_raw(d);
    }
    let v = describe(&h, &cap);
    if json {
        outln!("{v}");
    } else {
        print_human(&v)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_raw(d: &DataCap) -> Result<ExitCode, CliError> {
    let bytes = d
        .read(0, d.len() as usize)
        .ok_or("the data cap has pages the store does not hold")?;
    super::out::write_bytes(&bytes)?;
    Ok(ExitCode::SUCCESS)
}

/// `javm store ls [--json]`.
pub(crate) fn ls(dir: &Path, json: bool) -> Result<ExitCode, CliError> {
    let store = open(dir)?;
    let entries = store.list().map_err(|e| e.to_string())?;
    for e in &entries {
        let kind = match &e.kind {
            Ok(k) => k.name().to_string(),
            Err(_) => "corrupt".to_string(),
        };
        if json {
            outln!(
                "{}",
                json!({"hash": hex(&e.hash), "kind": kind, "bytes": e.record_bytes})
            );
        } else {
            outln!("{}  {kind:<8} {:>8} B", hex(&e.hash), e.record_bytes);
        }
    }
    if !json {
        eprintln!("{} caps", entries.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `javm store verify`: exit 0 if every record matches its hash, 1 otherwise.
pub(crate) fn verify(dir: &Path) -> Result<ExitCode, CliError> {
    let store = open(dir)?;
    let r = store.verify().map_err(|e| e.to_string())?;
    for (table, h, why) in &r.corrupt {
        outln!("corrupt {table} {}: {why}", hex(h));
    }
    outln!(
        "checked {} caps and {} pages: {} corrupt",
        r.caps,
        r.pages,
        r.corrupt.len()
    );
    Ok(if r.corrupt.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `javm store gc --keep HASH...`.
pub(crate) fn gc(dir: &Path, keep: &[String]) -> Result<ExitCode, CliError> {
    let roots = keep
        .iter()
        .map(|k| hash_arg(k))
        .collect::<Result<Vec<_>, _>>()?;
    let store = open(dir)?;
    let r = store.gc(&roots).map_err(|e| e.to_string())?;
    outln!(
        "kept {} caps and {} pages; removed {} caps and {} pages",
        r.kept_caps,
        r.kept_pages,
        r.removed_caps,
        r.removed_pages
    );
    Ok(ExitCode::SUCCESS)
}

/// What `javm store invoke` was asked to do.
pub(crate) struct InvokeArgs {
    pub(crate) hash: String,
    pub(crate) endpoint: u32,
    pub(crate) args: Vec<u64>,
    pub(crate) gas: u64,
    pub(crate) engine: EngineKind,
    pub(crate) json: bool,
    pub(crate) catch: Vec<String>,
    pub(crate) resume: u32,
    pub(crate) top_up: u64,
    pub(crate) scratchpad: Option<String>,
}

/// `CATCHER=MARKER`, MARKER a hash or `oog`.
fn catch_arg(s: &str) -> Result<(CapHash, CapHash), String> {
    let (c, m) = s
        .split_once('=')
        .ok_or_else(|| format!("--catch {s}: expected CATCHER=MARKER"))?;
    let marker = if m == "oog" {
        javm::OUT_OF_GAS_MARKER
    } else {
        hash_arg(m)?
    };
    Ok((hash_arg(c)?, marker))
}

pub(crate) fn result_json(r: &CallResult) -> Value {
    let h = |o: &Option<CapHash>| o.as_ref().map(hex);
    match r {
        CallResult::Halt {
            return_value,
            post_instance_hash,
            reflected_slot0,
            gas_used,
        } => json!({
            "result": "halt", "return_value": json_u64(*return_value),
            "post_instance": hex(post_instance_hash),
            "reflected_slot0": h(reflected_slot0), "gas_used": json_u64(*gas_used)}),
        CallResult::Faulted {
            reason,
            reflected_slot0,
            gas_used,
        } => json!({
            "result": "faulted", "reason": reason.to_string(),
            "reflected_slot0": h(reflected_slot0), "gas_used": json_u64(*gas_used)}),
        CallResult::Paused {
            marker_payload,
            gas_used,
        } => json!({
            "result": "paused", "marker": hex(marker_payload), "gas_used": json_u64(*gas_used)}),
    }
}

pub(crate) fn print_result(r: &CallResult) -> Result<(), CliError> {
    match r {
        CallResult::Halt {
            return_value,
            post_instance_hash,
            reflected_slot0,
            gas_used,
        } => {
            outln!("halt: return value {return_value} ({return_value:#x}), gas used {gas_used}");
            if let Some(s) = reflected_slot0 {
                outln!("slot 0:        {}", hex(s));
            }
            outln!("post-instance: {}", hex(post_instance_hash));
        }
        CallResult::Faulted {
            reason,
            reflected_slot0,
            gas_used,
        } => {
            outln!("faulted: {reason}, gas used {gas_used}");
            if let Some(s) = reflected_slot0 {
                outln!("slot 0:        {}", hex(s));
            }
        }
        CallResult::Paused {
            marker_payload,
            gas_used,
        } => {
            let what = if *marker_payload == javm::OUT_OF_GAS_MARKER {
                " (out of gas)"
            } else {
                ""
            };
            outln!(
                "paused: marker {}{what}, gas used {gas_used}",
                hex(marker_payload)
            );
        }
    }
    Ok(())
}

/// `javm store invoke`: run an instance by hash with the Vm driver; on a halt the
/// post-instance is committed to the store.
pub(crate) fn invoke(dir: &Path, a: InvokeArgs) -> Result<ExitCode, CliError> {
    let hash = hash_arg(&a.hash)?;
    if a.args.len() > 4 {
        return Err(format!("at most 4 --arg values, got {}", a.args.len()).into());
    }
    let mut args = [0u64; 4];
    args[..a.args.len()].copy_from_slice(&a.args);
    let scratchpad = a.scratchpad.as_deref().map(hash_arg).transpose()?;
    let mut kernel = InProcessKernel::new();
    for c in &a.catch {
        let (catcher, marker) = catch_arg(c)?;
        kernel.add_catcher(catcher, marker);
    }
    let store = Arc::new(open(dir)?);
    let cache = CacheDirectory::with_store(store);
    let mut vm = Vm::new(a.engine, kernel).map_err(|e| e.to_string())?;
    let mut r = vm
        .invoke_cached(&cache, &hash, a.endpoint, args, a.gas)
        .map_err(|e| e.to_string())?;
    let mut results = vec![r.clone()];
    let mut resumes = 0;
    while let CallResult::Paused { marker_payload, .. } = &r {
        if resumes >= a.resume {
            break;
        }
        if !a.json {
            print_result(&r)?;
        }
        if *marker_payload == javm::OUT_OF_GAS_MARKER {
            vm.top_up(a.top_up).map_err(|e| e.to_string())?;
        }
        r = vm
            .call_resume(&cache, scratchpad)
            .map_err(|e| e.to_string())?;
        results.push(r.clone());
        resumes += 1;
    }
    if matches!(r, CallResult::Halt { .. }) {
        cache
            .commit()
            .map_err(|e| format!("committing the post-instance: {e}"))?;
    }
    if a.json {
        let v: Vec<Value> = results.iter().map(result_json).collect();
        outln!("{}", json!({"engine": a.engine.name(), "results": v}));
    } else {
        print_result(&r)?;
    }
    Ok(exit_code(&r))
}

/// The exit status of a run that ended with `r`: 0 on a halt, 1 otherwise.
pub(crate) fn exit_code(r: &CallResult) -> ExitCode {
    if matches!(r, CallResult::Halt { .. }) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
