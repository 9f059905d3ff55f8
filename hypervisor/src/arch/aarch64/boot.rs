//! The primary CPU's path from the entry assembly to a running system: find the
//! device tree, learn the machine from it, turn on the MMU, set up memory, start
//! the other CPUs, report.

use arrayvec::ArrayVec;

use super::mmu::{self, ImageLayout};
use super::power::{Outcome, power_off};
use super::{cpu, exceptions, gic, psci, semihosting, smp};
use crate::console::{self, logger};
use crate::platform::{self, PhysRange, Platform};
use crate::vm::runtime::{director, scheduler};
use crate::{memory, println};

/// Largest DTB we accept (QEMU pads its tree to 1 MiB).
const MAX_DTB_BYTES: usize = 2 * 1024 * 1024;

/// A flattened device tree found in a boot register.
struct BootBlob {
    address: u64,
    bytes: &'static [u8],
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

/// The boot protocols we accept: TF-A BL33 (x0 = NT_FW_CONFIG, itself a small FDT,
/// and x1 = the hardware DTB) and Linux/`RESET_TO_BL31` (x0 = DTB, x1 = 0).
/// Returns the hardware DTB and, if present, the firmware config blob to keep.
fn pick_device_tree(x0: u64, x1: u64) -> (Option<BootBlob>, Option<BootBlob>) {
    match (fdt_at(x0), fdt_at(x1)) {
        (firmware_config, Some(hardware)) => (Some(hardware), firmware_config),
        (Some(hardware), None) => (Some(hardware), None),
        (None, None) => (None, None),
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

/// Rust entry of the primary CPU, called by `boot`'s entry assembly with the MMU off
/// and the registers the boot loader passed.
#[unsafe(no_mangle)]
extern "C" fn hypervisor_primary_main(x0: u64, x1: u64, _x2: u64, _x3: u64) -> ! {
    let at_el2 = cpu::current_el() == 2;
    if at_el2 {
        exceptions::install();
    }
    let (dtb, firmware_config) = pick_device_tree(x0, x1);
    let Some(dtb) = dtb else {
        refuse(at_el2, format_args!("no device tree in x0 ({x0:#x}) or x1 ({x1:#x}); boot with a DTB"));
    };
    let platform = match Platform::from_fdt(dtb.address, dtb.bytes) {
        Ok(platform) => platform,
        // No console is known yet: `refuse` reports through semihosting where available.
        Err(error) => refuse(at_el2, format_args!("device tree at {:#x} unusable: {error}", dtb.address)),
    };
    if let Some(uart) = &platform.console {
        // SAFETY: the DTB names this PL011; the MMU is off now and mmu::build maps it.
        unsafe { console::init(uart.base as usize) };
    }
    if !at_el2 {
        refuse(
            false,
            format_args!(
                "entered at EL{}; the hypervisor must be started at EL2 (QEMU: -M virt,virtualization=on)",
                cpu::current_el()
            ),
        );
    }
    println!("\nmte-hypervisor {} starting at EL2 (DTB at {:#x})", env!("CARGO_PKG_VERSION"), dtb.address);
    let Some(boot_index) = smp::boot_cpu_index(&platform) else {
        refuse(true, format_args!("boot CPU MPIDR {:#x} is not in the device tree's /cpus", cpu::mpidr_affinity()));
    };
    cpu::set_index(boot_index);
    if let Some(psci_node) = &platform.psci {
        psci::set_conduit(psci_node.conduit);
    }

    let mte = cpu::mte_info();
    let translation = match mmu::build(&platform, mte.level.has_tag_storage()) {
        Ok(t) => t,
        Err(error) => refuse(true, format_args!("{error}")),
    };
    // SAFETY: the map identity-maps RAM, the image and the console, and is never changed.
    unsafe { mmu::enable(&translation) };
    console::enable_locking();
    logger::init();
    smp::report_in(boot_index);

    let image = ImageLayout::current().whole();
    let mut exclusions: ArrayVec<PhysRange, 40> = ArrayVec::new();
    exclusions.push(image);
    exclusions.push(PhysRange { base: dtb.address, size: dtb.bytes.len() as u64 });
    if let Some(config) = &firmware_config {
        exclusions.push(PhysRange { base: config.address, size: config.bytes.len() as u64 });
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
    if let Some(config) = &firmware_config {
        log::info!("firmware config blob (NT_FW_CONFIG) at {:#x} kept reserved", config.address);
    }
    match psci::version() {
        Ok(v) => {
            let (major, minor) = crate::psci::format_version(v);
            log::info!("PSCI {major}.{minor} via {:?}", platform.psci.as_ref().map(|p| p.conduit));
        }
        Err(e) => log::warn!("no PSCI firmware ({e}): secondary CPUs stay off and power-off will not work"),
    }

    gic::init_distributor(&platform);
    if let Err(error) = gic::init_cpu() {
        refuse(true, format_args!("GIC: {error}"));
    }
    let offline = smp::start_secondaries(&platform, &translation, boot_index);
    print_summary(&platform, &mte, offline);

    #[cfg(feature = "inject-el2-fault")]
    inject_el2_fault();

    let Some(bundle) = platform.initrd else {
        log::info!("no VM bundle (initrd) given: nothing to run, powering off");
        console::flush();
        power_off(if offline == 0 { Outcome::Success } else { Outcome::Failure })
    };
    log::info!("VM bundle at {:#x} ({} KiB)", bundle.base, bundle.size / 1024);
    // SAFETY: the boot loader placed the bundle there; it is excluded from every
    // allocator and identity-mapped (it lies in RAM), and nothing writes to it.
    let bundle_bytes = unsafe { core::slice::from_raw_parts(bundle.base as *const u8, bundle.size as usize) };
    if let Err(error) = director::start(bundle_bytes, &platform.ram, mte, smp::online_count()) {
        refuse(true, format_args!("cannot start the VMs: {error}"));
    }
    scheduler::run_cpu(boot_index)
}

fn print_summary(platform: &Platform, mte: &crate::mte::MteInfo, offline: usize) {
    println!("--- platform summary ---");
    println!("{platform}");
    println!("CPUs online: {} of {}", smp::online_count(), platform.cpus.len());
    println!("MTE: {mte}");
    println!("------------------------");
    if offline != 0 {
        log::error!("{offline} CPU(s) failed to come online");
    }
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
