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

use aarch64_cpu::registers::*;
use arrayvec::ArrayVec;
use spin::Once;
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

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

const DEFAULT_PRIORITY: u8 = 0x80;

register_bitfields! [u32,
    /// Distributor Control Register, as the hypervisor (Non-secure, or the only
    /// security state) sees it.
    GICD_CTLR [
        /// Register Write Pending: an earlier write to CTLR or ICENABLER has not
        /// taken effect yet.
        RWP OFFSET(31) NUMBITS(1) [],
        /// Affinity routing (ARE_NS; ARE with a single security state).
        ARE OFFSET(4) NUMBITS(1) [],
        /// Group 1 interrupts on (EnableGrp1A; EnableGrp1 with a single security state).
        EnableGrp1 OFFSET(1) NUMBITS(1) [],
    ],
    /// Redistributor power management.
    GICR_WAKER [
        /// The redistributor's interface to the CPU is quiescent.
        ChildrenAsleep OFFSET(2) NUMBITS(1) [],
        /// 1: the CPU is asleep and the redistributor must not forward interrupts.
        ProcessorSleep OFFSET(1) NUMBITS(1) [],
    ]
];

register_structs! {
    /// The distributor registers the hypervisor uses (GICD_*). IROUTER<n> and
    /// IPRIORITYR<n> are indexed by INTID (IROUTER<0..=31> are reserved).
    DistributorRegisters {
        (0x0000 => ctlr: ReadWrite<u32, GICD_CTLR::Register>),
        (0x0004 => _reserved0),
        (0x0080 => igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => isenabler: [ReadWrite<u32>; 32]),
        (0x0180 => _reserved1),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 1020]),
        (0x07FC => _reserved2),
        (0x6000 => irouter: [ReadWrite<u64>; 1020]),
        (0x7FE0 => @END),
    },

    /// A redistributor's RD_base frame, the registers the hypervisor uses (GICR_*).
    RedistributorControl {
        (0x0000 => _reserved0),
        (0x0008 => typer: ReadOnly<u64>),
        (0x0010 => _reserved1),
        (0x0014 => waker: ReadWrite<u32, GICR_WAKER::Register>),
        (0x0018 => @END),
    },

    /// A redistributor's SGI_base frame ([`SGI_FRAME`] after RD_base): its SGIs and PPIs.
    RedistributorSgi {
        (0x0000 => _reserved0),
        (0x0080 => igroupr0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => isenabler0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0400 => ipriorityr: [ReadWrite<u8>; 32]),
        (0x0420 => @END),
    }
}

/// Offset of a redistributor's SGI_base frame from its RD_base.
const SGI_FRAME: u64 = 0x1_0000;

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

/// The GIC registers of layout `T` at `base`.
///
/// # Safety
/// `base` must be a GIC frame the DTB described whose layout `T` is, mapped
/// Device at EL2 for the hypervisor's lifetime (its registers are then only
/// touched through tock-registers' volatile accesses, of the width each declares:
/// IPRIORITYR bytes, IROUTER and TYPER 64 bits, the others 32 bits).
unsafe fn registers_at<T>(base: u64) -> &'static T {
    // SAFETY: the caller guarantees `base` is such a frame, mapped for good.
    unsafe { &*(base as *const T) }
}

/// The distributor recorded by [`init_distributor`].
fn distributor() -> &'static DistributorRegisters {
    let base = DISTRIBUTOR.load(Ordering::Relaxed);
    assert_ne!(base, 0, "GIC used before init_distributor");
    // SAFETY: once recorded, DISTRIBUTOR is the distributor the DTB described,
    // which the EL2 map covers as Device memory.
    unsafe { registers_at(base) }
}

/// `GICR_TYPER` at `address` (RD_base + `GICR_TYPER` of a frame), as the
/// redistributor walk reads it.
fn read_typer(address: u64) -> u64 {
    // SAFETY: the walk only visits frames inside the redistributor regions the
    // DTB described, which the EL2 map covers as Device memory.
    let control: &RedistributorControl = unsafe { registers_at(address - redistributors::GICR_TYPER) };
    control.typer.get()
}

fn wait_for_distributor_writes(distributor: &DistributorRegisters) {
    while distributor.ctlr.is_set(GICD_CTLR::RWP) {
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
    let distributor = distributor();
    distributor.ctlr.modify(GICD_CTLR::ARE::SET + GICD_CTLR::EnableGrp1::SET);
    wait_for_distributor_writes(distributor);
}

/// Routes SPI `intid` to this CPU as a group-1 interrupt and enables it.
pub fn enable_spi_here(intid: u32) {
    let distributor = distributor();
    let (index, word, bit) = (intid as usize, (intid / 32) as usize, 1u32 << (intid % 32));
    distributor.igroupr[word].set(distributor.igroupr[word].get() | bit);
    distributor.ipriorityr[index].set(DEFAULT_PRIORITY);
    distributor.irouter[index].set(cpu::mpidr_affinity());
    distributor.isenabler[word].set(bit);
    wait_for_distributor_writes(distributor);
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
    let frame = redistributors::find(&layout.redistributor_regions, layout.redistributor_stride, read_typer, affinity)
        .ok_or(GicError::NoRedistributor { affinity })?;
    let gicr = frame.base;
    // SAFETY: the walk found this frame in a redistributor region the DTB
    // described, which the EL2 map covers as Device memory; a frame is RD_base
    // followed by SGI_base.
    let (control, sgi): (&RedistributorControl, &RedistributorSgi) =
        unsafe { (registers_at(gicr), registers_at(gicr + SGI_FRAME)) };
    control.waker.modify(GICR_WAKER::ProcessorSleep::CLEAR);
    while control.waker.is_set(GICR_WAKER::ChildrenAsleep) {
        core::hint::spin_loop();
    }
    let mut mask = 0u32;
    for &intid in &private_interrupts {
        mask |= 1 << intid;
        sgi.ipriorityr[intid as usize].set(DEFAULT_PRIORITY);
    }
    sgi.igroupr0.set(sgi.igroupr0.get() | mask);
    sgi.isenabler0.set(mask);

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
