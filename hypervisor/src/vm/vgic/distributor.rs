//! The virtual GIC Distributor: global controls and the SPIs
//! (GICv3 specification, "The Distributor" and "The GIC Distributor register
//! descriptions").
//!
//! The guest always runs with affinity routing (`GICD_CTLR.ARE` reads as one
//! and cannot be cleared, as the specification allows and Linux expects), so
//! the SGIs and PPIs live in the Redistributors and the Distributor's registers
//! for INTIDs 0..31, `GICD_ITARGETSR`, `GICD_SGIR` and the SGI pending
//! registers are RAZ/WI. There is a single Security state (`GICD_CTLR.DS == 1`,
//! `GICD_TYPER.SecurityExtn == 0`) and every interrupt is Group 1.

use super::irq_state::{IrqRegister, IrqState, Trigger};
use super::{MmioResult, affinity_of, aligned, id_register, iidr};

/// The number of 32-INTID blocks of SPIs.
pub const SPI_BLOCKS: usize = 2;
/// SPIs implemented: INTIDs 32..32 + SPI_COUNT (QEMU virt's PL011 is SPI 1, INTID 33).
pub const SPI_COUNT: usize = 32 * SPI_BLOCKS;
/// The first SPI.
pub const FIRST_SPI: u32 = 32;
/// INTIDs 0..NUM_INTIDS exist: SGIs, PPIs and the SPIs.
pub const NUM_INTIDS: u32 = FIRST_SPI + SPI_COUNT as u32;

/// `GICD_CTLR` bits in the single-Security-state layout.
mod ctlr {
    /// EnableGrp1 (bit 1; also where the Non-secure view of a two-state GIC
    /// has EnableGrp1A, so Linux's write of bits 0|1|4 lands here either way).
    pub const ENABLE_GRP1: u32 = 1 << 1;
    /// ARE: affinity routing, RAO/WI.
    pub const ARE: u32 = 1 << 4;
    /// DS: a single Security state, RAO/WI.
    pub const DS: u32 = 1 << 6;
}

/// `GICD_TYPER`: ITLinesNumber = blocks of 32 INTIDs minus one; CPUNumber 0
/// (meaningless with affinity routing); no ESPI, NMI, Security extension, LPIs,
/// MBIs or DVIs; IDbits = 9 (10-bit INTIDs, enough without LPIs); A3V, because
/// routing compares all four affinity levels; RSS, because SGIs decode the range
/// selector.
pub const TYPER: u32 = (NUM_INTIDS / 32 - 1) | (9 << 19) | (1 << 24) | (1 << 26);

/// `GICD_IROUTER<n>`: Aff3 `[39:32]`, IRM `[31]`, Aff2 `[23:16]`, Aff1 `[15:8]`, Aff0 `[7:0]`.
const ROUTER_MASK: u64 = 0xFF_80FF_FFFF;
const ROUTER_IRM: u64 = 1 << 31;

/// A decoded Distributor offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Register {
    Ctlr,
    Typer,
    Iidr,
    Typer2,
    /// `GICD_STATUSR` (optional error reporting): RAZ/WI.
    Statusr,
    Irq(IrqRegister, u32),
    /// `GICD_ITARGETSR<n>`: RAZ/WI with affinity routing.
    Targets,
    /// `GICD_NSACR<n>`: RAZ/WI with a single Security state.
    Nsacr,
    /// `GICD_SGIR`: WI with affinity routing (SGIs go through `ICC_SGI1R_EL1`).
    Sgir,
    /// `GICD_CPENDSGIR<n>`/`GICD_SPENDSGIR<n>`: RAZ/WI with affinity routing.
    SgiPending,
    /// `GICD_IROUTER<n>` for INTID `.0`, `.1` = the upper 32-bit half.
    Router(u32, bool),
    /// The identification block (`GICD_PIDR2` and friends), read-only.
    Id(u32),
}

impl Register {
    fn decode(offset: u64) -> Option<Register> {
        if let Some((register, first)) = IrqRegister::decode(offset) {
            return Some(Register::Irq(register, first));
        }
        Some(match offset {
            0x0000..0x0004 => Register::Ctlr,
            0x0004..0x0008 => Register::Typer,
            0x0008..0x000C => Register::Iidr,
            0x000C..0x0010 => Register::Typer2,
            0x0010..0x0014 => Register::Statusr,
            0x0800..0x0C00 => Register::Targets,
            0x0E00..0x0F00 => Register::Nsacr,
            0x0F00..0x0F04 => Register::Sgir,
            0x0F10..0x0F30 => Register::SgiPending,
            // IROUTER<n> exists for n = 32..=1019.
            0x6100..0x7FE0 => Register::Router(((offset - 0x6000) / 8) as u32, offset & 4 != 0),
            _ => Register::Id(id_register(offset)?),
        })
    }

    /// "GIC memory-mapped register access": words everywhere, bytes where the
    /// register holds one byte per INTID, doublewords for `GICD_IROUTER<n>`
    /// (whose halves are also word-accessible).
    fn size_allowed(self, size: u8) -> bool {
        match self {
            Register::Irq(register, _) => register.size_allowed(size),
            Register::Targets | Register::SgiPending => size == 1 || size == 4,
            Register::Router(_, high) => size == 4 || (size == 8 && !high),
            _ => size == 4,
        }
    }
}

/// The Distributor: the group enable and every SPI with its route.
#[derive(Debug, Clone)]
pub struct Distributor {
    group1_enabled: bool,
    spis: [IrqState; SPI_COUNT],
    /// `GICD_IROUTER<n>` as written (RES0 bits cleared).
    routers: [u64; SPI_COUNT],
    /// The vCPU each route resolves to (recomputed when a router is written).
    targets: [Option<usize>; SPI_COUNT],
}

impl Distributor {
    /// The reset state: disabled, every SPI level-sensitive, disabled, inactive,
    /// routed to affinity 0.0.0.0, for vCPUs with the given MPIDR affinities.
    pub fn new(affinities: &[u64]) -> Self {
        let routers = [0; SPI_COUNT];
        Distributor {
            group1_enabled: false,
            spis: [IrqState::new(Trigger::Level); SPI_COUNT],
            routers,
            targets: routers.map(|router| resolve(router, affinities)),
        }
    }

    /// `GICD_CTLR.EnableGrp1`: whether any Group 1 interrupt is forwarded.
    pub const fn group1_enabled(&self) -> bool {
        self.group1_enabled
    }

    pub fn spi(&self, intid: u32) -> Option<&IrqState> {
        self.spis.get(spi_index(intid)?)
    }

    pub fn spi_mut(&mut self, intid: u32) -> Option<&mut IrqState> {
        self.spis.get_mut(spi_index(intid)?)
    }

    /// The vCPU an SPI is routed to, if its route names one.
    pub fn target(&self, intid: u32) -> Option<usize> {
        *self.targets.get(spi_index(intid)?)?
    }

    /// Every SPI as `(intid, state, target)`.
    pub fn spis(&self) -> impl Iterator<Item = (u32, &IrqState, Option<usize>)> {
        self.spis.iter().zip(self.targets).enumerate().map(|(i, (irq, target))| (FIRST_SPI + i as u32, irq, target))
    }

    pub fn ctlr(&self) -> u32 {
        ctlr::ARE | ctlr::DS | if self.group1_enabled { ctlr::ENABLE_GRP1 } else { 0 }
    }

    /// A guest read of `size` bytes at `offset`.
    pub fn read(&self, offset: u64, size: u8) -> MmioResult {
        let Some(register) = Register::decode(offset).filter(|r| aligned(offset, size) && r.size_allowed(size)) else {
            return MmioResult::unhandled();
        };
        MmioResult::read(match register {
            Register::Ctlr => self.ctlr().into(),
            Register::Typer => TYPER.into(),
            Register::Iidr => iidr().into(),
            Register::Id(value) => value.into(),
            Register::Typer2 | Register::Statusr | Register::Targets | Register::Nsacr => 0,
            Register::Sgir | Register::SgiPending => 0,
            Register::Irq(register, first) => match self.irqs(register, first, size) {
                Some(range) => register.read(&self.spis[range]).into(),
                None => 0,
            },
            Register::Router(intid, high) => match spi_index(intid) {
                Some(i) if size == 8 => self.routers[i],
                Some(i) if high => self.routers[i] >> 32,
                Some(i) => self.routers[i] & 0xFFFF_FFFF,
                None => 0,
            },
        })
    }

    /// A guest write of `size` bytes of `value` at `offset`; `affinities` are
    /// the vCPUs' MPIDR affinities, to resolve `GICD_IROUTER<n>` writes.
    pub fn write(&mut self, offset: u64, size: u8, value: u64, affinities: &[u64]) -> MmioResult {
        let Some(register) = Register::decode(offset).filter(|r| aligned(offset, size) && r.size_allowed(size)) else {
            return MmioResult::unhandled();
        };
        let changed = match register {
            Register::Ctlr => {
                let enable = value as u32 & ctlr::ENABLE_GRP1 != 0;
                core::mem::replace(&mut self.group1_enabled, enable) != enable
            }
            Register::Irq(register, first) => match self.irqs(register, first, size) {
                Some(range) => register.write(&mut self.spis[range], value as u32),
                None => false,
            },
            Register::Router(intid, high) => match spi_index(intid) {
                Some(i) => {
                    let old = self.routers[i];
                    let new = match (size, high) {
                        (8, _) => value,
                        (_, true) => (old & 0xFFFF_FFFF) | (value & 0xFFFF_FFFF) << 32,
                        (_, false) => (old & !0xFFFF_FFFF) | (value & 0xFFFF_FFFF),
                    } & ROUTER_MASK;
                    self.routers[i] = new;
                    self.targets[i] = resolve(new, affinities);
                    new != old
                }
                None => false,
            },
            // Read-only, or RAZ/WI in this configuration.
            Register::Typer
            | Register::Iidr
            | Register::Typer2
            | Register::Statusr
            | Register::Targets
            | Register::Nsacr
            | Register::Sgir
            | Register::SgiPending
            | Register::Id(_) => false,
        };
        MmioResult::wrote(changed)
    }

    /// The indices into `spis` an access to `register` covering INTIDs from
    /// `first` touches; `None` for INTIDs 0..31 (banked in the Redistributors)
    /// and for INTIDs beyond the implemented SPIs (RAZ/WI).
    fn irqs(&self, register: IrqRegister, first: u32, size: u8) -> Option<core::ops::Range<usize>> {
        let start = spi_index(first)?;
        let end = (start + register.intids(size) as usize).min(SPI_COUNT);
        Some(start..end)
    }
}

fn spi_index(intid: u32) -> Option<usize> {
    let index = intid.checked_sub(FIRST_SPI)? as usize;
    (index < SPI_COUNT).then_some(index)
}

/// The vCPU a `GICD_IROUTER<n>` value designates: with `IRM == 1` ("1 of N"),
/// any participating PE may take the interrupt, and vCPU 0 always does;
/// otherwise the vCPU whose MPIDR affinity matches, or none (the interrupt then
/// stays pending, not forwarded anywhere).
fn resolve(router: u64, affinities: &[u64]) -> Option<usize> {
    if router & ROUTER_IRM != 0 {
        return (!affinities.is_empty()).then_some(0);
    }
    affinities.iter().position(|&affinity| affinity_of(affinity) == affinity_of(router))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOUR: [u64; 4] = [0, 1, 2, 3];

    fn dist() -> Distributor {
        Distributor::new(&FOUR)
    }

    #[test]
    fn typer_describes_96_intids_without_lpis() {
        assert_eq!(TYPER & 0x1F, 2, "ITLinesNumber: 32 * (2 + 1) = 96 INTIDs");
        assert_eq!((TYPER >> 19) & 0x1F, 9, "IDbits");
        assert_eq!(TYPER & ((1 << 17) | (1 << 16) | (1 << 10)), 0, "no LPIs, no MBIs, no Security extension");
        assert_eq!(dist().read(0x0004, 4).value, u64::from(TYPER));
    }

    #[test]
    fn ctlr_keeps_are_and_ds_set() {
        let mut d = dist();
        assert_eq!(d.read(0, 4).value, 0x50);
        assert!(!d.write(0, 4, 0, &FOUR).unhandled);
        assert_eq!(d.read(0, 4).value, 0x50, "ARE and DS are RAO/WI");
        // Linux: ARE_NS | ENABLE_G1A | ENABLE_G1.
        let result = d.write(0, 4, 0x13, &FOUR);
        assert!(result.changed);
        assert!(d.group1_enabled());
        assert_eq!(d.read(0, 4).value, 0x52);
        assert_eq!(d.read(0, 4).value >> 31, 0, "RWP");
    }

    #[test]
    fn sgi_ppi_bank_is_raz_wi_with_affinity_routing() {
        let mut d = dist();
        assert_eq!(d.read(0x0080, 4).value, 0);
        assert!(!d.write(0x0100, 4, u64::MAX, &FOUR).changed);
        assert_eq!(d.read(0x0100, 4).value, 0);
        assert_eq!(d.read(0x0400, 4).value, 0);
        assert_eq!(d.read(0x0084, 4).value, u64::from(u32::MAX), "SPIs are Group 1");
        // Beyond the implemented SPIs: RAZ/WI, but not an error.
        let beyond = d.read(0x010C, 4);
        assert_eq!((beyond.value, beyond.unhandled), (0, false));
    }

    #[test]
    fn irouter_is_64_bit_and_word_halves() {
        let mut d = dist();
        let irouter_33 = 0x6000 + 8 * 33;
        assert!(d.write(irouter_33, 8, 0x0000_0000_0000_0002, &FOUR).changed);
        assert_eq!(d.target(33), Some(2));
        assert_eq!(d.read(irouter_33, 8).value, 2);
        // High half: Aff3 = 1 matches no vCPU.
        d.write(irouter_33 + 4, 4, 1, &FOUR);
        assert_eq!(d.read(irouter_33, 8).value, 0x1_0000_0002);
        assert_eq!(d.read(irouter_33 + 4, 4).value, 1);
        assert_eq!(d.target(33), None);
        d.write(irouter_33 + 4, 4, 0, &FOUR);
        // IRM: any PE, vCPU 0 takes it. RES0 bits are dropped.
        d.write(irouter_33, 4, 0xFFFF_FF03, &FOUR);
        assert_eq!(d.read(irouter_33, 8).value, 0x80FF_FF03);
        assert_eq!(d.target(33), Some(0));
        // A doubleword access to the upper half is misaligned for IROUTER.
        assert!(d.read(irouter_33 + 4, 8).unhandled);
        // IROUTER<n> for n < 32 does not exist.
        assert!(d.read(0x6000, 8).unhandled);
    }

    #[test]
    fn pidr2_reports_gicv3() {
        assert_eq!((dist().read(0xFFE8, 4).value >> 4) & 0xF, 3);
    }

    #[test]
    fn reserved_offsets_and_bad_sizes_are_reported() {
        let mut d = dist();
        for offset in [0x0014, 0x0040, 0x0F80, 0x1000, 0x8000, 0xC000, 0xFFCC] {
            let read = d.read(offset, 4);
            assert!(read.unhandled && read.value == 0, "{offset:#x}");
            assert!(d.write(offset, 4, u64::MAX, &FOUR).unhandled, "{offset:#x}");
        }
        assert!(d.read(0x0000, 8).unhandled);
        assert!(d.read(0x0100, 2).unhandled);
        assert!(d.read(0x0101, 1).unhandled);
        assert!(d.read(0x0102, 4).unhandled, "misaligned");
        assert!(d.write(0x0C08, 1, 0, &FOUR).unhandled);
        assert!(!d.read(0x0421, 1).unhandled);
        assert!(!d.read(0x0821, 1).unhandled, "ITARGETSR is byte-accessible (RAZ/WI)");
    }
}
