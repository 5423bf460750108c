//! Gas profiles and block costs (docs/ISA.md §5).
//!
//! Gas is charged once per basic block, on entry, by both engines. A [`GasSchedule`]
//! picks how blocks are priced: the conformance profile `gp` (one per instruction) or
//! the JAVM profile `jar1` (the single-pass pipeline model, [`model`], at a memory
//! tier). [`crate::Program::block_costs`] gives every block's [`BlockCost`] under a
//! schedule; both engines read costs from there and nowhere else.

pub mod model;

use std::fmt;
use std::str::FromStr;

use crate::gas_const::COW_COST;

/// How blocks are priced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GasProfile {
    /// The JAVM profile (default): single-pass pipeline model, memory tiers, block
    /// reserves for copy-on-write, ecalli/ecall floors.
    #[default]
    Jar1,
    /// Gray Paper conformance: every instruction costs 1, no reserve, no
    /// materialization charges, GP `sbrk`, and bad accesses below 0x10000 panic.
    Gp,
}

impl GasProfile {
    /// Every profile.
    pub const ALL: [GasProfile; 2] = [GasProfile::Jar1, GasProfile::Gp];

    /// The profile's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            GasProfile::Jar1 => "jar1",
            GasProfile::Gp => "gp",
        }
    }
}

impl fmt::Display for GasProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GasProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jar1" => Ok(GasProfile::Jar1),
            "gp" => Ok(GasProfile::Gp),
            _ => Err(format!(
                "unknown gas profile `{s}` (expected `jar1` or `gp`)"
            )),
        }
    }
}

/// The jar1 memory tier: memory instructions cost `25 × s` cycles, where `s` is 1, 2,
/// 3 or 4 for at most 2048, 8192, 65536 or more accessible pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemTier(u8);

impl MemTier {
    /// The tier for an address space with `pages` accessible pages.
    pub const fn for_pages(pages: u64) -> MemTier {
        MemTier(if pages <= 2048 {
            1
        } else if pages <= 8192 {
            2
        } else if pages <= 65536 {
            3
        } else {
            4
        })
    }

    /// The tier with index `s` in 1..=4.
    pub const fn new(s: u8) -> Option<MemTier> {
        if s >= 1 && s <= 4 {
            Some(MemTier(s))
        } else {
            None
        }
    }

    /// `s`, in 1..=4.
    pub const fn index(self) -> u8 {
        self.0
    }

    /// Cycles of a memory instruction at this tier: 25, 50, 75 or 100.
    pub const fn mem_cycles(self) -> u32 {
        25 * self.0 as u32
    }
}

/// A complete pricing rule: the profile, and for jar1 the memory tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GasSchedule {
    /// The `gp` profile.
    Gp,
    /// The `jar1` profile at a memory tier.
    Jar1(MemTier),
}

impl fmt::Display for GasSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GasSchedule::Gp => f.write_str("gp"),
            GasSchedule::Jar1(t) => write!(f, "jar1 at memory tier {}", t.index()),
        }
    }
}

impl GasSchedule {
    /// The schedule for `profile` in an address space of `accessible_pages` pages.
    pub const fn new(profile: GasProfile, accessible_pages: u64) -> GasSchedule {
        match profile {
            GasProfile::Gp => GasSchedule::Gp,
            GasProfile::Jar1 => GasSchedule::Jar1(MemTier::for_pages(accessible_pages)),
        }
    }

    /// The schedule's profile.
    pub const fn profile(self) -> GasProfile {
        match self {
            GasSchedule::Gp => GasProfile::Gp,
            GasSchedule::Jar1(_) => GasProfile::Jar1,
        }
    }

    /// Gas charged for one copy-on-write (0 under `gp`).
    pub const fn cow_cost(self) -> u64 {
        match self {
            GasSchedule::Gp => 0,
            GasSchedule::Jar1(_) => COW_COST,
        }
    }

    /// Index in 0..5 (gp, then jar1 tiers 1..=4), for per-schedule tables.
    pub(crate) const fn slot(self) -> usize {
        match self {
            GasSchedule::Gp => 0,
            GasSchedule::Jar1(t) => t.0 as usize,
        }
    }
}

/// A block's price under one schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCost {
    /// Gas deducted on entry.
    pub cost: u64,
    /// Extra gas that must be present on entry but is not deducted (jar1: the
    /// copy-on-write reserve of the block's stores).
    pub reserve: u64,
}

impl BlockCost {
    /// Gas needed to enter the block: `cost + reserve`.
    pub const fn need(&self) -> u64 {
        self.cost.saturating_add(self.reserve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers() {
        assert_eq!(MemTier::for_pages(0).mem_cycles(), 25);
        assert_eq!(MemTier::for_pages(2048).mem_cycles(), 25);
        assert_eq!(MemTier::for_pages(2049).mem_cycles(), 50);
        assert_eq!(MemTier::for_pages(8192).mem_cycles(), 50);
        assert_eq!(MemTier::for_pages(8193).mem_cycles(), 75);
        assert_eq!(MemTier::for_pages(65536).mem_cycles(), 75);
        assert_eq!(MemTier::for_pages(65537).mem_cycles(), 100);
        assert_eq!(MemTier::new(0), None);
        assert_eq!(MemTier::new(5), None);
    }

    #[test]
    fn profiles_parse() {
        assert_eq!("jar1".parse::<GasProfile>().unwrap(), GasProfile::Jar1);
        assert_eq!("gp".parse::<GasProfile>().unwrap(), GasProfile::Gp);
        assert!("GP".parse::<GasProfile>().is_err());
        assert_eq!(GasProfile::default(), GasProfile::Jar1);
    }
}
