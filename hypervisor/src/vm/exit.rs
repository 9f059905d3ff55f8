//! What a guest exit means: the syndrome a lower-EL exception left in `ESR_EL2`
//! (with `FAR_EL2`/`HPFAR_EL2`) decoded into the action the hypervisor must take.
//! Pure decoding, host-tested with real syndrome values.

use crate::exception::{Esr, ExceptionClass, FaultStatus, SysRegAccess, WfxKind, faulting_ipa};
use crate::mm::{GuestVa, Ipa};

/// A lower-EL synchronous exception, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExit {
    /// `HVC #imm`: an SMCCC call (PSCI, or our hypercalls). ELR already points
    /// past the instruction.
    Hvc { imm: u16 },
    /// A trapped `SMC #imm` (HCR_EL2.TSC): treated as an SMCCC call too; ELR
    /// points at the instruction, so the handler must step over it.
    Smc { imm: u16 },
    /// A stage-2 abort on `ipa`.
    Stage2Abort(Stage2Abort),
    /// A trapped system-register access (ID registers with HCR_EL2.TID3, MTE
    /// registers of a VM without MTE).
    SysReg(SysRegAccess),
    /// `WFI`/`WFE` (HCR_EL2.TWI/TWE).
    Wait(WfxKind),
    /// Anything else: the guest gets an UNDEFINED exception.
    Unhandled(ExceptionClass),
}

/// Why a stage-2 abort happened, and what it was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage2Abort {
    pub ipa: Ipa,
    /// The guest virtual address it accessed (FAR_EL2).
    pub far: GuestVa,
    pub instruction: bool,
    pub write: bool,
    pub kind: Stage2FaultKind,
    /// The access was the guest's own (stage-1) table walk (S1PTW): `ipa` is a
    /// table it read.
    pub walk: bool,
    /// The access size and register, when the syndrome is valid (ISV), for MMIO emulation.
    pub access: Option<MmioAccess>,
}

/// The kinds of stage-2 fault the handler distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage2FaultKind {
    /// Nothing mapped: first touch of guest RAM, or an access outside it.
    Translation,
    AccessFlag,
    Permission,
    /// Address size, external abort on the walk, TLB conflict, ...: not something
    /// mapping can fix.
    Other(FaultStatus),
}

/// A decoded MMIO access (ESR ISV = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioAccess {
    pub size_bytes: u8,
    pub register: u8,
    pub sign_extend: bool,
    pub sixty_four_bit_register: bool,
}

fn fault_kind(status: FaultStatus) -> Stage2FaultKind {
    match status {
        FaultStatus::Translation { .. } => Stage2FaultKind::Translation,
        FaultStatus::AccessFlag { .. } => Stage2FaultKind::AccessFlag,
        FaultStatus::Permission { .. } => Stage2FaultKind::Permission,
        other => Stage2FaultKind::Other(other),
    }
}

/// Decodes a lower-EL synchronous exception.
pub fn decode(esr: u64, far: u64, hpfar: u64) -> GuestExit {
    let esr = Esr(esr);
    match esr.ec() {
        ExceptionClass::Hvc64 => GuestExit::Hvc { imm: esr.imm16().unwrap_or(0) },
        ExceptionClass::Smc64 => GuestExit::Smc { imm: esr.imm16().unwrap_or(0) },
        ExceptionClass::DataAbortLowerEl => {
            let abort = esr.data_abort().expect("EC is a data abort");
            let access = abort.isv.then_some(MmioAccess {
                size_bytes: abort.sas,
                register: abort.srt,
                sign_extend: abort.sse,
                sixty_four_bit_register: abort.sf,
            });
            GuestExit::Stage2Abort(Stage2Abort {
                ipa: Ipa::new(faulting_ipa(hpfar, far)),
                far: GuestVa::new(far),
                instruction: false,
                // A stage-1 walk that faulted at stage 2 reports WnR for the walk,
                // which is a read of the guest's tables.
                write: abort.wnr && !abort.s1ptw,
                kind: fault_kind(abort.dfsc),
                walk: abort.s1ptw,
                access,
            })
        }
        ExceptionClass::InstructionAbortLowerEl => {
            let abort = esr.instruction_abort().expect("EC is an instruction abort");
            GuestExit::Stage2Abort(Stage2Abort {
                ipa: Ipa::new(faulting_ipa(hpfar, far)),
                far: GuestVa::new(far),
                instruction: true,
                write: false,
                kind: fault_kind(abort.ifsc),
                walk: abort.s1ptw,
                access: None,
            })
        }
        ExceptionClass::MsrMrsSystem64 => GuestExit::SysReg(esr.sys_reg_access().expect("EC is MSR/MRS")),
        ExceptionClass::TrappedWfx => GuestExit::Wait(esr.wfx().expect("EC is WFx")),
        other => GuestExit::Unhandled(other),
    }
}

/// ESR_EL1 value for a synchronous external abort injected into the guest in
/// place of an access it made outside its memory: same direction (WnR), DFSC/IFSC
/// 0x10, exception class "from the same EL" if the guest was at EL1, else "from a
/// lower EL".
pub fn injected_abort_syndrome(instruction: bool, write: bool, from_el1: bool) -> u64 {
    injected_abort_syndrome_with_status(instruction, write, from_el1, SYNC_EXTERNAL_ABORT)
}

/// DFSC/IFSC of a synchronous external abort not on a table walk.
pub const SYNC_EXTERNAL_ABORT: u64 = 0x10;

/// DFSC/IFSC of a synchronous external abort on a translation table walk at `level`.
pub const fn walk_external_abort(level: u8) -> u64 {
    0x14 | (level as u64 & 0b11)
}

/// [`injected_abort_syndrome`] with the given fault status code.
pub fn injected_abort_syndrome_with_status(instruction: bool, write: bool, from_el1: bool, status: u64) -> u64 {
    let ec: u64 = match (instruction, from_el1) {
        (false, true) => 0x25,
        (false, false) => 0x24,
        (true, true) => 0x21,
        (true, false) => 0x20,
    };
    const IL: u64 = 1 << 25;
    const WNR: u64 = 1 << 6;
    (ec << 26) | IL | if write && !instruction { WNR } else { 0 } | (status & 0x3F)
}

/// ESR_EL1 for an UNDEFINED instruction injected into the guest (EC 0, IL = 1).
pub const INJECTED_UNDEFINED_SYNDROME: u64 = 1 << 25;

#[cfg(test)]
mod tests {
    use super::*;

    /// `str w1, [x0]` from the guest at EL1 to an unmapped IPA: EC 0x24, IL, ISV,
    /// SAS=2 (word), SRT=1, WnR, DFSC 0x07 (translation fault level 3).
    #[test]
    fn guest_word_store_translation_fault() {
        let exit = decode(0x9381_0047, 0x0900_0018, 0x0090_0000 >> 8 << 4);
        let GuestExit::Stage2Abort(abort) = exit else { panic!("{exit:?}") };
        assert_eq!(abort.kind, Stage2FaultKind::Translation);
        assert!(abort.write && !abort.instruction);
        assert_eq!(abort.ipa, Ipa::new(0x0900_0018));
        assert_eq!(
            abort.access,
            Some(MmioAccess { size_bytes: 4, register: 1, sign_extend: false, sixty_four_bit_register: false })
        );
    }

    /// A guest load with no valid syndrome (e.g. LDP), translation fault level 2
    /// (DFSC 0x06): EC 0x24, IL, WnR = 0.
    #[test]
    fn guest_load_without_syndrome() {
        let GuestExit::Stage2Abort(abort) = decode(0x9200_0006, 0x4012_3456, 0x0040_1230) else { panic!() };
        assert_eq!(abort.ipa, Ipa::new(0x4012_3456));
        assert!(!abort.write);
        assert_eq!(abort.access, None);
    }

    /// Instruction fetch from guest RAM not yet mapped: EC 0x20, IFSC 0x07.
    #[test]
    fn guest_instruction_fetch_fault() {
        let GuestExit::Stage2Abort(abort) = decode(0x8200_0007, 0x4000_0000, 0x0040_0000) else { panic!() };
        assert!(abort.instruction);
        assert_eq!(abort.kind, Stage2FaultKind::Translation);
        assert_eq!(abort.ipa, Ipa::new(0x4000_0000));
    }

    /// Stage-2 fault during the guest's stage-1 walk (S1PTW = 1, WnR reported 1):
    /// it is a read of the guest's tables, not a write.
    #[test]
    fn stage1_walk_fault_is_a_read() {
        let GuestExit::Stage2Abort(abort) = decode(0x9200_0087 | (1 << 6), 0x1234, 0x0040_0000) else { panic!() };
        assert!(!abort.write);
    }

    #[test]
    fn calls_sysregs_and_waits() {
        assert_eq!(decode(0x5A00_0000, 0, 0), GuestExit::Hvc { imm: 0 });
        assert_eq!(decode(0x5E00_0000, 0, 0), GuestExit::Smc { imm: 0 });
        assert_eq!(decode(0x5E00_0042, 0, 0), GuestExit::Smc { imm: 0x42 });
        // MRS x0, ID_AA64PFR1_EL1 (op0=3 op1=0 CRn=0 CRm=4 op2=1), a read: ISS bit 0 = 1.
        let iss = (3 << 20) | (1 << 17) | (4 << 1) | 1;
        let GuestExit::SysReg(access) = decode((0x18 << 26) | (1 << 25) | iss, 0, 0) else { panic!() };
        assert!(access.is_register(3, 0, 0, 4, 1));
        assert_eq!(decode(0x0600_0000 | (1 << 25), 0, 0), GuestExit::Wait(WfxKind::Wfi));
        assert_eq!(decode(0x0200_0000, 0, 0), GuestExit::Unhandled(ExceptionClass::Unknown));
    }

    #[test]
    fn injected_syndromes() {
        assert_eq!(injected_abort_syndrome(false, true, true), 0x9600_0050);
        assert_eq!(injected_abort_syndrome(false, false, true), 0x9600_0010);
        assert_eq!(injected_abort_syndrome(false, false, false), 0x9200_0010);
        assert_eq!(injected_abort_syndrome(true, false, true), 0x8600_0010);
        assert_eq!(INJECTED_UNDEFINED_SYNDROME, 0x0200_0000);
    }
}
