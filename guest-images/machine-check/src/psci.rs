//! PSCI and SMCCC calls over HVC, the conduit both machines' device trees name
//! (bare QEMU `virt` without EL2 or EL3 answers HVC itself). The answers are kept
//! raw: the `psci` case prints them.

use smccc::{Call, Hvc};

/// A 64-bit function `function` with up to three arguments: x0 as a signed value.
pub fn call64(function: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let mut args = [0u64; 17];
    args[..3].copy_from_slice(&[a1, a2, a3]);
    Hvc::call64(function, args)[0] as i64
}

/// A 32-bit function (SMC32/HVC32 convention): w0 as a signed value.
pub fn call32(function: u32, a1: u32, a2: u32) -> i32 {
    let mut args = [0u32; 7];
    args[..2].copy_from_slice(&[a1, a2]);
    Hvc::call32(function, args)[0] as i32
}

/// CPU_ON (64-bit) of the vCPU with MPIDR `mpidr`.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> i64 {
    call64(smccc::psci::PSCI_CPU_ON_64, mpidr, entry, context)
}

/// AFFINITY_INFO (64-bit) of `mpidr` at affinity level 0.
pub fn affinity_info(mpidr: u64) -> i64 {
    call64(smccc::psci::PSCI_AFFINITY_INFO_64, mpidr, 0, 0)
}

/// CPU_OFF for the calling vCPU; returns only if it failed.
pub fn cpu_off() -> i32 {
    call32(smccc::psci::PSCI_CPU_OFF, 0, 0)
}

/// SYSTEM_OFF: the end of every run, on both machines.
pub fn system_off() -> ! {
    let _ = smccc::psci::system_off::<Hvc>();
    loop {
        crate::sysreg::wfi();
    }
}
