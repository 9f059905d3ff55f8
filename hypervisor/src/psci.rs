//! PSCI (Arm DEN 0022) function IDs and return codes the hypervisor uses as a
//! caller of the firmware below it.

pub const PSCI_VERSION: u32 = 0x8400_0000;
pub const CPU_ON_64: u32 = 0xC400_0003;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const SYSTEM_RESET: u32 = 0x8400_0009;

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
            -1 => Err(Self::NotSupported),
            -2 => Err(Self::InvalidParameters),
            -3 => Err(Self::Denied),
            -4 => Err(Self::AlreadyOn),
            -5 => Err(Self::OnPending),
            -6 => Err(Self::InternalFailure),
            -7 => Err(Self::NotPresent),
            -8 => Err(Self::Disabled),
            -9 => Err(Self::InvalidAddress),
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
