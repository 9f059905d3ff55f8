//! PSCI and SMCCC calls through either conduit, with any function ID and
//! arguments (the hypervisor answers `HVC #0` and trapped `SMC #0` alike).

use core::arch::asm;

pub const PSCI_VERSION: u64 = 0x8400_0000;
pub const CPU_OFF: u64 = 0x8400_0002;
pub const CPU_ON_64: u64 = 0xC400_0003;
pub const AFFINITY_INFO_64: u64 = 0xC400_0004;
pub const SYSTEM_RESET: u64 = 0x8400_0009;
pub const SMCCC_VERSION: u64 = 0x8000_0000;

pub const SUCCESS: i64 = 0;
pub const NOT_SUPPORTED: i64 = -1;
pub const INVALID_PARAMETERS: i64 = -2;
pub const ALREADY_ON: i64 = -4;
pub const ON_PENDING: i64 = -5;
pub const INVALID_ADDRESS: i64 = -9;

/// AFFINITY_INFO answers.
pub const AFFINITY_ON: i64 = 0;
pub const AFFINITY_OFF: i64 = 1;

/// PSCI 1.1 as PSCI_VERSION encodes it.
pub const VERSION_1_1: u64 = 0x1_0001;

/// Which instruction makes the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

impl Conduit {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hvc => "HVC",
            Self::Smc => "SMC",
        }
    }
}

/// Makes the call and returns x0. Per SMCCC the callee may clobber x0-x17.
pub fn call(conduit: Conduit, function: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let ret: u64;
    /// One SMCCC call through `$insn`; the hypervisor answers in x0 and may
    /// clobber x1-x17 (declared).
    macro_rules! call {
        ($insn:literal) => {
            asm!(
                $insn,
                inlateout("x0") function => ret,
                inlateout("x1") a1 => _, inlateout("x2") a2 => _, inlateout("x3") a3 => _,
                out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _,
                out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _,
                options(nostack),
            )
        };
    }
    match conduit {
        // SAFETY: HVC #0 enters the hypervisor. No call made with this helper
        // writes guest memory (callers never pass the functions that stop or
        // reset this VM unless they mean to).
        Conduit::Hvc => unsafe { call!("hvc #0") },
        // SAFETY: as for HVC; SMC #0 from EL1 is trapped by the hypervisor
        // (HCR_EL2.TSC) and answered the same way.
        Conduit::Smc => unsafe { call!("smc #0") },
    }
    ret
}

/// An HVC #0 call, result as a signed SMCCC status.
pub fn hvc(function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    call(Conduit::Hvc, function, a1, a2, a3) as i64
}

/// The result of a call with a 32-bit function ID (SMC32/HVC32: only W0 counts).
pub fn w0(x0: u64) -> i64 {
    i64::from(x0 as u32 as i32)
}

pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> i64 {
    hvc(CPU_ON_64, mpidr, entry, context)
}

pub fn affinity_info(mpidr: u64) -> i64 {
    hvc(AFFINITY_INFO_64, mpidr, 0, 0)
}

/// CPU_OFF for the calling vCPU; returns only if it failed.
pub fn cpu_off() -> i64 {
    hvc(CPU_OFF, 0, 0, 0)
}

/// SYSTEM_RESET; returns only if it failed.
pub fn system_reset() -> i64 {
    hvc(SYSTEM_RESET, 0, 0, 0)
}
