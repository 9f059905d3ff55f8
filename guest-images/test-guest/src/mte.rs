//! Thin wrappers over the MTE instructions and registers.
//!
//! The target has no `+mte` feature, so every `asm!` that uses an MTE instruction
//! starts with `.arch_extension memtag`.
//!
//! Tags live in address bits [59:56] (TCR_EL1.TBI0 = 1, so translation ignores
//! them). A granule is 16 bytes.

use core::arch::asm;

use crate::sysreg;

/// Bytes covered by one allocation tag.
pub const GRANULE: u64 = 16;

/// ID_AA64PFR1_EL1.MTE: 0 = none, 1 = instructions only (FEAT_MTE),
/// 2 = FEAT_MTE2 (tag storage, checks), 3 = FEAT_MTE3.
pub fn cpu_level() -> u64 {
    (sysreg::id_aa64pfr1_el1() >> 8) & 0xf
}

/// Whether the CPU offers tag storage and tag checks (FEAT_MTE2 or later).
pub fn available() -> bool {
    cpu_level() >= 2
}

/// GCR_EL1 value set at boot: RRND = 0 (architected IRG), tag 0 excluded so
/// IRG never returns it.
pub const GCR_EXCLUDE_TAG0: u64 = 0x1;

/// Puts the MTE control registers in a known state after the MMU is on with
/// SCTLR_EL1.ATA and TCF set: IRG excludes tag 0 and is seeded from the
/// counter, no pending tag faults, tag checks not overridden (PSTATE.TCO = 0).
pub fn init() {
    sysreg::set_gcr_el1(GCR_EXCLUDE_TAG0);
    let seed = (sysreg::cntvct_el0() & 0xffff) | 1; // a zero seed would make IRG sequential
    sysreg::set_rgsr_el1(seed << 8);
    sysreg::set_tfsr_el1(0);
    sysreg::set_tfsre0_el1(0);
    // SAFETY: clearing PSTATE.TCO only re-enables tag checks for this code, whose
    // untagged pointers match the (zero) tags of the memory Rust uses.
    unsafe { asm!(".arch_extension memtag", "msr tco, #0", options(nomem, nostack, preserves_flags)) };
}

/// `addr` with its tag bits [59:56] replaced by `tag`.
pub const fn with_tag(addr: u64, tag: u64) -> u64 {
    (addr & !(0xf << 56)) | ((tag & 0xf) << 56)
}

/// The tag bits [59:56] of `addr`.
pub const fn tag_of(addr: u64) -> u64 {
    (addr >> 56) & 0xf
}

/// `addr` without tag bits.
pub const fn untagged(addr: u64) -> u64 {
    addr & !(0xf << 56)
}

/// IRG: `addr` with a random tag inserted, never one in GCR_EL1.Exclude or in
/// `exclude` (bit n set = tag n excluded).
pub fn irg(addr: u64, exclude: u16) -> u64 {
    let tagged: u64;
    // SAFETY: IRG only computes a value (and advances RGSR_EL1); no memory access.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "irg {out}, {addr}, {exclude}",
            out = lateout(reg) tagged,
            addr = in(reg) addr,
            exclude = in(reg) u64::from(exclude),
            options(nomem, nostack, preserves_flags),
        );
    }
    tagged
}

/// LDG: the allocation tag of the granule containing `addr`.
///
/// # Safety
///
/// `addr` must be mapped as Normal memory (reading a tag has no other effect).
pub unsafe fn ldg(addr: u64) -> u64 {
    let mut value = 0u64;
    // SAFETY: LDG reads the allocation tag of a mapped granule (caller's
    // promise) into bits [59:56] of `value` and changes nothing else.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "ldg {value}, [{addr}]",
            value = inout(reg) value,
            addr = in(reg) addr,
            options(readonly, nostack, preserves_flags),
        );
    }
    tag_of(value)
}

/// STG: sets the allocation tag of the granule at `tagged` to `tagged`'s tag.
///
/// # Safety
///
/// `tagged` must be a 16-byte aligned address in Tagged Normal memory that no
/// Rust object lives in (its accesses would then fault).
pub unsafe fn stg(tagged: u64) {
    // SAFETY: per the caller's promise the granule is mapped, aligned and not
    // used by Rust objects; only its tag changes.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "stg {p}, [{p}]",
            p = in(reg) tagged,
            options(nostack, preserves_flags),
        );
    }
}

/// ST2G: like [`stg`] for the two granules (32 bytes) at `tagged`.
///
/// # Safety
///
/// As for [`stg`], for 32 bytes at a 16-byte aligned address.
pub unsafe fn st2g(tagged: u64) {
    // SAFETY: per the caller's promise both granules are mapped, aligned and not
    // used by Rust objects; only their tags change.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "st2g {p}, [{p}]",
            p = in(reg) tagged,
            options(nostack, preserves_flags),
        );
    }
}

/// STGP: stores `lo` and `hi` to the granule at `tagged` and sets its tag to
/// `tagged`'s tag, in one instruction.
///
/// # Safety
///
/// As for [`stg`].
pub unsafe fn stgp(tagged: u64, lo: u64, hi: u64) {
    // SAFETY: per the caller's promise the granule is mapped, aligned and not
    // used by Rust objects; its data and tag are overwritten.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "stgp {lo}, {hi}, [{p}]",
            p = in(reg) tagged,
            lo = in(reg) lo,
            hi = in(reg) hi,
            options(nostack, preserves_flags),
        );
    }
}

/// Fills `[start, end)` (64-byte aligned) with `pattern` and gives every 64-byte
/// block a fresh IRG tag (never one excluded by GCR_EL1), using STGP.
///
/// # Safety
///
/// The range must be Tagged Normal memory that no Rust object lives in.
pub unsafe fn fill_random_tags(start: u64, end: u64, pattern: u64) {
    debug_assert!(start.is_multiple_of(64) && end.is_multiple_of(64));
    if start >= end {
        return;
    }
    // SAFETY: per the caller's promise the range is mapped, aligned and unused by
    // Rust; the loop writes data and tags only inside it.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "2:",
            "irg {t}, {p}",
            "stgp {d}, {d}, [{t}]",
            "stgp {d}, {d}, [{t}, #16]",
            "stgp {d}, {d}, [{t}, #32]",
            "stgp {d}, {d}, [{t}, #48]",
            "add {p}, {p}, #64",
            "cmp {p}, {end}",
            "b.lo 2b",
            p = inout(reg) start => _,
            t = out(reg) _,
            d = in(reg) pattern,
            end = in(reg) end,
            options(nostack),
        );
    }
}
