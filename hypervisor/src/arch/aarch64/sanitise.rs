//! The instructions that prepare frames before a guest sees them: zero data and
//! tags together, tags only (keeping data), or data only. All addresses are
//! physical = EL2 virtual (identity map); RAM is mapped Tagged at EL2 when MTE
//! exists, which is what makes the tag stores take effect.

use crate::mte::MteInfo;

/// Zeroes data and allocation tags of `[pa, pa + len)` in one pass: `DC GZVA` per
/// `DCZID_EL0` block, or `STZ2G` (32 bytes) when `DC GZVA` is prohibited.
/// `pa` and `len` must be multiples of 4 KiB.
pub fn zero_data_and_tags(pa: u64, len: u64, mte: &MteInfo) {
    let end = pa + len;
    let mut addr = pa;
    if !mte.zero_prohibited {
        let step = mte.zero_block_bytes;
        while addr < end {
            // SAFETY: `addr` is in RAM the hypervisor owns (a frame being prepared,
            // not mapped in any guest yet), mapped Tagged Normal at EL2.
            unsafe {
                core::arch::asm!(".arch_extension memtag", "dc gzva, {}", in(reg) addr, options(nostack, preserves_flags))
            };
            addr += step;
        }
    } else {
        while addr < end {
            // SAFETY: as above; STZ2G zeroes 32 bytes of data and their two tags.
            unsafe {
                core::arch::asm!(".arch_extension memtag", "stz2g {0}, [{0}]", in(reg) addr, options(nostack, preserves_flags))
            };
            addr += 32;
        }
    }
    complete();
}

/// Zeroes only the allocation tags of `[pa, pa + len)`, keeping the data:
/// `STGM xzr` per `GMID_EL1` block (256 bytes on QEMU), else `ST2G` per 32 bytes.
pub fn zero_tags(pa: u64, len: u64, mte: &MteInfo) {
    let end = pa + len;
    let mut addr = pa;
    match mte.tag_block_bytes {
        Some(step) => {
            while addr < end {
                // SAFETY: `addr` is owned RAM mapped Tagged at EL2; STGM with XZR
                // writes tag 0 to every granule of one GMID block, data untouched.
                unsafe {
                    core::arch::asm!(".arch_extension memtag", "stgm xzr, [{}]", in(reg) addr, options(nostack, preserves_flags))
                };
                addr += step;
            }
        }
        None => {
            while addr < end {
                // SAFETY: as above; ST2G with a tag-0 pointer writes tag 0 to two granules.
                unsafe {
                    core::arch::asm!(".arch_extension memtag", "st2g {0}, [{0}]", in(reg) addr, options(nostack, preserves_flags))
                };
                addr += 32;
            }
        }
    }
    complete();
}

/// Zeroes only data (for VMs without MTE, and shared memory at allocation):
/// `DC ZVA` per block, or plain stores when it is prohibited.
pub fn zero_data(pa: u64, len: u64, mte: &MteInfo) {
    let end = pa + len;
    let mut addr = pa;
    if !mte.zero_prohibited {
        while addr < end {
            // SAFETY: `addr` is owned RAM not mapped in any guest; DC ZVA zeroes one block.
            unsafe { core::arch::asm!("dc zva, {}", in(reg) addr, options(nostack, preserves_flags)) };
            addr += mte.zero_block_bytes;
        }
    } else {
        // SAFETY: `[pa, pa + len)` is owned, identity-mapped RAM.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0, len as usize) };
    }
    complete();
}

/// The zeroing must be complete and visible to every observer before the frame is
/// marked sanitised and mapped into a guest.
fn complete() {
    // SAFETY: a barrier only orders memory accesses.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
}
