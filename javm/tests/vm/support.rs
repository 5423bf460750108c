//! Building images from assembly in a scratch directory, publishing them, and
//! running one scenario on every engine.

use std::fmt::Debug;
use std::path::Path;

use javm::image::BuiltImage;
use javm::{CallResult, InProcessKernel, KernelAssist, Vm, VmConfig};
use javm_cap::{
    CNodeCap, CacheDirectory, Cap, CapHash, CapHashOrRef, DataCap, ImageCap, ImageParts,
    InstanceCap, SlotHash, SlotIdx, cap_hash,
};
use javm_exec::EngineKind;

/// A generous budget.
pub(crate) const GAS: u64 = 10_000_000;

/// The engines to compare.
pub(crate) fn engines() -> Vec<EngineKind> {
    let mut v = vec![EngineKind::Interp];
    if javm::jit_available() {
        v.push(EngineKind::Jit);
    }
    v
}

/// Run `f` on every engine with the in-process kernel; all must return the same.
pub(crate) fn for_engines<R: PartialEq + Debug>(f: impl FnMut(&mut Vm<InProcessKernel>) -> R) {
    for_engines_with(VmConfig::default(), InProcessKernel::new, f)
}

/// Run `f` on every engine with a kernel from `kernel`; all must return the same.
pub(crate) fn for_engines_with<K: KernelAssist, R: PartialEq + Debug>(
    config: VmConfig,
    kernel: impl Fn() -> K,
    mut f: impl FnMut(&mut Vm<K>) -> R,
) {
    let mut first: Option<(EngineKind, R)> = None;
    for kind in engines() {
        let mut vm = Vm::with_config(kind, kernel(), config).unwrap();
        let r = f(&mut vm);
        match &first {
            None => first = Some((kind, r)),
            Some((k0, r0)) => assert_eq!(r0, &r, "{k0} and {kind} disagree"),
        }
    }
}

/// φ7 of a `Halt`.
pub(crate) fn ret_of(r: &CallResult) -> u64 {
    match r {
        CallResult::Halt { return_value, .. } => *return_value,
        other => panic!("expected a halt, got {other:?}"),
    }
}

/// The post-instance of a `Halt`.
pub(crate) fn post_of(r: &CallResult) -> CapHash {
    match r {
        CallResult::Halt {
            post_instance_hash, ..
        } => *post_instance_hash,
        other => panic!("expected a halt, got {other:?}"),
    }
}

/// A cache plus a scratch directory for manifests.
pub(crate) struct World {
    pub(crate) cache: CacheDirectory,
    dir: tempfile::TempDir,
}

impl World {
    pub(crate) fn new() -> Self {
        World {
            cache: CacheDirectory::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Build image `name` from `asm` (the code section) and extra manifest TOML; the
    /// entry of endpoint 0 is the label `main`.
    pub(crate) fn build(&self, name: &str, asm: &str, toml: &str) -> BuiltImage {
        std::fs::write(
            self.dir().join(format!("{name}.s")),
            format!(".code\n{asm}"),
        )
        .unwrap();
        let manifest =
            format!("code = \"{name}.s\"\n{toml}\n[[endpoint]]\nindex = 0\nentry = \"main\"\n");
        let path = self.dir().join(format!("{name}.toml"));
        std::fs::write(&path, manifest).unwrap();
        javm::manifest::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Publish an image (and its data) only; returns the image's hash.
    pub(crate) fn image_hash(&self, name: &str, asm: &str, toml: &str) -> CapHash {
        let b = self.build(name, asm, toml);
        for c in b.caps() {
            self.cache.put_cap(c).unwrap();
        }
        cap_hash(&Cap::Image(b.image)).unwrap()
    }

    /// Publish a fresh instance of an image, with extra cnode slots.
    pub(crate) fn publish(
        &self,
        name: &str,
        asm: &str,
        toml: &str,
        slots: &[(u32, CapHash)],
    ) -> CapHash {
        let slots: Vec<(SlotIdx, CapHash)> = slots.iter().map(|&(s, h)| (SlotIdx(s), h)).collect();
        self.build(name, asm, toml)
            .publish(&self.cache, &slots)
            .unwrap()
    }

    /// Publish a fresh instance of an image that also pins `pinned` caps.
    pub(crate) fn publish_with_pinned(
        &self,
        name: &str,
        asm: &str,
        toml: &str,
        pinned: &[(u32, CapHash)],
        slots: &[(u32, CapHash)],
    ) -> CapHash {
        let b = self.build(name, asm, toml);
        let i = &b.image;
        let mut pins: Vec<SlotHash> = i.pinned().to_vec();
        pins.extend(pinned.iter().map(|&(s, h)| SlotHash {
            slot: SlotIdx(s),
            hash: h,
        }));
        pins.sort_by_key(|p| p.slot);
        let image = ImageCap::new(ImageParts {
            code: i.code().to_vec(),
            bitmask: i.bitmask().to_vec(),
            jump_table: i.jump_table().to_vec(),
            endpoints: (0..64)
                .filter_map(|e| i.endpoint(e).map(|p| (e, p.clone())))
                .collect(),
            mappings: i.mappings().to_vec(),
            pinned: pins,
            initial: i.initial().to_vec(),
            yield_marker_slot: i.yield_marker_slot(),
        })
        .unwrap();
        let mut cnode = image.root_cnode();
        for &(s, h) in slots {
            cnode.set(SlotIdx(s), Some(CapHashOrRef::Hash(h))).unwrap();
        }
        let image_hash = self.cache.put_cap(Cap::Image(image.clone())).unwrap();
        let cnode_hash = self.cache.put_cap(Cap::CNode(cnode)).unwrap();
        let inst = InstanceCap::fresh(image_hash, CapHashOrRef::Hash(cnode_hash), image.mem_size())
            .unwrap();
        self.cache.put_cap(Cap::Instance(inst)).unwrap()
    }

    /// Publish a data cap.
    pub(crate) fn data(&self, bytes: &[u8]) -> CapHash {
        self.cache
            .put_cap(Cap::Data(DataCap::from_bytes(bytes).unwrap()))
            .unwrap()
    }

    pub(crate) fn instance(&self, h: &CapHash) -> InstanceCap {
        match &*self.cache.get_blob(h).unwrap().expect("instance present") {
            Cap::Instance(i) => i.clone(),
            other => panic!("not an instance: {:?}", other.kind()),
        }
    }

    pub(crate) fn cnode_of(&self, inst: &InstanceCap) -> CNodeCap {
        let CapHashOrRef::Hash(h) = inst.root_cnode() else {
            panic!("a settled instance's cnode is a hash")
        };
        match &*self.cache.get_blob(h).unwrap().expect("cnode present") {
            Cap::CNode(c) => c.clone(),
            other => panic!("not a cnode: {:?}", other.kind()),
        }
    }

    pub(crate) fn slot(&self, cnode: &CNodeCap, slot: u32) -> Option<CapHash> {
        match cnode.get(SlotIdx(slot)) {
            Some(CapHashOrRef::Hash(h)) => Some(*h),
            _ => None,
        }
    }

    /// An image that recurses through DERIVE_SPAWN + HOST_CALL: entered with
    /// φ7 = level, φ8 = limit and its own image hash in slot 0, it replies
    /// `level + 1000` at the limit, the child's reply when the child replied, and its
    /// own level when the child failed. Returns (instance at level 0, image hash).
    pub(crate) fn recursive(&self) -> (CapHash, CapHash) {
        let asm = "main:\n branch_eq r7, r8, leaf\n move_reg r5, r7\n move_reg r6, r8\n \
                   load_imm r7, 6\n load_imm r8, 8\n ecalli 5\n \
                   load_imm r7, 0\n load_imm r8, 6\n load_imm r9, 3\n ecalli 18\n \
                   load_imm r7, 3\n load_imm r8, 0\n add_imm_64 r9, r5, 1\n move_reg r10, r6\n \
                   ecalli 26\n branch_ne_imm r8, 0, failed\n ecalli 0\n\
                   failed:\n move_reg r7, r5\n ecalli 0\n\
                   leaf:\n add_imm_64 r7, r7, 1000\n ecalli 0\n";
        let image = self.image_hash("recursive", asm, "");
        let b = self.build("recursive", asm, "");
        let inst = b.publish(&self.cache, &[(SlotIdx(0), image)]).unwrap();
        (inst, image)
    }

    /// A catcher (yield-marker slot 4) that calls a worker in slot 3 and replies the
    /// worker's φ7 + 1000 × its status; the worker yields the marker in its slot 5,
    /// then replies the first byte of the data cap in its slot 0. Returns (catcher
    /// instance, catcher cap hash, marker hash, worker instance).
    pub(crate) fn yield_pair(&self) -> (CapHash, CapHash, CapHash, CapHash) {
        let worker = self.publish(
            "worker",
            "main:\n load_imm r7, 5\n ecalli 16\n load_imm r7, 0\n load_imm r8, 0x20000\n \
             load_imm r9, 8\n ecalli 22\n load_u8 r7, 0x20000\n ecalli 0\n",
            "[[mapping]]\nstart = 0x20000\nsize = 0x1000\n[[data]]\nslot = 5\ntext = \"marker\"\n",
            &[],
        );
        self.catcher_of(worker)
    }

    /// Like [`World::yield_pair`], but the worker counts to 20000 in a loop (about
    /// 100,000 gas) and replies the count.
    pub(crate) fn yield_pair_spinning(&self) -> (CapHash, CapHash, CapHash, CapHash) {
        let worker = self.publish(
            "spinner",
            "main:\n load_imm r7, 0\n fallthrough\nloop:\n add_imm_64 r7, r7, 1\n \
             branch_ne_imm r7, 20000, loop\n ecalli 0\n",
            "[[data]]\nslot = 5\ntext = \"marker\"\n",
            &[],
        );
        self.catcher_of(worker)
    }

    fn catcher_of(&self, worker: CapHash) -> (CapHash, CapHash, CapHash, CapHash) {
        let catcher = self.publish(
            "catcher",
            "main:\n load_imm r7, 3\n load_imm r8, 0\n ecalli 26\n mul_imm_64 r8, r8, 1000\n \
             add_64 r7, r7, r8\n ecalli 0\n",
            "yield_marker_slot = 4\n[[data]]\nslot = 4\ntext = \"catcher\"\n",
            &[(3, worker)],
        );
        let c = self
            .slot(&self.cnode_of(&self.instance(&catcher)), 4)
            .unwrap();
        let m = self
            .slot(&self.cnode_of(&self.instance(&worker)), 5)
            .unwrap();
        (catcher, c, m, worker)
    }
}
