//! `fresh-tags` (arg 1): memory the guest touches for the first time has tag 0,
//! and tags it sets are enforced (synchronous tag check faults).

use core::ptr;

use super::{Env, Outcome, PAGE, fail};
use crate::boot::{self, Probe, dfsc, ec};
use crate::console::{println, text};
use crate::hypercall::Stats;
use mte_insn::GRANULE;

/// Checked granule by granule after the image end.
const DENSE_BYTES: u64 = 4 << 20;

pub fn run(env: &Env) -> Outcome {
    let free = env.image_end;
    let end = env.ram_end();
    if end < free + 2 * PAGE {
        fail!("RAM too small: free RAM [0x{free:x}, 0x{end:x})");
    }

    // 1. Every granule of the first 4 MiB, then one granule per page.
    let dense_end = (free + DENSE_BYTES).min(end);
    let mut granules = 0u64;
    for addr in (free..dense_end).step_by(GRANULE as usize) {
        // SAFETY: free guest RAM, mapped Tagged Normal; LDG only reads its tag.
        let tag = unsafe { mte_insn::ldg(addr) };
        if tag != 0 {
            fail!("fresh granule 0x{addr:x} has tag 0x{tag:x}, want 0 ({granules} granules were 0 before it)");
        }
        granules += 1;
    }
    let mut pages = 0u64;
    for addr in (dense_end..end).step_by(PAGE as usize) {
        // SAFETY: as above.
        let tag = unsafe { mte_insn::ldg(addr) };
        if tag != 0 {
            fail!("fresh page 0x{addr:x} has tag 0x{tag:x} in its first granule, want 0");
        }
        pages += 1;
    }
    println!(
        "fresh-tags: tag 0 in all {granules} granules of [0x{free:x}, 0x{dense_end:x}) and the first granule of {pages} pages of [0x{dense_end:x}, 0x{end:x})"
    );

    // 2. Tag a page with a random tag and use it.
    let buf = free;
    let tagged = mte_insn::irg(buf, 0);
    let tag = mte_insn::tag_of(tagged);
    if tag == 0 || mte_insn::untagged(tagged) != buf {
        fail!("IRG(0x{buf:x}) gave 0x{tagged:x}: want a non-zero tag (GCR_EL1 excludes 0), same address");
    }
    // STG over the first half, ST2G over the second.
    for offset in (0..PAGE / 2).step_by(GRANULE as usize) {
        // SAFETY: the first free page, no Rust object lives there; granule aligned.
        unsafe { mte_insn::stg(tagged + offset) };
    }
    for offset in (PAGE / 2..PAGE).step_by(2 * GRANULE as usize) {
        // SAFETY: as above.
        unsafe { mte_insn::st2g(tagged + offset) };
    }
    for offset in (0..PAGE).step_by(GRANULE as usize) {
        // SAFETY: mapped Tagged Normal, free RAM.
        let got = unsafe { mte_insn::ldg(buf + offset) };
        if got != tag {
            fail!("after ST2G of tag 0x{tag:x} over 0x{buf:x}, LDG(0x{:x}) = 0x{got:x}", buf + offset);
        }
    }
    for offset in (0..PAGE).step_by(8) {
        let p = (tagged + offset) as *mut u64;
        // SAFETY: the pointer carries the page's tag, so the access is allowed; no
        // Rust object lives in the page.
        unsafe { ptr::write_volatile(p, pattern(offset)) };
    }
    for offset in (0..PAGE).step_by(8) {
        let p = (tagged + offset) as *const u64;
        // SAFETY: as above.
        let got = unsafe { ptr::read_volatile(p) };
        if got != pattern(offset) {
            fail!("read 0x{got:x} through tagged pointer 0x{:x}, wrote 0x{:x}", tagged + offset, pattern(offset));
        }
    }
    println!(
        "fresh-tags: tag 0x{tag:x} set by STG/ST2G on page 0x{buf:x}, LDG reads it back in 256 granules, tagged accesses ok"
    );

    // 3. The wrong tag must fault, for loads and stores.
    let wrong = tag % 15 + 1;
    let offset = 0x100;
    let bad = mte_insn::with_tag(buf + offset, wrong);
    // SAFETY: free RAM; the load is expected to fault.
    let load = unsafe { boot::probe_load(bad) };
    let load_fault = check_tag_fault("load", &load, bad, false);
    println!("fresh-tags: load through wrong tag 0x{wrong:x}: {load_fault}");
    // SAFETY: free RAM; the store is expected to fault.
    let store = unsafe { boot::probe_store(bad, 0xBAD0_BAD0_BAD0_BAD0) };
    let store_fault = check_tag_fault("store", &store, bad, true);
    println!("fresh-tags: store through wrong tag 0x{wrong:x}: {store_fault}");
    // SAFETY: correctly tagged pointer into the free page.
    let kept = unsafe { ptr::read_volatile((tagged + offset) as *const u64) };
    if kept != pattern(offset) {
        fail!("the faulting store changed memory: 0x{kept:x}, want 0x{:x}", pattern(offset));
    }

    let stats = Stats::read();
    println!("fresh-tags: HV_STAT {stats}");
    text!(
        "granules={granules} pages={pages} all tag 0; tag 0x{tag:x} set and read back; wrong tag 0x{wrong:x}: load+store tag check faults (DFSC 0x11); {stats}"
    )
}

fn pattern(offset: u64) -> u64 {
    0x7A6_0000_0000 | offset
}

/// A synchronous tag check fault from EL1 at `addr`, by the probed instruction.
fn check_tag_fault(what: &str, probe: &Probe, addr: u64, write: bool) -> boot::Exception {
    let Some(fault) = probe.fault else {
        fail!("{what} through wrong-tagged 0x{addr:x} did not fault");
    };
    const ADDR_BITS: u64 = (1 << 56) - 1;
    if fault.ec() != ec::DATA_ABORT_SAME_EL
        || fault.fsc() != dfsc::TAG_CHECK
        || fault.wnr() != write
        || mte_insn::tag_of(fault.far) != mte_insn::tag_of(addr)
        || fault.far & ADDR_BITS != addr & ADDR_BITS
        || fault.elr != probe.insn
    {
        fail!(
            "{what} through 0x{addr:x} at 0x{:x}: {fault}; want EC 0x25 DFSC 0x11 WnR {} FAR tag 0x{:x}",
            probe.insn,
            u8::from(write),
            mte_insn::tag_of(addr)
        );
    }
    fault
}
