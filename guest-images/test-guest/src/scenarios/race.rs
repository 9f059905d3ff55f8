//! `race-writer` (arg 4) and `race-reader` (arg 5): two VMs on different CPUs
//! share a region (x3/x4). Each round uses a page neither VM has touched yet.
//!
//! Rounds `0..N` run in lockstep: the writer tags and fills page r, then the
//! reader makes its first access to it and must see the writer's tags and data.
//! Rounds `N..2N` race: once the reader says it is ready, both touch page r at
//! the same moment; the reader's tags must only ever go from 0 to the writer's
//! tag, never back, and end up all equal to it.
//!
//! `N = min(256, shared_size / 4096 / 2)`; page r is at `shared_base + r * 4096`
//! and every granule of it gets tag `r % 15 + 1`.
//!
//! Global events: 0 = page r written (writer sets r + 1), 1 = page r checked
//! (reader sets r + 1), 2 = reader ready for racing round r (reader sets r + 1).
//! All three must be 0 when the pair starts.

use core::ptr;

use super::{Env, Outcome, PAGE, PEER_TIMEOUT_SECS, fail, hv, wait_event};
use crate::console::{println, text};
use crate::hypercall;
use crate::sysreg;
use mte_insn::GRANULE;

const EVENT_WRITTEN: u64 = 0;
const EVENT_CHECKED: u64 = 1;
const EVENT_READY: u64 = 2;
const MAX_ROUNDS: u64 = 256;
const GRANULES: usize = (PAGE / GRANULE) as usize;

/// N, the number of rounds of each phase.
fn rounds(env: &Env) -> u64 {
    if env.shared_base == 0 || env.shared_size == 0 {
        fail!("no shared region (x3=0x{:x}, x4=0x{:x})", env.shared_base, env.shared_size);
    }
    let n = (env.shared_size / PAGE / 2).min(MAX_ROUNDS);
    if n == 0 {
        fail!("shared region of 0x{:x} bytes is too small (2 pages at least)", env.shared_size);
    }
    n
}

fn page(env: &Env, round: u64) -> u64 {
    env.shared_base + round * PAGE
}

fn expected_tag(round: u64) -> u8 {
    (round % 15) as u8 + 1
}

fn word(round: u64, offset: u64) -> u64 {
    0x5EED_0000_0000_0000 | (round << 32) | offset
}

/// Tags and fills page `round` with STGP (tag and data in one instruction),
/// the tag coming from IRG with every other tag excluded.
fn write_page(env: &Env, round: u64) {
    let base = page(env, round);
    let tag = expected_tag(round);
    let tagged = mte_insn::irg(base, mte_insn::exclude_all_but(tag));
    if mte_insn::tag_of(tagged) != tag {
        fail!("round {round}: IRG allowing only tag 0x{tag:x} returned 0x{tagged:x}");
    }
    for offset in (0..PAGE).step_by(GRANULE as usize) {
        // SAFETY: the shared page is mapped Tagged Normal and no Rust object lives
        // in it; granule aligned.
        unsafe { mte_insn::stgp(tagged + offset, word(round, offset), word(round, offset + 8)) };
    }
    // SAFETY: a barrier only: the tags and data are visible before the event is.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// Every granule of page `round` has the expected tag and data.
fn check_page(env: &Env, round: u64) {
    let base = page(env, round);
    let tag = expected_tag(round);
    for offset in (0..PAGE).step_by(GRANULE as usize) {
        let addr = base + offset;
        // SAFETY: the shared page is mapped Tagged Normal; LDG only reads its tag.
        let got = unsafe { mte_insn::ldg(addr) };
        if got != tag {
            fail!("round {round}: granule 0x{addr:x} has tag 0x{got:x}, want 0x{tag:x}");
        }
        let p = mte_insn::with_tag(addr, tag) as *const u64;
        // SAFETY: the pointer carries the granule's tag; no Rust object lives there.
        let (lo, hi) = unsafe { (ptr::read_volatile(p), ptr::read_volatile(p.add(1))) };
        if lo != word(round, offset) || hi != word(round, offset + 8) {
            fail!(
                "round {round}: granule 0x{addr:x} holds 0x{lo:x} 0x{hi:x}, want 0x{:x} 0x{:x}",
                word(round, offset),
                word(round, offset + 8)
            );
        }
    }
}

pub fn writer(env: &Env) -> Outcome {
    let n = rounds(env);
    for round in 0..n {
        write_page(env, round);
        hv("HV_EVENT_SET", hypercall::event_set(EVENT_WRITTEN, round + 1));
        wait_event(EVENT_CHECKED, round + 1, "the reader to check the page");
    }
    println!("race-writer: {n} lockstep rounds done");
    for round in n..2 * n {
        wait_event(EVENT_READY, round + 1, "the reader to be ready");
        write_page(env, round);
        hv("HV_EVENT_SET", hypercall::event_set(EVENT_WRITTEN, round + 1));
        wait_event(EVENT_CHECKED, round + 1, "the reader to check the page");
    }
    text!("rounds={} ({n} lockstep + {n} racing) on pages [0x{:x}, 0x{:x})", 2 * n, page(env, 0), page(env, 2 * n))
}

pub fn reader(env: &Env) -> Outcome {
    let n = rounds(env);
    for round in 0..n {
        wait_event(EVENT_WRITTEN, round + 1, "the writer to write the page");
        check_page(env, round);
        hv("HV_EVENT_SET", hypercall::event_set(EVENT_CHECKED, round + 1));
    }
    println!("race-reader: {n} lockstep rounds done");

    // Rounds in which the reader saw tag 0 before the writer was done (it touched
    // the page first), and in which one scan saw both 0 and the new tag.
    let mut early = 0u64;
    let mut mixed = 0u64;
    for round in n..2 * n {
        hv("HV_EVENT_SET", hypercall::event_set(EVENT_READY, round + 1));
        let race = race_round(env, round);
        early += u64::from(race.saw_zero);
        mixed += u64::from(race.saw_mixed);
        check_page(env, round);
        hv("HV_EVENT_SET", hypercall::event_set(EVENT_CHECKED, round + 1));
    }
    text!(
        "rounds={} ({n} lockstep + {n} racing); racing rounds where the reader touched the page first: {early}, saw it half-tagged: {mixed}",
        2 * n
    )
}

struct Race {
    saw_zero: bool,
    saw_mixed: bool,
}

/// Scans page `round`'s tags with LDG until the writer says it is done (plus one
/// full scan after that). A granule seen with the new tag must never read 0 again.
fn race_round(env: &Env, round: u64) -> Race {
    let base = page(env, round);
    let tag = expected_tag(round);
    let mut seen = [false; GRANULES];
    let mut race = Race { saw_zero: false, saw_mixed: false };
    let deadline = sysreg::deadline_after(PEER_TIMEOUT_SECS);
    loop {
        // Read before the scan, so that the last scan starts after the writer is done.
        let done = hv("HV_EVENT_GET", hypercall::event_get(EVENT_WRITTEN)) > round;
        let (mut zeros, mut tagged) = (0, 0);
        for (i, seen) in seen.iter_mut().enumerate() {
            let addr = base + i as u64 * GRANULE;
            // SAFETY: the shared page is mapped Tagged Normal; LDG only reads its tag.
            let got = unsafe { mte_insn::ldg(addr) };
            if got == tag {
                *seen = true;
                tagged += 1;
            } else if got == 0 && *seen {
                fail!("round {round}: granule 0x{addr:x} went back to tag 0 after reading 0x{tag:x}");
            } else if got == 0 {
                zeros += 1;
            } else {
                fail!("round {round}: granule 0x{addr:x} has tag 0x{got:x}, want 0 or 0x{tag:x}");
            }
        }
        if done {
            return race;
        }
        race.saw_zero |= zeros > 0;
        race.saw_mixed |= zeros > 0 && tagged > 0;
        if sysreg::past(deadline) {
            fail!("round {round}: timeout ({PEER_TIMEOUT_SECS} s) waiting for the writer (event {EVENT_WRITTEN})");
        }
        hv("HV_YIELD", hypercall::yield_now());
    }
}
