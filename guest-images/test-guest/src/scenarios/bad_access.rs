//! `bad-access` (arg 8): accesses to IPAs outside the VM's RAM must come back to
//! the guest's own EL1 vectors as synchronous external aborts (EC 0x25, DFSC
//! 0x10) on the faulting instruction, and the VM must keep working after them.

use core::ptr;

use super::{Env, Outcome, PAGE, fail};
use crate::boot::{self, dfsc, ec};
use crate::console::{println, text};

/// The IPAs touched. Mapped Normal (not tagged) in the guest's stage 1, so
/// that the accesses reach stage 2. `1 << 38` is inside the 39-bit VA space.
pub const TARGETS: [u64; 3] = [LOAD_NOTHING, STORE_NOTHING, LOAD_HIGH];

#[cfg(not(feature = "semihosting-console"))]
const LOAD_NOTHING: u64 = 0x2000_0000;
#[cfg(not(feature = "semihosting-console"))]
const STORE_NOTHING: u64 = 0x3000_0000;
// Smoke tests on bare QEMU `virt`: 0x1000_0000..0x3eff_0000 is the PCIe MMIO
// window there, which reads as all-ones without aborting; use holes instead.
#[cfg(feature = "semihosting-console")]
const LOAD_NOTHING: u64 = 0x0b00_0000;
#[cfg(feature = "semihosting-console")]
const STORE_NOTHING: u64 = 0x0b20_0000;
const LOAD_HIGH: u64 = 1 << 38;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Load,
    Store,
}

const ACCESSES: [(Access, u64); 3] =
    [(Access::Load, LOAD_NOTHING), (Access::Store, STORE_NOTHING), (Access::Load, LOAD_HIGH)];

pub fn run(env: &Env) -> Outcome {
    let mut fscs = [0u64; 3];
    for (i, (access, addr)) in ACCESSES.into_iter().enumerate() {
        let (what, probe) = match access {
            // SAFETY: outside RAM, nothing is there: the load is expected to abort.
            Access::Load => ("load", unsafe { boot::probe_load(addr) }),
            // SAFETY: outside RAM, nothing is there: the store is expected to abort.
            Access::Store => ("store", unsafe { boot::probe_store(addr, 0x5A5A_5A5A_5A5A_5A5A) }),
        };
        let Some(fault) = probe.fault else {
            fail!("{what} at IPA 0x{addr:x} did not abort (read 0x{:x})", probe.value);
        };
        println!(
            "bad-access: {what} 0x{addr:x}: ESR_EL1=0x{:x} EC=0x{:x} DFSC=0x{:x} WnR={} FnV={} FAR=0x{:x} ELR=0x{:x}",
            fault.esr,
            fault.ec(),
            fault.fsc(),
            u8::from(fault.wnr()),
            u8::from(fault.far_not_valid()),
            fault.far,
            fault.elr
        );
        if fault.ec() != ec::DATA_ABORT_SAME_EL || fault.fsc() != dfsc::SYNC_EXTERNAL {
            fail!("{what} at 0x{addr:x}: {fault}; want EC 0x25 (data abort, same EL) DFSC 0x10 (sync external abort)");
        }
        if fault.elr != probe.insn {
            fail!("{what} at 0x{addr:x}: ELR_EL1 0x{:x} is not the faulting instruction 0x{:x}", fault.elr, probe.insn);
        }
        if !fault.far_not_valid() && fault.far != addr {
            fail!("{what} at 0x{addr:x}: FAR_EL1 0x{:x} (marked valid) is not the address", fault.far);
        }
        fscs[i] = fault.fsc();
    }

    // The VM still works: write and read back 64 KiB of free RAM.
    let start = env.image_end;
    let end = (start + 16 * PAGE).min(env.ram_end());
    for addr in (start..end).step_by(8) {
        // SAFETY: free RAM after the image; no Rust object lives there.
        unsafe { ptr::write_volatile(addr as *mut u64, !addr) };
    }
    for addr in (start..end).step_by(8) {
        // SAFETY: as above.
        let got = unsafe { ptr::read_volatile(addr as *const u64) };
        if got != !addr {
            fail!("after the aborts, RAM 0x{addr:x} reads 0x{got:x}, wrote 0x{:x}", !addr);
        }
    }
    text!(
        "3 aborts at EL1: load 0x{LOAD_NOTHING:x} DFSC 0x{:x}, store 0x{STORE_NOTHING:x} DFSC 0x{:x}, load 0x{LOAD_HIGH:x} DFSC 0x{:x}; {} KiB of RAM written and read back after",
        fscs[0],
        fscs[1],
        fscs[2],
        (end - start) >> 10
    )
}
