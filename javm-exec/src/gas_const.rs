//! Gas constants (docs/ISA.md §5.3), kept in one place.
//!
//! These values are calibration placeholders; every rule that charges gas reads them
//! from here and nowhere else.

/// Charged on the first write to a writable page (per page, per frame).
pub const COW_COST: u64 = 256;
/// Charged per read-only 2 MiB unit (cap ∩ cluster) of the callee, at CALL.
pub const PAGE_IN_COST: u64 = 64;
/// Charged per 4 KiB of callee code, at CALL.
pub const COMPILE_COST_PER_PAGE: u64 = 512;
/// Base cost of every CALL (the top-level invoke included).
pub const CALL_FRAME_COST: u64 = 1024;
/// Minimum cost of a block that ends in `ecalli`.
pub const HOST_CALL_FLOOR: u64 = 100;
/// Minimum cost of a block that ends in `ecall`.
pub const MGMT_OP_COST: u64 = 100;
/// Invariant: an access of at most 8 bytes touches at most 2 pages.
pub const MAX_PAGES_PER_ACCESS: u64 = 2;
/// log2 of the read-only materialization unit (2 MiB).
pub const CLUSTER_SHIFT: u32 = 21;

/// The reserve a block needs on entry for its stores: every store may copy-on-write
/// at most [`MAX_PAGES_PER_ACCESS`] pages.
pub const fn store_reserve(stores: u64) -> u64 {
    MAX_PAGES_PER_ACCESS * COW_COST * stores
}

/// `call_frame_cost(code_len, ro_units)`: charged to the caller before a callee runs.
pub const fn call_frame_cost(code_len: u64, ro_units: u64) -> u64 {
    CALL_FRAME_COST + code_len.div_ceil(4096) * COMPILE_COST_PER_PAGE + ro_units * PAGE_IN_COST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_frame_cost_rounds_code_up_to_pages() {
        assert_eq!(call_frame_cost(0, 0), 1024);
        assert_eq!(call_frame_cost(1, 0), 1024 + 512);
        assert_eq!(call_frame_cost(4096, 2), 1024 + 512 + 128);
        assert_eq!(call_frame_cost(4097, 0), 1024 + 1024);
    }

    #[test]
    fn reserve_covers_two_pages_per_store() {
        assert_eq!(store_reserve(0), 0);
        assert_eq!(store_reserve(3), 3 * 512);
    }
}
