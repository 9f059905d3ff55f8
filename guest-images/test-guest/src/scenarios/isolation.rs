//! Isolation peers: `bystander` (arg 11) checks that nothing of its neighbours
//! reaches it; `resetter` (arg 12) and `stopper` (arg 13) churn next to it.
//!
//! - bystander: for about 4 s of virtual-counter time, in rounds: fill up to
//!   8 MiB of free RAM with a round-specific pattern and (MTE) random IRG tags
//!   (STGP), verify data and tags, scan all of RAM for the FOREIGN magic, check
//!   that its private events 0..63 all read 0, take a virtual timer interrupt
//!   (+5 ms, WFI, IAR = 27 within 250 ms) and HV_YIELD.
//! - resetter: on every boot, fill RAM after the image with the FOREIGN magic,
//!   start vCPU 1 looping on HV_YIELD, read HV_STAT(BootCount); below 20,
//!   SYSTEM_RESET, else PASS.
//! - stopper: fill RAM with the FOREIGN magic, start vCPU 1 looping on HV_YIELD,
//!   spin 300 ms, PASS (the VM stops while vCPU 1 is loaded next to a neighbour).

use core::arch::asm;

use hv_abi::machine::VIRTUAL_TIMER_INTID;

use super::{Env, Outcome, fail, foreign};
use crate::console::{println, text};
use crate::hypercall::{self, HvError};
use crate::{gic, mte, psci, smp, sysreg};

const BYSTANDER_SECS: u64 = 4;
const FILL_LIMIT: u64 = 8 << 20;
const RESETS: u64 = 20;

/// Fills `[start, end)` granule by granule: word 0 = address ^ salt, word 1 =
/// !word 0 ^ tag, with (MTE) a random IRG tag per granule set by STGP.
///
/// # Safety
///
/// Free RAM, 16-byte aligned bounds, Tagged Normal if `mte`.
unsafe fn fill(start: u64, end: u64, salt: u64, mte: bool) {
    if mte {
        // SAFETY: per the caller's promise; STGP writes data and tag of each granule.
        unsafe {
            asm!(
                ".arch_extension memtag",
                "2: irg {t}, {p}",
                "eor {d0}, {p}, {salt}",
                "ubfx {tag}, {t}, #56, #4",
                "mvn {d1}, {d0}",
                "eor {d1}, {d1}, {tag}",
                "stgp {d0}, {d1}, [{t}]",
                "add {p}, {p}, #16",
                "cmp {p}, {end}",
                "b.lo 2b",
                p = inout(reg) start => _,
                t = out(reg) _,
                tag = out(reg) _,
                d0 = out(reg) _,
                d1 = out(reg) _,
                salt = in(reg) salt,
                end = in(reg) end,
                options(nostack),
            );
        }
    } else {
        // SAFETY: per the caller's promise; plain stores into free RAM.
        unsafe {
            asm!(
                "2: eor {d0}, {p}, {salt}",
                "mvn {d1}, {d0}",
                "stp {d0}, {d1}, [{p}], #16",
                "cmp {p}, {end}",
                "b.lo 2b",
                p = inout(reg) start => _,
                d0 = out(reg) _,
                d1 = out(reg) _,
                salt = in(reg) salt,
                end = in(reg) end,
                options(nostack),
            );
        }
    }
}

/// The first granule in `[start, end)` that does not hold what [`fill`] wrote
/// (with MTE: tag 0, or data not matching the tag LDG reads), if any.
///
/// # Safety
///
/// As for [`fill`], after it.
unsafe fn verify(start: u64, end: u64, salt: u64, mte: bool) -> Option<u64> {
    let bad: u64;
    if mte {
        // SAFETY: LDG and loads through the pointer carrying the granule's own
        // tag, which cannot take a tag check fault; reads only.
        unsafe {
            asm!(
                ".arch_extension memtag",
                "mov {bad}, xzr",
                "2: mov {t}, {p}",
                "ldg {t}, [{p}]",
                "ubfx {tag}, {t}, #56, #4",
                "cbz {tag}, 3f",
                "ldp {a}, {b}, [{t}]",
                "eor {x}, {p}, {salt}",
                "cmp {a}, {x}",
                "b.ne 3f",
                "mvn {x}, {x}",
                "eor {x}, {x}, {tag}",
                "cmp {b}, {x}",
                "b.ne 3f",
                "add {p}, {p}, #16",
                "cmp {p}, {end}",
                "b.lo 2b",
                "b 4f",
                "3: mov {bad}, {p}",
                "4:",
                p = inout(reg) start => _,
                t = out(reg) _,
                tag = out(reg) _,
                a = out(reg) _,
                b = out(reg) _,
                x = out(reg) _,
                bad = out(reg) bad,
                salt = in(reg) salt,
                end = in(reg) end,
                options(nostack, readonly),
            );
        }
    } else {
        // SAFETY: plain loads of free RAM.
        unsafe {
            asm!(
                "mov {bad}, xzr",
                "2: ldp {a}, {b}, [{p}]",
                "eor {x}, {p}, {salt}",
                "cmp {a}, {x}",
                "b.ne 3f",
                "mvn {x}, {x}",
                "cmp {b}, {x}",
                "b.ne 3f",
                "add {p}, {p}, #16",
                "cmp {p}, {end}",
                "b.lo 2b",
                "b 4f",
                "3: mov {bad}, {p}",
                "4:",
                p = inout(reg) start => _,
                a = out(reg) _,
                b = out(reg) _,
                x = out(reg) _,
                bad = out(reg) bad,
                salt = in(reg) salt,
                end = in(reg) end,
                options(nostack, readonly),
            );
        }
    }
    (bad != 0).then_some(bad)
}

/// Resets the tags of `[start, end)` to 0 (so the scan and the next VM see
/// plain memory), 16-byte aligned.
///
/// # Safety
///
/// Free RAM, Tagged Normal.
unsafe fn clear_tags(start: u64, end: u64) {
    let mut addr = start;
    while addr < end {
        // SAFETY: per the caller's promise; only tags change.
        unsafe { mte_insn::stg(addr) };
        addr += mte_insn::GRANULE;
    }
}

pub fn bystander(env: &Env) -> Outcome {
    let mte = mte::available();
    let start = env.image_end;
    let end = (start + FILL_LIMIT).min(env.ram_end()) & !15;
    if start >= end {
        fail!("no free RAM after the image");
    }
    gic::init_for_cpu(1 << VIRTUAL_TIMER_INTID);
    let deadline = sysreg::deadline_after(BYSTANDER_SECS);
    let (mut rounds, mut verified, mut interrupts, mut worst) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let salt = 0xB157_0000_0000_0000 ^ (rounds << 32) ^ sysreg::cntvct_el0();
        // SAFETY: free RAM after the image, Tagged when `mte`, aligned bounds.
        unsafe { fill(start, end, salt, mte) };
        // SAFETY: as above, filled just now.
        if let Some(bad) = unsafe { verify(start, end, salt, mte) } {
            // SAFETY: a granule of free RAM; reading its tag and data has no side effects.
            let (tag, lo) = unsafe {
                let tag = if mte { mte_insn::ldg(bad) } else { 0 };
                (tag, core::ptr::read_volatile(mte_insn::with_tag(bad, tag) as *const u64))
            };
            fail!(
                "round {rounds}: granule 0x{bad:x} lost what was written (tag {tag}, word 0x{lo:x}, want 0x{:x})",
                bad ^ salt
            );
        }
        verified += end - start;
        // SAFETY: all of RAM is mapped Normal/Tagged (identity map); reads only.
        if let Some(addr) = unsafe { foreign::scan(env.ram_base, env.ram_end(), mte) } {
            fail!("round {rounds}: FOREIGN magic found in this VM's RAM at 0x{addr:x}");
        }
        for index in 0..hv_abi::EVENTS {
            match hypercall::event_get(index) {
                Ok(0) => {}
                Ok(value) => fail!("round {rounds}: event {index} reads 0x{value:x}: another VM reached it"),
                Err(HvError(code)) => fail!("round {rounds}: HV_EVENT_GET({index}) failed: {code}"),
            }
        }
        // 250 ms: far above a time slice (10 ms), far below the 666 ms a neighbour's
        // abort storm once stalled this VM for (unlimited log lines on the console).
        match gic::timer_interrupt(5, 250) {
            Ok(wake) => {
                interrupts += 1;
                worst = worst.max(wake.ticks);
            }
            Err(missed) => fail!("round {rounds}: timer armed +5 ms, want PPI 27 within 250 ms: {missed}"),
        }
        if let Err(HvError(code)) = hypercall::yield_now() {
            fail!("round {rounds}: HV_YIELD failed: {code}");
        }
        rounds += 1;
        if sysreg::past(deadline) {
            break;
        }
    }
    if mte {
        // SAFETY: free RAM after the image, Tagged.
        unsafe { clear_tags(start, end) };
    }
    text!(
        "rounds {rounds}, bytes verified {verified} ({} KiB per round{}), timer interrupts taken {interrupts} (worst {} us), no FOREIGN magic, events 0..63 all 0",
        (end - start) >> 10,
        if mte { ", data and tags" } else { "" },
        sysreg::ticks_to_us(worst)
    )
}

/// Fills free RAM with the FOREIGN magic and starts vCPU 1 on an HV_YIELD loop.
fn churn_setup(env: &Env, name: &str) -> (u64, i64) {
    let start = env.image_end;
    let end = env.ram_end();
    // SAFETY: free RAM after the image, tag 0 (never tagged by this scenario).
    unsafe { foreign::fill(start, end) };
    let on = smp::start(1, smp::yield_forever, 0, false);
    if on != psci::SUCCESS {
        println!("{name}: CPU_ON of vCPU 1 returned {on} (is the VM configured with 2 vCPUs?)");
    }
    (end - start, on)
}

pub fn resetter(env: &Env) -> Outcome {
    let boots = match hypercall::boot_count() {
        Ok(n) => n,
        Err(HvError(code)) => fail!("HV_STAT(BootCount) failed: {code}"),
    };
    let (filled, on) = churn_setup(env, "resetter");
    println!("resetter: boot {boots}: {} KiB of FOREIGN magic, vCPU 1 CPU_ON = {on}", filled >> 10);
    if on != psci::SUCCESS {
        fail!("boot {boots}: CPU_ON of vCPU 1 returned {on}, want 0");
    }
    if boots < RESETS {
        let ret = psci::system_reset();
        fail!("boot {boots}: SYSTEM_RESET returned {ret}");
    }
    text!("{boots} SYSTEM_RESETs, each boot filled {} KiB with the FOREIGN magic and ran vCPU 1", filled >> 10)
}

pub fn stopper(env: &Env) -> Outcome {
    let (filled, on) = churn_setup(env, "stopper");
    if on != psci::SUCCESS {
        fail!("CPU_ON of vCPU 1 returned {on}, want 0");
    }
    sysreg::spin_ms(300);
    text!("{} KiB of FOREIGN magic, vCPU 1 yielding, stopping after 300 ms", filled >> 10)
}
