//! The [`ImageCache`]: images a [`crate::Vm`] has run, loaded once (the code
//! validated as a [`Program`], its endpoints checked) and prepared once per gas schedule by the
//! engine, so a second invoke of the same image neither re-decodes nor recompiles.

use std::collections::HashMap;
use std::sync::Arc;

use javm_cap::{CacheDirectory, Cap, CapHash, CapKind, ImageCap};
use javm_exec::gas_const::{CLUSTER_SHIFT, call_frame_cost};
use javm_exec::{Engine, EngineError, GasProfile, GasSchedule, Program};

use crate::build::BuildError;

/// A decoded image.
#[derive(Debug)]
pub(crate) struct ImageInfo {
    /// Its cap hash.
    pub(crate) hash: CapHash,
    image: ImageCap,
    /// The code, validated (decoded on demand).
    pub(crate) program: Arc<Program>,
    /// `call_frame_cost` of entering it (docs/ISA.md §5.3).
    pub(crate) frame_cost: u64,
}

impl ImageInfo {
    /// The image cap.
    pub(crate) fn image(&self) -> &ImageCap {
        &self.image
    }

    /// What entering the image costs under `profile` (nothing under `gp`, which
    /// prices instructions only).
    pub(crate) fn frame_cost(&self, profile: GasProfile) -> u64 {
        match profile {
            GasProfile::Jar1 => self.frame_cost,
            GasProfile::Gp => 0,
        }
    }
}

/// Decoded images by hash, and their prepared modules by hash and schedule.
pub(crate) struct ImageCache<E: Engine> {
    images: HashMap<CapHash, Arc<ImageInfo>>,
    modules: HashMap<(CapHash, GasSchedule), Arc<E::Module>>,
    capacity: usize,
}

impl<E: Engine> ImageCache<E> {
    /// An empty cache holding at most `capacity` images (when it is full, it is
    /// emptied before the next image is added: a bound, not a policy).
    pub(crate) fn new(capacity: usize) -> Self {
        ImageCache {
            images: HashMap::new(),
            modules: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Number of decoded images held.
    pub(crate) fn len(&self) -> usize {
        self.images.len()
    }

    /// The decoded image `hash`, decoding it from `cache` the first time.
    pub(crate) fn info(
        &mut self,
        cache: &CacheDirectory,
        hash: &CapHash,
    ) -> Result<Arc<ImageInfo>, BuildError> {
        if let Some(i) = self.images.get(hash) {
            return Ok(Arc::clone(i));
        }
        let cap = crate::build::get_kind(cache, hash, CapKind::Image)?;
        let Cap::Image(image) = &*cap else {
            return Err(BuildError::WrongKind {
                hash: *hash,
                expected: CapKind::Image,
                found: cap.kind(),
            });
        };
        let program = Program::new(
            image.code().to_vec(),
            image.bitmask().to_vec(),
            image.jump_table().to_vec(),
        )
        .map_err(|e| BuildError::BadImage {
            hash: *hash,
            reason: e.to_string(),
        })?;
        crate::image::check_entries(image, &program).map_err(|e| BuildError::BadImage {
            hash: *hash,
            reason: e.to_string(),
        })?;
        let frame_cost = call_frame_cost(image.code().len() as u64, image.ro_units(CLUSTER_SHIFT));
        let info = Arc::new(ImageInfo {
            hash: *hash,
            program: Arc::new(program),
            frame_cost,
            image: image.clone(),
        });
        if self.images.len() >= self.capacity {
            self.images.clear();
            self.modules.clear();
        }
        self.images.insert(*hash, Arc::clone(&info));
        Ok(info)
    }

    /// The module of `info` prepared for `schedule`, preparing it the first time.
    pub(crate) fn module(
        &mut self,
        engine: &E,
        info: &ImageInfo,
        schedule: GasSchedule,
    ) -> Result<Arc<E::Module>, EngineError> {
        let key = (info.hash, schedule);
        if let Some(m) = self.modules.get(&key) {
            return Ok(Arc::clone(m));
        }
        let m = engine.prepare(&info.program, schedule)?;
        self.modules.insert(key, Arc::clone(&m));
        Ok(m)
    }
}
