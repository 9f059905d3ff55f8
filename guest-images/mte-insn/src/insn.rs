//! The tag instructions. The targets have no `+mte` feature, so every `asm!`
//! starts with `.arch_extension memtag`.
//!
//! None of them needs MTE enabled to assemble, but each is UNDEFINED on a CPU
//! without FEAT_MTE (and LDG/STG see tag storage only with FEAT_MTE2): callers
//! check the CPU (or, under Linux, `HWCAP2_MTE`) before the first one.
//!
//! The memory-writing ones are `unsafe`: they change allocation tags, after which
//! every pointer carrying another tag faults there, so their memory must not hold
//! anything Rust reaches through ordinary references. "Tagged memory" below means
//! memory mapped Tagged Normal (MAIR `0xF0`; under Linux, a `PROT_MTE` mapping).

use core::arch::asm;

use crate::tag_of;

/// IRG: `addr` with a random logical tag inserted, never one excluded by
/// `GCR_EL1.Exclude` (under Linux, outside the prctl include mask) or by
/// `exclude` (bit n set = tag n excluded). Advances `RGSR_EL1`; reads no memory.
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

/// LDG: the allocation tag of the granule containing `addr` (whatever `addr`'s own
/// logical tag).
///
/// # Safety
///
/// `addr` must be mapped Normal memory (reading a tag has no other effect; for
/// memory that is not Tagged it reads 0).
pub unsafe fn ldg(addr: u64) -> u8 {
    let mut value = addr;
    // SAFETY: LDG reads the allocation tag of a mapped granule (caller's promise)
    // into bits [59:56] of `value` and changes nothing else.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "ldg {value}, [{value}]",
            value = inout(reg) value,
            options(readonly, nostack, preserves_flags),
        );
    }
    tag_of(value)
}

/// STG: sets the allocation tag of the granule at `tagged` to `tagged`'s logical tag.
///
/// # Safety
///
/// `tagged` must be a 16-byte aligned address in tagged memory that no Rust object
/// lives in.
pub unsafe fn stg(tagged: u64) {
    // SAFETY: per the caller's promise the granule is mapped, aligned and not used
    // by Rust objects; only its tag changes.
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
/// `tagged`'s logical tag, in one instruction.
///
/// # Safety
///
/// As for [`stg`].
pub unsafe fn stgp(tagged: u64, lo: u64, hi: u64) {
    // SAFETY: per the caller's promise the granule is mapped, aligned and not used
    // by Rust objects; its data and tag are overwritten.
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
/// block a fresh [`irg`] tag (never one excluded by `GCR_EL1`), using STGP.
///
/// # Safety
///
/// The range must be tagged memory that no Rust object lives in.
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

/// LDGM (EL1 only): the tags of the `4 << GMID_EL1.BS`-byte block at `addr`
/// (aligned down), granule n in bits `[4n+3:4n]` (see [`crate::tag_word_shift`]).
///
/// # Safety
///
/// The block must be mapped Normal memory, and the caller must run at EL1 or
/// above (LDGM is UNDEFINED at EL0).
pub unsafe fn ldgm(addr: u64) -> u64 {
    let mut tags: u64 = 0;
    // SAFETY: LDGM reads the tags of a mapped block (caller's promise); no memory is written.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "ldgm {tags}, [{addr}]",
            tags = inout(reg) tags,
            addr = in(reg) addr,
            options(nostack, readonly, preserves_flags),
        );
    }
    tags
}

/// STGM (EL1 only): sets the tags of the `4 << GMID_EL1.BS`-byte block at `addr`
/// (aligned down) from `tags`, laid out as [`ldgm`] reads them.
///
/// # Safety
///
/// As for [`stg`], for the whole block, and the caller must run at EL1 or above.
pub unsafe fn stgm(addr: u64, tags: u64) {
    // SAFETY: per the caller's promise the block is tagged memory no Rust object
    // lives in; only its tags change.
    unsafe {
        asm!(
            ".arch_extension memtag",
            "stgm {tags}, [{addr}]",
            tags = in(reg) tags,
            addr = in(reg) addr,
            options(nostack, preserves_flags),
        );
    }
}

/// Sets PSTATE.TCO (`true`: tag checks suppressed for this context) or clears it
/// (tag checks apply again). Changes no memory: with checks on, an access through
/// a pointer whose tag does not match takes a tag-check fault instead of completing.
pub fn set_tag_check_override(suppress: bool) {
    // SAFETY: writing PSTATE.TCO only decides whether later accesses are tag
    // checked; it accesses no memory.
    unsafe {
        if suppress {
            asm!(".arch_extension memtag", "msr tco, #1", options(nomem, nostack, preserves_flags));
        } else {
            asm!(".arch_extension memtag", "msr tco, #0", options(nomem, nostack, preserves_flags));
        }
    }
}
