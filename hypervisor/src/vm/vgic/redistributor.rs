//! A virtual GIC Redistributor: one per vCPU, holding its SGIs (INTIDs 0..15)
//! and PPIs (16..31) (GICv3 specification, "The Redistributor" and "The GIC
//! Redistributor register descriptions").
//!
//! Each Redistributor is two consecutive 64 KiB frames: `RD_base` (control,
//! identification, power management) and `SGI_base` at +64 KiB (the same
//! INTID-indexed registers as the Distributor, for INTIDs 0..31). There are no
//! LPIs (`GICR_TYPER.PLPIS == 0`) and no GICv4 virtual LPI frames, so a guest
//! finds the next Redistributor 128 KiB further on, and stops after the frame
//! whose `GICR_TYPER.Last` is set.

use hv_abi::machine::GICR_SGI_OFFSET;

use super::irq_state::{IrqRegister, IrqState, Trigger};
use super::{MmioResult, affinity_of, aligned, id_register, iidr};

/// SGIs and PPIs.
pub const PRIVATE_INTIDS: usize = 32;
/// The first PPI.
pub const FIRST_PPI: u32 = 16;

/// `GICR_WAKER` bits ("Power management" in the GICv3 specification).
mod waker {
    /// ProcessorSleep: the PE is asleep and its Redistributor forwards nothing.
    pub const PROCESSOR_SLEEP: u32 = 1 << 1;
    /// ChildrenAsleep, read-only: the interface to the PE is quiescent.
    pub const CHILDREN_ASLEEP: u32 = 1 << 2;
}

/// A decoded offset within a Redistributor's two frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Register {
    /// `GICR_CTLR`: no LPIs, so EnableLPIs is RAZ/WI and RWP always reads 0.
    Ctlr,
    Iidr,
    /// `GICR_TYPER`; `true` = the upper 32-bit half.
    Typer(bool),
    /// `GICR_STATUSR`: RAZ/WI.
    Statusr,
    Waker,
    Id(u32),
    /// In `SGI_base`, for INTIDs from `.1`.
    Irq(IrqRegister, u32),
    /// `GICR_NSACR`: RAZ/WI with a single Security state.
    Nsacr,
}

impl Register {
    fn decode(offset: u64) -> Option<Register> {
        if offset >= GICR_SGI_OFFSET {
            let offset = offset - GICR_SGI_OFFSET;
            if offset == 0x0E00 {
                return Some(Register::Nsacr);
            }
            // Only INTIDs 0..31: GICR_TYPER.PPInum == 0 (no extended PPIs).
            return IrqRegister::decode(offset)
                .filter(|&(_, first)| first < PRIVATE_INTIDS as u32)
                .map(|(register, first)| Register::Irq(register, first));
        }
        Some(match offset {
            0x0000 => Register::Ctlr,
            0x0004 => Register::Iidr,
            0x0008 => Register::Typer(false),
            0x000C => Register::Typer(true),
            0x0010 => Register::Statusr,
            0x0014 => Register::Waker,
            _ => Register::Id(id_register(offset)?),
        })
    }

    /// Words, bytes for `GICR_IPRIORITYR<n>`, and a doubleword for `GICR_TYPER`.
    fn size_allowed(self, size: u8) -> bool {
        match self {
            Register::Irq(register, _) => register.size_allowed(size),
            Register::Typer(high) => size == 4 || (size == 8 && !high),
            _ => size == 4,
        }
    }
}

/// The Redistributor of one vCPU.
#[derive(Debug, Clone)]
pub struct Redistributor {
    /// The vCPU's MPIDR affinity fields (Aff3 `[39:32]`, Aff2..Aff0 `[23:0]`).
    affinity: u64,
    /// The vCPU index: `GICR_TYPER.Processor_Number`.
    index: usize,
    /// The highest-numbered Redistributor (`GICR_TYPER.Last`).
    last: bool,
    processor_sleep: bool,
    private: [IrqState; PRIVATE_INTIDS],
}

impl Redistributor {
    /// The reset state: asleep (`GICR_WAKER.ProcessorSleep` resets to one), SGIs
    /// edge-triggered, PPIs level-sensitive, everything disabled and inactive.
    pub fn new(index: usize, mpidr: u64, last: bool) -> Self {
        let private = core::array::from_fn(|intid| {
            IrqState::new(if intid < FIRST_PPI as usize { Trigger::Edge } else { Trigger::Level })
        });
        Redistributor { affinity: affinity_of(mpidr), index, last, processor_sleep: true, private }
    }

    /// The vCPU's MPIDR affinity.
    pub const fn affinity(&self) -> u64 {
        self.affinity
    }

    /// Whether the guest has woken this Redistributor (`GICR_WAKER.ProcessorSleep == 0`).
    /// Only what the guest reads back: delivery does not depend on it (as under KVM).
    pub const fn awake(&self) -> bool {
        !self.processor_sleep
    }

    pub fn irq(&self, intid: u32) -> Option<&IrqState> {
        self.private.get(intid as usize)
    }

    pub fn irq_mut(&mut self, intid: u32) -> Option<&mut IrqState> {
        self.private.get_mut(intid as usize)
    }

    /// Every SGI and PPI as `(intid, state)`.
    pub fn irqs(&self) -> impl Iterator<Item = (u32, &IrqState)> {
        self.private.iter().enumerate().map(|(intid, irq)| (intid as u32, irq))
    }

    /// `GICR_TYPER`: Affinity Value `[63:32]` = Aff3.Aff2.Aff1.Aff0,
    /// Processor_Number `[23:8]`, Last `[4]`; PLPIS, VLPIS, DirectLPI and PPInum 0.
    pub const fn typer(&self) -> u64 {
        let a = self.affinity;
        let affinity_value = (((a >> 32) & 0xFF) << 24) | (a & 0xFF_FFFF);
        (affinity_value << 32) | ((self.index as u64 & 0xFFFF) << 8) | if self.last { 1 << 4 } else { 0 }
    }

    fn waker(&self) -> u32 {
        if self.processor_sleep { waker::PROCESSOR_SLEEP | waker::CHILDREN_ASLEEP } else { 0 }
    }

    /// A guest read of `size` bytes at `offset` within this Redistributor's frames.
    pub fn read(&self, offset: u64, size: u8) -> MmioResult {
        let Some(register) = Register::decode(offset).filter(|r| aligned(offset, size) && r.size_allowed(size)) else {
            return MmioResult::unhandled();
        };
        MmioResult::read(match register {
            Register::Ctlr | Register::Statusr | Register::Nsacr => 0,
            Register::Iidr => iidr().into(),
            Register::Typer(false) if size == 8 => self.typer(),
            Register::Typer(false) => self.typer() & 0xFFFF_FFFF,
            Register::Typer(true) => self.typer() >> 32,
            Register::Waker => self.waker().into(),
            Register::Id(value) => value.into(),
            Register::Irq(register, first) => register.read(&self.private[range(register, first, size)]).into(),
        })
    }

    /// A guest write of `size` bytes of `value` at `offset`.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> MmioResult {
        let Some(register) = Register::decode(offset).filter(|r| aligned(offset, size) && r.size_allowed(size)) else {
            return MmioResult::unhandled();
        };
        let changed = match register {
            Register::Waker => {
                let sleep = value as u32 & waker::PROCESSOR_SLEEP != 0;
                core::mem::replace(&mut self.processor_sleep, sleep) != sleep
            }
            // GICR_ICFGR0: SGIs are always edge-triggered, the register is RO.
            Register::Irq(IrqRegister::Config, 0) => false,
            Register::Irq(register, first) => {
                register.write(&mut self.private[range(register, first, size)], value as u32)
            }
            Register::Ctlr
            | Register::Iidr
            | Register::Typer(_)
            | Register::Statusr
            | Register::Id(_)
            | Register::Nsacr => false,
        };
        MmioResult::wrote(changed)
    }
}

/// The private interrupts an access covering INTIDs from `first` touches.
fn range(register: IrqRegister, first: u32, size: u8) -> core::ops::Range<usize> {
    let start = first as usize;
    start..(start + register.intids(size) as usize).min(PRIVATE_INTIDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SGI: u64 = GICR_SGI_OFFSET;

    #[test]
    fn typer_carries_affinity_number_and_last() {
        // MPIDR 0x8000_0102 (RES1 bit 31, Aff1 = 1, Aff0 = 2), vCPU 6, last.
        let rd = Redistributor::new(6, 0x8000_0102, true);
        assert_eq!(rd.typer(), 0x0000_0102_0000_0610);
        assert_eq!(rd.read(0x0008, 8).value, 0x0000_0102_0000_0610);
        assert_eq!(rd.read(0x0008, 4).value, 0x0000_0610);
        assert_eq!(rd.read(0x000C, 4).value, 0x0000_0102);
        // Aff3 goes to [63:56].
        assert_eq!(Redistributor::new(0, 0x3_0000_0000, false).typer(), 0x0300_0000_0000_0000);
        assert!(rd.read(0x000C, 8).unhandled);
    }

    #[test]
    fn waker_children_asleep_follows_processor_sleep() {
        let mut rd = Redistributor::new(0, 0, true);
        assert_eq!(rd.read(0x0014, 4).value, 0b110);
        assert!(!rd.awake());
        assert!(rd.write(0x0014, 4, 0).changed);
        assert_eq!(rd.read(0x0014, 4).value, 0);
        assert!(rd.awake());
        rd.write(0x0014, 4, 0b010);
        assert_eq!(rd.read(0x0014, 4).value, 0b110);
    }

    #[test]
    fn ctlr_reads_zero_and_ignores_enable_lpis() {
        let mut rd = Redistributor::new(0, 0, true);
        assert!(!rd.write(0x0000, 4, 1).changed);
        assert_eq!(rd.read(0x0000, 4).value, 0);
        assert_eq!((rd.read(0xFFE8, 4).value >> 4) & 0xF, 3);
    }

    #[test]
    fn sgi_config_is_read_only_edge_and_ppi_config_writable() {
        let mut rd = Redistributor::new(0, 0, true);
        assert_eq!(rd.read(SGI + 0x0C00, 4).value, 0xAAAA_AAAA);
        assert!(!rd.write(SGI + 0x0C00, 4, 0).changed);
        assert_eq!(rd.read(SGI + 0x0C00, 4).value, 0xAAAA_AAAA);
        assert_eq!(rd.read(SGI + 0x0C04, 4).value, 0, "PPIs reset level-sensitive");
        // PPI 27 edge: field 11, bit 23.
        assert!(rd.write(SGI + 0x0C04, 4, 1 << 23).changed);
        assert_eq!(rd.irq(27).unwrap().trigger, Trigger::Edge);
    }

    #[test]
    fn sgi_frame_registers_and_holes() {
        let mut rd = Redistributor::new(0, 0, true);
        assert_eq!(rd.read(SGI + 0x0080, 4).value, 0xFFFF_FFFF, "IGROUPR0 RAO");
        assert!(rd.write(SGI + 0x0100, 4, 1 << 27).changed);
        assert_eq!(rd.read(SGI + 0x0180, 4).value, 1 << 27);
        assert!(rd.write(SGI + 0x041B, 1, 0x80).changed);
        assert_eq!(rd.read(SGI + 0x0418, 4).value, 0x8000_0000);
        assert_eq!(rd.read(SGI + 0x0D00, 4).value, 0, "IGRPMODR0 RAZ");
        // Extended PPI registers and holes are reported.
        assert!(rd.read(SGI + 0x0084, 4).unhandled);
        assert!(rd.read(SGI + 0x0420, 4).unhandled);
        assert!(rd.read(0x0018, 4).unhandled);
        assert!(rd.read(0x0070, 8).unhandled, "GICR_PROPBASER: no LPIs");
        assert!(rd.read(SGI + 0xFFE8, 4).unhandled, "ID registers are in RD_base only");
        assert!(rd.read(SGI + 0x0102, 4).unhandled, "misaligned");
    }
}
