//! The machine the hypervisor runs on, as described by the flattened device
//! tree (DTB) that firmware passes in x0.
//!
//! [`Platform::from_fdt`] reads everything the hypervisor needs before it can
//! bring up memory management and its guests: RAM and reserved ranges, the
//! console UART, the GICv3, the architected timer's PPIs, PSCI and the CPUs.
//!
//! The parse runs before the MMU and heap exist, so it never allocates (all
//! tables are fixed-capacity [`ArrayVec`]s) and never panics: a malformed or
//! oversized tree is reported as a [`PlatformError`].

mod address;
mod console;
mod cpus;
mod devicetree;
mod error;
mod gic;
mod interrupts;
mod memory;
pub mod redistributors;
mod summary;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use arrayvec::ArrayVec;

pub use devicetree::{FDT_MAGIC, fdt_total_size, looks_like_fdt};
pub use error::{NodeName, PlatformError};
pub use interrupts::{Ppi, TriggerType};

/// Most RAM banks kept from `/memory` nodes.
pub const MAX_RAM_RANGES: usize = 16;
/// Most reserved ranges kept from `/memreserve/` and `/reserved-memory`.
pub const MAX_RESERVED_RANGES: usize = 32;
/// Most CPUs kept from `/cpus`.
pub const MAX_CPUS: usize = 64;
/// Most GICv3 redistributor regions (`#redistributor-regions`).
pub const MAX_REDISTRIBUTOR_REGIONS: usize = 8;

/// A range of physical addresses, `base` inclusive to `base + size` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysRange {
    pub base: u64,
    pub size: u64,
}

impl PhysRange {
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// The range, or `None` if `base + size` does not fit in 64 bits. The
    /// parser only produces ranges that pass this check.
    pub const fn checked(base: u64, size: u64) -> Option<Self> {
        match base.checked_add(size) {
            Some(_) => Some(Self { base, size }),
            None => None,
        }
    }

    /// The first address past the range (saturating at `u64::MAX`).
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }

    /// Whether the two ranges share at least one address; empty ranges
    /// overlap nothing.
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.size != 0 && other.size != 0 && self.base < other.end() && other.base < self.end()
    }
}

/// The instruction that carries PSCI calls to firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciConduit {
    Smc,
    Hvc,
}

/// The newest PSCI version the `compatible` strings promise. `V0_1`
/// (`"arm,psci"`) uses the function IDs from the node's properties rather
/// than the standard ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PsciCompat {
    V0_1,
    V0_2,
    V1_0,
}

/// How to reach the firmware's power-state coordination interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Psci {
    pub conduit: PsciConduit,
    pub version_compatible: PsciCompat,
}

/// The architected generic timer's interrupts, in the binding's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub secure_phys: Ppi,
    pub nonsecure_phys: Ppi,
    pub virt: Ppi,
    pub hyp_phys: Ppi,
    /// Only with FEAT_VHE and only if the tree lists a fifth interrupt.
    pub hyp_virt: Option<Ppi>,
    /// Set only by firmware that does not program `CNTFRQ_EL0`; when `None`
    /// the register is authoritative.
    pub clock_frequency: Option<u32>,
}

/// The GICv3 interrupt controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gic {
    /// GICD.
    pub distributor: PhysRange,
    /// GICR regions; each holds the frames of consecutive CPUs.
    pub redistributor_regions: ArrayVec<PhysRange, MAX_REDISTRIBUTOR_REGIONS>,
    /// Bytes between CPUs' redistributors when not the architectural
    /// default (2 or 4 × 64 KiB, discoverable from `GICR_TYPER`).
    pub redistributor_stride: Option<u64>,
    /// The virtual CPU interface maintenance interrupt.
    pub maintenance_irq: Option<Ppi>,
    /// The first Interrupt Translation Service's register frame.
    pub its: Option<PhysRange>,
}

/// A serial port to print on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uart {
    pub base: u64,
    pub size: u64,
    /// GIC INTID of the UART's SPI. `None` if it has no interrupt or it could
    /// not be followed to the GIC; the console is then used polled only.
    pub intid: Option<u32>,
    /// Whether this is an Arm PL011 (the only UART the hypervisor drives).
    pub compatible_pl011: bool,
}

/// One CPU as firmware lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// The `reg` value: the CPU's MPIDR affinity fields, which PSCI `CPU_ON`
    /// takes as its target.
    pub mpidr: u64,
}

/// Everything the hypervisor needs to know about the machine. Borrows its
/// strings from the DTB, which must stay mapped while they are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform<'a> {
    /// The root node's `model`, for the boot banner.
    pub model: Option<&'a str>,
    /// Where the DTB itself lives: the address passed in and its `totalsize`.
    pub fdt_range: PhysRange,
    /// Every `reg` entry of every enabled `/memory` node, sorted by base.
    pub ram: ArrayVec<PhysRange, MAX_RAM_RANGES>,
    /// `/memreserve/` entries plus `/reserved-memory` children with `reg`
    /// (whether `no-map` or not), sorted by base.
    pub reserved: ArrayVec<PhysRange, MAX_RESERVED_RANGES>,
    /// `/chosen/stdout-path`, else the first enabled PL011.
    pub console: Option<Uart>,
    pub gic: Gic,
    pub timer: Timer,
    pub psci: Option<Psci>,
    /// `/cpus/cpu@*` nodes with `device_type = "cpu"`, in DTB order.
    pub cpus: ArrayVec<Cpu, MAX_CPUS>,
    /// `/chosen/bootargs`.
    pub bootargs: Option<&'a str>,
    /// `/chosen/linux,initrd-start` .. `linux,initrd-end`: where the boot loader put
    /// the initrd (for the hypervisor, its bundle of VM configuration and images).
    pub initrd: Option<PhysRange>,
}

impl<'a> Platform<'a> {
    /// Reads the platform description from the DTB `blob`, which firmware
    /// placed at physical address `fdt_addr`.
    pub fn from_fdt(fdt_addr: u64, blob: &'a [u8]) -> Result<Self, PlatformError> {
        let tree = devicetree::DeviceTree::parse(blob)?;
        let fdt_size = u64::try_from(tree.total_size()).unwrap_or(u64::MAX);
        let fdt_range = PhysRange::checked(fdt_addr, fdt_size)
            .ok_or(PlatformError::AddressOverflow { node: NodeName::new("/") })?;
        let root = tree.find_path("/")?;
        let chosen = tree.find_path("/chosen")?;
        Ok(Self {
            model: root.and_then(|root| root.node.str_property("model")),
            fdt_range,
            ram: memory::ram(&tree)?,
            reserved: memory::reserved(&tree)?,
            console: console::console(&tree)?,
            gic: gic::gic(&tree)?,
            timer: gic::timer(&tree)?,
            psci: cpus::psci(&tree)?,
            cpus: cpus::cpus(&tree)?,
            bootargs: chosen.as_ref().and_then(|chosen| chosen.node.str_property("bootargs")),
            initrd: match &chosen {
                Some(chosen) => initrd(&chosen.node)?,
                None => None,
            },
        })
    }
}

/// The initrd range from `/chosen`: both properties or neither, each one or two
/// cells (boot loaders use either), end not below start.
fn initrd(chosen: &devicetree::Node<'_>) -> Result<Option<PhysRange>, PlatformError> {
    fn address(node: &devicetree::Node<'_>, property: &'static str) -> Result<Option<u64>, PlatformError> {
        let Some(bytes) = node.property(property) else { return Ok(None) };
        let malformed = PlatformError::MalformedProperty {
            node: node.error_name(),
            property,
            problem: "must be one or two 32-bit cells",
        };
        match bytes.len() {
            4 => devicetree::be_u32_at(bytes, 0).map(|v| Some(u64::from(v))).ok_or(malformed),
            8 => devicetree::be_u64_at(bytes, 0).map(Some).ok_or(malformed),
            _ => Err(malformed),
        }
    }
    let start = address(chosen, "linux,initrd-start")?;
    let end = address(chosen, "linux,initrd-end")?;
    match (start, end) {
        (None, None) => Ok(None),
        (Some(start), Some(end)) if end >= start => Ok(Some(PhysRange::new(start, end - start))),
        _ => Err(PlatformError::MalformedProperty {
            node: chosen.error_name(),
            property: "linux,initrd-end",
            problem: "needs linux,initrd-start, and must not be below it",
        }),
    }
}

/// Appends `item`, reporting a full table as [`PlatformError::CapacityExceeded`].
fn push_within_capacity<T, const N: usize>(
    list: &mut ArrayVec<T, N>,
    item: T,
    what: &'static str,
) -> Result<(), PlatformError> {
    list.try_push(item).map_err(|_| PlatformError::CapacityExceeded { what, capacity: N })
}

/// A one-cell property that may be absent but must be well-formed if present.
fn optional_u32_property(node: &devicetree::Node<'_>, property: &'static str) -> Result<Option<u32>, PlatformError> {
    match node.property(property) {
        None => Ok(None),
        Some(_) => node.u32_property(property).map(Some).ok_or(PlatformError::MalformedProperty {
            node: node.error_name(),
            property,
            problem: "must be a single 32-bit cell",
        }),
    }
}
