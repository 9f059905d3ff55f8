//! The GICv3 as a guest written for bare QEMU `virt` drives it: affinity routing
//! and Group 1 turned on in GICD_CTLR (bare QEMU resets both off), each
//! Redistributor woken through GICR_WAKER (bare QEMU's reset asleep, as the
//! architecture says), everything in Group 1, the CPU interface through
//! ICC_*_EL1 with EOImode 0. Interrupts are taken as IRQ exceptions
//! (`exceptions::handle_irq`).

use core::arch::asm;

use hv_abi::machine::{GICD_BASE, GICR_BASE, GICR_FRAME_SIZE, GICR_SGI_OFFSET};

use crate::mmio;
use crate::timer;

const GICD_CTLR: u64 = 0x0000;
const GICD_IGROUPR: u64 = 0x0080;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_ICENABLER: u64 = 0x0180;
const GICD_ISPENDR: u64 = 0x0200;
const GICD_ICPENDR: u64 = 0x0280;
const GICD_ICACTIVER: u64 = 0x0380;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ICFGR: u64 = 0x0C00;
const GICD_IROUTER: u64 = 0x6000;
/// GICD_CTLR: EnableGrp1 (non-secure, or the only Group 1 with DS = 1), ARE,
/// RWP.
const CTLR_ENABLE_GRP1: u32 = 1 << 1;
const CTLR_ARE: u32 = 1 << 4;
const CTLR_RWP: u32 = 1 << 31;

const GICR_WAKER: u64 = 0x0014;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
// In the SGI_base frame:
const GICR_IGROUPR0: u64 = 0x0080;
const GICR_ISENABLER0: u64 = 0x0100;
const GICR_ICENABLER0: u64 = 0x0180;
const GICR_ICPENDR0: u64 = 0x0280;
const GICR_ICACTIVER0: u64 = 0x0380;
const GICR_IPRIORITYR: u64 = 0x0400;

/// INTIDs at or above this are special (1023: nothing pending).
pub const SPURIOUS: u32 = 1020;
/// The priority every interrupt gets unless a case says otherwise.
pub const DEFAULT_PRIORITY: u8 = 0xA0;

fn rd_base(cpu: usize) -> u64 {
    GICR_BASE + cpu as u64 * GICR_FRAME_SIZE
}

fn sgi_base(cpu: usize) -> u64 {
    rd_base(cpu) + GICR_SGI_OFFSET
}

/// Distributor: affinity routing and Group 1 on (what was set stays set).
pub fn init_distributor() {
    let ctlr = mmio::read32(GICD_BASE + GICD_CTLR);
    mmio::write32(GICD_BASE + GICD_CTLR, ctlr | CTLR_ARE | CTLR_ENABLE_GRP1);
    timer::wait_until(100, || mmio::read32(GICD_BASE + GICD_CTLR) & CTLR_RWP == 0);
}

/// Clears vCPU `cpu`'s GICR_WAKER.ProcessorSleep and waits (bounded) for
/// ChildrenAsleep to clear, as Linux does.
pub fn wake_redistributor(cpu: usize) {
    let waker = mmio::read32(rd_base(cpu) + GICR_WAKER);
    mmio::write32(rd_base(cpu) + GICR_WAKER, waker & !WAKER_PROCESSOR_SLEEP);
    timer::wait_until(100, || mmio::read32(rd_base(cpu) + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0);
}

/// vCPU `cpu`'s SGIs and PPIs: Group 1, [`DEFAULT_PRIORITY`], disabled, not
/// pending, not active.
pub fn reset_private_interrupts(cpu: usize) {
    let sgi = sgi_base(cpu);
    mmio::write32(sgi + GICR_ICENABLER0, !0);
    mmio::write32(sgi + GICR_ICPENDR0, !0);
    mmio::write32(sgi + GICR_ICACTIVER0, !0);
    mmio::write32(sgi + GICR_IGROUPR0, !0);
    let priorities = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
    for offset in (0..32).step_by(4) {
        mmio::write32(sgi + GICR_IPRIORITYR + offset, priorities);
    }
}

/// Enables private interrupt `intid` (SGI or PPI) of vCPU `cpu`.
pub fn enable_private(cpu: usize, intid: u32) {
    mmio::write32(sgi_base(cpu) + GICR_ISENABLER0, 1 << intid);
}

/// This vCPU's CPU interface: every priority unmasked, binary point 0, EOImode 0,
/// Group 1 on.
pub fn init_cpu_interface() {
    set_priority_mask(0xFF);
    // SAFETY: CPU-interface controls only change which interrupts are signalled
    // and how they end.
    unsafe {
        asm!(
            "msr s3_0_c12_c12_3, xzr", // ICC_BPR1_EL1
            "msr s3_0_c12_c12_4, xzr", // ICC_CTLR_EL1: EOImode 0
            "msr s3_0_c12_c12_7, {one}", // ICC_IGRPEN1_EL1
            "isb",
            one = in(reg) 1u64,
            options(nostack, preserves_flags),
        )
    };
}

/// Everything a case needs for vCPU `cpu` (run on that vCPU): Distributor,
/// its Redistributor awake with all private interrupts reset, its CPU interface.
pub fn init_for_this_cpu(cpu: usize) {
    init_distributor();
    wake_redistributor(cpu);
    reset_private_interrupts(cpu);
    init_cpu_interface();
}

/// ICC_PMR_EL1.
pub fn set_priority_mask(mask: u8) {
    // SAFETY: the priority mask only decides which interrupts are signalled.
    unsafe { asm!("msr s3_0_c4_c6_0, {}", "isb", in(reg) u64::from(mask), options(nostack, preserves_flags)) };
}

/// ICC_IAR1_EL1: acknowledges the highest-priority pending Group 1 interrupt.
pub fn acknowledge() -> u32 {
    let intid: u64;
    // SAFETY: acknowledging only changes interrupt state (pending to active).
    unsafe { asm!("mrs {}, s3_0_c12_c12_0", out(reg) intid, options(nostack, preserves_flags)) };
    (intid & 0xff_ffff) as u32
}

/// ICC_EOIR1_EL1 (EOImode 0: priority drop and deactivation).
pub fn end_of_interrupt(intid: u32) {
    // SAFETY: ends an interrupt this vCPU acknowledged; no memory effect.
    unsafe { asm!("msr s3_0_c12_c12_1, {}", "isb", in(reg) u64::from(intid), options(nostack, preserves_flags)) };
}

/// ICC_HPPIR1_EL1: the highest-priority pending Group 1 interrupt, whatever the
/// priority mask and PSTATE.I (1023 if none).
pub fn highest_pending() -> u32 {
    let intid: u64;
    // SAFETY: reading HPPIR has no side effects.
    unsafe { asm!("mrs {}, s3_0_c12_c12_2", out(reg) intid, options(nostack, preserves_flags)) };
    (intid & 0xff_ffff) as u32
}

/// The value an ICC_SGI1R_EL1/ICC_ASGI1R_EL1/ICC_SGI0R_EL1 write takes: SGI
/// `intid` to the vCPUs in `targets` (Aff0 bits; Aff1-3 zero).
pub const fn sgi_value(intid: u32, targets: u16) -> u64 {
    ((intid as u64 & 0xf) << 24) | targets as u64
}

/// ICC_SGI1R_EL1.IRM: to every vCPU but the sender.
pub const SGI_TO_OTHERS: u64 = 1 << 40;

/// SGI `intid` to vCPU `cpu` through ICC_SGI1R_EL1.
pub fn send_sgi(intid: u32, cpu: usize) {
    write_sgi1r(sgi_value(intid, 1 << cpu));
}

/// Writes ICC_SGI1R_EL1.
pub fn write_sgi1r(value: u64) {
    // SAFETY: generating an SGI only makes an interrupt pending.
    unsafe { asm!("msr s3_0_c12_c11_5, {}", "isb", in(reg) value, options(nostack, preserves_flags)) };
}

/// Writes ICC_ASGI1R_EL1 (may be UNDEFINED: callers expect a fault).
pub fn write_asgi1r(value: u64) {
    // SAFETY: as for `write_sgi1r`.
    unsafe { asm!("msr s3_0_c12_c11_6, {}", "isb", in(reg) value, options(nostack, preserves_flags)) };
}

/// Writes ICC_SGI0R_EL1 (may be UNDEFINED: callers expect a fault).
pub fn write_sgi0r(value: u64) {
    // SAFETY: as for `write_sgi1r`.
    unsafe { asm!("msr s3_0_c12_c11_7, {}", "isb", in(reg) value, options(nostack, preserves_flags)) };
}

fn spi_bit(intid: u32) -> (u64, u32) {
    (4 * u64::from(intid / 32), 1 << (intid % 32))
}

/// Configures SPI `intid`: Group 1, `priority`, edge-triggered, routed to vCPU
/// `cpu` (Aff0), not pending, not active, disabled.
pub fn configure_spi(intid: u32, priority: u8, cpu: usize) {
    let (word, bit) = spi_bit(intid);
    mmio::write32(GICD_BASE + GICD_ICENABLER + word, bit);
    mmio::write32(GICD_BASE + GICD_ICPENDR + word, bit);
    mmio::write32(GICD_BASE + GICD_ICACTIVER + word, bit);
    let group = mmio::read32(GICD_BASE + GICD_IGROUPR + word);
    mmio::write32(GICD_BASE + GICD_IGROUPR + word, group | bit);
    mmio::write8(GICD_BASE + GICD_IPRIORITYR + u64::from(intid), priority);
    let cfg_addr = GICD_BASE + GICD_ICFGR + 4 * u64::from(intid / 16);
    let cfg = mmio::read32(cfg_addr);
    mmio::write32(cfg_addr, cfg | (0b10 << (2 * (intid % 16))));
    route_spi(intid, cpu);
}

/// GICD_IROUTER of SPI `intid`: to vCPU `cpu` (Aff0, Interrupt_Routing_Mode 0).
pub fn route_spi(intid: u32, cpu: usize) {
    mmio::write64(GICD_BASE + GICD_IROUTER + 8 * u64::from(intid), cpu as u64);
}

pub fn enable_spi(intid: u32) {
    let (word, bit) = spi_bit(intid);
    mmio::write32(GICD_BASE + GICD_ISENABLER + word, bit);
}

pub fn disable_spi(intid: u32) {
    let (word, bit) = spi_bit(intid);
    mmio::write32(GICD_BASE + GICD_ICENABLER + word, bit);
}

pub fn pend_spi(intid: u32) {
    let (word, bit) = spi_bit(intid);
    mmio::write32(GICD_BASE + GICD_ISPENDR + word, bit);
}

pub fn unpend_spi(intid: u32) {
    let (word, bit) = spi_bit(intid);
    mmio::write32(GICD_BASE + GICD_ICPENDR + word, bit);
}

/// Pends every SPI of `intids` that lies in one 32-INTID block, with one write.
pub fn pend_spis(intids: &[u32]) {
    let Some(&first) = intids.first() else { return };
    let (word, _) = spi_bit(first);
    let bits = intids.iter().fold(0, |bits, &intid| {
        assert_eq!(spi_bit(intid).0, word, "one ISPENDR word");
        bits | spi_bit(intid).1
    });
    mmio::write32(GICD_BASE + GICD_ISPENDR + word, bits);
}
