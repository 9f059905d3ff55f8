//! PSCI (Arm DEN 0022) and SMCCC (Arm DEN 0028) function IDs and return codes:
//! one table for both sides, the hypervisor calling the firmware below it and
//! the PSCI it offers its guests (`vm::vpsci`). The values and the error type
//! come from the `smccc` crate; this module gives them the names the callers use.

use smccc::arch;
use smccc::psci::{self, error};

/// `PSCI_VERSION` (SMC32 only).
pub const PSCI_VERSION: u32 = psci::PSCI_VERSION;
/// `CPU_SUSPEND`, SMC32 variant.
pub const CPU_SUSPEND_32: u32 = psci::PSCI_CPU_SUSPEND_32;
/// `CPU_SUSPEND`, SMC64 variant.
pub const CPU_SUSPEND_64: u32 = psci::PSCI_CPU_SUSPEND_64;
/// `CPU_OFF` (SMC32 only: it takes no argument).
pub const CPU_OFF: u32 = psci::PSCI_CPU_OFF;
/// `CPU_ON`, SMC32 variant.
pub const CPU_ON_32: u32 = psci::PSCI_CPU_ON_32;
/// `CPU_ON`, SMC64 variant.
pub const CPU_ON_64: u32 = psci::PSCI_CPU_ON_64;
/// `AFFINITY_INFO`, SMC32 variant.
pub const AFFINITY_INFO_32: u32 = psci::PSCI_AFFINITY_INFO_32;
/// `AFFINITY_INFO`, SMC64 variant.
pub const AFFINITY_INFO_64: u32 = psci::PSCI_AFFINITY_INFO_64;
/// `MIGRATE`, SMC64 variant. The guest device tree names it, as PSCI 0.1's binding
/// wants; the guests' PSCI (`vm::vpsci`) does not offer it.
pub const MIGRATE_64: u32 = psci::PSCI_MIGRATE_64;
/// `MIGRATE_INFO_TYPE` (SMC32 only).
pub const MIGRATE_INFO_TYPE: u32 = psci::PSCI_MIGRATE_INFO_TYPE;
/// `SYSTEM_OFF` (SMC32 only).
pub const SYSTEM_OFF: u32 = psci::PSCI_SYSTEM_OFF;
/// `SYSTEM_RESET` (SMC32 only).
pub const SYSTEM_RESET: u32 = psci::PSCI_SYSTEM_RESET;
/// `PSCI_FEATURES` (SMC32 only; new in PSCI 1.0).
pub const PSCI_FEATURES: u32 = psci::PSCI_FEATURES;

/// `SMCCC_VERSION` (DEN 0028, Arm Architecture Service call 0).
pub const SMCCC_VERSION: u32 = arch::SMCCC_VERSION;
/// `SMCCC_ARCH_FEATURES` (DEN 0028, SMCCC 1.1 and later).
pub const SMCCC_ARCH_FEATURES: u32 = arch::SMCCC_ARCH_FEATURES;
/// `SMCCC_ARCH_WORKAROUND_1`: branch predictor invalidation (Spectre variant 2).
pub const SMCCC_ARCH_WORKAROUND_1: u32 = arch::SMCCC_ARCH_WORKAROUND_1;
/// `SMCCC_ARCH_WORKAROUND_2`: speculative store bypass control (Spectre variant 4).
pub const SMCCC_ARCH_WORKAROUND_2: u32 = arch::SMCCC_ARCH_WORKAROUND_2;
/// `SMCCC_ARCH_WORKAROUND_3`: branch history clearing (Spectre-BHB) and variant 2.
pub const SMCCC_ARCH_WORKAROUND_3: u32 = arch::SMCCC_ARCH_WORKAROUND_3;

/// Return codes, from the DEN 0022 error-code table (the SMCCC ones agree:
/// NOT_SUPPORTED is -1 there too), widened to the `i64` that is written to `x0`
/// sign-extended.
pub const SUCCESS: i64 = smccc::error::SUCCESS as i64;
pub const NOT_SUPPORTED: i64 = error::NOT_SUPPORTED as i64;
pub const INVALID_PARAMETERS: i64 = error::INVALID_PARAMETERS as i64;
pub const DENIED: i64 = error::DENIED as i64;
pub const ALREADY_ON: i64 = error::ALREADY_ON as i64;
pub const ON_PENDING: i64 = error::ON_PENDING as i64;
pub const INTERNAL_FAILURE: i64 = error::INTERNAL_FAILURE as i64;
pub const NOT_PRESENT: i64 = error::NOT_PRESENT as i64;
pub const DISABLED: i64 = error::DISABLED as i64;
pub const INVALID_ADDRESS: i64 = error::INVALID_ADDRESS as i64;

/// A PSCI call's failure, decoded from its negative return value
/// (`Unknown(code)` for a code outside the table).
pub use smccc::psci::Error as PsciError;

/// Interprets a PSCI return value: 0 (and positive values) are success.
pub fn check(ret: u64) -> Result<u64, PsciError> {
    smccc::error::positive_or_error_64(ret)
}

/// A PSCI version word as `major.minor`.
pub fn format_version(version: u64) -> (u16, u16) {
    ((version >> 16) as u16, version as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes() {
        assert_eq!(check(0), Ok(0));
        assert_eq!(check(0x1_0001), Ok(0x1_0001));
        assert_eq!(check(-4i64 as u64), Err(PsciError::AlreadyOn));
        assert_eq!(check(-2i64 as u64), Err(PsciError::InvalidParameters));
        assert_eq!(check(-42i64 as u64), Err(PsciError::Unknown(-42)));
        assert_eq!(format_version(0x1_0001), (1, 1));
    }

    #[test]
    fn function_ids_are_den_0022_and_den_0028() {
        assert_eq!(
            [PSCI_VERSION, CPU_OFF, SYSTEM_OFF, SYSTEM_RESET, PSCI_FEATURES],
            [0x8400_0000, 0x8400_0002, 0x8400_0008, 0x8400_0009, 0x8400_000A]
        );
        assert_eq!(
            [CPU_ON_32, CPU_ON_64, AFFINITY_INFO_64, CPU_SUSPEND_64],
            [0x8400_0003, 0xC400_0003, 0xC400_0004, 0xC400_0001]
        );
        assert_eq!(
            [SMCCC_VERSION, SMCCC_ARCH_FEATURES, SMCCC_ARCH_WORKAROUND_1],
            [0x8000_0000, 0x8000_0001, 0x8000_8000]
        );
        assert_eq!([NOT_SUPPORTED, INVALID_ADDRESS], [-1, -9]);
    }
}
