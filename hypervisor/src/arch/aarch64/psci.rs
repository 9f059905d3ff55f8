//! Calls into the PSCI firmware below us, through the conduit the DTB names.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::platform::PsciConduit;
use crate::psci::{CPU_ON_64, PSCI_VERSION, PsciError, SYSTEM_OFF};

const CONDUIT_UNKNOWN: u8 = 0;
const CONDUIT_SMC: u8 = 1;
const CONDUIT_HVC: u8 = 2;

static CONDUIT: AtomicU8 = AtomicU8::new(CONDUIT_UNKNOWN);

/// Records how to reach the firmware (from the DTB's `/psci` `method`).
pub fn set_conduit(conduit: PsciConduit) {
    let value = match conduit {
        PsciConduit::Smc => CONDUIT_SMC,
        PsciConduit::Hvc => CONDUIT_HVC,
    };
    CONDUIT.store(value, Ordering::Relaxed);
}

/// Issues an SMCCC call with three arguments; returns x0. `Err(NotSupported)` when
/// the DTB described no PSCI.
fn call(function: u32, arg1: u64, arg2: u64, arg3: u64) -> Result<u64, PsciError> {
    let mut x0 = function as u64;
    match CONDUIT.load(Ordering::Relaxed) {
        CONDUIT_SMC => {
            // SAFETY: an SMCCC call to the secure firmware; per SMCCC it may clobber x0-x17
            // and preserves everything else, including the stack.
            unsafe {
                core::arch::asm!("smc #0", inout("x0") x0, inout("x1") arg1 => _, inout("x2") arg2 => _,
                    inout("x3") arg3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                    out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                    out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
            }
        }
        CONDUIT_HVC => {
            // SAFETY: as above, through HVC (firmware emulated at EL2 by a host we run under).
            unsafe {
                core::arch::asm!("hvc #0", inout("x0") x0, inout("x1") arg1 => _, inout("x2") arg2 => _,
                    inout("x3") arg3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                    out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
                    out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
            }
        }
        _ => return Err(PsciError::NotSupported),
    }
    PsciError::check(x0)
}

/// The firmware's PSCI version word.
pub fn version() -> Result<u64, PsciError> {
    call(PSCI_VERSION, 0, 0, 0)
}

/// Starts the CPU with affinity `mpidr` at physical address `entry` with x0 = `context`.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    call(CPU_ON_64, mpidr, entry, context).map(|_| ())
}

/// Powers the machine off. Returns only if the firmware refused.
pub fn system_off() -> PsciError {
    match call(SYSTEM_OFF, 0, 0, 0) {
        Err(error) => error,
        Ok(_) => PsciError::InternalFailure,
    }
}
