//! The generic timer: the virtual counter for deadlines, the EL1 virtual and
//! physical timers for interrupts.

use aarch64_cpu::registers::{
    CNTFRQ_EL0, CNTP_CTL_EL0, CNTP_TVAL_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTVCT_EL0, Readable, Writeable,
};

pub use hv_abi::machine::{PHYS_TIMER_INTID, VIRTUAL_TIMER_INTID as VIRT_TIMER_INTID};

/// The virtual counter.
pub fn now() -> u64 {
    CNTVCT_EL0.get()
}

/// Counter ticks in `ms` milliseconds.
pub fn ms(ms: u64) -> u64 {
    CNTFRQ_EL0.get() * ms / 1000
}

/// The counter value `ms` milliseconds from now.
pub fn deadline_ms(ms_from_now: u64) -> u64 {
    now() + ms(ms_from_now)
}

/// Spins until `condition` holds or `ms` milliseconds have passed; whether it held.
pub fn wait_until(ms_limit: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = deadline_ms(ms_limit);
    loop {
        if condition() {
            return true;
        }
        if now() >= deadline {
            return condition();
        }
        core::hint::spin_loop();
    }
}

/// Spins for `ms` milliseconds.
pub fn spin_ms(ms_to_spin: u64) {
    wait_until(ms_to_spin, || false);
}

/// Arms the EL1 physical timer `ticks` ahead (CNTP_TVAL_EL0), unmasked.
pub fn physical_arm_in(ticks: u64) {
    CNTP_TVAL_EL0.set(ticks);
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Turns the EL1 physical timer off.
pub fn physical_off() {
    CNTP_CTL_EL0.set(0);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Arms the EL1 virtual timer at counter value `cval`, unmasked.
pub fn virtual_arm_at(cval: u64) {
    CNTV_CVAL_EL0.set(cval);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Sets the virtual timer's IMASK, leaving it enabled.
pub fn virtual_mask() {
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::SET);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Moves the virtual timer's compare value (enabled, unmasked) to `cval`.
pub fn virtual_reprogram(cval: u64) {
    CNTV_CVAL_EL0.set(cval);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Turns the EL1 virtual timer off.
pub fn virtual_off() {
    CNTV_CTL_EL0.set(0);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}
