//! The physical frame allocator: a buddy allocator over every free 4 KiB frame.
//!
//! Allocations are naturally aligned powers of two (what 2 MiB stage-2 blocks need).
//! Running out is an [`OutOfMemory`] value for the caller to report, never a hang.

use buddy_system_allocator::FrameAllocator;

use super::{PAGE_SHIFT, PAGE_SIZE, PhysAddr};
use crate::platform::PhysRange;

/// Buddy orders up to 2^31 frames (8 TiB).
const ORDERS: usize = 32;

/// No free block of the requested size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory {
    pub requested_bytes: u64,
    pub free_bytes: u64,
}

impl core::fmt::Display for OutOfMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "out of physical memory: {} KiB requested, {} KiB free (possibly fragmented)",
            self.requested_bytes / 1024,
            self.free_bytes / 1024
        )
    }
}

/// Hands out physical frames from the free RAM ranges.
pub struct PhysFrameAllocator {
    buddy: FrameAllocator<ORDERS>,
    total_frames: u64,
    free_frames: u64,
}

impl PhysFrameAllocator {
    /// An allocator owning exactly the frames in `free` (page aligned, disjoint).
    /// Needs a working heap: the buddy free lists are B-trees.
    pub fn new(free: &[PhysRange]) -> Self {
        let mut buddy = FrameAllocator::new();
        let mut total_frames = 0;
        for range in free {
            let start = range.base >> PAGE_SHIFT;
            let end = (range.base + range.size) >> PAGE_SHIFT;
            if end > start {
                buddy.add_frame(start as usize, end as usize);
                total_frames += end - start;
            }
        }
        Self { buddy, total_frames, free_frames: total_frames }
    }

    /// Allocates `bytes` (rounded up to a power-of-two number of frames), naturally
    /// aligned to that size. Returns its physical address.
    pub fn allocate(&mut self, bytes: u64) -> Result<PhysAddr, OutOfMemory> {
        let frames = frames_for(bytes);
        let out_of_memory = OutOfMemory { requested_bytes: frames << PAGE_SHIFT, free_bytes: self.free_bytes() };
        let first = self.buddy.alloc(frames as usize).ok_or(out_of_memory)?;
        self.free_frames -= frames;
        Ok(PhysAddr::new((first as u64) << PAGE_SHIFT))
    }

    /// Returns an allocation made by [`Self::allocate`] with the same `bytes`.
    pub fn free(&mut self, pa: PhysAddr, bytes: u64) {
        let frames = frames_for(bytes);
        self.buddy.dealloc((pa.as_u64() >> PAGE_SHIFT) as usize, frames as usize);
        self.free_frames += frames;
    }

    /// Bytes not currently allocated.
    pub fn free_bytes(&self) -> u64 {
        self.free_frames * PAGE_SIZE
    }

    /// Bytes this allocator was given.
    pub fn total_bytes(&self) -> u64 {
        self.total_frames * PAGE_SIZE
    }
}

fn frames_for(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE).max(1).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::ranges::free_ranges;

    #[test]
    fn allocations_are_aligned_and_exhaustion_is_an_error() {
        let free = [PhysRange { base: 0x4000_0000, size: 0x40_0000 }];
        let mut frames = PhysFrameAllocator::new(&free);
        let block = frames.allocate(0x20_0000).unwrap();
        assert!(block.is_aligned(0x20_0000));
        let small = frames.allocate(100).unwrap();
        assert_eq!(frames.free_bytes(), 0x40_0000 - 0x20_0000 - 0x1000);
        let err = frames.allocate(0x20_0000).unwrap_err();
        assert_eq!(err.requested_bytes, 0x20_0000);
        frames.free(small, 100);
        assert!(frames.allocate(0x20_0000).unwrap().is_aligned(0x20_0000));
    }

    /// Drains the allocator built like the hypervisor builds it and checks no frame
    /// it hands out touches an excluded range.
    #[test]
    fn no_frame_overlaps_an_exclusion() {
        let ram = [PhysRange { base: 0x4000_0000, size: 0x100_0000 }];
        let excluded = [
            PhysRange { base: 0x4020_0000, size: 0x5_3000 }, // image
            PhysRange { base: 0x40E0_0100, size: 0x2000 },   // DTB (unaligned)
            PhysRange { base: 0x4000_0000, size: 0x1_0000 }, // /memreserve/
        ];
        let free = free_ranges(&ram, &excluded).unwrap();
        let mut frames = PhysFrameAllocator::new(&free);
        let total = frames.total_bytes();
        let mut seen = 0;
        while let Ok(pa) = frames.allocate(PAGE_SIZE) {
            let page = PhysRange { base: pa.as_u64(), size: PAGE_SIZE };
            assert!(excluded.iter().all(|e| !page.overlaps(e)), "frame {pa:#x} overlaps an exclusion");
            assert!(page.base >= ram[0].base && page.end() <= ram[0].end());
            seen += PAGE_SIZE;
        }
        assert_eq!(seen, total);
        assert_eq!(total, 0x100_0000 - 0x1_0000 - 0x5_3000 - 0x3000);
    }

    /// The allocator built from the real device trees the way the hypervisor builds
    /// it (RAM minus image, DTB and every reserved range) never hands out excluded memory.
    #[test]
    fn real_device_trees_exclusions_hold() {
        use crate::platform::{Platform, test_support::fixture};
        for (name, dtb_address, image_address) in
            [("qemu-virt-mte-smp4.dtb", 0x4800_0000, 0x4020_0000), ("fvp-base-revc.dtb", 0x8200_0000, 0x8800_0000)]
        {
            let blob = fixture(name);
            let platform = Platform::from_fdt(dtb_address, &blob).unwrap();
            let mut excluded = vec![PhysRange { base: image_address, size: 0x9_c000 }, platform.fdt_range];
            excluded.extend(platform.reserved.iter().copied());
            let free = free_ranges(&platform.ram, &excluded).unwrap();
            for range in &free {
                assert!(excluded.iter().all(|e| !range.overlaps(e)), "{name}: {range:?} overlaps an exclusion");
                assert!(platform.ram.iter().any(|r| r.base <= range.base && range.end() <= r.end()));
            }
            let frames = PhysFrameAllocator::new(&free);
            let ram: u64 = platform.ram.iter().map(|r| r.size).sum();
            let excluded_in_ram: u64 = excluded
                .iter()
                .filter(|e| platform.ram.iter().any(|r| r.overlaps(e)))
                .map(|e| e.size.next_multiple_of(PAGE_SIZE))
                .sum();
            assert_eq!(frames.total_bytes(), ram - excluded_in_ram, "{name}");
        }
        // FVP specifics: the /memreserve/ at the bottom of the first bank is not free.
        let blob = fixture("fvp-base-revc.dtb");
        let platform = Platform::from_fdt(0x8200_0000, &blob).unwrap();
        let free = free_ranges(&platform.ram, &platform.reserved).unwrap();
        assert_eq!(free[0].base, 0x8001_0000);
        assert_eq!(free.last().unwrap(), &PhysRange { base: 0x8_8000_0000, size: 0x8000_0000 });
    }
}
