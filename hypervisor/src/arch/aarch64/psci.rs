//! Calls into the PSCI firmware below us, through the conduit the DTB names
//! (the `smccc` crate issues the calls and decodes their results).

use core::sync::atomic::{AtomicU8, Ordering};

use smccc::psci;
use smccc::{Hvc, Smc};

use crate::platform::PsciConduit;
use crate::psci::PsciError;

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

/// The recorded conduit; `Err(NotSupported)` when the DTB described no PSCI.
fn conduit() -> Result<PsciConduit, PsciError> {
    match CONDUIT.load(Ordering::Relaxed) {
        CONDUIT_SMC => Ok(PsciConduit::Smc),
        CONDUIT_HVC => Ok(PsciConduit::Hvc),
        _ => Err(PsciError::NotSupported),
    }
}

/// The firmware's PSCI version word.
pub fn version() -> Result<u64, PsciError> {
    let version = match conduit()? {
        PsciConduit::Smc => psci::version::<Smc>()?,
        PsciConduit::Hvc => psci::version::<Hvc>()?,
    };
    Ok(u32::from(version).into())
}

/// Starts the CPU with affinity `mpidr` at physical address `entry` with x0 = `context`.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    match conduit()? {
        PsciConduit::Smc => psci::cpu_on::<Smc>(mpidr, entry, context),
        PsciConduit::Hvc => psci::cpu_on::<Hvc>(mpidr, entry, context),
    }
}

/// Powers the machine off. Returns only if the firmware refused.
pub fn system_off() -> PsciError {
    let result = match conduit() {
        Ok(PsciConduit::Smc) => psci::system_off::<Smc>(),
        Ok(PsciConduit::Hvc) => psci::system_off::<Hvc>(),
        Err(error) => Err(error),
    };
    match result {
        Err(error) => error,
        Ok(()) => PsciError::InternalFailure,
    }
}
