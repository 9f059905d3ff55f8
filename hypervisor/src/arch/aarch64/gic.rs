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

use super::cpu;
use super::registers::{read_sysreg, write_sysreg};
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
    /// The guests' EL1 physical timer PPI (the non-secure physical timer, 30).
    pub physical_timer: u32,
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
        physical_timer: platform.timer.nonsecure_phys.intid,
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
    let private_interrupts =
        [KICK_SGI, layout.maintenance, layout.virtual_timer, layout.physical_timer, layout.hyp_timer];
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

    let sre = read_sysreg!("icc_sre_el2");
    // SAFETY: enabling the system-register CPU interface for EL2 and (SRE bit 0,
    // Enable bit 3) for EL1.
    unsafe {
        write_sysreg!("icc_sre_el2", sre | 0b1001);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
    let ctlr = read_sysreg!("icc_ctlr_el1");
    // SAFETY: priority mask open, EOImode 1, group 1 on; and the virtual CPU
    // interface on. Interrupts stay masked in PSTATE at EL2.
    unsafe {
        write_sysreg!("icc_pmr_el1", 0xFF);
        write_sysreg!("icc_bpr1_el1", 0);
        write_sysreg!("icc_ctlr_el1", ctlr | (1 << 1));
        write_sysreg!("icc_igrpen1_el1", 1);
        write_sysreg!("ich_hcr_el2", 1);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
    Ok(gicr)
}

/// Acknowledges the highest-priority pending physical interrupt (or [`SPURIOUS`]).
pub fn acknowledge() -> u32 {
    (read_sysreg!("icc_iar1_el1") & 0xFF_FFFF) as u32
}

/// Drops the running priority after [`acknowledge`] (EOImode 1: not a deactivation).
pub fn priority_drop(intid: u32) {
    // SAFETY: EOI of an interrupt this CPU acknowledged.
    unsafe { write_sysreg!("icc_eoir1_el1", intid as u64) };
}

/// Deactivates a physical interrupt the hypervisor handled itself.
pub fn deactivate(intid: u32) {
    // SAFETY: deactivating an interrupt this CPU acknowledged and priority-dropped.
    unsafe { write_sysreg!("icc_dir_el1", intid as u64) };
}

/// Sends [`KICK_SGI`] to the CPU with MPIDR affinity `target`.
pub fn kick(target: u64) {
    let aff0 = target & 0xF;
    let value = (1u64 << aff0)
        | (((target >> 8) & 0xFF) << 16)
        | (((target >> 16) & 0xFF) << 32)
        | (((target >> 32) & 0xFF) << 48)
        | ((KICK_SGI as u64) << 24);
    // SAFETY: generating a group-1 SGI only interrupts the target CPU.
    unsafe {
        core::arch::asm!("dsb ishst", options(nostack, preserves_flags));
        write_sysreg!("icc_sgi1r_el1", value);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// Number of list registers (`ICH_VTR_EL2.ListRegs + 1`).
pub fn list_register_count() -> usize {
    ((read_sysreg!("ich_vtr_el2") & 0x1F) + 1) as usize
}

/// Reads `ICH_LR<n>_EL2`.
pub fn read_list_register(n: usize) -> u64 {
    match n {
        0 => read_sysreg!("ich_lr0_el2"),
        1 => read_sysreg!("ich_lr1_el2"),
        2 => read_sysreg!("ich_lr2_el2"),
        3 => read_sysreg!("ich_lr3_el2"),
        4 => read_sysreg!("ich_lr4_el2"),
        5 => read_sysreg!("ich_lr5_el2"),
        6 => read_sysreg!("ich_lr6_el2"),
        7 => read_sysreg!("ich_lr7_el2"),
        8 => read_sysreg!("ich_lr8_el2"),
        9 => read_sysreg!("ich_lr9_el2"),
        10 => read_sysreg!("ich_lr10_el2"),
        11 => read_sysreg!("ich_lr11_el2"),
        12 => read_sysreg!("ich_lr12_el2"),
        13 => read_sysreg!("ich_lr13_el2"),
        14 => read_sysreg!("ich_lr14_el2"),
        15 => read_sysreg!("ich_lr15_el2"),
        _ => 0,
    }
}

/// Writes `ICH_LR<n>_EL2`.
pub fn write_list_register(n: usize, value: u64) {
    // SAFETY: list registers only affect the virtual interrupts of the vCPU that
    // runs next on this CPU, which is the one whose state the caller manages.
    unsafe {
        match n {
            0 => write_sysreg!("ich_lr0_el2", value),
            1 => write_sysreg!("ich_lr1_el2", value),
            2 => write_sysreg!("ich_lr2_el2", value),
            3 => write_sysreg!("ich_lr3_el2", value),
            4 => write_sysreg!("ich_lr4_el2", value),
            5 => write_sysreg!("ich_lr5_el2", value),
            6 => write_sysreg!("ich_lr6_el2", value),
            7 => write_sysreg!("ich_lr7_el2", value),
            8 => write_sysreg!("ich_lr8_el2", value),
            9 => write_sysreg!("ich_lr9_el2", value),
            10 => write_sysreg!("ich_lr10_el2", value),
            11 => write_sysreg!("ich_lr11_el2", value),
            12 => write_sysreg!("ich_lr12_el2", value),
            13 => write_sysreg!("ich_lr13_el2", value),
            14 => write_sysreg!("ich_lr14_el2", value),
            15 => write_sysreg!("ich_lr15_el2", value),
            _ => {}
        }
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
        self.vmcr = read_sysreg!("ich_vmcr_el2");
        self.ap1r0 = read_sysreg!("ich_ap1r0_el2");
    }

    pub fn restore(&self) {
        // SAFETY: restoring the vCPU's own virtual interface state before it runs.
        unsafe {
            write_sysreg!("ich_vmcr_el2", self.vmcr);
            write_sysreg!("ich_ap1r0_el2", self.ap1r0);
        }
    }
}

/// Enables (or disables) the underflow maintenance interrupt, raised when at most
/// one list register holds an interrupt, so more pending ones can be loaded.
pub fn set_underflow_interrupt(enabled: bool) {
    let hcr = read_sysreg!("ich_hcr_el2");
    let hcr = if enabled { hcr | (1 << 1) } else { hcr & !(1 << 1) };
    // SAFETY: only changes when the maintenance interrupt fires.
    unsafe { write_sysreg!("ich_hcr_el2", hcr) };
}
