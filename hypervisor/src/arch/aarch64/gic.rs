//! The physical GICv3, as far as the hypervisor needs it: the distributor and
//! this CPU's redistributor for the interrupts EL2 handles itself (the guests'
//! virtual timer, the vGIC maintenance interrupt, the console UART, and the SGI
//! CPUs use to kick each other), the EL2 view of the CPU interface (acknowledge,
//! priority drop, deactivate), and the virtual CPU interface (`ICH_*_EL2`) through
//! which virtual interrupts reach guests.
//!
//! EL2 runs with `ICC_CTLR_EL1.EOImode = 1`: writing EOIR only drops priority, and
//! deactivation is separate. That is what lets the virtual timer's physical
//! interrupt stay active while the guest handles its virtual copy: the list
//! register is hardware-linked, and the guest's EOI deactivates the physical one.

use core::sync::atomic::{AtomicU64, Ordering};

use arrayvec::ArrayVec;
use spin::Once;

use aarch64_cpu::registers::*;

use super::cpu;
// `ICC_CTLR_EL1` from `registers` (writable) shadows aarch64-cpu's read-only one.
use super::registers::{
    ICC_BPR1_EL1, ICC_CTLR_EL1, ICC_DIR_EL1, ICC_EOIR1_EL1, ICC_IAR1_EL1, ICC_IGRPEN1_EL1, ICC_PMR_EL1, ICC_SGI1R_EL1,
};
use crate::platform::redistributors;
use crate::platform::{MAX_REDISTRIBUTOR_REGIONS, PhysRange, Platform};

/// The SGI one CPU sends another to make it look at its vCPUs again.
pub const KICK_SGI: u32 = 1;
/// `ICC_IAR1_EL1` value meaning "nothing pending".
pub const SPURIOUS: u32 = 1023;

const GICD_CTLR: u64 = 0x0;
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_RWP: u32 = 1 << 31;
const GICD_IGROUPR: u64 = 0x80;
const GICD_ISENABLER: u64 = 0x100;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_IROUTER: u64 = 0x6000;
const GICR_WAKER: u64 = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
const SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = SGI_BASE + 0x80;
const GICR_ISENABLER0: u64 = SGI_BASE + 0x100;
const GICR_IPRIORITYR: u64 = SGI_BASE + 0x400;
const DEFAULT_PRIORITY: u8 = 0x80;

static DISTRIBUTOR: AtomicU64 = AtomicU64::new(0);

/// What every CPU needs to know about the physical GIC, from the DTB.
#[derive(Debug, Clone)]
pub struct GicLayout {
    pub distributor: u64,
    pub redistributor_regions: ArrayVec<PhysRange, MAX_REDISTRIBUTOR_REGIONS>,
    pub redistributor_stride: Option<u64>,
    /// The guests' virtual timer PPI (27 on both QEMU and FVP).
    pub virtual_timer: u32,
    /// The EL2 physical timer PPI (26 on QEMU and FVP): the scheduler's wake-ups.
    pub hyp_timer: u32,
    /// The vGIC maintenance interrupt PPI (25).
    pub maintenance: u32,
    /// The console UART's SPI, if the DTB gives one.
    pub console_spi: Option<u32>,
}

static LAYOUT: Once<GicLayout> = Once::new();

/// The GIC layout recorded by [`init_distributor`].
pub fn layout() -> &'static GicLayout {
    LAYOUT.get().expect("GIC used before init_distributor")
}

fn mmio_read32(addr: u64) -> u32 {
    // SAFETY: `addr` is a GIC register the DTB described, mapped Device at EL2.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn mmio_write32(addr: u64, value: u32) {
    // SAFETY: as for `mmio_read32`; GIC registers accept 32-bit writes.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

fn mmio_write8(addr: u64, value: u8) {
    // SAFETY: as for `mmio_read32`; IPRIORITYR is byte-accessible.
    unsafe { core::ptr::write_volatile(addr as *mut u8, value) }
}

fn mmio_write64(addr: u64, value: u64) {
    // SAFETY: as for `mmio_read32`; IROUTER is a 64-bit register.
    unsafe { core::ptr::write_volatile(addr as *mut u64, value) }
}

fn mmio_read64(addr: u64) -> u64 {
    // SAFETY: as for `mmio_read32`; GICR_TYPER is a 64-bit register.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

fn wait_for_distributor_writes(gicd: u64) {
    while mmio_read32(gicd + GICD_CTLR) & GICD_CTLR_RWP != 0 {
        core::hint::spin_loop();
    }
}

/// Why this CPU's GIC could not be set up.
#[derive(Debug)]
pub enum GicError {
    NoRedistributor { affinity: u64 },
}

impl core::fmt::Display for GicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRedistributor { affinity } => {
                write!(f, "no GICv3 redistributor frame has affinity {affinity:#x} (walked GICR_TYPER to Last)")
            }
        }
    }
}

/// Records the GIC layout and enables affinity routing and group 1 at the
/// distributor (once, on the boot CPU).
pub fn init_distributor(platform: &Platform) {
    let gicd = platform.gic.distributor.base;
    DISTRIBUTOR.store(gicd, Ordering::Relaxed);
    LAYOUT.call_once(|| GicLayout {
        distributor: gicd,
        redistributor_regions: platform.gic.redistributor_regions.clone(),
        redistributor_stride: platform.gic.redistributor_stride,
        virtual_timer: platform.timer.virt.intid,
        hyp_timer: platform.timer.hyp_phys.intid,
        maintenance: platform.gic.maintenance_irq.map_or(25, |ppi| ppi.intid),
        console_spi: platform.console.as_ref().and_then(|uart| uart.intid),
    });
    let ctlr = mmio_read32(gicd + GICD_CTLR);
    mmio_write32(gicd + GICD_CTLR, ctlr | GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
    wait_for_distributor_writes(gicd);
}

/// Routes SPI `intid` to this CPU as a group-1 interrupt and enables it.
pub fn enable_spi_here(intid: u32) {
    let gicd = DISTRIBUTOR.load(Ordering::Relaxed);
    let (word, bit) = ((intid / 32) as u64 * 4, 1u32 << (intid % 32));
    mmio_write32(gicd + GICD_IGROUPR + word, mmio_read32(gicd + GICD_IGROUPR + word) | bit);
    mmio_write8(gicd + GICD_IPRIORITYR + intid as u64, DEFAULT_PRIORITY);
    mmio_write64(gicd + GICD_IROUTER + intid as u64 * 8, cpu::mpidr_affinity());
    mmio_write32(gicd + GICD_ISENABLER + word, bit);
    wait_for_distributor_writes(gicd);
}

/// Sets up this CPU: wakes its redistributor (found by walking GICR_TYPER),
/// enables the kick SGI, the maintenance interrupt, the virtual and EL2 timer PPIs as
/// group 1, turns on the EL2 CPU interface with `EOImode = 1`, and enables the
/// virtual CPU interface. Returns the redistributor frame.
pub fn init_cpu() -> Result<u64, GicError> {
    let layout = layout();
    let private_interrupts = [KICK_SGI, layout.maintenance, layout.virtual_timer, layout.hyp_timer];
    let affinity = cpu::mpidr_affinity();
    let frame = redistributors::find(&layout.redistributor_regions, layout.redistributor_stride, mmio_read64, affinity)
        .ok_or(GicError::NoRedistributor { affinity })?;
    let gicr = frame.base;
    mmio_write32(gicr + GICR_WAKER, mmio_read32(gicr + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
    while mmio_read32(gicr + GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {
        core::hint::spin_loop();
    }
    let mut mask = 0u32;
    for &intid in &private_interrupts {
        mask |= 1 << intid;
        mmio_write8(gicr + GICR_IPRIORITYR + intid as u64, DEFAULT_PRIORITY);
    }
    mmio_write32(gicr + GICR_IGROUPR0, mmio_read32(gicr + GICR_IGROUPR0) | mask);
    mmio_write32(gicr + GICR_ISENABLER0, mask);

    // SAFETY: enabling the system-register CPU interface for EL2 (SRE) and for
    // EL1 (Enable).
    unsafe {
        ICC_SRE_EL2.modify(ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::ENABLE::SET);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
    let mut ctlr = ICC_CTLR_EL1.extract();
    ctlr.modify(ICC_CTLR_EL1::EOImode::SET);
    // SAFETY: priority mask open, EOImode 1, group 1 on; and the virtual CPU
    // interface on. Interrupts stay masked in PSTATE at EL2.
    unsafe {
        ICC_PMR_EL1.write(ICC_PMR_EL1::Priority.val(0xFF));
        ICC_BPR1_EL1.write(ICC_BPR1_EL1::BinaryPoint.val(0));
        ICC_CTLR_EL1.set(ctlr.get());
        ICC_IGRPEN1_EL1.write(ICC_IGRPEN1_EL1::Enable::SET);
        ICH_HCR_EL2.write(ICH_HCR_EL2::En::SET);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
    Ok(gicr)
}

/// Acknowledges the highest-priority pending physical interrupt (or [`SPURIOUS`]).
pub fn acknowledge() -> u32 {
    ICC_IAR1_EL1.read(ICC_IAR1_EL1::INTID) as u32
}

/// Drops the running priority after [`acknowledge`] (EOImode 1: not a deactivation).
pub fn priority_drop(intid: u32) {
    // The EOI of an interrupt this CPU acknowledged.
    ICC_EOIR1_EL1.write(ICC_EOIR1_EL1::INTID.val(intid as u64));
}

/// Deactivates a physical interrupt the hypervisor handled itself.
pub fn deactivate(intid: u32) {
    // Deactivating an interrupt this CPU acknowledged and priority-dropped.
    ICC_DIR_EL1.write(ICC_DIR_EL1::INTID.val(intid as u64));
}

/// Sends [`KICK_SGI`] to the CPU with MPIDR affinity `target`.
pub fn kick(target: u64) {
    let aff0 = target & 0xF;
    let sgi = ICC_SGI1R_EL1::TargetList.val(1 << aff0)
        + ICC_SGI1R_EL1::Aff1.val(target >> 8)
        + ICC_SGI1R_EL1::Aff2.val(target >> 16)
        + ICC_SGI1R_EL1::Aff3.val(target >> 32)
        + ICC_SGI1R_EL1::INTID.val(KICK_SGI as u64);
    // SAFETY: generating a group-1 SGI only interrupts the target CPU; the
    // barriers publish this CPU's writes before it and complete it.
    unsafe {
        core::arch::asm!("dsb ishst", options(nostack, preserves_flags));
        ICC_SGI1R_EL1.write(sgi);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// Number of list registers (`ICH_VTR_EL2.ListRegs + 1`).
pub fn list_register_count() -> usize {
    (ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) + 1) as usize
}

/// Reads `ICH_LR<n>_EL2`.
pub fn read_list_register(n: usize) -> u64 {
    match n {
        0 => ICH_LR0_EL2.get(),
        1 => ICH_LR1_EL2.get(),
        2 => ICH_LR2_EL2.get(),
        3 => ICH_LR3_EL2.get(),
        4 => ICH_LR4_EL2.get(),
        5 => ICH_LR5_EL2.get(),
        6 => ICH_LR6_EL2.get(),
        7 => ICH_LR7_EL2.get(),
        8 => ICH_LR8_EL2.get(),
        9 => ICH_LR9_EL2.get(),
        10 => ICH_LR10_EL2.get(),
        11 => ICH_LR11_EL2.get(),
        12 => ICH_LR12_EL2.get(),
        13 => ICH_LR13_EL2.get(),
        14 => ICH_LR14_EL2.get(),
        15 => ICH_LR15_EL2.get(),
        _ => 0,
    }
}

/// Writes `ICH_LR<n>_EL2`.
pub fn write_list_register(n: usize, value: u64) {
    // List registers only affect the virtual interrupts of the vCPU that runs
    // next on this CPU, which is the one whose state the caller manages.
    match n {
        0 => ICH_LR0_EL2.set(value),
        1 => ICH_LR1_EL2.set(value),
        2 => ICH_LR2_EL2.set(value),
        3 => ICH_LR3_EL2.set(value),
        4 => ICH_LR4_EL2.set(value),
        5 => ICH_LR5_EL2.set(value),
        6 => ICH_LR6_EL2.set(value),
        7 => ICH_LR7_EL2.set(value),
        8 => ICH_LR8_EL2.set(value),
        9 => ICH_LR9_EL2.set(value),
        10 => ICH_LR10_EL2.set(value),
        11 => ICH_LR11_EL2.set(value),
        12 => ICH_LR12_EL2.set(value),
        13 => ICH_LR13_EL2.set(value),
        14 => ICH_LR14_EL2.set(value),
        15 => ICH_LR15_EL2.set(value),
        _ => {}
    }
}

/// The virtual CPU interface state of a vCPU (its view of ICC_PMR/BPR/IGRPEN etc.
/// and active priorities), switched with the vCPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct VirtualInterfaceState {
    pub vmcr: u64,
    pub ap1r0: u64,
}

impl VirtualInterfaceState {
    pub fn save(&mut self) {
        self.vmcr = ICH_VMCR_EL2.get();
        self.ap1r0 = ICH_AP1R0_EL2.get();
    }

    pub fn restore(&self) {
        // Restoring the vCPU's own virtual interface state before it runs.
        ICH_VMCR_EL2.set(self.vmcr);
        ICH_AP1R0_EL2.set(self.ap1r0);
    }
}

/// Enables (or disables) the underflow maintenance interrupt, raised when at most
/// one list register holds an interrupt, so more pending ones can be loaded.
pub fn set_underflow_interrupt(enabled: bool) {
    // Only changes when the maintenance interrupt fires.
    ICH_HCR_EL2.modify(if enabled { ICH_HCR_EL2::UIE::SET } else { ICH_HCR_EL2::UIE::CLEAR });
}
