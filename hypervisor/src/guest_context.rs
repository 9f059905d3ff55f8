//! The vCPU register state that the hardware layer saves and restores on every
//! guest entry and exit. Portable: `arch` fills it, `vm` reads and changes it, and
//! host tests build it by hand.

/// The guest's general-purpose registers, PC and PSTATE, as `guest_entry.S` lays them out.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestRegisters {
    pub x: [u64; 31],
    pub pc: u64,
    pub pstate: u64,
}

const _: () = assert!(core::mem::size_of::<GuestRegisters>() == 264);

impl GuestRegisters {
    /// General-purpose register `index` as an instruction's register field names
    /// it: 31 is XZR in the encodings that trap (it reads as zero).
    pub fn get(&self, index: u8) -> u64 {
        self.x.get(usize::from(index)).copied().unwrap_or(0)
    }

    /// Writes register `index`; a write to 31 (XZR) is discarded.
    pub fn set(&mut self, index: u8, value: u64) {
        if let Some(slot) = self.x.get_mut(usize::from(index)) {
            *slot = value;
        }
    }
}

/// PSTATE for a vCPU's first instruction: EL1h, all exceptions masked.
pub const PSTATE_EL1H_MASKED: u64 = 0x3C5;

/// SCTLR_EL1 at reset for a new vCPU: MMU and caches off, RES1 bits set.
pub const SCTLR_EL1_RESET: u64 = 0x30D0_0800;

/// The EL1 registers an exception entry writes (ELR, SPSR, ESR, FAR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct El1ExceptionRegisters {
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
}

/// What an exception entry reads from the guest's EL1 state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct El1VectorState {
    pub vbar: u64,
    pub sctlr: u64,
}

/// An EL1 virtual timer register that a trapped guest access names
/// (`CNTHCTL_EL2.EL1TVT`, FEAT_ECV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtualTimerRegister {
    /// `CNTV_CTL_EL0`.
    Control,
    /// `CNTV_CVAL_EL0`.
    CompareValue,
    /// `CNTV_TVAL_EL0`.
    TimerValue,
}
