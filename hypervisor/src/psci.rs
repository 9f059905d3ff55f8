//! PSCI (Arm DEN 0022) and SMCCC (Arm DEN 0028) function IDs and return codes:
//! one table for both sides, the hypervisor calling the firmware below it and
//! the PSCI it offers its guests (`vm::vpsci`).

/// `PSCI_VERSION` (SMC32 only).
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// `CPU_SUSPEND`, SMC32 variant.
pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
/// `CPU_SUSPEND`, SMC64 variant.
pub const CPU_SUSPEND_64: u32 = 0xC400_0001;
/// `CPU_OFF` (SMC32 only: it takes no argument).
pub const CPU_OFF: u32 = 0x8400_0002;
/// `CPU_ON`, SMC32 variant.
pub const CPU_ON_32: u32 = 0x8400_0003;
/// `CPU_ON`, SMC64 variant.
pub const CPU_ON_64: u32 = 0xC400_0003;
/// `AFFINITY_INFO`, SMC32 variant.
pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
/// `AFFINITY_INFO`, SMC64 variant.
pub const AFFINITY_INFO_64: u32 = 0xC400_0004;
/// `MIGRATE`, SMC64 variant. The guest device tree names it, as PSCI 0.1's binding
/// wants; the guests' PSCI (`vm::vpsci`) does not offer it.
pub const MIGRATE_64: u32 = 0xC400_0005;
/// `MIGRATE_INFO_TYPE` (SMC32 only).
pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
/// `SYSTEM_OFF` (SMC32 only).
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// `SYSTEM_RESET` (SMC32 only).
pub const SYSTEM_RESET: u32 = 0x8400_0009;
/// `PSCI_FEATURES` (SMC32 only; new in PSCI 1.0).
pub const PSCI_FEATURES: u32 = 0x8400_000A;

/// `SMCCC_VERSION` (DEN 0028, Arm Architecture Service call 0).
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// `SMCCC_ARCH_FEATURES` (DEN 0028, SMCCC 1.1 and later).
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
/// `SMCCC_ARCH_WORKAROUND_1`: branch predictor invalidation (Spectre variant 2).
pub const SMCCC_ARCH_WORKAROUND_1: u32 = 0x8000_8000;
/// `SMCCC_ARCH_WORKAROUND_2`: speculative store bypass control (Spectre variant 4).
pub const SMCCC_ARCH_WORKAROUND_2: u32 = 0x8000_7FFF;
/// `SMCCC_ARCH_WORKAROUND_3`: branch history clearing (Spectre-BHB) and variant 2.
pub const SMCCC_ARCH_WORKAROUND_3: u32 = 0x8000_3FFF;

/// Return codes, from the DEN 0022 error-code table (the SMCCC ones agree:
/// NOT_SUPPORTED is -1 there too). They are written to `x0` sign-extended.
pub const SUCCESS: i64 = 0;
pub const NOT_SUPPORTED: i64 = -1;
pub const INVALID_PARAMETERS: i64 = -2;
pub const DENIED: i64 = -3;
pub const ALREADY_ON: i64 = -4;
pub const ON_PENDING: i64 = -5;
pub const INTERNAL_FAILURE: i64 = -6;
pub const NOT_PRESENT: i64 = -7;
pub const DISABLED: i64 = -8;
pub const INVALID_ADDRESS: i64 = -9;

/// A PSCI call's failure, decoded from its negative return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciError {
    NotSupported,
    InvalidParameters,
    Denied,
    AlreadyOn,
    OnPending,
    InternalFailure,
    NotPresent,
    Disabled,
    InvalidAddress,
    Unknown(i64),
}

impl PsciError {
    /// Interprets a PSCI return value: 0 (and positive values) are success.
    pub fn check(ret: u64) -> Result<u64, PsciError> {
        let ret = ret as i64;
        match ret {
            r if r >= 0 => Ok(r as u64),
            NOT_SUPPORTED => Err(Self::NotSupported),
            INVALID_PARAMETERS => Err(Self::InvalidParameters),
            DENIED => Err(Self::Denied),
            ALREADY_ON => Err(Self::AlreadyOn),
            ON_PENDING => Err(Self::OnPending),
            INTERNAL_FAILURE => Err(Self::InternalFailure),
            NOT_PRESENT => Err(Self::NotPresent),
            DISABLED => Err(Self::Disabled),
            INVALID_ADDRESS => Err(Self::InvalidAddress),
            other => Err(Self::Unknown(other)),
        }
    }
}

impl core::fmt::Display for PsciError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unknown(code) => write!(f, "unknown PSCI error {code}"),
            other => write!(f, "PSCI {other:?}"),
        }
    }
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
        assert_eq!(PsciError::check(0), Ok(0));
        assert_eq!(PsciError::check(0x1_0001), Ok(0x1_0001));
        assert_eq!(PsciError::check(-4i64 as u64), Err(PsciError::AlreadyOn));
        assert_eq!(PsciError::check(-2i64 as u64), Err(PsciError::InvalidParameters));
        assert_eq!(PsciError::check(-42i64 as u64), Err(PsciError::Unknown(-42)));
        assert_eq!(format_version(0x1_0001), (1, 1));
    }
}
