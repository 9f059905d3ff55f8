//! The hypervisor's global memory: the heap and the frame allocator, set up once
//! on the primary CPU from the platform's RAM minus everything that is in use.

use buddy_system_allocator::LockedHeap;
use spin::{Mutex, MutexGuard, Once};

use crate::mm::BLOCK_SIZE;
use crate::mm::frame_alloc::PhysFrameAllocator;
use crate::mm::ranges::{self, MAX_FREE_RANGES};
use crate::platform::PhysRange;

/// Bytes of heap for the hypervisor's own data structures.
pub const HEAP_BYTES: u64 = 8 * 1024 * 1024;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

static FRAMES: Once<Mutex<PhysFrameAllocator>> = Once::new();

/// A summary of what the memory setup did, for the boot report.
#[derive(Debug, Clone, Copy)]
pub struct MemorySummary {
    pub heap: PhysRange,
    pub frames_total: u64,
}

/// Why memory could not be set up.
#[derive(Debug)]
pub enum MemoryError {
    Ranges(ranges::RangeError),
    NoRoomForHeap,
}

impl core::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Ranges(e) => write!(f, "{e}"),
            Self::NoRoomForHeap => write!(f, "no free RAM range can hold the {} MiB heap", HEAP_BYTES >> 20),
        }
    }
}

/// Takes the heap from free RAM, then gives every other free frame to the frame
/// allocator. `exclusions` must list everything in use: the image, the DTB, the
/// platform's reserved ranges and anything a boot loader handed over.
pub fn init(ram: &[PhysRange], exclusions: &[PhysRange]) -> Result<MemorySummary, MemoryError> {
    let mut free = ranges::free_ranges(ram, exclusions).map_err(MemoryError::Ranges)?;
    // Block-aligned: the heap takes whole 2 MiB blocks and leaves the rest of its
    // range in whole blocks for guest memory.
    let heap = ranges::carve(&mut free, HEAP_BYTES, BLOCK_SIZE).ok_or(MemoryError::NoRoomForHeap)?;
    // SAFETY: `heap` is RAM no one else uses (carved from the free ranges), identity
    // mapped read-write, and handed to the heap exactly once.
    unsafe { HEAP.lock().init(heap.base as usize, heap.size as usize) };
    debug_assert!(free.len() <= MAX_FREE_RANGES);
    let frames = PhysFrameAllocator::new(&free);
    let summary = MemorySummary { heap, frames_total: frames.total_bytes() };
    FRAMES.call_once(|| Mutex::new(frames));
    Ok(summary)
}

/// The frame allocator. Panics if called before [`init`] (a hypervisor bug).
pub fn frames() -> MutexGuard<'static, PhysFrameAllocator> {
    FRAMES.get().expect("frame allocator used before memory::init").lock()
}
