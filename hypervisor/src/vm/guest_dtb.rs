//! The flattened device tree a Linux guest boots with.
//!
//! A VM's physical layout is the guest machine of [`hv_abi::machine`], which
//! mirrors QEMU's `virt` (RAM at 1 GiB, GICv3 distributor and redistributors,
//! one PL011, PSCI over `hvc`), so a kernel built for `virt` runs unchanged.
//! [`generate`] describes exactly the devices the VM has and nothing else: no
//! PCI, flash, virtio, fw-cfg or ITS, because a guest probing a device that is
//! not there faults on it.
//!
//! Node names, compatibles and interrupt flags follow what
//! `qemu-system-aarch64 -M virt,gic-version=3,dumpdtb=...` writes, so the
//! guest sees the tree it would see under QEMU and any difference points at
//! our emulation rather than at the description.
//!
//! The tree is written with the rust-vmm `vm-fdt` crate (no_std + `alloc`).

use alloc::format;
use alloc::vec::Vec;
use core::fmt;

use hv_abi::machine::{
    GICD_BASE, GICD_SIZE, GICR_BASE, GICR_FRAME_SIZE, HYP_TIMER_INTID, MAINTENANCE_INTID, MAX_VCPUS, PHYS_TIMER_INTID,
    RAM_BASE, SECURE_PHYS_TIMER_INTID, UART_BASE, UART_INTID, UART_SIZE, VIRTIO_MMIO_BASE, VIRTIO_MMIO_COUNT,
    VIRTIO_MMIO_FIRST_INTID, VIRTIO_MMIO_SIZE, VIRTUAL_TIMER_INTID,
};
use vm_fdt::FdtWriter;

use crate::psci::{CPU_OFF, CPU_ON_64, CPU_SUSPEND_64, MIGRATE_64};
use crate::vm::vgic::FIRST_SPI;
use crate::vm::vgic::redistributor::FIRST_PPI;

/// Where the VM's devices are and how many vCPUs it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLayout {
    pub ram_base: u64,
    pub ram_size: u64,
    /// vCPU `n` has MPIDR affinity `n` (Aff0 = n), as the runtime programs
    /// `VMPIDR_EL2`. Past 16 vCPUs the guest's IPIs need the virtual GIC to
    /// offer range selectors (`ICC_CTLR_EL1.RSS`): an SGI target list only
    /// names Aff0 0..=15.
    pub vcpus: usize,
    /// GICD, [`GICD_SIZE`] bytes.
    pub gicd_base: u64,
    /// First GICR frame; the frames of all vCPUs follow contiguously,
    /// [`GICR_FRAME_SIZE`] bytes each, in vCPU order.
    pub gicr_base: u64,
    /// PL011 registers, [`UART_SIZE`] bytes.
    pub uart_base: u64,
    /// GIC INTID of the PL011's level-high SPI.
    pub uart_intid: u32,
}

impl GuestLayout {
    /// The guest machine's addresses ([`hv_abi::machine`], QEMU `virt`'s) with the
    /// given RAM size and vCPU count.
    pub const fn qemu_virt(ram_size: u64, vcpus: usize) -> Self {
        Self {
            ram_base: RAM_BASE,
            ram_size,
            vcpus,
            gicd_base: GICD_BASE,
            gicr_base: GICR_BASE,
            uart_base: UART_BASE,
            uart_intid: UART_INTID,
        }
    }

    /// The one redistributor region: every vCPU's frame, back to back.
    /// `None` if its size or end does not fit in 64 bits.
    pub fn redistributor_region(&self) -> Option<(u64, u64)> {
        let size = u64::try_from(self.vcpus).ok()?.checked_mul(GICR_FRAME_SIZE)?;
        self.gicr_base.checked_add(size)?;
        Some((self.gicr_base, size))
    }
}

/// What the guest kernel is told in `/chosen`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestBoot<'a> {
    /// The kernel command line; omitted from the tree when empty.
    pub bootargs: &'a str,
    /// Guest-physical `(start, end)` of the initrd, end exclusive.
    pub initrd: Option<(u64, u64)>,
    /// Entropy for the kernel's address-space randomisation; without it
    /// (or with 0) the kernel does not randomise its own placement.
    pub kaslr_seed: Option<u64>,
    /// Early entropy for the kernel's random pool (`rng-seed`).
    pub rng_seed: Option<&'a [u8]>,
    /// How many `SYSTEM_RESET`s came before this boot, as the decimal string
    /// property `mte-hypervisor,boot-count` (readable from a shell:
    /// `/proc/device-tree/chosen/mte-hypervisor,boot-count`). The command line
    /// stays exactly what the configuration says.
    pub boot_count: Option<u64>,
}

/// Why no tree was generated.
#[derive(Debug, PartialEq, Eq)]
pub enum GuestDtbError {
    NoVcpus,
    TooManyVcpus {
        vcpus: usize,
    },
    EmptyRam,
    /// A region's `base + size` does not fit in 64 bits.
    AddressOverflow {
        region: &'static str,
    },
    /// Two regions of the layout share addresses.
    Overlap {
        first: &'static str,
        second: &'static str,
    },
    /// The UART interrupt must be an SPI (INTID 32..=1019).
    UartIntidNotSpi {
        intid: u32,
    },
    /// Device tree strings end at the first NUL.
    BootargsContainNul,
    /// The initrd ends before it starts or does not lie within RAM.
    InitrdOutsideRam {
        start: u64,
        end: u64,
    },
    /// The FDT writer refused the tree (a bug here, or a tree over 4 GiB).
    Writer(vm_fdt::Error),
}

impl fmt::Display for GuestDtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoVcpus => write!(f, "a VM needs at least one vCPU"),
            Self::TooManyVcpus { vcpus } => {
                write!(f, "{vcpus} vCPUs, but a VM has at most {MAX_VCPUS}")
            }
            Self::EmptyRam => write!(f, "a VM needs some RAM"),
            Self::AddressOverflow { region } => {
                write!(f, "the {region} region runs past the end of the address space")
            }
            Self::Overlap { first, second } => {
                write!(f, "the {first} and {second} regions overlap")
            }
            Self::UartIntidNotSpi { intid } => write!(f, "UART INTID {intid} is not an SPI"),
            Self::BootargsContainNul => write!(f, "the kernel command line contains a NUL byte"),
            Self::InitrdOutsideRam { start, end } => {
                write!(f, "initrd {start:#x}..{end:#x} is not a range within guest RAM")
            }
            Self::Writer(error) => write!(f, "device tree writer: {error}"),
        }
    }
}

impl From<vm_fdt::Error> for GuestDtbError {
    fn from(error: vm_fdt::Error) -> Self {
        Self::Writer(error)
    }
}

const GIC_PHANDLE: u32 = 1;
const CLOCK_PHANDLE: u32 = 2;

/// First cell of a GIC interrupt specifier.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// Third cell: `IRQ_TYPE_LEVEL_HIGH`. QEMU uses it for the timer too, and
/// adds no CPU mask with GICv3 (the mask is a GICv2-only field).
const IRQ_LEVEL_HIGH: u32 = 4;
/// `IRQ_TYPE_EDGE_RISING` (the virtio-mmio transports', as on QEMU).
const IRQ_EDGE_RISING: u32 = 1;

/// Architected timer interrupts in binding order: secure physical, non-secure
/// physical, virtual, hypervisor physical.
const TIMER_INTIDS: [u32; 4] = [SECURE_PHYS_TIMER_INTID, PHYS_TIMER_INTID, VIRTUAL_TIMER_INTID, HYP_TIMER_INTID];
/// The last SPI INTID the GICv3 architecture allows (1020..=1023 are special).
const LAST_SPI: u32 = 1019;
/// QEMU's `apb-pclk` rate.
const APB_CLOCK_HZ: u32 = 24_000_000;

/// Writes the guest's device tree blob.
pub fn generate(layout: &GuestLayout, boot: &GuestBoot<'_>) -> Result<Vec<u8>, GuestDtbError> {
    let gicr = validate(layout, boot)?;
    let uart_node = format!("pl011@{:x}", layout.uart_base);
    let uart_path = format!("/{uart_node}");

    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;
    fdt.property_string("model", "mte-hypervisor guest (linux,dummy-virt)")?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_string("compatible", "linux,dummy-virt")?;

    // PSCI 1.0 through the hypervisor. "arm,psci" (0.1) needs the function
    // IDs spelled out; they are the standard 0.2 ones, as QEMU gives them.
    let psci = fdt.begin_node("psci")?;
    string_list(&mut fdt, "compatible", &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])?;
    fdt.property_string("method", "hvc")?;
    fdt.property_u32("cpu_suspend", CPU_SUSPEND_64)?;
    fdt.property_u32("cpu_off", CPU_OFF)?;
    fdt.property_u32("cpu_on", CPU_ON_64)?;
    fdt.property_u32("migrate", MIGRATE_64)?;
    fdt.end_node(psci)?;

    let memory = fdt.begin_node(&format!("memory@{:x}", layout.ram_base))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[layout.ram_base, layout.ram_size])?;
    fdt.end_node(memory)?;

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for mpidr in 0..layout.vcpus {
        let cpu = fdt.begin_node(&format!("cpu@{mpidr:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,armv8")?;
        // `validate` capped vcpus at MAX_VCPUS, so the affinity fits a cell.
        fdt.property_u32("reg", mpidr as u32)?;
        fdt.property_string("enable-method", "psci")?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;

    // One redistributor region; Linux finds each vCPU's frame by walking
    // it and matching GICR_TYPER's affinity, so no stride is needed.
    let gic = fdt.begin_node(&format!("intc@{:x}", layout.gicd_base))?;
    fdt.property_string("compatible", "arm,gic-v3")?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    // dtc wants #address-cells on every interrupt provider (interrupt-map
    // parsing reads it), and #size-cells only with a `ranges`: QEMU writes
    // all three (for its ITS child), and so do we, so dtc stays silent.
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_null("ranges")?;
    fdt.property_u32("#redistributor-regions", 1)?;
    fdt.property_array_u64("reg", &[layout.gicd_base, GICD_SIZE, gicr.0, gicr.1])?;
    fdt.property_array_u32("interrupts", &[GIC_PPI, MAINTENANCE_INTID - FIRST_PPI, IRQ_LEVEL_HIGH])?;
    fdt.property_phandle(GIC_PHANDLE)?;
    fdt.end_node(gic)?;

    let timer = fdt.begin_node("timer")?;
    string_list(&mut fdt, "compatible", &["arm,armv8-timer", "arm,armv7-timer"])?;
    let interrupts = TIMER_INTIDS.map(|intid| [GIC_PPI, intid - FIRST_PPI, IRQ_LEVEL_HIGH]);
    fdt.property_array_u32("interrupts", interrupts.as_flattened())?;
    // The counter keeps running in every power state the guest can enter.
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    // The PL011 is an AMBA primecell: Linux's AMBA bus enables `apb_pclk`
    // before it reads the PrimeCell ID registers (0xFE0..=0xFFC, which the
    // emulated UART must therefore answer), and the pl011 driver fails to
    // probe without `uartclk`, whose rate it divides for the baud rate.
    // QEMU feeds both from one fixed 24 MHz clock; so do we.
    let clock = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", APB_CLOCK_HZ)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(CLOCK_PHANDLE)?;
    fdt.end_node(clock)?;

    let uart = fdt.begin_node(&uart_node)?;
    string_list(&mut fdt, "compatible", &["arm,pl011", "arm,primecell"])?;
    fdt.property_array_u64("reg", &[layout.uart_base, UART_SIZE])?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, layout.uart_intid - FIRST_SPI, IRQ_LEVEL_HIGH])?;
    fdt.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
    string_list(&mut fdt, "clock-names", &["uartclk", "apb_pclk"])?;
    fdt.end_node(uart)?;

    // QEMU virt's virtio-mmio transports, all empty (device ID 0: drivers
    // ignore them). Listed as QEMU lists them, highest address first, so Linux
    // numbers them in the same order.
    for n in (0..VIRTIO_MMIO_COUNT).rev() {
        let base = VIRTIO_MMIO_BASE + n as u64 * VIRTIO_MMIO_SIZE;
        let transport = fdt.begin_node(&format!("virtio_mmio@{base:x}"))?;
        fdt.property_string("compatible", "virtio,mmio")?;
        fdt.property_array_u64("reg", &[base, VIRTIO_MMIO_SIZE])?;
        let spi = VIRTIO_MMIO_FIRST_INTID + n as u32 - FIRST_SPI;
        fdt.property_array_u32("interrupts", &[GIC_SPI, spi, IRQ_EDGE_RISING])?;
        fdt.property_null("dma-coherent")?;
        fdt.end_node(transport)?;
    }

    // Makes the console ttyAMA0 regardless of probe order.
    let aliases = fdt.begin_node("aliases")?;
    fdt.property_string("serial0", &uart_path)?;
    fdt.end_node(aliases)?;

    let chosen = fdt.begin_node("chosen")?;
    if !boot.bootargs.is_empty() {
        fdt.property_string("bootargs", boot.bootargs)?;
    }
    fdt.property_string("stdout-path", &uart_path)?;
    if let Some(count) = boot.boot_count {
        fdt.property_string("mte-hypervisor,boot-count", &alloc::format!("{count}"))?;
    }
    if let Some((start, end)) = boot.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    if let Some(seed) = boot.kaslr_seed {
        fdt.property_u64("kaslr-seed", seed)?;
    }
    if let Some(seed) = boot.rng_seed {
        fdt.property("rng-seed", seed)?;
    }
    fdt.end_node(chosen)?;

    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

/// Checks what the tree would state, so a guest never boots on an
/// inconsistent description. Returns the redistributor region.
fn validate(layout: &GuestLayout, boot: &GuestBoot<'_>) -> Result<(u64, u64), GuestDtbError> {
    match layout.vcpus {
        0 => return Err(GuestDtbError::NoVcpus),
        vcpus if vcpus > MAX_VCPUS => {
            return Err(GuestDtbError::TooManyVcpus { vcpus });
        }
        _ => {}
    }
    if layout.ram_size == 0 {
        return Err(GuestDtbError::EmptyRam);
    }
    if !(FIRST_SPI..=LAST_SPI).contains(&layout.uart_intid) {
        return Err(GuestDtbError::UartIntidNotSpi { intid: layout.uart_intid });
    }
    if boot.bootargs.contains('\0') {
        return Err(GuestDtbError::BootargsContainNul);
    }

    let gicr = layout.redistributor_region().ok_or(GuestDtbError::AddressOverflow { region: "GIC redistributor" })?;
    let regions = [
        ("RAM", layout.ram_base, layout.ram_size),
        ("GIC distributor", layout.gicd_base, GICD_SIZE),
        ("GIC redistributor", gicr.0, gicr.1),
        ("PL011", layout.uart_base, UART_SIZE),
    ];
    let mut ends = [0; 4];
    for (end, &(region, base, size)) in ends.iter_mut().zip(&regions) {
        *end = base.checked_add(size).ok_or(GuestDtbError::AddressOverflow { region })?;
    }
    for i in 0..regions.len() {
        for j in i + 1..regions.len() {
            if regions[i].1 < ends[j] && regions[j].1 < ends[i] {
                return Err(GuestDtbError::Overlap { first: regions[i].0, second: regions[j].0 });
            }
        }
    }

    if let Some((start, end)) = boot.initrd
        && !(layout.ram_base <= start && start <= end && end <= ends[0])
    {
        return Err(GuestDtbError::InitrdOutsideRam { start, end });
    }
    Ok(gicr)
}

/// A `stringlist` property: each string NUL-terminated, back to back.
fn string_list(fdt: &mut FdtWriter, name: &str, strings: &[&str]) -> Result<(), vm_fdt::Error> {
    let mut bytes = Vec::new();
    for string in strings {
        bytes.extend_from_slice(string.as_bytes());
        bytes.push(0);
    }
    fdt.property(name, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{PhysRange, Platform, Ppi, Psci, PsciCompat, PsciConduit, TriggerType, Uart};

    const MIB: u64 = 1 << 20;
    const INITRD: (u64, u64) = (0x4200_0000, 0x4212_3456);

    fn boot() -> GuestBoot<'static> {
        GuestBoot { bootargs: "console=ttyAMA0 earlycon rdinit=/init", initrd: Some(INITRD), ..GuestBoot::default() }
    }

    /// A property's value as big-endian 32-bit cells.
    fn cells(node: fdt::node::FdtNode<'_, '_>, name: &str) -> Vec<u32> {
        let value = node.property(name).unwrap_or_else(|| panic!("{} has no {name}", node.name)).value;
        value.chunks_exact(4).map(|cell| u32::from_be_bytes(cell.try_into().unwrap())).collect()
    }

    fn u64_property(node: fdt::node::FdtNode<'_, '_>, name: &str) -> u64 {
        let value = node.property(name).unwrap().value;
        u64::from_be_bytes(value.try_into().unwrap())
    }

    fn strings(node: fdt::node::FdtNode<'_, '_>, name: &str) -> Vec<String> {
        let value = node.property(name).unwrap().value;
        let value = value.strip_suffix(&[0]).unwrap();
        value.split(|&b| b == 0).map(|s| String::from_utf8(s.to_vec()).unwrap()).collect()
    }

    /// Checks the blob with the independent `fdt` crate.
    fn check_with_fdt_crate(blob: &[u8], ram_size: u64, vcpus: usize, boot: &GuestBoot<'_>) {
        let tree = fdt::Fdt::new(blob).unwrap();
        let root = tree.find_node("/").unwrap();
        assert_eq!(cells(root, "#address-cells"), [2]);
        assert_eq!(cells(root, "#size-cells"), [2]);
        assert_eq!(tree.root().compatible().first(), "linux,dummy-virt");

        let memory: Vec<_> = tree.memory().regions().collect();
        assert_eq!(memory.len(), 1);
        assert_eq!(memory[0].starting_address as u64, 0x4000_0000);
        assert_eq!(memory[0].size, Some(ram_size as usize));

        let cpus: Vec<_> = tree.cpus().collect();
        assert_eq!(cpus.len(), vcpus);
        for (n, cpu) in cpus.iter().enumerate() {
            assert_eq!(cpu.ids().first(), n);
            assert_eq!(cpu.property("enable-method").unwrap().as_str(), Some("psci"));
            assert_eq!(cpu.property("device_type").unwrap().as_str(), Some("cpu"));
        }

        let psci = tree.find_node("/psci").unwrap();
        assert_eq!(psci.property("method").unwrap().as_str(), Some("hvc"));
        assert_eq!(psci.compatible().unwrap().first(), "arm,psci-1.0");

        let gic = tree.find_compatible(&["arm,gic-v3"]).unwrap();
        assert_eq!(gic.name, "intc@8000000");
        assert!(gic.property("interrupt-controller").is_some());
        assert_eq!(cells(gic, "#interrupt-cells"), [3]);
        assert_eq!(cells(gic, "#redistributor-regions"), [1]);
        let regions: Vec<_> = gic.reg().unwrap().map(|r| (r.starting_address as u64, r.size.unwrap() as u64)).collect();
        assert_eq!(regions, [(0x0800_0000, 0x1_0000), (0x080A_0000, vcpus as u64 * 0x2_0000)]);
        assert_eq!(cells(gic, "interrupts"), [1, 9, 4]);
        assert!(tree.find_compatible(&["arm,gic-v3-its"]).is_none());
        let gic_phandle = cells(gic, "phandle")[0];
        assert_eq!(cells(root, "interrupt-parent"), [gic_phandle]);

        let timer = tree.find_compatible(&["arm,armv8-timer"]).unwrap();
        assert_eq!(cells(timer, "interrupts"), [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]);
        assert!(timer.property("always-on").is_some());

        let uart = tree.find_compatible(&["arm,pl011"]).unwrap();
        assert_eq!(uart.name, "pl011@9000000");
        assert_eq!(strings(uart, "compatible"), ["arm,pl011", "arm,primecell"]);
        let reg: Vec<_> = uart.reg().unwrap().map(|r| (r.starting_address as u64, r.size)).collect();
        assert_eq!(reg, [(0x0900_0000, Some(0x1000))]);
        assert_eq!(cells(uart, "interrupts"), [0, 1, 4]);
        assert_eq!(strings(uart, "clock-names"), ["uartclk", "apb_pclk"]);
        for phandle in cells(uart, "clocks") {
            let clock = tree.find_phandle(phandle).unwrap();
            assert_eq!(clock.name, "apb-pclk");
            assert_eq!(clock.compatible().unwrap().first(), "fixed-clock");
            assert_eq!(cells(clock, "clock-frequency"), [24_000_000]);
            assert_eq!(cells(clock, "#clock-cells"), [0]);
        }
        assert_eq!(tree.aliases().unwrap().resolve("serial0"), Some("/pl011@9000000"));

        let chosen = tree.chosen();
        assert_eq!(chosen.bootargs(), Some(boot.bootargs).filter(|args| !args.is_empty()));
        assert_eq!(chosen.stdout().unwrap().name, "pl011@9000000");
        let chosen = tree.find_node("/chosen").unwrap();
        match boot.initrd {
            Some((start, end)) => {
                assert_eq!(u64_property(chosen, "linux,initrd-start"), start);
                assert_eq!(u64_property(chosen, "linux,initrd-end"), end);
            }
            None => assert!(chosen.property("linux,initrd-start").is_none()),
        }
        assert_eq!(chosen.property("kaslr-seed").is_some(), boot.kaslr_seed.is_some());

        // Only what the VM has, in the order written.
        let names: Vec<String> = tree.all_nodes().map(|node| node.name.to_string()).collect();
        let mut expected: Vec<String> = ["/", "psci", "memory@40000000", "cpus"].map(String::from).to_vec();
        expected.extend((0..vcpus).map(|n| format!("cpu@{n:x}")));
        expected.extend(["intc@8000000", "timer", "apb-pclk", "pl011@9000000"].map(String::from));
        expected.extend((0..32).rev().map(|n| format!("virtio_mmio@{:x}", 0x0A00_0000 + n * 0x200)));
        expected.extend(["aliases", "chosen"].map(String::from));
        assert_eq!(names, expected);
    }

    /// Checks the blob with the hypervisor's own platform parser.
    fn check_with_platform_parser(blob: &[u8], ram_size: u64, vcpus: usize, boot: &GuestBoot<'_>) {
        let platform = Platform::from_fdt(0x4000_0000, blob).unwrap();
        assert_eq!(platform.model, Some("mte-hypervisor guest (linux,dummy-virt)"));
        assert_eq!(platform.ram.as_slice(), [PhysRange::new(0x4000_0000, ram_size)]);
        assert!(platform.reserved.is_empty());
        assert_eq!(
            platform.console,
            Some(Uart { base: 0x0900_0000, size: 0x1000, intid: Some(33), compatible_pl011: true })
        );
        let gic = &platform.gic;
        assert_eq!(gic.distributor, PhysRange::new(0x0800_0000, 0x1_0000));
        assert_eq!(gic.redistributor_regions.as_slice(), [PhysRange::new(0x080A_0000, vcpus as u64 * 0x2_0000)]);
        assert_eq!(gic.redistributor_stride, None);
        assert_eq!(gic.maintenance_irq, Some(Ppi { intid: 25, trigger: TriggerType::Level }));
        assert_eq!(gic.its, None);
        let timer = platform.timer;
        let intids = [timer.secure_phys, timer.nonsecure_phys, timer.virt, timer.hyp_phys];
        assert_eq!(intids.map(|ppi| ppi.intid), [29, 30, 27, 26]);
        assert!(intids.iter().all(|ppi| ppi.trigger == TriggerType::Level));
        assert_eq!(timer.hyp_virt, None);
        assert_eq!(timer.clock_frequency, None);
        assert_eq!(platform.psci, Some(Psci { conduit: PsciConduit::Hvc, version_compatible: PsciCompat::V1_0 }));
        let mpidrs: Vec<u64> = platform.cpus.iter().map(|cpu| cpu.mpidr).collect();
        assert_eq!(mpidrs, (0..vcpus as u64).collect::<Vec<_>>());
        assert_eq!(platform.bootargs, Some(boot.bootargs).filter(|args| !args.is_empty()));
        assert_eq!(platform.initrd, boot.initrd.map(|(start, end)| PhysRange::new(start, end - start)));
    }

    #[test]
    fn round_trip_through_the_fdt_crate() {
        let layout = GuestLayout::qemu_virt(256 * MIB, 4);
        let blob = generate(&layout, &boot()).unwrap();
        check_with_fdt_crate(&blob, 256 * MIB, 4, &boot());
    }

    #[test]
    fn platform_parser_reads_back_the_layout() {
        let layout = GuestLayout::qemu_virt(256 * MIB, 4);
        let blob = generate(&layout, &boot()).unwrap();
        check_with_platform_parser(&blob, 256 * MIB, 4, &boot());
    }

    /// The tree places every device, and numbers every interrupt, exactly where
    /// the guest machine ([`hv_abi::machine`]) and so the device models have them,
    /// with as many vCPUs as a VM may have.
    #[test]
    fn the_tree_describes_the_guest_machine() {
        use hv_abi::machine::{DEVICES_BASE, DEVICES_END, GICR_SGI_OFFSET};

        use crate::vm::vgic::{Region, Vgic};

        let layout = GuestLayout::qemu_virt(256 * MIB, MAX_VCPUS);
        let blob = generate(&layout, &GuestBoot::default()).unwrap();
        let gicr_size = MAX_VCPUS as u64 * GICR_FRAME_SIZE;

        let tree = fdt::Fdt::new(&blob).unwrap();
        let memory: Vec<_> = tree.memory().regions().map(|r| (r.starting_address as u64, r.size)).collect();
        assert_eq!(memory, [(RAM_BASE, Some(256 * MIB as usize))]);
        let gic = tree.find_compatible(&["arm,gic-v3"]).unwrap();
        let regions: Vec<_> = gic.reg().unwrap().map(|r| (r.starting_address as u64, r.size.unwrap() as u64)).collect();
        assert_eq!(regions, [(GICD_BASE, GICD_SIZE), (GICR_BASE, gicr_size)]);
        let uart = tree.find_compatible(&["arm,pl011"]).unwrap();
        let reg: Vec<_> = uart.reg().unwrap().map(|r| (r.starting_address as u64, r.size.unwrap() as u64)).collect();
        assert_eq!(reg, [(UART_BASE, UART_SIZE)]);
        assert_eq!(tree.cpus().count(), MAX_VCPUS);
        for (base, size) in [(GICD_BASE, GICD_SIZE), (GICR_BASE, gicr_size), (UART_BASE, UART_SIZE)] {
            assert!(DEVICES_BASE <= base && base + size <= DEVICES_END, "{base:#x} outside the device window");
        }

        // Every virtio-mmio transport, with its edge-triggered SPI, inside the device window.
        let mut transports: Vec<_> = tree
            .all_nodes()
            .filter(|node| node.compatible().is_some_and(|c| c.all().any(|c| c == "virtio,mmio")))
            .map(|node| {
                let reg = node.reg().unwrap().next().unwrap();
                let cells: Vec<u32> = node
                    .property("interrupts")
                    .unwrap()
                    .value
                    .chunks(4)
                    .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
                    .collect();
                (reg.starting_address as u64, reg.size.unwrap() as u64, cells)
            })
            .collect();
        transports.sort();
        assert_eq!(transports.len(), VIRTIO_MMIO_COUNT);
        for (n, (base, size, cells)) in transports.iter().enumerate() {
            assert_eq!((*base, *size), (VIRTIO_MMIO_BASE + n as u64 * VIRTIO_MMIO_SIZE, VIRTIO_MMIO_SIZE));
            assert_eq!(cells, &[0, VIRTIO_MMIO_FIRST_INTID + n as u32 - 32, 1]);
            assert!(base + size <= DEVICES_END);
        }

        // The platform parser turns the interrupt cells back into INTIDs.
        let platform = Platform::from_fdt(RAM_BASE, &blob).unwrap();
        assert_eq!(platform.gic.maintenance_irq.map(|ppi| ppi.intid), Some(MAINTENANCE_INTID));
        let timer = platform.timer;
        assert_eq!(
            [timer.secure_phys, timer.nonsecure_phys, timer.virt, timer.hyp_phys].map(|ppi| ppi.intid),
            [SECURE_PHYS_TIMER_INTID, PHYS_TIMER_INTID, VIRTUAL_TIMER_INTID, HYP_TIMER_INTID]
        );
        assert_eq!(platform.console.and_then(|uart| uart.intid), Some(UART_INTID));

        // The vGIC model answers at the addresses the tree gives, and only there.
        let vgic = Vgic::new(MAX_VCPUS);
        assert_eq!(vgic.region(GICD_BASE), Some(Region::Distributor { offset: 0 }));
        assert_eq!(vgic.region(GICD_BASE + GICD_SIZE), None);
        for vcpu in 0..MAX_VCPUS {
            let rd_base = GICR_BASE + vcpu as u64 * GICR_FRAME_SIZE;
            assert_eq!(vgic.region(rd_base), Some(Region::Redistributor { vcpu, offset: 0 }));
            let sgi_base = rd_base + GICR_SGI_OFFSET;
            assert_eq!(vgic.region(sgi_base), Some(Region::Redistributor { vcpu, offset: GICR_SGI_OFFSET }));
        }
        assert_eq!(vgic.region(GICR_BASE + gicr_size), None);
        assert_eq!(vgic.region(UART_BASE), None);
    }

    #[test]
    fn one_two_four_and_eight_vcpus() {
        for vcpus in [1, 2, 4, 8] {
            let ram_size = vcpus as u64 * 128 * MIB;
            let layout = GuestLayout::qemu_virt(ram_size, vcpus);
            let blob = generate(&layout, &boot()).unwrap();
            check_with_fdt_crate(&blob, ram_size, vcpus, &boot());
            check_with_platform_parser(&blob, ram_size, vcpus, &boot());
        }
    }

    #[test]
    fn optional_chosen_properties() {
        let layout = GuestLayout::qemu_virt(64 * MIB, 1);
        let bare = GuestBoot::default();
        let blob = generate(&layout, &bare).unwrap();
        check_with_fdt_crate(&blob, 64 * MIB, 1, &bare);
        check_with_platform_parser(&blob, 64 * MIB, 1, &bare);
        let chosen_properties = |blob: &[u8]| -> Vec<String> {
            let tree = fdt::Fdt::new(blob).unwrap();
            let chosen = tree.find_node("/chosen").unwrap();
            chosen.properties().map(|p| p.name.to_string()).collect()
        };
        assert_eq!(chosen_properties(&blob), ["stdout-path"]);

        // The boot count is a property of its own, never part of the command line.
        let rebooted = GuestBoot { boot_count: Some(3), ..boot() };
        let blob = generate(&layout, &rebooted).unwrap();
        let tree = fdt::Fdt::new(&blob).unwrap();
        let chosen = tree.find_node("/chosen").unwrap();
        let count = chosen.property("mte-hypervisor,boot-count").unwrap();
        assert_eq!(count.value, b"3\0");
        assert_eq!(tree.chosen().bootargs(), Some(boot().bootargs));

        let seeded = GuestBoot { kaslr_seed: Some(0x0123_4567_89ab_cdef), rng_seed: Some(&[7; 32]), ..boot() };
        let blob = generate(&layout, &seeded).unwrap();
        check_with_fdt_crate(&blob, 64 * MIB, 1, &seeded);
        let tree = fdt::Fdt::new(&blob).unwrap();
        let chosen = tree.find_node("/chosen").unwrap();
        assert_eq!(u64_property(chosen, "kaslr-seed"), 0x0123_4567_89ab_cdef);
        assert_eq!(chosen.property("rng-seed").unwrap().value, [7; 32]);
    }

    /// `dtc` decompiles the blob without complaint (skipped if not installed).
    #[test]
    fn dtc_accepts_the_blob() {
        let blob = generate(&GuestLayout::qemu_virt(256 * MIB, 4), &boot()).unwrap();
        let path = std::env::temp_dir().join(format!("guest-dtb-{}.dtb", std::process::id()));
        std::fs::write(&path, &blob).unwrap();
        let output = std::process::Command::new("dtc").args(["-I", "dtb", "-O", "dts"]).arg(&path).output();
        std::fs::remove_file(&path).unwrap();
        let output = match output {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::println!("note: dtc not installed; skipping the dtc check");
                return;
            }
            Err(error) => panic!("running dtc: {error}"),
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "dtc failed: {stderr}");
        assert!(stderr.is_empty(), "dtc warnings: {stderr}");
        let dts = String::from_utf8(output.stdout).unwrap();
        assert!(dts.contains("stdout-path = \"/pl011@9000000\";"), "{dts}");
    }

    #[test]
    fn invalid_layouts_and_boot_parameters_are_rejected() {
        let virt = GuestLayout::qemu_virt(256 * MIB, 4);
        let error = |layout: GuestLayout, boot: GuestBoot<'_>| generate(&layout, &boot).unwrap_err();

        assert_eq!(error(GuestLayout { vcpus: 0, ..virt }, boot()), GuestDtbError::NoVcpus);
        assert_eq!(error(GuestLayout { ram_size: 0, ..virt }, boot()), GuestDtbError::EmptyRam);
        let nul = GuestBoot { bootargs: "console=ttyAMA0\0root=/dev/sda", ..boot() };
        assert_eq!(error(virt, nul), GuestDtbError::BootargsContainNul);
        assert_eq!(error(GuestLayout { vcpus: 257, ..virt }, boot()), GuestDtbError::TooManyVcpus { vcpus: 257 });
        assert!(generate(&GuestLayout { vcpus: 64, ..virt }, &boot()).is_ok());
        assert_eq!(error(GuestLayout { vcpus: 65, ..virt }, boot()), GuestDtbError::TooManyVcpus { vcpus: 65 });
        // The redistributor region may end where the UART starts, not one frame later.
        let flush = GuestLayout { gicr_base: 0x0900_0000 - 64 * 0x2_0000, vcpus: 64, ..virt };
        assert!(generate(&flush, &boot()).is_ok());
        assert_eq!(
            error(GuestLayout { gicr_base: flush.gicr_base + 0x2_0000, ..flush }, boot()),
            GuestDtbError::Overlap { first: "GIC redistributor", second: "PL011" }
        );
        assert_eq!(
            error(GuestLayout { ram_base: 0x0800_0000, ..virt }, boot()),
            GuestDtbError::Overlap { first: "RAM", second: "GIC distributor" }
        );
        assert_eq!(
            error(GuestLayout { ram_base: u64::MAX - MIB, ..virt }, boot()),
            GuestDtbError::AddressOverflow { region: "RAM" }
        );
        assert_eq!(error(GuestLayout { uart_intid: 27, ..virt }, boot()), GuestDtbError::UartIntidNotSpi { intid: 27 });
        let outside = GuestBoot { initrd: Some((0x3000_0000, 0x3010_0000)), ..boot() };
        assert_eq!(error(virt, outside), GuestDtbError::InitrdOutsideRam { start: 0x3000_0000, end: 0x3010_0000 });
        let backwards = GuestBoot { initrd: Some((0x4810_0000, 0x4800_0000)), ..boot() };
        assert!(matches!(error(virt, backwards), GuestDtbError::InitrdOutsideRam { .. }));
        let past_ram = GuestBoot { initrd: Some((0x4800_0000, 0x5000_0001)), ..boot() };
        assert!(matches!(error(virt, past_ram), GuestDtbError::InitrdOutsideRam { .. }));
    }

    #[test]
    fn errors_display_a_reason() {
        assert_eq!(GuestDtbError::NoVcpus.to_string(), "a VM needs at least one vCPU");
        assert_eq!(
            GuestDtbError::Overlap { first: "RAM", second: "PL011" }.to_string(),
            "the RAM and PL011 regions overlap"
        );
        let writer = GuestDtbError::Writer(vm_fdt::Error::InvalidString);
        assert_eq!(writer.to_string(), "device tree writer: Strings cannot contain NUL");
    }
}
