//! `leak-writer` (arg 2) and `leak-checker` (arg 3): tags and data a VM leaves
//! behind must not reach the next VM that gets its frames.

use core::ptr;

use super::{Env, Outcome, PAGE, fail};
use crate::console::{println, text};
use crate::hypercall::Stats;
use mte_insn::GRANULE;

/// What the writer fills RAM with.
const PATTERN: u64 = 0xA5A5_A5A5_A5A5_A5A5;

/// Fills all RAM after the image with 0xA5 bytes and random non-zero tags.
pub fn writer(env: &Env) -> Outcome {
    let start = env.image_end;
    let end = env.ram_end() & !63;
    if start >= end {
        fail!("no free RAM after the image end 0x{start:x}");
    }
    // SAFETY: free RAM after the image, mapped Tagged Normal, 64-byte aligned
    // bounds; no Rust object lives there.
    unsafe { mte_insn::fill_random_tags(start, end, PATTERN) };

    // Spot-check one granule per page: a non-zero tag and the pattern.
    let mut pages = 0u64;
    let mut tag_seen = [false; 16];
    for addr in (start..end).step_by(PAGE as usize) {
        // SAFETY: mapped Tagged Normal, free RAM.
        let tag = unsafe { mte_insn::ldg(addr) };
        if tag == 0 {
            fail!("granule 0x{addr:x} has tag 0 after IRG+STGP (tag 0 is excluded)");
        }
        tag_seen[tag as usize] = true;
        // SAFETY: the pointer carries the granule's tag; no Rust object lives there.
        let data = unsafe { ptr::read_volatile(mte_insn::with_tag(addr, tag) as *const u64) };
        if data != PATTERN {
            fail!("granule 0x{addr:x} holds 0x{data:x}, wrote 0x{PATTERN:x}");
        }
        pages += 1;
    }
    let distinct = tag_seen.iter().filter(|&&seen| seen).count();
    println!("leak-writer: HV_STAT {}", Stats::read());
    text!(
        "granules={} in [0x{start:x}, 0x{end:x}) filled with 0xa5 and random non-zero tags ({distinct} distinct in {pages} sampled pages)",
        (end - start) / GRANULE
    )
}

/// Every granule must have tag 0 (including the image's) and, after the image,
/// data 0.
pub fn checker(env: &Env) -> Outcome {
    for addr in (env.image_start..env.image_end).step_by(GRANULE as usize) {
        // SAFETY: the image, mapped Tagged Normal; LDG only reads its tag.
        let tag = unsafe { mte_insn::ldg(addr) };
        if tag != 0 {
            fail!("image granule 0x{addr:x} has tag 0x{tag:x}, want 0");
        }
    }
    let start = env.image_end;
    let end = env.ram_end() & !(GRANULE - 1);
    let mut granules = 0u64;
    for addr in (start..end).step_by(GRANULE as usize) {
        // SAFETY: free RAM, mapped Tagged Normal.
        let tag = unsafe { mte_insn::ldg(addr) };
        if tag != 0 {
            fail!("first bad address 0x{addr:x}: tag 0x{tag:x}, want 0 ({granules} clean granules before it)");
        }
        // SAFETY: tag 0 matches the untagged pointer; no Rust object lives there.
        let (lo, hi) =
            unsafe { (ptr::read_volatile(addr as *const u64), ptr::read_volatile((addr + 8) as *const u64)) };
        if lo != 0 || hi != 0 {
            fail!("first bad address 0x{addr:x}: data 0x{lo:x} 0x{hi:x}, want 0 ({granules} clean granules before it)");
        }
        granules += 1;
    }
    let stats = Stats::read();
    println!("leak-checker: HV_STAT {stats}");
    text!("granules={granules} in [0x{start:x}, 0x{end:x}) all tag 0 and data 0, image tags 0; {stats}")
}
