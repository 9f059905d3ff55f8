//! What a guest finds at addresses outside RAM and how aborts reach it (issue 10,
//! items 10 and 11): QEMU virt's virtio-mmio transports, an unassigned address,
//! a stage-1 table walk into one, and the PSTATE on exception entry.

use core::arch::asm;

use fdt::Fdt;

use super::Outcome;
use crate::console::println;
use crate::exceptions::{Fault, expect_fault, expect_fault_capturing_entry};
use crate::sysreg::{EntryState, mrs, msr};
use crate::{mmio, mmu};

/// QEMU virt's first virtio-mmio transport; 32 of them, 0x200 apart.
const VIRTIO_MMIO_BASE: u64 = 0x0a00_0000;
const VIRTIO_MMIO_STRIDE: u64 = 0x200;
/// An address nothing answers on either machine (between the virtio-mmio
/// transports and QEMU's platform bus).
const UNASSIGNED: u64 = 0x0b00_0000;

/// One 32-bit read that may abort.
fn probe32(addr: u64) -> Result<u32, Fault> {
    match expect_fault(|| mmio::read32(addr)) {
        (value, None) => Ok(value),
        (_, Some(fault)) => Err(fault),
    }
}

/// MagicValue, Version and DeviceID of the first and the last transport.
pub fn virtio_probe(_: &Fdt<'_>) {
    for n in [0, 31] {
        let base = VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_STRIDE;
        let registers = [("MagicValue", 0x000), ("Version", 0x004), ("DeviceID", 0x008)];
        let mut line = [0u32; 3];
        let mut abort = None;
        for (i, (_, offset)) in registers.iter().enumerate() {
            match probe32(base + offset) {
                Ok(value) => line[i] = value,
                Err(fault) => {
                    abort = Some(fault);
                    break;
                }
            }
        }
        match abort {
            None => println!(
                "virtio-probe: transport {n} at 0x{base:x}: MagicValue 0x{:x}, Version {}, DeviceID {}",
                line[0], line[1], line[2]
            ),
            Some(fault) => println!("virtio-probe: transport {n} at 0x{base:x}: {}", Outcome(Some(fault))),
        }
    }
}

/// SCTLR_EL1.SPAN (clear: PAN is set on exception entry) and DSSBS (the SSBS
/// value on exception entry).
const SCTLR_SPAN: u64 = 1 << 23;
const SCTLR_DSSBS: u64 = 1 << 44;

/// PSTATE on entry to EL1 for an exception the CPU takes itself (UDF) and for an
/// external abort (under the hypervisor: injected), from PAN 0, UAO 1, SSBS 0,
/// TCO 0 with SCTLR_EL1.SPAN 0 and DSSBS 1: the architecture says PAN 1, UAO 0,
/// SSBS 1, TCO 1 (see `EntryState` for why DIT is not compared).
pub fn exception_entry(_: &Fdt<'_>) {
    let sctlr = mrs!("sctlr_el1");
    msr!("sctlr_el1", (sctlr & !SCTLR_SPAN) | SCTLR_DSSBS);
    let entry = |what: &str, f: &dyn Fn()| {
        EntryState::set_all(false, true, false, false);
        let ((), fault) = expect_fault_capturing_entry(f);
        EntryState::set_all(false, false, false, false);
        match fault {
            Some(Fault { entry: Some(state), .. }) => {
                println!("exception-entry: {what}: {}, PSTATE on entry {state}", Outcome(fault))
            }
            _ => println!("exception-entry: {what}: {}", Outcome(fault)),
        }
    };
    entry("UDF", &|| {
        // SAFETY: UDF raises an UNDEFINED exception, which the handler skips.
        unsafe { asm!("udf #0", options(nostack, preserves_flags)) }
    });
    entry("load from unassigned 0xb000000", &|| {
        core::hint::black_box(mmio::read32(UNASSIGNED));
    });
    msr!("sctlr_el1", sctlr);
}

/// A load through TTBR1 whose level-1 table descriptor points at an unassigned
/// address: the walk's own read aborts. The architecture reports it as a
/// synchronous external abort on a translation table walk, level 2 (DFSC 0x16).
pub fn walk_abort(_: &Fdt<'_>) {
    const TABLE_DESCRIPTOR: u64 = 0b11;
    mmu::set_high_root_entry(0, UNASSIGNED | TABLE_DESCRIPTOR);
    let (_, fault) = expect_fault(|| mmio::read32(mmu::TTBR1_BASE));
    mmu::set_high_root_entry(0, 0);
    println!("walk-abort: load whose level-2 table is at unassigned 0xb000000: {}", Outcome(fault));
}
