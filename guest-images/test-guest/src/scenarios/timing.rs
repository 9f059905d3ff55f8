//! `sleeper` (arg 14) and `spinner` (arg 15): a vCPU that sleeps in WFI on its
//! timer must wake at its deadline even when it shares its physical CPU with a
//! vCPU that never exits.
//!
//! - sleeper: 20 rounds of arm CNTV +5 ms, WFI with PSTATE.I masked, IAR = 27
//!   within 1 s (EOI it); reports the worst wake latency. With FEAT_WFxT, 10
//!   rounds of WFIT +10 ms, each back within 200 ms. And one WFI with no timer
//!   armed but a self-SGI pending: it must return at once (within 100 ms).
//! - spinner: busy-loops for 3 s of counter time without any exit (no
//!   hypercall, no MMIO, no WFI), then PASS.

use core::arch::asm;

use hv_abi::machine::VIRTUAL_TIMER_INTID;

use super::{Env, Outcome, fail};
use crate::console::{println, text};
use crate::{gic, sysreg};

const ROUNDS: u64 = 20;
const WFIT_ROUNDS: u64 = 10;
const SGI: u32 = 1;

/// WFIT with an absolute virtual-counter deadline.
pub fn wfit(deadline: u64) {
    // SAFETY: WFIT only waits (until an interrupt is pending or the deadline);
    // encoded by hand (WFIT x0 = 0xD5031020) for assemblers without +wfxt.
    unsafe { asm!("dsb sy", ".inst 0xd5031020", in("x0") deadline, options(nostack, preserves_flags)) };
}

/// WFET with an absolute virtual-counter deadline.
pub fn wfet(deadline: u64) {
    // SAFETY: WFET only waits (for an event or the deadline); WFET x0 = 0xD5031000.
    unsafe { asm!(".inst 0xd5031000", in("x0") deadline, options(nostack, preserves_flags)) };
}

/// Runs `wait(deadline)` (WFIT or WFET) with the virtual timer armed 1 s later
/// as a backstop, so a wait that ignores its deadline ends (late) instead of
/// hanging the guest. PPI 27 must be enabled. Returns the ticks waited.
pub fn bounded_wait(wait: fn(u64), deadline: u64) -> u64 {
    let start = sysreg::cntvct_el0();
    gic::arm_timer_at(deadline + sysreg::ms_to_ticks(1000));
    wait(deadline);
    let took = sysreg::cntvct_el0() - start;
    gic::disarm_timer();
    let _ = gic::drain(64);
    took
}

pub fn sleeper(_: &Env) -> Outcome {
    gic::init_for_cpu((1 << VIRTUAL_TIMER_INTID) | (1 << SGI));
    let mut worst = 0u64;
    for round in 0..ROUNDS {
        match gic::timer_interrupt(5, 1000) {
            Ok(wake) => worst = worst.max(wake.ticks),
            Err(missed) => fail!("round {round}: timer armed +5 ms, want PPI 27 within 1 s: {missed}"),
        }
    }
    let worst_us = sysreg::ticks_to_us(worst);
    println!("sleeper: {ROUNDS} timer wakes, worst {worst_us} us from arming (+5 ms)");

    let wfit_detail = if sysreg::has_wfxt() {
        let mut worst_wfit = 0u64;
        for round in 0..WFIT_ROUNDS {
            let took = bounded_wait(wfit, sysreg::cntvct_el0() + sysreg::ms_to_ticks(10));
            if took > sysreg::ms_to_ticks(200) {
                fail!("WFIT round {round}: +10 ms deadline returned after {} us (> 200 ms)", sysreg::ticks_to_us(took));
            }
            worst_wfit = worst_wfit.max(took);
        }
        text!("; {WFIT_ROUNDS} WFIT +10 ms, worst {} us", sysreg::ticks_to_us(worst_wfit))
    } else {
        text!("; no FEAT_WFxT (WFIT rounds skipped)")
    };

    gic::disarm_timer();
    gic::send_sgi(SGI, sysreg::cpu_index());
    let start = sysreg::cntvct_el0();
    sysreg::wfi();
    let took = sysreg::cntvct_el0() - start;
    let got = gic::ack();
    if got < 1020 {
        gic::eoi(got);
    }
    if took > sysreg::ms_to_ticks(100) {
        fail!("WFI with SGI {SGI} pending took {} us to return (want at once)", sysreg::ticks_to_us(took));
    }
    if got != SGI {
        fail!("after WFI with SGI {SGI} pending, ICC_IAR1_EL1 read {got}");
    }
    text!(
        "{ROUNDS} timer wakes (+5 ms), worst latency {worst_us} us{wfit_detail}; WFI with an SGI pending returned in {} us",
        sysreg::ticks_to_us(took)
    )
}

pub fn spinner(_: &Env) -> Outcome {
    let end = sysreg::deadline_after(3);
    let mut spins = 0u64;
    while !sysreg::past(end) {
        spins += 1;
        core::hint::spin_loop();
    }
    text!("spun for 3 s of counter time without an exit ({spins} iterations)")
}
