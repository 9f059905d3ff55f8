//! Timers and WFx storms: thousands of WFI with the timer interrupt pending
//! (each must return at once), a timer wake-up with PSTATE.I masked, WFE with
//! the event register set and with the counter event stream, WFIT/WFET with
//! past and near deadlines (FEAT_WFxT): +10 ms must return within 200 ms.

use hv_abi::machine::VIRTUAL_TIMER_INTID;

use super::{Ctx, Verdict, bad, good};
use crate::console::text;
use crate::scenarios::timing::{bounded_wait, wfet, wfit};
use crate::{gic, sysreg};

pub fn wfi_storm(_: &Ctx) -> Verdict {
    const N: u64 = 3000;
    gic::init_for_cpu(1 << VIRTUAL_TIMER_INTID);
    // Condition met at once and for good: the interrupt stays pending.
    gic::arm_timer_at(0);
    let start = sysreg::cntvct_el0();
    for _ in 0..N {
        sysreg::wfi();
    }
    let took = sysreg::cntvct_el0() - start;
    let got = gic::ack();
    gic::disarm_timer();
    if got < 1020 {
        gic::eoi(got);
    }
    gic::init_for_cpu(0);
    if got != VIRTUAL_TIMER_INTID {
        bad!("after {N} WFIs with the timer condition met, ICC_IAR1_EL1 read {got}");
    }
    if took > sysreg::ms_to_ticks(20_000) {
        bad!("{N} WFIs with an interrupt pending took {} ms", sysreg::ticks_to_us(took) / 1000);
    }
    good!("{N} WFIs with PPI 27 pending all returned ({} us each on average)", sysreg::ticks_to_us(took) / N)
}

pub fn wfi_blocking_storm(_: &Ctx) -> Verdict {
    const N: u64 = 300;
    gic::init_for_cpu(1 << VIRTUAL_TIMER_INTID);
    let delay = sysreg::cntfrq_el0() / 5000; // 200 us
    let (mut early, mut worst) = (0, 0);
    for round in 0..N {
        let fire = sysreg::cntvct_el0() + delay;
        gic::arm_timer_at(fire);
        let result = gic::wait_for(VIRTUAL_TIMER_INTID, fire + sysreg::ms_to_ticks(1000));
        let now = sysreg::cntvct_el0();
        gic::disarm_timer();
        match result {
            Ok(_) => gic::eoi(VIRTUAL_TIMER_INTID),
            Err(missed) => {
                if missed.got == VIRTUAL_TIMER_INTID {
                    gic::eoi(VIRTUAL_TIMER_INTID);
                }
                gic::init_for_cpu(0);
                bad!("round {round}: timer armed +200 us, want PPI 27 within 1 s: {missed}");
            }
        }
        early += u64::from(now < fire);
        worst = worst.max(now.saturating_sub(fire));
    }
    gic::init_for_cpu(0);
    if early != 0 {
        bad!("{early} of {N} timer interrupts were acknowledged before the timer was due");
    }
    good!("{N} WFIs each blocked until a timer 200 us ahead, worst {} us late", sysreg::ticks_to_us(worst))
}

pub fn wfi_wake(_: &Ctx) -> Verdict {
    gic::init_for_cpu(1 << VIRTUAL_TIMER_INTID);
    let mut worst = 0;
    for round in 0..5 {
        match gic::timer_interrupt(5, 1000) {
            Ok(wake) => worst = worst.max(wake.ticks),
            Err(missed) => {
                gic::init_for_cpu(0);
                bad!("round {round}: timer armed +5 ms, want PPI 27 within 1 s: {missed}");
            }
        }
    }
    gic::init_for_cpu(0);
    good!("5 WFI wake-ups on the timer (+5 ms, PSTATE.I masked), worst {} us", sysreg::ticks_to_us(worst))
}

pub fn wfe_storm(_: &Ctx) -> Verdict {
    const N: u64 = 2000;
    let start = sysreg::cntvct_el0();
    for _ in 0..N {
        // SAFETY: SEVL sets the local event register, so the WFE returns at once.
        unsafe { core::arch::asm!("sevl", "wfe", options(nomem, nostack, preserves_flags)) };
    }
    // The event stream (CNTKCTL_EL1.EVNTEN, virtual counter bit 12 or so)
    // wakes bare WFEs even if WFE is not trapped.
    sysreg::set_cntkctl_el1((1 << 2) | (8 << 4));
    let bare_start = sysreg::cntvct_el0();
    for _ in 0..200 {
        // SAFETY: WFE only waits for an event (the event stream provides them).
        unsafe { core::arch::asm!("wfe", options(nomem, nostack, preserves_flags)) };
    }
    let bare = sysreg::cntvct_el0() - bare_start;
    sysreg::set_cntkctl_el1(0);
    let took = bare_start - start;
    if bare > sysreg::ms_to_ticks(20_000) {
        bad!("200 bare WFEs with the event stream on took {} ms", sysreg::ticks_to_us(bare) / 1000);
    }
    good!(
        "{N} SEVL+WFE in {} us, 200 bare WFEs (event stream) in {} us",
        sysreg::ticks_to_us(took),
        sysreg::ticks_to_us(bare)
    )
}

pub fn wfit_past(_: &Ctx) -> Verdict {
    if !sysreg::has_wfxt() {
        return good!("skipped (no FEAT_WFxT)");
    }
    gic::init_for_cpu(1 << VIRTUAL_TIMER_INTID);
    let start = sysreg::cntvct_el0();
    for deadline in [0, 1, start / 2, start.saturating_sub(1000)] {
        bounded_wait(wfit, deadline);
    }
    let took = sysreg::cntvct_el0() - start;
    gic::init_for_cpu(0);
    if took > sysreg::ms_to_ticks(100) {
        bad!("4 WFITs with past deadlines took {} us", sysreg::ticks_to_us(took));
    }
    good!("4 WFITs with past deadlines returned in {} us", sysreg::ticks_to_us(took))
}

fn near(name: &str, wait: fn(u64)) -> Verdict {
    if !sysreg::has_wfxt() {
        return good!("skipped (no FEAT_WFxT)");
    }
    gic::init_for_cpu(1 << VIRTUAL_TIMER_INTID);
    let mut worst = 0;
    for round in 0..5 {
        let took = bounded_wait(wait, sysreg::cntvct_el0() + sysreg::ms_to_ticks(10));
        if took > sysreg::ms_to_ticks(200) {
            gic::init_for_cpu(0);
            return Err(text!(
                "round {round}: {name} +10 ms returned after {} us (> 200 ms; a 1 s timer backstop ended it)",
                sysreg::ticks_to_us(took)
            ));
        }
        worst = worst.max(took);
    }
    gic::init_for_cpu(0);
    good!("5 {name} +10 ms, worst {} us", sysreg::ticks_to_us(worst))
}

pub fn wfit_near(_: &Ctx) -> Verdict {
    near("WFIT", wfit)
}

pub fn wfet_near(_: &Ctx) -> Verdict {
    near("WFET", wfet)
}
