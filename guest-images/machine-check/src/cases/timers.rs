//! Both EL1 timers (issue 10, item 4): the physical timer's interrupt, and the
//! virtual timer's interrupt level following the timer.

use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTP_TVAL_EL0, Readable, Writeable};
use fdt::Fdt;

use super::yes_no;
use crate::console::println;
use crate::exceptions::{received, reset_log};
use crate::timer::{PHYS_TIMER_INTID, VIRT_TIMER_INTID};
use crate::{gic, sysreg, timer};

/// The physical timer's condition first (ISTATUS, with the interrupt masked in
/// the timer, so nothing fires), then CNTP_TVAL_EL0 +1 ms unmasked and WFI (the
/// virtual timer, +500 ms, wakes it if PPI 30 never comes): does PPI 30 arrive?
pub fn phys_timer(_: &Fdt<'_>) {
    gic::init_for_this_cpu(0);
    CNTP_TVAL_EL0.set(timer::ms(1));
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::SET);
    // QEMU updates ISTATUS when its own timer for the deadline runs, which a
    // loaded host delays: wait for it rather than read it once.
    let istatus = timer::wait_until(200, || CNTP_CTL_EL0.is_set(CNTP_CTL_EL0::ISTATUS));
    timer::physical_off();
    println!("phys-timer: CNTP_TVAL_EL0 +1 ms with IMASK set: ISTATUS set within 200 ms: {}", yes_no(istatus));

    reset_log(0);
    gic::enable_private(0, PHYS_TIMER_INTID);
    gic::enable_private(0, VIRT_TIMER_INTID);
    sysreg::mask_irqs(false);
    timer::virtual_arm_at(timer::deadline_ms(500));
    timer::physical_arm_in(timer::ms(1));
    let deadline = timer::deadline_ms(1000);
    while received(0, PHYS_TIMER_INTID) == 0 && received(0, VIRT_TIMER_INTID) == 0 && timer::now() < deadline {
        sysreg::wfi();
    }
    sysreg::mask_irqs(true);
    timer::virtual_off();
    timer::physical_off();
    println!("phys-timer: CNTP_TVAL_EL0 +1 ms, WFI: PPI 30 arrived: {}", yes_no(received(0, PHYS_TIMER_INTID) > 0));
}

/// The virtual timer fires while PSTATE.I is masked; then it is masked in the
/// timer (IMASK), disabled, or moved to the future: is the interrupt still taken
/// once PSTATE.I is unmasked?
pub fn virt_timer_mask(_: &Fdt<'_>) {
    gic::init_for_this_cpu(0);
    let far_future = || timer::virtual_reprogram(timer::deadline_ms(60_000));
    let actions: [(&str, fn()); 3] = [
        ("IMASK set", timer::virtual_mask),
        ("ENABLE cleared", timer::virtual_off),
        ("CVAL moved 60 s ahead", far_future),
    ];
    for (action, act) in actions {
        reset_log(0);
        gic::enable_private(0, VIRT_TIMER_INTID);
        sysreg::mask_irqs(true);
        timer::virtual_arm_at(timer::now());
        let pending = timer::wait_until(200, || gic::highest_pending() == VIRT_TIMER_INTID);
        act();
        timer::spin_ms(2);
        let pending_after = gic::highest_pending() == VIRT_TIMER_INTID;
        sysreg::mask_irqs(false);
        timer::spin_ms(20);
        sysreg::mask_irqs(true);
        timer::virtual_off();
        println!(
            "virt-timer-mask: fired with PSTATE.I masked (pending: {}), then {action}: still pending {}, taken {}",
            yes_no(pending),
            yes_no(pending_after),
            received(0, VIRT_TIMER_INTID)
        );
    }
}
