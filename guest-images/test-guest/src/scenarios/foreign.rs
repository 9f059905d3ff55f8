//! The FOREIGN pattern: VMs that attack or churn (hostile, resetter, stopper)
//! fill their RAM with the 8-byte magic `b"FOREIGN!"`; bystanders scan all of
//! their RAM for it. If it ever shows up in a bystander, another VM's frames
//! (or stale tables) reached it.
//!
//! The magic itself never appears in this image: it is only ever built in a
//! register, from two halves that are opaque to the compiler, so a bystander
//! can scan its own image and stack too.

use core::arch::asm;
use core::hint::black_box;

const KEY: u64 = 0x5A5A_A5A5_C3C3_3C3C;
/// MAGIC ^ KEY (MAGIC = 0x2147_4E49_4552_4F46).
const MAGIC_XOR_KEY: u64 = 0x2147_4E49_4552_4F46 ^ KEY;

/// Fills `[start, end)` (8-byte aligned) with the magic.
///
/// # Safety
///
/// The range must be mapped RAM no Rust object lives in, with tag 0 if Tagged.
pub unsafe fn fill(start: u64, end: u64) {
    if start >= end {
        return;
    }
    // SAFETY: per the caller's promise the range is free RAM; only it is written.
    unsafe {
        asm!(
            "eor {m}, {a}, {b}",
            "2: str {m}, [{p}], #8",
            "cmp {p}, {end}",
            "b.lo 2b",
            m = out(reg) _,
            a = in(reg) black_box(MAGIC_XOR_KEY),
            b = in(reg) black_box(KEY),
            p = inout(reg) start => _,
            end = in(reg) end,
            options(nostack),
        );
    }
}

/// The first address in `[start, end)` (16-byte aligned) holding the magic, if
/// any. With `mte`, tag checks are suspended for the scan (PSTATE.TCO), since
/// the memory may carry any tags.
///
/// # Safety
///
/// The range must be mapped Normal memory (reading it has no side effects).
pub unsafe fn scan(start: u64, end: u64, mte: bool) -> Option<u64> {
    if start >= end {
        return None;
    }
    let found: u64;
    if mte {
        // The loop's untagged loads are not tag checked; checks resume after it.
        mte_insn::set_tag_check_override(true);
    }
    // SAFETY: plain loads of mapped RAM (caller's promise).
    unsafe {
        asm!(
            "eor {m}, {a}, {b}",
            "mov {found}, xzr",
            "2: ldp {x}, {y}, [{p}], #16",
            "cmp {x}, {m}",
            "b.eq 3f",
            "cmp {y}, {m}",
            "b.eq 4f",
            "cmp {p}, {end}",
            "b.lo 2b",
            "b 5f",
            "3: sub {found}, {p}, #16",
            "b 5f",
            "4: sub {found}, {p}, #8",
            "5:",
            m = out(reg) _,
            x = out(reg) _,
            y = out(reg) _,
            found = out(reg) found,
            a = in(reg) black_box(MAGIC_XOR_KEY),
            b = in(reg) black_box(KEY),
            p = inout(reg) start => _,
            end = in(reg) end,
            options(nostack, readonly),
        );
    }
    if mte {
        // Tag checks again: the guest's own pointers carry tag 0, matching the
        // memory Rust uses.
        mte_insn::set_tag_check_override(false);
    }
    (found != 0).then_some(found)
}
