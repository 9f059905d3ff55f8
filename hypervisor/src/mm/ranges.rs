//! Which physical memory is free for the hypervisor to hand out: all RAM minus the
//! hypervisor image, the device tree and every reserved range, page-aligned inwards.

use arrayvec::ArrayVec;

use super::{PAGE_SIZE, align_down, align_up};
use crate::platform::PhysRange;

/// Enough for every RAM bank split by every exclusion on the machines we support.
pub const MAX_FREE_RANGES: usize = 64;

/// Why the free-memory map could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// More disjoint free ranges than [`MAX_FREE_RANGES`].
    TooManyRanges,
}

impl core::fmt::Display for RangeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooManyRanges => write!(f, "RAM is split into more than {MAX_FREE_RANGES} free ranges"),
        }
    }
}

/// Returns `ram` minus `exclusions`, each piece shrunk to whole pages, sorted by
/// base address. Exclusions are widened to whole pages so that no frame handed out
/// shares a page with anything excluded.
pub fn free_ranges(
    ram: &[PhysRange],
    exclusions: &[PhysRange],
) -> Result<ArrayVec<PhysRange, MAX_FREE_RANGES>, RangeError> {
    let mut free: ArrayVec<PhysRange, MAX_FREE_RANGES> = ArrayVec::new();
    for bank in ram {
        let start = align_up(bank.base, PAGE_SIZE);
        let end = align_down(bank.base.saturating_add(bank.size), PAGE_SIZE);
        if end > start {
            free.try_push(PhysRange { base: start, size: end - start }).map_err(|_| RangeError::TooManyRanges)?;
        }
    }
    for excluded in exclusions {
        if excluded.size == 0 {
            continue;
        }
        let cut_start = align_down(excluded.base, PAGE_SIZE);
        let cut_end = align_up(excluded.base.saturating_add(excluded.size), PAGE_SIZE);
        let mut next: ArrayVec<PhysRange, MAX_FREE_RANGES> = ArrayVec::new();
        for range in &free {
            let (start, end) = (range.base, range.base + range.size);
            if cut_end <= start || cut_start >= end {
                next.try_push(*range).map_err(|_| RangeError::TooManyRanges)?;
                continue;
            }
            if cut_start > start {
                next.try_push(PhysRange { base: start, size: cut_start - start })
                    .map_err(|_| RangeError::TooManyRanges)?;
            }
            if cut_end < end {
                next.try_push(PhysRange { base: cut_end, size: end - cut_end })
                    .map_err(|_| RangeError::TooManyRanges)?;
            }
        }
        free = next;
    }
    free.sort_unstable_by_key(|r| r.base);
    Ok(free)
}

/// Takes `size` bytes aligned to `align` from the largest free range that can hold
/// them (from its top, so low memory stays for guests that want it), shrinking the
/// free map accordingly. Used to carve the heap before the frame allocator exists.
pub fn carve(free: &mut ArrayVec<PhysRange, MAX_FREE_RANGES>, size: u64, align: u64) -> Option<PhysRange> {
    let index = free
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let top = r.base + r.size;
            top >= size && align_down(top - size, align) >= r.base
        })
        .max_by_key(|(_, r)| r.size)
        .map(|(i, _)| i)?;
    let range = free[index];
    let top = range.base + range.size;
    let base = align_down(top - size, align);
    let taken = PhysRange { base, size };
    free.remove(index);
    if base > range.base {
        free.insert(index, PhysRange { base: range.base, size: base - range.base });
    }
    if base + size < top {
        // Only the alignment slack above the carved block; still free.
        let slack = PhysRange { base: base + size, size: top - (base + size) };
        let at = free.iter().position(|r| r.base > slack.base).unwrap_or(free.len());
        free.try_insert(at, slack).ok()?;
    }
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, size: u64) -> PhysRange {
        PhysRange { base, size }
    }

    #[test]
    fn exclusions_split_ram_and_are_widened_to_pages() {
        let ram = [r(0x4000_0000, 0x8000_0000)];
        let image = r(0x4020_0000, 0x3_2100); // not a page multiple
        let dtb = r(0x4800_0123, 0x100);
        let free = free_ranges(&ram, &[image, dtb]).unwrap();
        assert_eq!(
            free.as_slice(),
            &[
                r(0x4000_0000, 0x20_0000),
                r(0x4023_3000, 0x4800_0000 - 0x4023_3000),
                r(0x4800_1000, 0xC000_0000 - 0x4800_1000),
            ]
        );
    }

    #[test]
    fn exclusion_covering_a_bank_removes_it() {
        let ram = [r(0x8000_0000, 0x1000_0000), r(0x8_8000_0000, 0x1000_0000)];
        let free = free_ranges(&ram, &[r(0x7000_0000, 0x2000_0000)]).unwrap();
        assert_eq!(free.as_slice(), &[r(0x8_8000_0000, 0x1000_0000)]);
    }

    #[test]
    fn unaligned_ram_is_shrunk_inwards() {
        let free = free_ranges(&[r(0x1800, 0x3000)], &[]).unwrap();
        assert_eq!(free.as_slice(), &[r(0x2000, 0x2000)]);
    }

    #[test]
    fn carve_takes_aligned_block_from_largest_range() {
        let mut free = free_ranges(&[r(0x1000_0000, 0x10_0000), r(0x4000_0000, 0x100_0000)], &[]).unwrap();
        let heap = carve(&mut free, 0x40_0000, 0x20_0000).unwrap();
        assert_eq!(heap, r(0x40C0_0000, 0x40_0000));
        assert_eq!(free.as_slice(), &[r(0x1000_0000, 0x10_0000), r(0x4000_0000, 0xC0_0000)]);
        assert!(carve(&mut free, 0x1000_0000, 0x1000).is_none());
    }
}
