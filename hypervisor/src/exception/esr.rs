//! Decoding of the Exception Syndrome Register (ESR_ELx).
//!
//! When an exception reaches EL2, ESR_EL2 is the only record of *why* it
//! happened: the exception class (EC) says what kind of event it was, and the
//! instruction-specific syndrome (ISS) carries the details (which register a
//! trapped load targeted, which system register a guest touched, at which
//! translation level a walk failed, ...). The trap handlers need these fields
//! to emulate guest accesses, and the crash report needs them to say what went
//! wrong in words rather than in hex.
//!
//! Layout (Arm ARM DDI 0487, "ESR_EL2"):
//!
//! ```text
//!  63    56 55        32 31    26 25 24                     0
//! +--------+------------+--------+--+------------------------+
//! |  RES0  |    ISS2    |   EC   |IL|          ISS           |
//! +--------+------------+--------+--+------------------------+
//! ```
//!
//! Field names follow the manual so that each one can be looked up there.

use core::fmt;

/// Extracts bits `high..=low` of `value`, shifted down to bit 0.
const fn bits(value: u64, high: u32, low: u32) -> u64 {
    (value >> low) & ((1 << (high - low + 1)) - 1)
}

/// Tests bit `index` of `value`.
const fn bit(value: u64, index: u32) -> bool {
    (value >> index) & 1 == 1
}

/// A raw ESR_ELx value, decoded on demand.
///
/// Keeping the raw value (rather than decoding eagerly into an enum) means a
/// syndrome that this decoder does not fully understand is never lost: the
/// crash report can always print the hex next to whatever could be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Esr(pub u64);

impl Esr {
    /// The exception class, bits 31:26: what kind of event this was.
    pub const fn ec(self) -> ExceptionClass {
        ExceptionClass::from_code(bits(self.0, 31, 26) as u8)
    }

    /// The IL bit, bit 25: `true` when the trapped instruction was 32 bits
    /// long, `false` for a 16-bit T32 instruction.
    ///
    /// The architecture also sets it for exceptions that are not tied to an
    /// instruction length (SError, aborts without a valid syndrome, ...).
    pub const fn il(self) -> bool {
        bit(self.0, 25)
    }

    /// Size in bytes of the trapped instruction (2 or 4), i.e. how far ELR
    /// must be advanced to skip an instruction that has been emulated.
    pub const fn instruction_length(self) -> u64 {
        if self.il() { 4 } else { 2 }
    }

    /// The instruction-specific syndrome, bits 24:0. Its meaning depends
    /// on [`Esr::ec`]; the typed accessors below interpret it.
    pub const fn iss(self) -> u32 {
        bits(self.0, 24, 0) as u32
    }

    /// The second syndrome field, bits 55:32 (FEAT_LS64, FEAT_MTE4,
    /// FEAT_GCS, ... add data-abort details there). Zero on older cores.
    pub const fn iss2(self) -> u32 {
        bits(self.0, 55, 32) as u32
    }

    /// The ISS of a data abort (EC 0x24 or 0x25), or `None` for any other
    /// exception class.
    pub const fn data_abort(self) -> Option<DataAbort> {
        match self.ec() {
            ExceptionClass::DataAbortLowerEl | ExceptionClass::DataAbortSameEl => Some(DataAbort::from_iss(self.iss())),
            _ => None,
        }
    }

    /// The ISS of an instruction abort (EC 0x20 or 0x21), or `None` for any
    /// other exception class.
    pub const fn instruction_abort(self) -> Option<InstructionAbort> {
        match self.ec() {
            ExceptionClass::InstructionAbortLowerEl | ExceptionClass::InstructionAbortSameEl => {
                Some(InstructionAbort::from_iss(self.iss()))
            }
            _ => None,
        }
    }

    /// The trapped MSR/MRS/SYS instruction (EC 0x18), or `None` for any
    /// other exception class.
    pub const fn sys_reg_access(self) -> Option<SysRegAccess> {
        match self.ec() {
            ExceptionClass::MsrMrsSystem64 => Some(SysRegAccess::from_iss(self.iss())),
            _ => None,
        }
    }

    /// Which wait instruction trapped (EC 0x01), or `None` for any other
    /// exception class.
    pub const fn wfx(self) -> Option<WfxKind> {
        match self.ec() {
            ExceptionClass::TrappedWfx => Some(WfxKind::from_iss(self.iss())),
            _ => None,
        }
    }

    /// The 16-bit immediate of an HVC, SMC or SVC instruction, which callers
    /// use to tell hypercall ABIs apart (SMCCC uses `#0`).
    ///
    /// `None` for other exception classes and for an AArch32 SMC, whose
    /// syndrome carries no immediate.
    pub const fn imm16(self) -> Option<u16> {
        match self.ec() {
            ExceptionClass::Hvc64
            | ExceptionClass::Smc64
            | ExceptionClass::Svc64
            | ExceptionClass::Hvc32
            | ExceptionClass::Svc32 => Some(self.iss() as u16),
            _ => None,
        }
    }

    /// The comment field of a BRK (AArch64) or BKPT (AArch32) instruction;
    /// assertions compiled to `brk #n` tell us which one fired.
    pub const fn breakpoint_comment(self) -> Option<u16> {
        match self.ec() {
            ExceptionClass::Brk64 | ExceptionClass::Bkpt32 => Some(self.iss() as u16),
            _ => None,
        }
    }

    /// Whether FAR_ELx holds the faulting address for this exception.
    ///
    /// The architecture only writes FAR for instruction aborts, data aborts,
    /// PC alignment faults and watchpoints; for anything else (including SP
    /// alignment faults) it is UNKNOWN. An abort can additionally say, with
    /// FnV, that the address it would have reported is not valid.
    pub const fn far_is_valid(self) -> bool {
        match self.ec() {
            ExceptionClass::DataAbortLowerEl | ExceptionClass::DataAbortSameEl => !DataAbort::from_iss(self.iss()).fnv,
            ExceptionClass::InstructionAbortLowerEl | ExceptionClass::InstructionAbortSameEl => {
                !InstructionAbort::from_iss(self.iss()).fnv
            }
            ExceptionClass::PcAlignment | ExceptionClass::WatchpointLowerEl | ExceptionClass::WatchpointSameEl => true,
            _ => false,
        }
    }

    /// Writes the description of this syndrome without the leading label,
    /// e.g. `0x96000045: data abort from the same EL (IL=32-bit): write, ...`,
    /// so that the crash report can prefix it with `ESR_EL2`.
    pub(super) fn write_description(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ec = self.ec();
        let length = if self.il() { "32-bit" } else { "16-bit" };
        write!(f, "{:#010x}: {} (IL={length})", self.0, ec.name())?;
        match ec {
            ExceptionClass::DataAbortLowerEl | ExceptionClass::DataAbortSameEl => {
                write!(f, ": {}", DataAbort::from_iss(self.iss()))?;
            }
            ExceptionClass::InstructionAbortLowerEl | ExceptionClass::InstructionAbortSameEl => {
                write!(f, ": {}", InstructionAbort::from_iss(self.iss()))?;
            }
            ExceptionClass::MsrMrsSystem64 => {
                write!(f, ": {}", SysRegAccess::from_iss(self.iss()))?;
            }
            ExceptionClass::TrappedWfx => {
                write!(f, ": {}", WfxKind::from_iss(self.iss()).mnemonic())?;
            }
            ExceptionClass::Hvc64
            | ExceptionClass::Smc64
            | ExceptionClass::Svc64
            | ExceptionClass::Hvc32
            | ExceptionClass::Svc32 => {
                write!(f, ": imm16={:#06x}", self.iss() as u16)?;
            }
            ExceptionClass::Brk64 | ExceptionClass::Bkpt32 => {
                write!(f, ": comment={:#06x}", self.iss() as u16)?;
            }
            ExceptionClass::SError => {
                write!(f, ": ")?;
                write_serror_syndrome(f, self.iss())?;
            }
            _ => {
                if self.iss() != 0 {
                    write!(f, ": ISS={:#09x}", self.iss())?;
                }
            }
        }
        if self.iss2() != 0 {
            write!(f, ", ISS2={:#08x}", self.iss2())?;
        }
        Ok(())
    }
}

/// One line, e.g.
/// `ESR 0x96000045: data abort from the same EL (IL=32-bit): write, translation fault level 1, ISV=0`.
impl fmt::Display for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ESR ")?;
        self.write_description(f)
    }
}

impl From<u64> for Esr {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

/// Describes an SError syndrome: either an IMPLEMENTATION DEFINED value, or
/// the RAS architecture's error type, which says whether the error can be
/// survived.
fn write_serror_syndrome(f: &mut fmt::Formatter<'_>, iss: u32) -> fmt::Result {
    let iss = u64::from(iss);
    if bit(iss, 24) {
        return write!(f, "implementation defined syndrome {:#08x}", bits(iss, 23, 0));
    }
    match bits(iss, 5, 0) {
        0x00 => return f.write_str("uncategorized"),
        0x11 => f.write_str("asynchronous SError interrupt")?,
        // AET is only defined for the asynchronous SError code.
        other => return write!(f, "reserved DFSC {other:#04x}"),
    }
    let error_type = match bits(iss, 12, 10) {
        0b000 => "uncontainable (UC)",
        0b001 => "unrecoverable (UEU)",
        0b010 => "restartable (UEO)",
        0b011 => "recoverable (UER)",
        0b110 => "corrected (CE)",
        _ => "reserved error type",
    };
    write!(f, ", {error_type}")?;
    if bit(iss, 9) {
        f.write_str(", external abort")?;
    }
    Ok(())
}

/// Declares [`ExceptionClass`] from one table, so that the variant, its EC
/// encoding and its readable name cannot drift apart.
macro_rules! exception_classes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal => $name:literal, )*) => {
        /// ESR_ELx.EC: the kind of event that caused the exception.
        ///
        /// Covers every class the Arm ARM allocates for exceptions taken to
        /// an AArch64 Exception level, including those reporting traps from
        /// a lower EL running AArch32.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ExceptionClass {
            $( $(#[$doc])* $variant, )*
            /// An EC value that is unallocated, or allocated by an
            /// architecture revision newer than this decoder.
            Other(u8),
        }

        impl ExceptionClass {
            /// Decodes a 6-bit EC value (higher bits are ignored).
            pub const fn from_code(code: u8) -> Self {
                match code & 0x3f {
                    $( $code => Self::$variant, )*
                    other => Self::Other(other),
                }
            }

            /// The 6-bit EC encoding.
            pub const fn code(self) -> u8 {
                match self {
                    $( Self::$variant => $code, )*
                    Self::Other(code) => code,
                }
            }

            /// A short human-readable name, as used in the crash report.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                    Self::Other(_) => "unallocated exception class",
                }
            }
        }
    };
}

exception_classes! {
    /// Anything without a more specific class, notably UNDEFINED
    /// instructions.
    Unknown = 0x00 => "unknown reason",
    /// WFI, WFE, WFIT or WFET trapped by HCR_EL2.TWI/TWE.
    TrappedWfx = 0x01 => "trapped WFI/WFE",
    /// AArch32 MCR/MRC to coprocessor 15.
    TrappedMcrMrcCp15 = 0x03 => "trapped AArch32 MCR/MRC (CP15)",
    /// AArch32 MCRR/MRRC to coprocessor 15.
    TrappedMcrrMrrcCp15 = 0x04 => "trapped AArch32 MCRR/MRRC (CP15)",
    /// AArch32 MCR/MRC to coprocessor 14 (debug).
    TrappedMcrMrcCp14 = 0x05 => "trapped AArch32 MCR/MRC (CP14)",
    /// AArch32 LDC/STC (debug channel).
    TrappedLdcStc = 0x06 => "trapped AArch32 LDC/STC",
    /// SVE, Advanced SIMD or floating-point use while CPACR/CPTR disable it.
    SveSimdFpAccess = 0x07 => "trapped SVE/SIMD/FP access",
    /// AArch32 VMRS of an ID register, trapped by HCR_EL2.TID0.
    TrappedVmrs = 0x08 => "trapped AArch32 VMRS",
    /// A pointer authentication instruction trapped by HCR_EL2.API.
    PointerAuthTrap = 0x09 => "trapped pointer authentication instruction",
    /// LD64B/ST64B* and other instructions trapped through HCRX_EL2.
    TrappedLs64Other = 0x0a => "trapped LD64B/ST64B* or other instruction",
    /// AArch32 MRRC to coprocessor 14.
    TrappedMrrcCp14 = 0x0c => "trapped AArch32 MRRC (CP14)",
    /// Branch Target Identification violation (FEAT_BTI).
    BranchTarget = 0x0d => "branch target exception",
    /// Exception return or execution with PSTATE.IL set.
    IllegalExecutionState = 0x0e => "illegal execution state",
    /// SVC from AArch32.
    Svc32 = 0x11 => "SVC from AArch32",
    /// HVC from AArch32.
    Hvc32 = 0x12 => "HVC from AArch32",
    /// SMC from AArch32 (trapped by HCR_EL2.TSC).
    Smc32 = 0x13 => "SMC from AArch32",
    /// SVC from AArch64.
    Svc64 = 0x15 => "SVC from AArch64",
    /// HVC from AArch64: a hypercall.
    Hvc64 = 0x16 => "HVC from AArch64",
    /// SMC from AArch64, trapped by HCR_EL2.TSC.
    Smc64 = 0x17 => "SMC from AArch64",
    /// MSR, MRS or a system instruction (DC/IC/TLBI/AT...) trapped.
    MsrMrsSystem64 = 0x18 => "trapped MSR/MRS/system instruction",
    /// SVE use while CPTR/ZCR controls disable it.
    SveAccess = 0x19 => "trapped SVE access",
    /// ERET/ERETAA/ERETAB trapped (nested virtualization, FEAT_FGT).
    TrappedEret = 0x1a => "trapped ERET/ERETAA/ERETAB",
    /// TSTART while transactional memory is disabled (FEAT_TME).
    TrappedTstart = 0x1b => "trapped TSTART",
    /// Pointer authentication failure (FEAT_FPAC).
    PointerAuthFailure = 0x1c => "pointer authentication failure",
    /// SME use while CPTR/SMCR controls disable it.
    SmeAccess = 0x1d => "trapped SME access",
    /// Granule protection check failure (FEAT_RME, taken to EL3 only).
    GranuleProtectionCheck = 0x1e => "granule protection check",
    /// IMPLEMENTATION DEFINED exception (taken to EL3 only).
    ImplementationDefinedEl3 = 0x1f => "implementation defined exception to EL3",
    /// Instruction fetch fault in a lower EL (for EL2: stage 2 fault of a
    /// guest, or a fault of a lower EL's own stage 1 routed here).
    InstructionAbortLowerEl = 0x20 => "instruction abort from a lower EL",
    /// Instruction fetch fault at the EL that took it.
    InstructionAbortSameEl = 0x21 => "instruction abort from the same EL",
    /// Branch to a misaligned PC.
    PcAlignment = 0x22 => "PC alignment fault",
    /// Data access fault in a lower EL (for EL2: typically a guest touching
    /// MMIO or unmapped IPA space).
    DataAbortLowerEl = 0x24 => "data abort from a lower EL",
    /// Data access fault at the EL that took it.
    DataAbortSameEl = 0x25 => "data abort from the same EL",
    /// Load/store through a misaligned SP while alignment checking is on.
    SpAlignment = 0x26 => "SP alignment fault",
    /// Memory copy/set instruction in the wrong form (FEAT_MOPS).
    MemoryOperation = 0x27 => "memory copy/set (MOPS) exception",
    /// Trapped floating-point exception from AArch32.
    FpException32 = 0x28 => "trapped AArch32 floating-point exception",
    /// Trapped floating-point exception from AArch64.
    FpException64 = 0x2c => "trapped AArch64 floating-point exception",
    /// Guarded control stack check failure (FEAT_GCS).
    GuardedControlStack = 0x2d => "guarded control stack exception",
    /// SError: an asynchronous (usually fatal) error.
    SError = 0x2f => "SError",
    /// Hardware breakpoint hit in a lower EL.
    BreakpointLowerEl = 0x30 => "breakpoint from a lower EL",
    /// Hardware breakpoint hit at the same EL.
    BreakpointSameEl = 0x31 => "breakpoint from the same EL",
    /// Software step completed in a lower EL.
    SoftwareStepLowerEl = 0x32 => "software step from a lower EL",
    /// Software step completed at the same EL.
    SoftwareStepSameEl = 0x33 => "software step from the same EL",
    /// Watchpoint hit in a lower EL.
    WatchpointLowerEl = 0x34 => "watchpoint from a lower EL",
    /// Watchpoint hit at the same EL.
    WatchpointSameEl = 0x35 => "watchpoint from the same EL",
    /// BKPT instruction in AArch32.
    Bkpt32 = 0x38 => "AArch32 BKPT instruction",
    /// AArch32 vector catch debug event.
    VectorCatch32 = 0x3a => "AArch32 vector catch",
    /// BRK instruction in AArch64 (also what `unreachable!`-style traps use).
    Brk64 = 0x3c => "BRK instruction",
}

impl fmt::Display for ExceptionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The 6-bit fault status code of an abort (ISS.DFSC / ISS.IFSC).
///
/// Levels are translation-table levels; FEAT_LPA2 adds level -1 and
/// FEAT_D128 level -2, which have their own (non-contiguous) encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultStatus {
    /// The output address or a table address exceeded the configured size.
    AddressSize { level: i8 },
    /// No valid descriptor at this level: the address is not mapped.
    Translation { level: i8 },
    /// The descriptor's Access Flag is clear.
    AccessFlag { level: i8 },
    /// The mapping does not permit this kind of access.
    Permission { level: i8 },
    /// The memory system signalled an error for the access itself.
    SyncExternalAbort,
    /// The pointer's tag did not match the memory's allocation tag
    /// (FEAT_MTE2, with synchronous tag-check faults enabled).
    SyncTagCheck,
    /// The memory system signalled an error while reading a table entry.
    SyncExternalAbortOnWalk { level: i8 },
    /// Parity or ECC error on the access (only without FEAT_RAS).
    SyncParityOrEcc,
    /// Parity or ECC error while reading a table entry (only without
    /// FEAT_RAS).
    SyncParityOrEccOnWalk { level: i8 },
    /// Misaligned access to Device memory, or with alignment checks on.
    Alignment,
    /// A table read was refused by the granule protection table (FEAT_RME).
    GranuleProtectionOnWalk { level: i8 },
    /// The access was refused by the granule protection table (FEAT_RME).
    GranuleProtection,
    /// Several TLB entries matched the address: broken TLB maintenance.
    TlbConflict,
    /// Hardware Access flag/dirty state update to memory that cannot do it
    /// atomically (FEAT_HAFDBS).
    UnsupportedAtomicUpdate,
    /// IMPLEMENTATION DEFINED "lockdown" fault.
    ImplementationDefinedLockdown,
    /// IMPLEMENTATION DEFINED fault for an exclusive or atomic access to
    /// memory that does not support it.
    ImplementationDefinedExclusiveOrAtomic,
    /// A code the architecture reserves.
    Reserved(u8),
}

impl FaultStatus {
    /// Decodes a DFSC/IFSC value (bits above the low six are ignored).
    pub const fn from_code(code: u8) -> Self {
        let code = code & 0x3f;
        // For the regular ranges, the low two bits are the level 0..=3.
        let level = (code & 0b11) as i8;
        match code {
            0x00..=0x03 => Self::AddressSize { level },
            0x04..=0x07 => Self::Translation { level },
            0x08..=0x0b => Self::AccessFlag { level },
            0x0c..=0x0f => Self::Permission { level },
            0x10 => Self::SyncExternalAbort,
            0x11 => Self::SyncTagCheck,
            0x12 => Self::SyncExternalAbortOnWalk { level: -2 },
            0x13 => Self::SyncExternalAbortOnWalk { level: -1 },
            0x14..=0x17 => Self::SyncExternalAbortOnWalk { level },
            0x18 => Self::SyncParityOrEcc,
            0x1b => Self::SyncParityOrEccOnWalk { level: -1 },
            0x1c..=0x1f => Self::SyncParityOrEccOnWalk { level },
            0x21 => Self::Alignment,
            0x22 => Self::GranuleProtectionOnWalk { level: -2 },
            0x23 => Self::GranuleProtectionOnWalk { level: -1 },
            0x24..=0x27 => Self::GranuleProtectionOnWalk { level },
            0x28 => Self::GranuleProtection,
            0x29 => Self::AddressSize { level: -1 },
            0x2a => Self::Translation { level: -2 },
            0x2b => Self::Translation { level: -1 },
            0x2c => Self::AddressSize { level: -2 },
            0x30 => Self::TlbConflict,
            0x31 => Self::UnsupportedAtomicUpdate,
            0x34 => Self::ImplementationDefinedLockdown,
            0x35 => Self::ImplementationDefinedExclusiveOrAtomic,
            other => Self::Reserved(other),
        }
    }

    /// The translation level the fault was detected at, for the kinds of
    /// fault that have one.
    pub const fn level(self) -> Option<i8> {
        match self {
            Self::AddressSize { level }
            | Self::Translation { level }
            | Self::AccessFlag { level }
            | Self::Permission { level }
            | Self::SyncExternalAbortOnWalk { level }
            | Self::SyncParityOrEccOnWalk { level }
            | Self::GranuleProtectionOnWalk { level } => Some(level),
            _ => None,
        }
    }

    /// What kind of fault this is, without the level.
    pub const fn description(self) -> &'static str {
        match self {
            Self::AddressSize { .. } => "address size fault",
            Self::Translation { .. } => "translation fault",
            Self::AccessFlag { .. } => "access flag fault",
            Self::Permission { .. } => "permission fault",
            Self::SyncExternalAbort => "synchronous external abort",
            Self::SyncTagCheck => "synchronous tag check fault",
            Self::SyncExternalAbortOnWalk { .. } => "synchronous external abort on translation table walk",
            Self::SyncParityOrEcc => "synchronous parity/ECC error",
            Self::SyncParityOrEccOnWalk { .. } => "synchronous parity/ECC error on translation table walk",
            Self::Alignment => "alignment fault",
            Self::GranuleProtectionOnWalk { .. } => "granule protection fault on translation table walk",
            Self::GranuleProtection => "granule protection fault",
            Self::TlbConflict => "TLB conflict abort",
            Self::UnsupportedAtomicUpdate => "unsupported atomic hardware update fault",
            Self::ImplementationDefinedLockdown => "implementation defined fault (lockdown)",
            Self::ImplementationDefinedExclusiveOrAtomic => {
                "implementation defined fault (unsupported exclusive or atomic access)"
            }
            Self::Reserved(_) => "reserved fault status code",
        }
    }

    /// Writes the description with `separator` before the level, so the
    /// standalone form can read "translation fault, level 3" while the ESR
    /// line, whose parts are already comma-separated, reads "translation
    /// fault level 3".
    fn write_with_level_separator(self, f: &mut fmt::Formatter<'_>, separator: &str) -> fmt::Result {
        f.write_str(self.description())?;
        if let Self::Reserved(code) = self {
            write!(f, " {code:#04x}")?;
        }
        if let Some(level) = self.level() {
            write!(f, "{separator}level {level}")?;
        }
        Ok(())
    }
}

/// E.g. "translation fault, level 3" or "synchronous tag check fault".
impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with_level_separator(f, ", ")
    }
}

/// Writes general-purpose register `index` as an A64 operand: `x3`/`w3`, or
/// `xzr`/`wzr` for index 31, which in load/store and MSR/MRS syndromes means
/// the zero register.
fn write_register(f: &mut fmt::Formatter<'_>, index: u8, is_64bit: bool) -> fmt::Result {
    let prefix = if is_64bit { 'x' } else { 'w' };
    if index == 31 { write!(f, "{prefix}zr") } else { write!(f, "{prefix}{index}") }
}

/// The ISS of a data abort (EC 0x24/0x25).
///
/// When `isv` is set, the syndrome describes the faulting load/store well
/// enough to emulate it (MMIO): access size, target register, extension.
/// Otherwise `sas`, `sse`, `srt`, `sf` and `ar` are meaningless and the
/// hypervisor would have to decode the instruction itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataAbort {
    /// Instruction syndrome valid: the fields below up to `ar` hold data.
    pub isv: bool,
    /// Access size in bytes: 1, 2, 4 or 8 (encoded as SAS, log2 of it).
    pub sas: u8,
    /// Sign-extend the loaded value (LDRSB, LDRSH, LDRSW).
    pub sse: bool,
    /// The register transferred (Rt); 31 is the zero register.
    pub srt: u8,
    /// The register is 64-bit (x) rather than 32-bit (w).
    pub sf: bool,
    /// Acquire/release semantics (LDAR, STLR, ...).
    pub ar: bool,
    /// FAR is not valid (e.g. some external aborts).
    pub fnv: bool,
    /// External abort type, IMPLEMENTATION DEFINED classification.
    pub ea: bool,
    /// Caused by a cache maintenance (or address translation) instruction.
    pub cm: bool,
    /// A stage 2 fault taken during the stage 1 translation table walk.
    pub s1ptw: bool,
    /// Write not read: the access was a store (also set for CM faults).
    pub wnr: bool,
    /// What went wrong.
    pub dfsc: FaultStatus,
}

impl DataAbort {
    /// Decodes the 25-bit ISS of a data abort.
    pub const fn from_iss(iss: u32) -> Self {
        let iss = iss as u64;
        Self {
            isv: bit(iss, 24),
            sas: 1 << bits(iss, 23, 22),
            sse: bit(iss, 21),
            srt: bits(iss, 20, 16) as u8,
            sf: bit(iss, 15),
            ar: bit(iss, 14),
            fnv: bit(iss, 10),
            ea: bit(iss, 9),
            cm: bit(iss, 8),
            s1ptw: bit(iss, 7),
            wnr: bit(iss, 6),
            dfsc: FaultStatus::from_code(bits(iss, 5, 0) as u8),
        }
    }
}

/// E.g. "write, translation fault level 3, ISV=1 (4-byte, w1)".
impl fmt::Display for DataAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.wnr { "write, " } else { "read, " })?;
        self.dfsc.write_with_level_separator(f, " ")?;
        if self.cm {
            f.write_str(", cache maintenance")?;
        }
        if self.s1ptw {
            f.write_str(", on stage 1 table walk")?;
        }
        if self.ea {
            f.write_str(", external abort type")?;
        }
        if self.fnv {
            f.write_str(", FAR not valid")?;
        }
        if !self.isv {
            return f.write_str(", ISV=0");
        }
        write!(f, ", ISV=1 ({}-byte, ", self.sas)?;
        write_register(f, self.srt, self.sf)?;
        if self.sse {
            f.write_str(", sign-extended")?;
        }
        if self.ar {
            f.write_str(", acquire/release")?;
        }
        f.write_str(")")
    }
}

/// The ISS of an instruction abort (EC 0x20/0x21).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InstructionAbort {
    /// FAR is not valid.
    pub fnv: bool,
    /// External abort type, IMPLEMENTATION DEFINED classification.
    pub ea: bool,
    /// A stage 2 fault taken during the stage 1 translation table walk.
    pub s1ptw: bool,
    /// What went wrong.
    pub ifsc: FaultStatus,
}

impl InstructionAbort {
    /// Decodes the 25-bit ISS of an instruction abort.
    pub const fn from_iss(iss: u32) -> Self {
        let iss = iss as u64;
        Self {
            fnv: bit(iss, 10),
            ea: bit(iss, 9),
            s1ptw: bit(iss, 7),
            ifsc: FaultStatus::from_code(bits(iss, 5, 0) as u8),
        }
    }
}

/// E.g. "permission fault level 3".
impl fmt::Display for InstructionAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ifsc.write_with_level_separator(f, " ")?;
        if self.s1ptw {
            f.write_str(", on stage 1 table walk")?;
        }
        if self.ea {
            f.write_str(", external abort type")?;
        }
        if self.fnv {
            f.write_str(", FAR not valid")?;
        }
        Ok(())
    }
}

/// Whether a trapped system register instruction reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SysRegDirection {
    /// MSR (or SYS): the guest writes Xt to the register.
    Write,
    /// MRS (or SYSL): the guest reads the register into Xt.
    Read,
}

/// The ISS of a trapped MSR, MRS or system instruction (EC 0x18): which
/// register (by its op0/op1/CRn/CRm/op2 encoding), which GPR, which way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysRegAccess {
    /// 3 for system registers, 1 for system instructions (DC, IC, TLBI, AT).
    pub op0: u8,
    /// Together with op0 and op2, selects the register within CRn/CRm;
    /// its value also encodes the lowest EL allowed to access it.
    pub op1: u8,
    /// Primary encoding field ("C12" in `S3_0_C12_C11_5`).
    pub crn: u8,
    /// Secondary encoding field ("C11" in `S3_0_C12_C11_5`).
    pub crm: u8,
    /// Final encoding field (the "5" in `S3_0_C12_C11_5`).
    pub op2: u8,
    /// The general-purpose register transferred; 31 is the zero register.
    pub rt: u8,
    pub direction: SysRegDirection,
}

impl SysRegAccess {
    /// Decodes the 25-bit ISS of EC 0x18.
    ///
    /// ```text
    /// 24 22 21 20 19 17 16 14 13 10 9   5 4   1  0
    /// RES0 | Op0 | Op2 | Op1 | CRn | Rt  | CRm | Direction
    /// ```
    pub const fn from_iss(iss: u32) -> Self {
        let iss = iss as u64;
        Self {
            op0: bits(iss, 21, 20) as u8,
            op2: bits(iss, 19, 17) as u8,
            op1: bits(iss, 16, 14) as u8,
            crn: bits(iss, 13, 10) as u8,
            rt: bits(iss, 9, 5) as u8,
            crm: bits(iss, 4, 1) as u8,
            direction: if bit(iss, 0) { SysRegDirection::Read } else { SysRegDirection::Write },
        }
    }

    /// Whether this access targets the register with the given encoding, as
    /// listed in the Arm ARM ("op0, op1, CRn, CRm, op2").
    pub const fn is_register(self, op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> bool {
        self.op0 == op0 && self.op1 == op1 && self.crn == crn && self.crm == crm && self.op2 == op2
    }
}

/// The instruction in assembler syntax with the generic register name, e.g.
/// `MSR S3_0_C12_C11_5, x1` (ICC_SGI1R_EL1), `MRS x0, S3_3_C14_C0_1`, or
/// `SYS #0, C7, C6, #1, x2` for system instructions.
impl fmt::Display for SysRegAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { op0, op1, crn, crm, op2, rt, direction } = *self;
        let is_instruction = op0 == 1;
        match (direction, is_instruction) {
            (SysRegDirection::Write, false) => {
                write!(f, "MSR S{op0}_{op1}_C{crn}_C{crm}_{op2}, ")?;
                write_register(f, rt, true)
            }
            (SysRegDirection::Read, false) => {
                f.write_str("MRS ")?;
                write_register(f, rt, true)?;
                write!(f, ", S{op0}_{op1}_C{crn}_C{crm}_{op2}")
            }
            (SysRegDirection::Write, true) => {
                write!(f, "SYS #{op1}, C{crn}, C{crm}, #{op2}, ")?;
                write_register(f, rt, true)
            }
            (SysRegDirection::Read, true) => {
                f.write_str("SYSL ")?;
                write_register(f, rt, true)?;
                write!(f, ", #{op1}, C{crn}, C{crm}, #{op2}")
            }
        }
    }
}

/// Which wait instruction trapped (ISS.TI of EC 0x01).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WfxKind {
    /// Wait for interrupt: the guest vCPU is idle.
    Wfi,
    /// Wait for event: typically a spinlock back-off.
    Wfe,
    /// WFI with timeout (FEAT_WFxT).
    Wfit,
    /// WFE with timeout (FEAT_WFxT).
    Wfet,
}

impl WfxKind {
    /// Decodes ISS.TI, bits 1:0.
    pub const fn from_iss(iss: u32) -> Self {
        match iss & 0b11 {
            0b00 => Self::Wfi,
            0b01 => Self::Wfe,
            0b10 => Self::Wfit,
            _ => Self::Wfet,
        }
    }

    /// The instruction mnemonic.
    pub const fn mnemonic(self) -> &'static str {
        match self {
            Self::Wfi => "WFI",
            Self::Wfe => "WFE",
            Self::Wfit => "WFIT",
            Self::Wfet => "WFET",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an ESR from its fields, so the tests can show how each
    /// hand-written constant is composed.
    const fn compose(ec: u64, il: bool, iss: u64) -> u64 {
        (ec << 26) | ((il as u64) << 25) | iss
    }

    #[test]
    fn exception_class_codes_round_trip() {
        for code in 0..64u8 {
            let ec = ExceptionClass::from_code(code);
            assert_eq!(ec.code(), code, "{ec:?}");
            // Only unallocated codes fall back to `Other`.
            let unallocated = matches!(
                code,
                0x02 | 0x0b | 0x0f | 0x10 | 0x14 | 0x23 | 0x29..=0x2b | 0x2e | 0x36 | 0x37
                    | 0x39 | 0x3b | 0x3d..=0x3f
            );
            assert_eq!(matches!(ec, ExceptionClass::Other(_)), unallocated, "{code:#x}");
        }
    }

    #[test]
    fn exception_class_names_of_the_requested_codes() {
        let expected = [
            (0x00, ExceptionClass::Unknown),
            (0x01, ExceptionClass::TrappedWfx),
            (0x07, ExceptionClass::SveSimdFpAccess),
            (0x16, ExceptionClass::Hvc64),
            (0x17, ExceptionClass::Smc64),
            (0x18, ExceptionClass::MsrMrsSystem64),
            (0x19, ExceptionClass::SveAccess),
            (0x1a, ExceptionClass::TrappedEret),
            (0x1c, ExceptionClass::PointerAuthFailure),
            (0x20, ExceptionClass::InstructionAbortLowerEl),
            (0x21, ExceptionClass::InstructionAbortSameEl),
            (0x22, ExceptionClass::PcAlignment),
            (0x24, ExceptionClass::DataAbortLowerEl),
            (0x25, ExceptionClass::DataAbortSameEl),
            (0x26, ExceptionClass::SpAlignment),
            (0x2c, ExceptionClass::FpException64),
            (0x2f, ExceptionClass::SError),
            (0x30, ExceptionClass::BreakpointLowerEl),
            (0x31, ExceptionClass::BreakpointSameEl),
            (0x32, ExceptionClass::SoftwareStepLowerEl),
            (0x33, ExceptionClass::SoftwareStepSameEl),
            (0x34, ExceptionClass::WatchpointLowerEl),
            (0x35, ExceptionClass::WatchpointSameEl),
            (0x3c, ExceptionClass::Brk64),
        ];
        for (code, class) in expected {
            assert_eq!(ExceptionClass::from_code(code), class);
        }
        assert_eq!(ExceptionClass::from_code(0x3f), ExceptionClass::Other(0x3f));
        assert_eq!(ExceptionClass::Other(0x3f).name(), "unallocated exception class");
        assert_eq!(ExceptionClass::DataAbortSameEl.to_string(), "data abort from the same EL");
    }

    #[test]
    fn fault_status_codes() {
        use FaultStatus::*;
        let expected = [
            (0x00, AddressSize { level: 0 }),
            (0x03, AddressSize { level: 3 }),
            (0x29, AddressSize { level: -1 }),
            (0x2c, AddressSize { level: -2 }),
            (0x04, Translation { level: 0 }),
            (0x07, Translation { level: 3 }),
            (0x2b, Translation { level: -1 }),
            (0x2a, Translation { level: -2 }),
            (0x08, AccessFlag { level: 0 }),
            (0x0b, AccessFlag { level: 3 }),
            (0x0c, Permission { level: 0 }),
            (0x0f, Permission { level: 3 }),
            (0x10, SyncExternalAbort),
            (0x11, SyncTagCheck),
            (0x12, SyncExternalAbortOnWalk { level: -2 }),
            (0x13, SyncExternalAbortOnWalk { level: -1 }),
            (0x14, SyncExternalAbortOnWalk { level: 0 }),
            (0x17, SyncExternalAbortOnWalk { level: 3 }),
            (0x18, SyncParityOrEcc),
            (0x1b, SyncParityOrEccOnWalk { level: -1 }),
            (0x1c, SyncParityOrEccOnWalk { level: 0 }),
            (0x1f, SyncParityOrEccOnWalk { level: 3 }),
            (0x21, Alignment),
            (0x23, GranuleProtectionOnWalk { level: -1 }),
            (0x24, GranuleProtectionOnWalk { level: 0 }),
            (0x27, GranuleProtectionOnWalk { level: 3 }),
            (0x28, GranuleProtection),
            (0x30, TlbConflict),
            (0x31, UnsupportedAtomicUpdate),
            (0x34, ImplementationDefinedLockdown),
            (0x35, ImplementationDefinedExclusiveOrAtomic),
            (0x20, Reserved(0x20)),
            (0x3f, Reserved(0x3f)),
        ];
        for (code, status) in expected {
            assert_eq!(FaultStatus::from_code(code), status, "{code:#x}");
        }
    }

    #[test]
    fn fault_status_display() {
        let text = |code: u8| FaultStatus::from_code(code).to_string();
        assert_eq!(text(0x07), "translation fault, level 3");
        assert_eq!(text(0x2b), "translation fault, level -1");
        assert_eq!(text(0x09), "access flag fault, level 1");
        assert_eq!(text(0x0e), "permission fault, level 2");
        assert_eq!(text(0x02), "address size fault, level 2");
        assert_eq!(text(0x11), "synchronous tag check fault");
        assert_eq!(text(0x10), "synchronous external abort");
        assert_eq!(text(0x15), "synchronous external abort on translation table walk, level 1");
        assert_eq!(text(0x21), "alignment fault");
        assert_eq!(text(0x30), "TLB conflict abort");
        assert_eq!(text(0x31), "unsupported atomic hardware update fault");
        assert_eq!(text(0x3f), "reserved fault status code 0x3f");
    }

    /// 0x96000011: EC=0x25 (0b100101, data abort, same EL), IL=1,
    /// ISS=0x11: ISV=0, WnR=0 (read), DFSC=0b010001 synchronous tag check
    /// fault. This is what EL2 sees when its own tagged load hits a
    /// mismatching allocation tag with SCTLR_EL2.TCF=sync.
    #[test]
    fn sync_tag_check_fault_at_el2() {
        assert_eq!(compose(0x25, true, 0x11), 0x9600_0011);
        let esr = Esr(0x9600_0011);
        assert_eq!(esr.ec(), ExceptionClass::DataAbortSameEl);
        assert!(esr.il());
        assert_eq!(esr.iss(), 0x11);
        let abort = esr.data_abort().unwrap();
        assert!(!abort.isv);
        assert!(!abort.wnr);
        assert_eq!(abort.dfsc, FaultStatus::SyncTagCheck);
        assert!(esr.far_is_valid());
        assert_eq!(
            esr.to_string(),
            "ESR 0x96000011: data abort from the same EL (IL=32-bit): \
             read, synchronous tag check fault, ISV=0"
        );
    }

    /// 0x96000045: EC=0x25, IL=1, ISS=0x45: WnR=1 (bit 6 = 0x40), DFSC=0b000101
    /// translation fault level 1. The example line from the design notes.
    #[test]
    fn write_translation_fault_level_1_at_el2() {
        assert_eq!(compose(0x25, true, 0x40 | 0x05), 0x9600_0045);
        let esr = Esr(0x9600_0045);
        let abort = esr.data_abort().unwrap();
        assert!(abort.wnr);
        assert_eq!(abort.dfsc, FaultStatus::Translation { level: 1 });
        assert_eq!(
            esr.to_string(),
            "ESR 0x96000045: data abort from the same EL (IL=32-bit): \
             write, translation fault level 1, ISV=0"
        );
    }

    /// A guest `str w1, [x0]` to an unmapped MMIO page, as seen by EL2:
    /// EC=0x24 (data abort, lower EL) -> 0x90000000; IL=1 -> 0x02000000;
    /// ISV=1 (bit 24) -> 0x01000000; SAS=0b10 (word, bits 23:22) -> 0x00800000;
    /// SSE=0; SRT=1 (bits 20:16) -> 0x00010000; SF=0 (w register); AR=0;
    /// WnR=1 (bit 6) -> 0x40; DFSC=0b000111 stage 2 translation fault
    /// level 3 -> 0x07. Sum: 0x93810047.
    #[test]
    fn guest_mmio_word_store_with_valid_syndrome() {
        let composed = compose(0x24, true, (1 << 24) | (0b10 << 22) | (1 << 16) | (1 << 6) | 0b000111);
        assert_eq!(composed, 0x9381_0047);
        let esr = Esr(0x9381_0047);
        assert_eq!(esr.ec(), ExceptionClass::DataAbortLowerEl);
        let abort = esr.data_abort().unwrap();
        assert_eq!(
            abort,
            DataAbort {
                isv: true,
                sas: 4,
                sse: false,
                srt: 1,
                sf: false,
                ar: false,
                fnv: false,
                ea: false,
                cm: false,
                s1ptw: false,
                wnr: true,
                dfsc: FaultStatus::Translation { level: 3 },
            }
        );
        assert_eq!(
            esr.to_string(),
            "ESR 0x93810047: data abort from a lower EL (IL=32-bit): \
             write, translation fault level 3, ISV=1 (4-byte, w1)"
        );
    }

    /// A guest `ldrsw x2, [x3]` (sign-extending 32-bit load into a 64-bit
    /// register) hitting an unmapped IPA at level 2: EC=0x24, IL=1, ISV=1,
    /// SAS=0b10 (word), SSE=1 (bit 21), SRT=2, SF=1 (bit 15), WnR=0,
    /// DFSC=0b000110. 0x90000000 | 0x02000000 | 0x01000000 | 0x00800000 |
    /// 0x00200000 | 0x00020000 | 0x8000 | 0x06 = 0x93a28006.
    #[test]
    fn guest_sign_extending_load() {
        let composed = compose(0x24, true, (1 << 24) | (0b10 << 22) | (1 << 21) | (2 << 16) | (1 << 15) | 0b000110);
        assert_eq!(composed, 0x93a2_8006);
        let abort = Esr(0x93a2_8006).data_abort().unwrap();
        assert!(abort.isv && abort.sse && abort.sf && !abort.wnr);
        assert_eq!((abort.sas, abort.srt), (4, 2));
        assert_eq!(abort.to_string(), "read, translation fault level 2, ISV=1 (4-byte, x2, sign-extended)");
    }

    /// A guest `stlr xzr, [x0]`: SAS=0b11 (doubleword), SRT=31 (zero
    /// register), SF=1, AR=1 (bit 14), WnR=1, DFSC=0b000111.
    /// 0x93000000 | 0x00c00000 | 0x001f0000 | 0xc000 | 0x47 = 0x93dfc047.
    #[test]
    fn guest_store_release_of_zero_register() {
        let composed =
            compose(0x24, true, (1 << 24) | (0b11 << 22) | (31 << 16) | (1 << 15) | (1 << 14) | (1 << 6) | 0b000111);
        assert_eq!(composed, 0x93df_c047);
        assert_eq!(
            Esr(0x93df_c047).data_abort().unwrap().to_string(),
            "write, translation fault level 3, ISV=1 (8-byte, xzr, acquire/release)"
        );
    }

    /// 0x96000021: EC=0x25, IL=1, ISS=0x21: read, DFSC=0b100001 alignment
    /// fault (e.g. an unaligned access to Device memory at EL2).
    #[test]
    fn alignment_fault() {
        assert_eq!(compose(0x25, true, 0x21), 0x9600_0021);
        let esr = Esr(0x9600_0021);
        assert_eq!(esr.data_abort().unwrap().dfsc, FaultStatus::Alignment);
        assert_eq!(
            esr.to_string(),
            "ESR 0x96000021: data abort from the same EL (IL=32-bit): read, alignment fault, ISV=0"
        );
    }

    /// A stage 2 fault during the guest's stage 1 walk, with FAR not valid:
    /// EC=0x24, IL=1, FnV (bit 10) -> 0x400, S1PTW (bit 7) -> 0x80,
    /// DFSC=0b000101. 0x92000000 | 0x485 = 0x92000485.
    #[test]
    fn stage_2_fault_on_stage_1_walk_without_far() {
        let esr = Esr(0x9200_0485);
        let abort = esr.data_abort().unwrap();
        assert!(abort.fnv && abort.s1ptw);
        assert!(!esr.far_is_valid());
        assert_eq!(abort.to_string(), "read, translation fault level 1, on stage 1 table walk, FAR not valid, ISV=0");
    }

    /// 0x86000007: 0x86 >> 2 = 0b100001 -> EC=0x21 (instruction abort, same
    /// EL), IL=1, IFSC=0b000111 translation fault level 3: EL2 jumped to an
    /// unmapped address.
    #[test]
    fn instruction_abort_same_el_translation_level_3() {
        assert_eq!(compose(0x21, true, 0x07), 0x8600_0007);
        let esr = Esr(0x8600_0007);
        assert_eq!(esr.ec(), ExceptionClass::InstructionAbortSameEl);
        assert!(esr.data_abort().is_none());
        let abort = esr.instruction_abort().unwrap();
        assert_eq!(abort.ifsc, FaultStatus::Translation { level: 3 });
        assert!(!abort.fnv && !abort.s1ptw && !abort.ea);
        assert!(esr.far_is_valid());
        assert_eq!(
            esr.to_string(),
            "ESR 0x86000007: instruction abort from the same EL (IL=32-bit): \
             translation fault level 3"
        );
    }

    /// 0x8200000f: 0x82 >> 2 = 0b100000 -> EC=0x20 (instruction abort, lower
    /// EL), IL=1, IFSC=0b001111 permission fault level 3: a guest executed
    /// from a page its stage 2 mapping marks execute-never.
    #[test]
    fn instruction_abort_lower_el_permission_level_3() {
        assert_eq!(compose(0x20, true, 0x0f), 0x8200_000f);
        let esr = Esr(0x8200_000f);
        assert_eq!(esr.ec(), ExceptionClass::InstructionAbortLowerEl);
        assert_eq!(esr.instruction_abort().unwrap().ifsc, FaultStatus::Permission { level: 3 });
        assert_eq!(
            esr.to_string(),
            "ESR 0x8200000f: instruction abort from a lower EL (IL=32-bit): \
             permission fault level 3"
        );
    }

    /// 0x5a000000: 0x5a >> 2 = 0b010110 -> EC=0x16 (HVC64), IL=1, imm16=0:
    /// a guest `hvc #0`, the SMCCC hypercall conduit.
    #[test]
    fn hvc64_immediate_zero() {
        assert_eq!(compose(0x16, true, 0), 0x5a00_0000);
        let esr = Esr(0x5a00_0000);
        assert_eq!(esr.ec(), ExceptionClass::Hvc64);
        assert_eq!(esr.imm16(), Some(0));
        assert!(!esr.far_is_valid());
        assert_eq!(esr.to_string(), "ESR 0x5a000000: HVC from AArch64 (IL=32-bit): imm16=0x0000");
        // `hvc #0x4711`.
        assert_eq!(Esr(0x5a00_4711).imm16(), Some(0x4711));
    }

    /// 0x5e000000: 0x5e >> 2 = 0b010111 -> EC=0x17 (SMC64), IL=1, imm16=0:
    /// a guest `smc #0` trapped by HCR_EL2.TSC (PSCI calls).
    #[test]
    fn smc64_trapped() {
        assert_eq!(compose(0x17, true, 0), 0x5e00_0000);
        let esr = Esr(0x5e00_0000);
        assert_eq!(esr.ec(), ExceptionClass::Smc64);
        assert_eq!(esr.imm16(), Some(0));
        assert_eq!(esr.to_string(), "ESR 0x5e000000: SMC from AArch64 (IL=32-bit): imm16=0x0000");
        // An AArch32 SMC (EC 0x13) reports no immediate.
        assert_eq!(Esr(compose(0x13, true, 0)).imm16(), None);
    }

    /// 0x02000000: EC=0 (unknown reason, e.g. an UNDEFINED instruction),
    /// IL=1, ISS=0.
    #[test]
    fn unknown_reason() {
        let esr = Esr(0x0200_0000);
        assert_eq!(esr.ec(), ExceptionClass::Unknown);
        assert!(esr.il());
        assert_eq!(esr.instruction_length(), 4);
        assert_eq!(esr.iss(), 0);
        assert_eq!(esr.to_string(), "ESR 0x02000000: unknown reason (IL=32-bit)");
        assert_eq!(Esr(0).instruction_length(), 2);
    }

    /// A guest `msr ICC_SGI1R_EL1, x1` (send an SGI) trapped to EL2.
    /// ICC_SGI1R_EL1 is op0=3, op1=0, CRn=12, CRm=11, op2=5. ISS:
    /// Op0 (bits 21:20) 3 -> 0x300000; Op2 (19:17) 5 -> 0xa0000;
    /// Op1 (16:14) 0; CRn (13:10) 12 -> 0x3000; Rt (9:5) 1 -> 0x20;
    /// CRm (4:1) 11 -> 0x16; Direction (0) 0 = write. ISS = 0x3a3036.
    /// EC=0x18 with IL=1 is 0x62000000, so ESR = 0x623a3036.
    #[test]
    fn trapped_msr_icc_sgi1r_el1() {
        let iss = (3 << 20) | (5 << 17) | (12 << 10) | (1 << 5) | (11 << 1);
        assert_eq!(iss, 0x3a_3036);
        assert_eq!(compose(0x18, true, iss), 0x623a_3036);
        let esr = Esr(0x623a_3036);
        assert_eq!(esr.ec(), ExceptionClass::MsrMrsSystem64);
        let access = esr.sys_reg_access().unwrap();
        assert_eq!(
            access,
            SysRegAccess { op0: 3, op1: 0, crn: 12, crm: 11, op2: 5, rt: 1, direction: SysRegDirection::Write }
        );
        assert!(access.is_register(3, 0, 12, 11, 5));
        assert_eq!(
            esr.to_string(),
            "ESR 0x623a3036: trapped MSR/MRS/system instruction (IL=32-bit): \
             MSR S3_0_C12_C11_5, x1"
        );
    }

    /// A guest `mrs x0, CNTPCT_EL0` (op0=3, op1=3, CRn=14, CRm=0, op2=1):
    /// ISS = 0x300000 | (1 << 17) | (3 << 14) | (14 << 10) | 1 = 0x32f801,
    /// ESR = 0x62000000 | 0x32f801 = 0x6232f801.
    #[test]
    fn trapped_mrs_cntpct_el0() {
        let iss = (3 << 20) | (1 << 17) | (3 << 14) | (14 << 10) | 1;
        assert_eq!(compose(0x18, true, iss), 0x6232_f801);
        let access = Esr(0x6232_f801).sys_reg_access().unwrap();
        assert_eq!(access.direction, SysRegDirection::Read);
        assert!(access.is_register(3, 3, 14, 0, 1));
        assert_eq!(access.to_string(), "MRS x0, S3_3_C14_C0_1");
    }

    /// A trapped `dc civac, x2` (SYS #3, C7, C14, #1): op0=1, op1=3, CRn=7,
    /// CRm=14, op2=1, Rt=2, write.
    #[test]
    fn trapped_system_instruction() {
        let iss = (1 << 20) | (1 << 17) | (3 << 14) | (7 << 10) | (2 << 5) | (14 << 1);
        let access = Esr(compose(0x18, true, iss)).sys_reg_access().unwrap();
        assert_eq!(access.to_string(), "SYS #3, C7, C14, #1, x2");
    }

    /// 0x04000000 is WFI (EC=0x01, IL=0 as from a T32 guest, TI=0b00);
    /// 0x06000001 is WFE from A64 (IL=1, TI=0b01).
    #[test]
    fn trapped_wfi_and_wfe() {
        assert_eq!(Esr(0x0400_0000).wfx(), Some(WfxKind::Wfi));
        assert_eq!(Esr(0x0600_0001).wfx(), Some(WfxKind::Wfe));
        assert_eq!(Esr(0x0600_0002).wfx(), Some(WfxKind::Wfit));
        assert_eq!(Esr(0x0600_0003).wfx(), Some(WfxKind::Wfet));
        assert_eq!(Esr(0x5a00_0000).wfx(), None);
        assert_eq!(Esr(0x0600_0001).to_string(), "ESR 0x06000001: trapped WFI/WFE (IL=32-bit): WFE");
        assert_eq!(Esr(0x0400_0000).to_string(), "ESR 0x04000000: trapped WFI/WFE (IL=16-bit): WFI");
    }

    /// 0xbe000000: 0xbe >> 2 = 0b101111 -> EC=0x2f (SError), IL=1, ISS=0:
    /// IDS=0 and DFSC=0, an uncategorized error.
    #[test]
    fn serror_uncategorized() {
        assert_eq!(compose(0x2f, true, 0), 0xbe00_0000);
        let esr = Esr(0xbe00_0000);
        assert_eq!(esr.ec(), ExceptionClass::SError);
        assert!(!esr.far_is_valid());
        assert_eq!(esr.to_string(), "ESR 0xbe000000: SError (IL=32-bit): uncategorized");
    }

    /// A RAS SError: IDS=0, AET=0b000 (uncontainable), DFSC=0b010001
    /// (asynchronous SError interrupt): 0xbe000011.
    #[test]
    fn serror_uncontainable() {
        assert_eq!(
            Esr(0xbe00_0011).to_string(),
            "ESR 0xbe000011: SError (IL=32-bit): asynchronous SError interrupt, uncontainable (UC)"
        );
        // IDS=1: IMPLEMENTATION DEFINED syndrome in bits 23:0.
        assert_eq!(
            Esr(0xbf00_1234).to_string(),
            "ESR 0xbf001234: SError (IL=32-bit): implementation defined syndrome 0x001234"
        );
    }

    /// `brk #0x3e8`: EC=0x3c, IL=1, comment 0x3e8 -> 0xf20003e8.
    #[test]
    fn brk_comment() {
        assert_eq!(compose(0x3c, true, 0x3e8), 0xf200_03e8);
        let esr = Esr(0xf200_03e8);
        assert_eq!(esr.breakpoint_comment(), Some(0x3e8));
        assert_eq!(esr.to_string(), "ESR 0xf20003e8: BRK instruction (IL=32-bit): comment=0x03e8");
    }

    /// FAR is written only for aborts, PC alignment faults and watchpoints.
    #[test]
    fn far_validity_by_class() {
        assert!(Esr(compose(0x22, true, 0)).far_is_valid()); // PC alignment
        assert!(Esr(compose(0x34, true, 0)).far_is_valid()); // watchpoint, lower EL
        assert!(Esr(compose(0x35, true, 0)).far_is_valid()); // watchpoint, same EL
        assert!(!Esr(compose(0x26, true, 0)).far_is_valid()); // SP alignment
        assert!(!Esr(compose(0x3c, true, 0)).far_is_valid()); // BRK
        // Instruction abort with FnV set.
        assert!(!Esr(compose(0x21, true, 0x400 | 0x10)).far_is_valid());
    }

    /// Unrecognised classes still show their raw ISS; ISS2 is appended.
    #[test]
    fn raw_fields_are_not_lost() {
        assert_eq!(
            Esr(compose(0x3f, true, 0x12345)).to_string(),
            "ESR 0xfe012345: unallocated exception class (IL=32-bit): ISS=0x0012345"
        );
        // ISS2 bit 10 (TnD) set on a data abort.
        assert_eq!(
            Esr((0x400 << 32) | 0x9600_004f).to_string(),
            "ESR 0x4009600004f: data abort from the same EL (IL=32-bit): \
             write, permission fault level 3, ISV=0, ISS2=0x000400"
        );
    }
}
