//! Data-cache maintenance by virtual (= physical, identity-mapped) address.

use aarch64_cpu::registers::Readable;

use super::registers::CTR_EL0;

/// Smallest data-cache line size of the system, from CTR_EL0.DminLine.
fn dcache_line_size() -> u64 {
    4 << CTR_EL0.read(CTR_EL0::DminLine)
}

/// Cleans and invalidates `[start, start + len)` to the point of coherency, so that
/// an observer with caches off (a CPU or guest before its MMU is on) sees what we
/// wrote, and no clean-but-stale line later hides what it writes uncached.
pub fn clean_to_poc(start: u64, len: u64) {
    let line = dcache_line_size();
    let mut addr = start & !(line - 1);
    while addr < start + len {
        // SAFETY: DC CIVAC writes a line back and drops it; memory contents are unchanged.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier only orders memory accesses.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Invalidates `[start, start + len)` from the data caches without writing back.
///
/// # Safety
/// Any dirty data in the range is lost: only call it on memory whose current
/// contents were written with the caches off (so memory already holds them).
pub unsafe fn invalidate_to_poc(start: u64, len: u64) {
    let line = dcache_line_size();
    let mut addr = start & !(line - 1);
    while addr < start + len {
        // SAFETY: the caller guarantees no dirty line in the range holds live data.
        unsafe { core::arch::asm!("dc ivac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier only orders memory accesses.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Invalidates all instruction caches of the inner-shareable domain, after code
/// was written into frames that may have held other code before.
pub fn invalidate_instruction_caches() {
    // SAFETY: instruction-cache invalidation only drops cached instructions.
    unsafe { core::arch::asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// A guest's data-cache maintenance by set/way (DC ISW/CSW/CISW, trapped with
/// HCR_EL2.TSW), performed on this CPU as clean and invalidate: set/way
/// operations act on whole cache lines whoever owns them, and cleaning before
/// invalidating never loses anyone's data (an invalidate-only would drop dirty
/// lines of other VMs or of the hypervisor). Out-of-range set/way values are
/// CONSTRAINED UNPREDICTABLE in which line they reach, which clean+invalidate
/// makes harmless.
pub fn clean_invalidate_by_set_way(set_way: u64) {
    // SAFETY: DC CISW writes a line back and drops it; memory contents are unchanged.
    unsafe { core::arch::asm!("dc cisw, {}", "dsb sy", in(reg) set_way, options(nostack, preserves_flags)) };
}
