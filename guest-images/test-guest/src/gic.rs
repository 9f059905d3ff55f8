//! The (virtual) GICv3 as the guest drives it: the Distributor at `GICD_BASE`,
//! the Redistributors from `GICR_BASE` (`GICR_FRAME_SIZE` each: RD_base, then
//! SGI_base), both where `hv_abi::machine` puts them, and the CPU interface
//! through ICC_*_EL1. The guest never takes interrupts as
//! exceptions (PSTATE.I stays masked): it waits with WFI and acknowledges by
//! polling ICC_IAR1_EL1. EOImode is 0 (EOIR both drops priority and deactivates).

use core::arch::asm;

use hv_abi::machine::{GICD_BASE, GICR_BASE, GICR_FRAME_SIZE, GICR_SGI_OFFSET, VIRTUAL_TIMER_INTID};

use crate::sysreg;

pub const GICD_CTLR: u64 = 0x0000;
pub const GICD_TYPER: u64 = 0x0004;
pub const GICD_IGROUPR: u64 = 0x0080;
pub const GICD_ISENABLER: u64 = 0x0100;
pub const GICD_ICENABLER: u64 = 0x0180;
pub const GICD_ISPENDR: u64 = 0x0200;
pub const GICD_ICPENDR: u64 = 0x0280;
pub const GICD_ICACTIVER: u64 = 0x0380;
pub const GICD_IPRIORITYR: u64 = 0x0400;
pub const GICD_IROUTER: u64 = 0x6000;

pub const GICR_TYPER: u64 = 0x0008;
pub const GICR_WAKER: u64 = 0x0014;
// In the SGI_base frame:
pub const GICR_IGROUPR0: u64 = 0x0080;
pub const GICR_ISENABLER0: u64 = 0x0100;
pub const GICR_ICENABLER0: u64 = 0x0180;
pub const GICR_ISPENDR0: u64 = 0x0200;
pub const GICR_ICPENDR0: u64 = 0x0280;
pub const GICR_ICACTIVER0: u64 = 0x0380;
pub const GICR_IPRIORITYR: u64 = 0x0400;
pub const GICR_IGRPMODR0: u64 = 0x0D00;

/// The priority the guest gives every interrupt.
pub const PRIORITY: u8 = 0xA0;

pub fn rd_base(cpu: u64) -> u64 {
    GICR_BASE + cpu * GICR_FRAME_SIZE
}

pub fn sgi_base(cpu: u64) -> u64 {
    rd_base(cpu) + GICR_SGI_OFFSET
}

// MMIO accessors are single plain LDR/STR instructions (asm, so the compiler
// cannot pick a pair or a writeback form): the hypervisor can only emulate
// accesses that report a valid instruction syndrome.

/// 32-bit MMIO read.
pub fn read32(addr: u64) -> u32 {
    let value: u32;
    // SAFETY: callers pass addresses in the GIC windows, mapped Device; reads of
    // GIC registers have no side effects on memory.
    unsafe { asm!("ldr {v:w}, [{a}]", v = out(reg) value, a = in(reg) addr, options(nostack, preserves_flags)) };
    value
}

/// 32-bit MMIO write.
pub fn write32(addr: u64, value: u32) {
    // SAFETY: callers pass addresses in the GIC windows (Device, emulated by the
    // hypervisor); GIC state is not memory any Rust object lives in.
    unsafe { asm!("str {v:w}, [{a}]", v = in(reg) value, a = in(reg) addr, options(nostack, preserves_flags)) };
}

/// 64-bit MMIO write (GICD_IROUTER).
pub fn write64(addr: u64, value: u64) {
    // SAFETY: as for `write32`.
    unsafe { asm!("str {v}, [{a}]", v = in(reg) value, a = in(reg) addr, options(nostack, preserves_flags)) };
}

/// 64-bit MMIO read (GICR_TYPER, GICD_IROUTER).
pub fn read64(addr: u64) -> u64 {
    let value: u64;
    // SAFETY: as for `read32`.
    unsafe { asm!("ldr {v}, [{a}]", v = out(reg) value, a = in(reg) addr, options(nostack, preserves_flags)) };
    value
}

/// 8-bit MMIO write (priority bytes).
pub fn write8(addr: u64, value: u8) {
    // SAFETY: as for `write32`.
    unsafe {
        asm!("strb {v:w}, [{a}]", v = in(reg) u32::from(value), a = in(reg) addr, options(nostack, preserves_flags))
    };
}

/// 8-bit MMIO read.
pub fn read8(addr: u64) -> u8 {
    let value: u32;
    // SAFETY: as for `read32`.
    unsafe { asm!("ldrb {v:w}, [{a}]", v = out(reg) value, a = in(reg) addr, options(nostack, preserves_flags)) };
    value as u8
}

/// Number of SPIs the Distributor implements (GICD_TYPER.ITLinesNumber).
pub fn spi_count() -> u32 {
    let lines = read32(GICD_BASE + GICD_TYPER) & 0x1f;
    (32 * (lines + 1)).min(1020) - 32
}

/// Number of Redistributors: walks GICR_TYPER until Last (bit 4), at most `max`.
pub fn redistributor_count(max: u64) -> u64 {
    for cpu in 0..max {
        if read64(rd_base(cpu) + GICR_TYPER) & (1 << 4) != 0 {
            return cpu + 1;
        }
    }
    max
}

/// Distributor: affinity routing and Group 1 on; every SPI disabled, not pending,
/// inactive, Group 1, priority [`PRIORITY`], routed to vCPU 0.
pub fn init_distributor() {
    let spis = spi_count();
    for block in 1..=spis / 32 {
        let offset = 4 * u64::from(block);
        write32(GICD_BASE + GICD_ICENABLER + offset, !0);
        write32(GICD_BASE + GICD_ICPENDR + offset, !0);
        write32(GICD_BASE + GICD_ICACTIVER + offset, !0);
        write32(GICD_BASE + GICD_IGROUPR + offset, !0);
    }
    let prio = u32::from_ne_bytes([PRIORITY; 4]);
    for intid in (32..32 + spis).step_by(4) {
        write32(GICD_BASE + GICD_IPRIORITYR + u64::from(intid), prio);
    }
    for intid in 32..32 + spis {
        write64(GICD_BASE + GICD_IROUTER + 8 * u64::from(intid), 0);
    }
    // ARE (bit 4) is fixed on under the hypervisor; bare QEMU needs it set.
    let ctlr = read32(GICD_BASE + GICD_CTLR);
    write32(GICD_BASE + GICD_CTLR, ctlr | (1 << 4) | 2);
    wait_rwp();
}

fn wait_rwp() {
    for _ in 0..100_000 {
        if read32(GICD_BASE + GICD_CTLR) & (1 << 31) == 0 {
            return;
        }
    }
}

/// vCPU `cpu`'s Redistributor: awake, SGIs/PPIs Group 1, priority [`PRIORITY`],
/// disabled, not pending, inactive, then `enable` (bit n = INTID n) enabled.
pub fn init_redistributor(cpu: u64, enable: u32) {
    let rd = rd_base(cpu);
    let waker = read32(rd + GICR_WAKER);
    write32(rd + GICR_WAKER, waker & !(1 << 1));
    for _ in 0..100_000 {
        if read32(rd + GICR_WAKER) & (1 << 2) == 0 {
            break;
        }
    }
    let sgi = sgi_base(cpu);
    write32(sgi + GICR_ICENABLER0, !0);
    write32(sgi + GICR_ICPENDR0, !0);
    write32(sgi + GICR_ICACTIVER0, !0);
    write32(sgi + GICR_IGROUPR0, !0);
    write32(sgi + GICR_IGRPMODR0, 0);
    let prio = u32::from_ne_bytes([PRIORITY; 4]);
    for intid in (0..32).step_by(4) {
        write32(sgi + GICR_IPRIORITYR + intid, prio);
    }
    write32(sgi + GICR_ISENABLER0, enable);
}

/// This vCPU's CPU interface: priority mask open, EOImode 0, Group 1 on, no
/// active priorities; then acknowledges whatever is pending.
pub fn init_cpu_interface() {
    // SAFETY: CPU-interface controls only change which interrupts are signalled;
    // PSTATE.I stays masked, so none is taken as an exception.
    unsafe {
        asm!(
            "msr s3_0_c4_c6_0, {pmr}",  // ICC_PMR_EL1
            "msr s3_0_c12_c12_3, xzr",  // ICC_BPR1_EL1
            "msr s3_0_c12_c12_4, xzr",  // ICC_CTLR_EL1: EOImode 0
            "msr s3_0_c12_c12_7, {one}", // ICC_IGRPEN1_EL1
            "isb",
            pmr = in(reg) 0xFFu64,
            one = in(reg) 1u64,
            options(nostack, preserves_flags),
        )
    };
    drain(4096);
}

/// Distributor, this vCPU's Redistributor (with `enable`) and CPU interface.
pub fn init_for_cpu(enable: u32) {
    init_distributor();
    init_redistributor(sysreg::cpu_index(), enable);
    init_cpu_interface();
}

/// ICC_IAR1_EL1: acknowledges the highest-priority pending Group 1 interrupt.
pub fn ack() -> u32 {
    let intid: u64;
    // SAFETY: reading IAR only changes interrupt state (pending -> active).
    unsafe { asm!("mrs {}, s3_0_c12_c12_0", out(reg) intid, options(nostack, preserves_flags)) };
    (intid & 0xff_ffff) as u32
}

/// ICC_EOIR1_EL1 (EOImode 0: priority drop and deactivation).
pub fn eoi(intid: u32) {
    // SAFETY: ends an interrupt this vCPU acknowledged; no memory effect.
    unsafe { asm!("msr s3_0_c12_c12_1, {}", "isb", in(reg) u64::from(intid), options(nostack, preserves_flags)) };
}

/// Acknowledges and ends everything pending (at most `max`); returns how many.
pub fn drain(max: usize) -> usize {
    for n in 0..max {
        let intid = ack();
        if intid >= 1020 {
            return n;
        }
        eoi(intid);
    }
    max
}

/// ICC_SGI1R_EL1 value for SGI `intid` to the vCPUs in `targets` (Aff0 bits,
/// Aff1..3 = 0).
pub const fn sgi1r(intid: u32, targets: u16) -> u64 {
    ((intid as u64 & 0xf) << 24) | targets as u64
}

/// Writes ICC_SGI1R_EL1.
pub fn send_sgi_raw(value: u64) {
    // SAFETY: generating an SGI only makes an interrupt pending for some vCPUs.
    unsafe { asm!("msr s3_0_c12_c11_5, {}", "isb", in(reg) value, options(nostack, preserves_flags)) };
}

/// SGI `intid` to vCPU `cpu`.
pub fn send_sgi(intid: u32, cpu: u64) {
    send_sgi_raw(sgi1r(intid, 1 << cpu));
}

/// Arms the virtual timer to fire at counter value `cval`.
pub fn arm_timer_at(cval: u64) {
    sysreg::set_virtual_timer(cval, 1);
}

/// Turns the virtual timer off.
pub fn disarm_timer() {
    sysreg::set_virtual_timer(0, 0);
}

/// How a wait for an interrupt ended.
#[derive(Debug, Clone, Copy)]
pub struct Wake {
    /// Counter ticks from the start of the wait to the acknowledge.
    pub ticks: u64,
    /// WFIs executed.
    pub wfis: u64,
    /// Other interrupts acknowledged (and ended) on the way.
    pub others: u64,
}

/// A wait for an interrupt that failed: what the last acknowledge read (the
/// awaited INTID itself if it arrived, but only after the deadline).
#[derive(Debug, Clone, Copy)]
pub struct Missed {
    pub intid: u32,
    pub got: u32,
    pub wake: Wake,
}

impl core::fmt::Display for Missed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let us = sysreg::ticks_to_us(self.wake.ticks);
        if self.got == self.intid {
            write!(f, "INTID {} arrived only after {us} us, past the deadline", self.intid)
        } else {
            write!(
                f,
                "no INTID {} after {us} us (IAR read {}, {} WFIs, {} other interrupts)",
                self.intid, self.got, self.wake.wfis, self.wake.others
            )
        }
    }
}

/// WFI until ICC_IAR1_EL1 gives `intid`, by `deadline`. On success the
/// interrupt is acknowledged but not ended (for the timer: disarm it, then
/// EOI); an `intid` acknowledged after the deadline is a failure too (still
/// acknowledged: the caller ends it).
pub fn wait_for(intid: u32, deadline: u64) -> Result<Wake, Missed> {
    let start = sysreg::cntvct_el0();
    let mut wake = Wake { ticks: 0, wfis: 0, others: 0 };
    loop {
        let got = ack();
        let now = sysreg::cntvct_el0();
        wake.ticks = now - start;
        if got == intid {
            return if now <= deadline { Ok(wake) } else { Err(Missed { intid, got, wake }) };
        }
        if got < 1020 {
            eoi(got);
            wake.others += 1;
            continue;
        }
        if now > deadline {
            return Err(Missed { intid, got, wake });
        }
        sysreg::wfi();
        wake.wfis += 1;
    }
}

/// Arms the timer `delay_ms` ahead, WFIs until PPI 27 arrives (within
/// `timeout_ms` of arming), disarms and EOIs it. Returns the wait from arming
/// to the acknowledge.
pub fn timer_interrupt(delay_ms: u64, timeout_ms: u64) -> Result<Wake, Missed> {
    let now = sysreg::cntvct_el0();
    arm_timer_at(now + sysreg::ms_to_ticks(delay_ms));
    let result = wait_for(VIRTUAL_TIMER_INTID, now + sysreg::ms_to_ticks(timeout_ms));
    disarm_timer();
    if matches!(result, Ok(_) | Err(Missed { got: VIRTUAL_TIMER_INTID, .. })) {
        eoi(VIRTUAL_TIMER_INTID);
    }
    result
}
