//! Physical memory: typed addresses, range arithmetic, translation-table encoding
//! and the frame allocator. All of it is portable and host-tested; the arch layer
//! only supplies the memory the tables live in and the system registers that point
//! at them.

pub mod address;
pub mod frame_alloc;
pub mod page_table;
pub mod ranges;
pub mod tag_state;

/// The translation granule and allocation unit: 4 KiB.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// The 2 MiB block of the 4 KiB granule (one level-2 entry): the unit guest memory
/// is allocated and mapped at stage 2 in wherever it can be, the unit the tag
/// state's locks cover, and the alignment of the hypervisor's heap.
pub const BLOCK_SIZE: u64 = 1 << BLOCK_SHIFT;
/// log2 of [`BLOCK_SIZE`].
pub const BLOCK_SHIFT: u32 = 21;

pub use address::{GuestVa, Ipa, PhysAddr};

/// Rounds `addr` down to a multiple of `align` (a power of two).
pub const fn align_down(addr: u64, align: u64) -> u64 {
    addr & !(align - 1)
}

/// Rounds `addr` up to a multiple of `align` (a power of two), saturating at the top.
pub const fn align_up(addr: u64, align: u64) -> u64 {
    match addr.checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => align_down(u64::MAX, align),
    }
}
