//! The boot sequence: what each CPU does from the entry assembly (the `boot`
//! crate) to running guests, in the order the README's "What it does at boot"
//! lists it.
//!
//! The primary CPU ([`hypervisor_primary_main`]): find the device tree, learn the
//! machine from it, start the console, turn on the EL2 MMU, set up memory, reach
//! the PSCI firmware, set up the GIC, start the secondary CPUs, print the
//! platform summary, start the VMs, and run its share of the vCPUs. A secondary
//! CPU ([`hypervisor_secondary_main`]) enters with the MMU already on: vectors,
//! GIC, report in, run its vCPUs.
//!
//! The steps are mechanisms from `arch` (the hardware) and the portable modules
//! (what the device tree says, how memory is split); this file only orders them
//! and says what went wrong.

use arrayvec::ArrayVec;

use crate::arch::aarch64::mmu::{self, El2Translation, ImageLayout};
use crate::arch::aarch64::{cpu, exceptions, gic, psci, semihosting, smp};
use crate::console::{self, logger};
use crate::cpus::CPUS;
use crate::memory;
use crate::mte::MteInfo;
use crate::platform::{self, PhysRange, Platform};
use crate::println;
use crate::shutdown::{self, Outcome, power_off};
use crate::vm::runtime::{director, scheduler};

/// Largest DTB we accept (QEMU pads its tree to 1 MiB).
const MAX_DTB_BYTES: usize = 2 * 1024 * 1024;

/// Rust entry of the primary CPU, called by `boot`'s entry assembly with the MMU off
/// and the registers the boot loader passed.
#[unsafe(no_mangle)]
extern "C" fn hypervisor_primary_main(x0: u64, x1: u64, _x2: u64, _x3: u64) -> ! {
    let at_el2 = cpu::current_el() == 2;
    if at_el2 {
        exceptions::install(shutdown::crash);
    }
    let blobs = find_device_tree(at_el2, x0, x1);
    let platform = learn_machine(at_el2, &blobs.hardware);
    start_console(&platform);
    if !at_el2 {
        refuse(
            false,
            format_args!(
                "entered at EL{}; the hypervisor must be started at EL2 (QEMU: -M virt,virtualization=on)",
                cpu::current_el()
            ),
        );
    }
    println!("\nmte-hypervisor {} starting at EL2 (DTB at {:#x})", env!("CARGO_PKG_VERSION"), blobs.hardware.address);
    let boot_index = identify_boot_cpu(&platform);
    if let Some(psci_node) = &platform.psci {
        psci::set_conduit(psci_node.conduit);
    }
    let mte = cpu::mte_info();
    let translation = turn_on_mmu(&platform, &mte);
    CPUS.report_in(boot_index, cpu::mpidr_affinity());
    set_up_memory(&platform, &blobs);
    report_psci(&platform);
    set_up_gic(&platform);
    // SAFETY: the frame allocator hands out fresh, page-aligned RAM that nobody
    // else owns, identity-mapped read-write by the EL2 map.
    let offline = unsafe {
        smp::start_secondaries(&platform, &translation, boot_index, &mut |bytes| {
            memory::frames().allocate(bytes).map(|pa| pa.as_u64())
        })
    };
    print_summary(&platform, &mte, offline);

    #[cfg(feature = "inject-el2-fault")]
    inject_el2_fault();

    let Some(bundle) = platform.initrd else {
        log::info!("no VM bundle (initrd) given: nothing to run, powering off");
        console::flush();
        power_off(if offline == 0 { Outcome::Success } else { Outcome::Failure })
    };
    start_vms(bundle, &platform, mte);
    scheduler::run_cpu(boot_index)
}

/// Rust entry of a secondary CPU, called by `boot`'s `secondary_entry` with the
/// MMU on (the primary's map, from [`smp::start_secondaries`]).
#[unsafe(no_mangle)]
extern "C" fn hypervisor_secondary_main(cpu_index: u64) -> ! {
    let index = cpu_index as usize;
    cpu::set_index(index);
    exceptions::install(shutdown::crash);
    if let Err(error) = gic::init_cpu() {
        log::error!("GIC: {error}; this CPU stays offline");
        cpu::halt();
    }
    log::info!("online (MPIDR {:#x})", cpu::mpidr_affinity());
    CPUS.report_in(index, cpu::mpidr_affinity());
    // Runs this CPU's vCPUs once the VMs exist (or waits until power-off).
    scheduler::run_cpu(index)
}

/// A flattened device tree found in a boot register.
struct BootBlob {
    address: u64,
    bytes: &'static [u8],
}

impl BootBlob {
    fn range(&self) -> PhysRange {
        PhysRange { base: self.address, size: self.bytes.len() as u64 }
    }
}

/// The device trees the boot loader handed over.
struct BootBlobs {
    /// The machine's device tree.
    hardware: BootBlob,
    /// TF-A's NT_FW_CONFIG, kept reserved.
    firmware_config: Option<BootBlob>,
}

/// Returns the FDT at `address` if there is one.
fn fdt_at(address: u64) -> Option<BootBlob> {
    if address == 0 || !address.is_multiple_of(8) {
        return None;
    }
    // SAFETY: boot loaders pass addresses of RAM in x0/x1; we read the 40-byte
    // header only, then at most the size it declares (checked against a bound).
    let header = unsafe { core::slice::from_raw_parts(address as *const u8, 40) };
    if !platform::looks_like_fdt(header) {
        return None;
    }
    let size = platform::fdt_total_size(header)?;
    if size > MAX_DTB_BYTES {
        return None;
    }
    // SAFETY: the header says the tree spans `size` bytes from `address`, all RAM
    // that stays untouched (it is excluded from every allocator).
    let bytes = unsafe { core::slice::from_raw_parts(address as *const u8, size) };
    Some(BootBlob { address, bytes })
}

/// Finds the device tree. The boot protocols we accept: TF-A BL33 (x0 =
/// NT_FW_CONFIG, itself a small FDT, and x1 = the hardware DTB) and
/// Linux/`RESET_TO_BL31` (x0 = DTB, x1 = 0).
fn find_device_tree(at_el2: bool, x0: u64, x1: u64) -> BootBlobs {
    match (fdt_at(x0), fdt_at(x1)) {
        (firmware_config, Some(hardware)) => BootBlobs { hardware, firmware_config },
        (Some(hardware), None) => BootBlobs { hardware, firmware_config: None },
        (None, None) => refuse(at_el2, format_args!("no device tree in x0 ({x0:#x}) or x1 ({x1:#x}); boot with a DTB")),
    }
}

/// Everything about the machine, from its device tree.
fn learn_machine(at_el2: bool, dtb: &BootBlob) -> Platform<'static> {
    match Platform::from_fdt(dtb.address, dtb.bytes) {
        Ok(platform) => platform,
        // No console is known yet: `refuse` reports through semihosting where available.
        Err(error) => refuse(at_el2, format_args!("device tree at {:#x} unusable: {error}", dtb.address)),
    }
}

/// The console the device tree names (unlocked until the MMU is on).
fn start_console(platform: &Platform) {
    if let Some(uart) = &platform.console {
        // SAFETY: the DTB names this PL011; the MMU is off now and mmu::build maps it.
        unsafe { console::init(uart.base as usize) };
    }
}

/// Which of the device tree's CPUs we are; recorded as this CPU's index.
fn identify_boot_cpu(platform: &Platform) -> usize {
    let Some(boot_index) = smp::boot_cpu_index(platform) else {
        refuse(true, format_args!("boot CPU MPIDR {:#x} is not in the device tree's /cpus", cpu::mpidr_affinity()));
    };
    cpu::set_index(boot_index);
    boot_index
}

/// The EL2 identity map, then the console lock and the logger (both need
/// the atomics that only work with the MMU on).
fn turn_on_mmu(platform: &Platform, mte: &MteInfo) -> El2Translation {
    let translation = match mmu::build(platform, mte.level.has_tag_storage()) {
        Ok(t) => t,
        Err(error) => refuse(true, format_args!("{error}")),
    };
    for device in mmu::devices_overlapping_ram(platform) {
        println!("warning: device range {:#x}+{:#x} overlaps RAM; not mapped as a device", device.base, device.size);
    }
    // SAFETY: the map identity-maps RAM, the image and the console, and is never changed.
    unsafe { mmu::enable(&translation) };
    console::enable_locking();
    logger::init();
    translation
}

/// The heap and the frame allocator, over all RAM minus what is in use:
/// the image, the device trees, the VM bundle and the reserved ranges.
fn set_up_memory(platform: &Platform, blobs: &BootBlobs) {
    let image = ImageLayout::current().whole();
    let mut exclusions: ArrayVec<PhysRange, 40> = ArrayVec::new();
    exclusions.push(image);
    exclusions.push(blobs.hardware.range());
    if let Some(config) = &blobs.firmware_config {
        exclusions.push(config.range());
    }
    if let Some(initrd) = platform.initrd {
        exclusions.push(initrd);
    }
    for reserved in platform.reserved.iter().take(exclusions.capacity() - exclusions.len()) {
        exclusions.push(*reserved);
    }
    let memory = match memory::init(&platform.ram, &exclusions) {
        Ok(m) => m,
        Err(error) => refuse(true, format_args!("memory setup: {error}")),
    };
    log::info!(
        "image {:#x}..{:#x}, heap {} MiB at {:#x}, {} MiB of frames free for guests",
        image.base,
        image.end(),
        memory.heap.size >> 20,
        memory.heap.base,
        memory.frames_total >> 20
    );
    if let Some(config) = &blobs.firmware_config {
        log::info!("firmware config blob (NT_FW_CONFIG) at {:#x} kept reserved", config.address);
    }
}

/// Whether the PSCI firmware answers (secondary CPUs and power-off need it).
fn report_psci(platform: &Platform) {
    match psci::version() {
        Ok(v) => {
            let (major, minor) = crate::psci::format_version(v);
            log::info!("PSCI {major}.{minor} via {:?}", platform.psci.as_ref().map(|p| p.conduit));
        }
        Err(e) => log::warn!("no PSCI firmware ({e}): secondary CPUs stay off and power-off will not work"),
    }
}

/// The GIC distributor, and this CPU's redistributor and CPU interface.
fn set_up_gic(platform: &Platform) {
    gic::init_distributor(platform);
    if let Err(error) = gic::init_cpu() {
        refuse(true, format_args!("GIC: {error}"));
    }
}

/// The platform summary, once every CPU is up (or known not to be).
fn print_summary(platform: &Platform, mte: &MteInfo, offline: usize) {
    println!("--- platform summary ---");
    println!("{platform}");
    println!("CPUs online: {} of {}", CPUS.online_count(), platform.cpus.len());
    println!("MTE: {mte}");
    println!("------------------------");
    if offline != 0 {
        log::error!("{offline} CPU(s) failed to come online");
    }
}

/// The VMs the bundle (the initrd) describes; the scheduler of each CPU
/// picks up the vCPUs pinned to it.
fn start_vms(bundle: PhysRange, platform: &Platform, mte: MteInfo) {
    log::info!("VM bundle at {:#x} ({} KiB)", bundle.base, bundle.size / 1024);
    // SAFETY: the boot loader placed the bundle there; it is excluded from every
    // allocator and identity-mapped (it lies in RAM), and nothing writes to it.
    let bundle_bytes = unsafe { core::slice::from_raw_parts(bundle.base as *const u8, bundle.size as usize) };
    if let Err(error) = director::start(bundle_bytes, &platform.ram, mte, CPUS.online_count()) {
        refuse(true, format_args!("cannot start the VMs: {error}"));
    }
}

/// Reports a fatal boot error on the console (or, without one, through
/// semihosting) and stops.
fn refuse(at_el2: bool, message: core::fmt::Arguments) -> ! {
    println!("error: {message}");
    if at_el2 {
        semihosting::write_line(message);
        power_off(Outcome::Failure);
    }
    cpu::halt()
}

/// Test-only: writes to an address the EL2 map leaves unmapped, to prove that an
/// unexpected EL2 exception produces a crash report and a failure exit.
#[cfg(feature = "inject-el2-fault")]
fn inject_el2_fault() {
    const UNMAPPED: u64 = 0xdead_0000_0000;
    log::warn!("inject-el2-fault: writing to unmapped address {UNMAPPED:#x}");
    // SAFETY: deliberately unsound: this store faults, and the fault handler never returns.
    unsafe { core::ptr::write_volatile(UNMAPPED as *mut u64, 0x5afe) };
}
