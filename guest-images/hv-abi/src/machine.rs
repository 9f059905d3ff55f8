//! The machine a guest sees: every guest-visible address, size, interrupt number
//! and limit, defined here once. The hypervisor's device models (`vm::vgic`,
//! `vm::vpl011`), its guest device tree (`vm::guest_dtb`), its configuration
//! checks and its VM builder read them from here, and so do the guests.
//!
//! The map is QEMU `virt`'s (`-M virt,gic-version=3`), so a kernel built for
//! `virt` runs unchanged, but only with the devices listed; every other IPA
//! takes a stage-2 abort, which the guest sees as a synchronous external abort.
//!
//! | IPA | size | what |
//! | --- | --- | --- |
//! | `0x0800_0000` [`GICD_BASE`] | 64 KiB [`GICD_SIZE`] | GICv3 Distributor |
//! | `0x080A_0000` [`GICR_BASE`] | 128 KiB [`GICR_FRAME_SIZE`] per vCPU | vCPU n's Redistributor at `GICR_BASE + n × GICR_FRAME_SIZE`: `RD_base`, then `SGI_base` at [`GICR_SGI_OFFSET`] |
//! | `0x0900_0000` [`UART_BASE`] | 4 KiB [`UART_SIZE`] | PL011 UART |
//! | `0x0A00_0000` [`VIRTIO_MMIO_BASE`] | 512 B [`VIRTIO_MMIO_SIZE`] × [`VIRTIO_MMIO_COUNT`] | virtio-mmio transports, all empty (device ID 0), as QEMU `virt` has them without devices |
//! | `0x4000_0000` [`RAM_BASE`] | the VM's `memory` | RAM; a bare image is loaded and entered at its start |
//! | `0x1_0000_0000` [`SHARED_BASE`] | [`SHARED_STRIDE`] per region | the VM's n-th shared region at `SHARED_BASE + n × SHARED_STRIDE` |
//!
//! The devices all lie in [`DEVICES_BASE`]..[`DEVICES_END`], which holds nothing
//! else, so a guest can map that one window as Device memory.
//!
//! Interrupts (GIC INTIDs; the device tree writes a PPI as `INTID - 16` and an
//! SPI as `INTID - 32`, after the type cell):
//!
//! | INTID | what |
//! | --- | --- |
//! | 0..=15 | SGIs: all the guest's own, sent with `ICC_SGI1R_EL1` |
//! | 25 [`MAINTENANCE_INTID`] | GIC maintenance interrupt (named in the device tree; the guest has no list registers, so it never fires) |
//! | 26 [`HYP_TIMER_INTID`] | EL2 physical timer (named in the device tree; the guest has no EL2) |
//! | 27 [`VIRTUAL_TIMER_INTID`] | EL1 virtual timer, level |
//! | 29 [`SECURE_PHYS_TIMER_INTID`] | secure physical timer (named in the device tree; the guest is non-secure) |
//! | 30 [`PHYS_TIMER_INTID`] | EL1 non-secure physical timer (named in the device tree) |
//! | 33 [`UART_INTID`] | PL011 (SPI 1), level |
//! | 48..=79 [`VIRTIO_MMIO_FIRST_INTID`] + n | virtio-mmio transport n (SPI 16 + n), edge (named in the device tree; empty transports never raise it) |
//!
//! The hypervisor raises only the virtual timer's and the UART's.
//!
//! vCPU `n` has `MPIDR_EL1` affinity `Aff0 = n` (Aff1..Aff3 zero); a VM has 1 to
//! [`MAX_VCPUS`] of them.

/// GICv3 Distributor.
pub const GICD_BASE: u64 = 0x0800_0000;
/// The Distributor's one 64 KiB register frame.
pub const GICD_SIZE: u64 = 0x1_0000;

/// vCPU 0's Redistributor; those of the other vCPUs follow back to back, in vCPU
/// order, the last one with `GICR_TYPER.Last` set.
pub const GICR_BASE: u64 = 0x080A_0000;
/// One Redistributor: `RD_base` and `SGI_base`, 64 KiB each. There are no LPIs
/// and no GICv4 virtual LPI frames, which would make it larger.
pub const GICR_FRAME_SIZE: u64 = 0x2_0000;
/// Where `SGI_base` starts within a Redistributor.
pub const GICR_SGI_OFFSET: u64 = 0x1_0000;

/// PL011 UART, the guest's console.
pub const UART_BASE: u64 = 0x0900_0000;
/// The PL011's 4 KiB register frame (its ID registers end at offset 0xFFC).
pub const UART_SIZE: u64 = 0x1000;

/// The first virtio-mmio transport; transport n is at
/// `VIRTIO_MMIO_BASE + n × VIRTIO_MMIO_SIZE` (QEMU `virt`'s layout).
pub const VIRTIO_MMIO_BASE: u64 = 0x0A00_0000;
/// One virtio-mmio transport's register window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x200;
/// How many transports there are (all empty: device ID 0).
pub const VIRTIO_MMIO_COUNT: usize = 32;
/// Transport 0's interrupt; transport n's is this + n.
pub const VIRTIO_MMIO_FIRST_INTID: u32 = 48;

/// Start of the window holding every device above (GICD, GICRs, PL011,
/// virtio-mmio): the Distributor comes first.
pub const DEVICES_BASE: u64 = GICD_BASE;
/// End (exclusive) of the device window: the last virtio-mmio transport's end.
pub const DEVICES_END: u64 = VIRTIO_MMIO_BASE + VIRTIO_MMIO_COUNT as u64 * VIRTIO_MMIO_SIZE;

/// Guest RAM: where a bare image is loaded and entered, and where a Linux
/// kernel, its initrd and device tree are placed.
pub const RAM_BASE: u64 = 0x4000_0000;
/// The VM's first shared region; the next ones follow [`SHARED_STRIDE`] apart.
pub const SHARED_BASE: u64 = 0x1_0000_0000;
/// Spacing of shared regions: each starts 1 GiB aligned.
pub const SHARED_STRIDE: u64 = 1 << 30;

/// The GIC maintenance interrupt (PPI 9).
pub const MAINTENANCE_INTID: u32 = 25;
/// The EL2 (hypervisor) physical timer (PPI 10).
pub const HYP_TIMER_INTID: u32 = 26;
/// The EL1 virtual timer (PPI 11): the Server Base System Architecture's choice,
/// used by QEMU `virt`.
pub const VIRTUAL_TIMER_INTID: u32 = 27;
/// The secure physical timer (PPI 13).
pub const SECURE_PHYS_TIMER_INTID: u32 = 29;
/// The EL1 non-secure physical timer (PPI 14).
pub const PHYS_TIMER_INTID: u32 = 30;
/// The PL011's level-sensitive interrupt (SPI 1).
pub const UART_INTID: u32 = 33;

/// Most vCPUs a VM may have. The virtual GIC keeps a set of vCPUs (the targets of
/// an SGI, the vCPUs to kick) in one 64-bit mask, so it models at most 64; PSCI
/// and the device tree name vCPU n by Aff0 = n and could name 256. The smaller
/// bound is the one every model accepts, so it is the configuration's limit.
pub const MAX_VCPUS: usize = 64;

// The map holds together: regions in address order, none overlapping, the
// devices inside their window, even with every vCPU's Redistributor.
const _: () = {
    let gicr_end = GICR_BASE + MAX_VCPUS as u64 * GICR_FRAME_SIZE;
    assert!(DEVICES_BASE <= GICD_BASE && GICD_BASE + GICD_SIZE <= GICR_BASE);
    assert!(gicr_end <= UART_BASE && UART_BASE + UART_SIZE <= VIRTIO_MMIO_BASE);
    assert!(VIRTIO_MMIO_BASE + VIRTIO_MMIO_COUNT as u64 * VIRTIO_MMIO_SIZE <= DEVICES_END);
    assert!(DEVICES_END <= RAM_BASE && RAM_BASE < SHARED_BASE);
    assert!(GICR_SGI_OFFSET < GICR_FRAME_SIZE);
    assert!(SHARED_BASE.is_multiple_of(SHARED_STRIDE));
};
