//! The system registers `aarch64-cpu` does not model, and the fields it lacks
//! on registers it does. Every other register is used straight from
//! `aarch64_cpu::registers` (`HCR_EL2.write(HCR_EL2::VM::Enable + ...)`).
//!
//! This is the one file that names registers by encoding. What it defines looks
//! like what `aarch64-cpu` defines, so call sites cannot tell them apart:
//!
//! - `system_register!` defines a register it lacks: a register object
//!   implementing tock-registers' `Readable` and/or `Writeable`, and a
//!   `register_bitfields!` field set for the fields used. Here: MTE's
//!   `GCR_EL1`, `RGSR_EL1`, `TFSR_EL1`, `TFSRE0_EL1` and `GMID_EL1`; the GIC CPU
//!   interface registers it lacks (`ICC_PMR/BPR1/IGRPEN1/IAR1/EOIR1/DIR/SGI1R_EL1`,
//!   and `ICC_CTLR_EL1`, which it models read-only); `CTR_EL0`, `DCZID_EL0`,
//!   `NZCV`, `VPIDR_EL2`, `CNTHP_CVAL_EL2`, `ID_AA64ISAR2_EL1`; and the
//!   pointer-authentication keys, which it names in a way the assembler only
//!   accepts with a target feature the hypervisor is not built with.
//! - `extra_fields!` adds fields to a register it models, typed against its
//!   register so they combine with its own fields in one `write` or `read`
//!   (`SCTLR_EL2.ATA`, `CPTR_EL2.TZ`, RES1 patterns, ...).
//! - [`read_unnamed_id_register`] reads the rest of the ID space by encoding.
//!
//! Registers that need FEAT_MTE2 (`GMID_EL1`, `GCR_EL1`, ...) or FEAT_PAuth
//! (the keys) are UNDEFINED without it: callers check the feature first, as
//! their docs say.

use tock_registers::fields::{Field, FieldValue};

/// `mrs` of the register `$asm` names (its name, or `s<op0>_<op1>_c<n>_c<m>_<op2>`
/// where the assembler does not know the name without a target feature).
macro_rules! mrs {
    ($asm:expr) => {{
        let value: u64;
        // SAFETY: an MRS changes no memory; the registers read through this file
        // exist on every CPU the hypervisor runs on, or their callers check the
        // feature first (the module doc). Reading `ICC_IAR1_EL1` acknowledges an
        // interrupt, which is what its one caller wants.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $asm), out(reg) value, options(nomem, nostack, preserves_flags));
        }
        value
    }};
}

/// Defines a register `aarch64-cpu` lacks, the way it defines its own: a module
/// `$module` holding the register object `$name` (re-exported here) and, when
/// fields are given, the field set `$name` (`register_bitfields!`); a register
/// whose value is only ever moved as a whole has none (`R = ()`).
///
/// `read` implements `Readable`, `write` implements `Writeable`. Writes are safe
/// functions, as in `aarch64-cpu`: only give `write` to a register whose value
/// cannot change how EL2 translates, caches or checks memory (so a write cannot
/// break the hypervisor's memory safety). Writes are not `nomem`: as the
/// accesses they replaced, they keep memory accesses on their side.
macro_rules! system_register {
    ($(#[$doc:meta])* $module:ident::$name:ident = $asm:literal, $($access:ident)+) => {
        system_register!(@define [$(#[$doc])*] $module $name $asm [$($access)+] (), {});
    };
    ($(#[$doc:meta])* $module:ident::$name:ident = $asm:literal, $($access:ident)+ [ $($fields:tt)+ ]) => {
        system_register!(@define [$(#[$doc])*] $module $name $asm [$($access)+] $name::Register, {
            tock_registers::register_bitfields! { u64, pub $name [ $($fields)+ ] }
        });
    };
    (@define [$(#[$doc:meta])*] $module:ident $name:ident $asm:literal [$($access:ident)+] $fields:ty, { $($bitfields:tt)* }) => {
        $(#[$doc])*
        pub mod $module {
            $($bitfields)*

            #[doc = concat!("The `", stringify!($name), "` register object.")]
            #[derive(Debug, Clone, Copy)]
            pub struct Reg;

            $( system_register!(@$access $fields, $asm); )+

            #[doc = concat!("`", stringify!($name), "`, accessed as `", $asm, "`.")]
            pub const $name: Reg = Reg;
        }
        pub use $module::$name;
    };
    (@read $fields:ty, $asm:literal) => {
        impl tock_registers::interfaces::Readable for Reg {
            type T = u64;
            type R = $fields;

            #[inline]
            fn get(&self) -> u64 {
                mrs!($asm)
            }
        }
    };
    (@write $fields:ty, $asm:literal) => {
        impl tock_registers::interfaces::Writeable for Reg {
            type T = u64;
            type R = $fields;

            #[inline]
            fn set(&self, value: u64) {
                // SAFETY: an MSR of a register defined with `write` in this file,
                // none of which changes how EL2 translates, caches or checks
                // memory (see `system_register!`); what the value does to lower
                // ELs, the timer or the GIC is the caller's to decide.
                unsafe {
                    core::arch::asm!(concat!("msr ", $asm, ", {}"), in(reg) value, options(nostack, preserves_flags));
                }
            }
        }
    };
}

/// Declares fields `aarch64-cpu` lacks on its register `$register`, in the
/// calling module (a child of this one): for each field a `Field` constant and a module of the same
/// name holding `SET` and `CLEAR`, as `register_bitfields!` makes them, so they
/// read like its own (`SCTLR_EL2::M::Enable + sctlr_el2::ATA::SET`).
macro_rules! extra_fields {
    ($register:ident: $( $(#[$doc:meta])* $field:ident OFFSET($offset:literal) NUMBITS($bits:literal) ),* $(,)?) => {
        $(
            $(#[$doc])*
            pub const $field: super::Field<u64, aarch64_cpu::registers::$register::Register> =
                super::Field::new((1 << $bits) - 1, $offset);

            $(#[$doc])*
            #[allow(non_snake_case)]
            pub mod $field {
                type Value = super::super::FieldValue<u64, aarch64_cpu::registers::$register::Register>;
                /// All bits of the field set.
                pub const SET: Value = Value::new((1 << $bits) - 1, $offset, (1 << $bits) - 1);
                /// All bits of the field clear.
                pub const CLEAR: Value = Value::new((1 << $bits) - 1, $offset, 0);
            }
        )*
    };
}

/// The bits of `pattern` set, as a value of `R` (its RES1 bits, say).
const fn bits_set<R: tock_registers::RegisterLongName>(pattern: u64) -> FieldValue<u64, R> {
    FieldValue::<u64, R>::new(pattern, 0, pattern)
}

// ---- Registers aarch64-cpu lacks ----

system_register! {
    /// Cache Type Register: the cache line sizes maintenance loops step by.
    ctr_el0::CTR_EL0 = "ctr_el0", read [
        /// Log2 of the words in the smallest data cache line.
        DminLine OFFSET(16) NUMBITS(4) [],
    ]
}

system_register! {
    /// Data Cache Zero ID Register (decoded by `crate::mte::MteInfo`).
    dczid_el0::DCZID_EL0 = "dczid_el0", read
}

system_register! {
    /// The condition flags, as they go into a saved SPSR.
    nzcv::NZCV = "nzcv", read
}

system_register! {
    /// Multiple tag transfer ID register (FEAT_MTE2; decoded by `crate::mte::MteInfo`).
    gmid_el1::GMID_EL1 = "s3_1_c0_c0_4", read
}

system_register! {
    /// Tag Control Register (FEAT_MTE2): which tags `IRG` may generate at EL1/EL0.
    gcr_el1::GCR_EL1 = "s3_0_c1_c0_6", read write
}

system_register! {
    /// Random Allocation Tag Seed Register (FEAT_MTE2).
    rgsr_el1::RGSR_EL1 = "s3_0_c1_c0_5", read write
}

system_register! {
    /// Tag Fault Status Register for EL1 (FEAT_MTE2): asynchronous tag-check faults.
    tfsr_el1::TFSR_EL1 = "s3_0_c5_c6_0", read write
}

system_register! {
    /// Tag Fault Status Register for EL0 (FEAT_MTE2).
    tfsre0_el1::TFSRE0_EL1 = "s3_0_c5_c6_1", read write
}

system_register! {
    /// AArch64 Instruction Set Attribute Register 2 (RAZ before Armv8.7, so always readable).
    id_aa64isar2_el1::ID_AA64ISAR2_EL1 = "s3_0_c0_c6_2", read [
        /// FEAT_WFxT: `WFET`/`WFIT` (2 = implemented).
        WFxT OFFSET(0) NUMBITS(4) [],
        /// FEAT_PACQARMA3 generic authentication.
        GPA3 OFFSET(8) NUMBITS(4) [],
        /// FEAT_PACQARMA3 address authentication.
        APA3 OFFSET(12) NUMBITS(4) [],
    ]
}

system_register! {
    /// Counter-timer Hypervisor Physical Timer CompareValue: the EL2 timer's deadline.
    cnthp_cval_el2::CNTHP_CVAL_EL2 = "cnthp_cval_el2", read write
}

system_register! {
    /// Virtualization Processor ID Register: the MIDR_EL1 EL1 reads.
    vpidr_el2::VPIDR_EL2 = "vpidr_el2", read write
}

system_register! {
    /// Interrupt Controller Interrupt Priority Mask Register.
    icc_pmr_el1::ICC_PMR_EL1 = "icc_pmr_el1", read write [
        /// Interrupts of lower priority (higher value) than this are masked.
        Priority OFFSET(0) NUMBITS(8) [],
    ]
}

system_register! {
    /// Interrupt Controller Binary Point Register 1 (group 1 preemption).
    icc_bpr1_el1::ICC_BPR1_EL1 = "icc_bpr1_el1", read write [
        BinaryPoint OFFSET(0) NUMBITS(3) [],
    ]
}

system_register! {
    /// Interrupt Controller Interrupt Group 1 Enable register.
    icc_igrpen1_el1::ICC_IGRPEN1_EL1 = "icc_igrpen1_el1", read write [
        Enable OFFSET(0) NUMBITS(1) [],
    ]
}

system_register! {
    /// Interrupt Controller Interrupt Acknowledge Register 1: reading acknowledges.
    icc_iar1_el1::ICC_IAR1_EL1 = "icc_iar1_el1", read [
        INTID OFFSET(0) NUMBITS(24) [],
    ]
}

system_register! {
    /// Interrupt Controller End Of Interrupt Register 1 (a priority drop with EOImode 1).
    icc_eoir1_el1::ICC_EOIR1_EL1 = "icc_eoir1_el1", write [
        INTID OFFSET(0) NUMBITS(24) [],
    ]
}

system_register! {
    /// Interrupt Controller Deactivate Interrupt Register.
    icc_dir_el1::ICC_DIR_EL1 = "icc_dir_el1", write [
        INTID OFFSET(0) NUMBITS(24) [],
    ]
}

system_register! {
    /// Interrupt Controller Software Generated Interrupt Group 1 Register.
    icc_sgi1r_el1::ICC_SGI1R_EL1 = "icc_sgi1r_el1", write [
        /// One bit per target CPU by Aff0 (for Aff0 0..=15).
        TargetList OFFSET(0) NUMBITS(16) [],
        Aff1 OFFSET(16) NUMBITS(8) [],
        /// The SGI (0..=15).
        INTID OFFSET(24) NUMBITS(4) [],
        Aff2 OFFSET(32) NUMBITS(8) [],
        Aff3 OFFSET(48) NUMBITS(8) [],
    ]
}

system_register! {
    /// Interrupt Controller Control Register (EL1), writable: `aarch64-cpu` 11
    /// models it read-only, and a local definition of the same name shadows its
    /// glob import.
    icc_ctlr_el1::ICC_CTLR_EL1 = "icc_ctlr_el1", read write [
        /// 1: EOIR only drops priority, DIR deactivates.
        EOImode OFFSET(1) NUMBITS(1) [],
    ]
}

// The pointer-authentication keys (FEAT_PAuth). `aarch64-cpu` models them, but
// by the names (`APIAKeyLo_EL1`, ...) the assembler accepts only with the `pauth`
// target feature, which the hypervisor is not built with (it runs on CPUs
// without it too); so they are defined here by encoding, under the same names.

system_register! {
    /// Pointer authentication: Instruction key A, low half.
    apiakeylo_el1::APIAKEYLO_EL1 = "s3_0_c2_c1_0", read write
}

system_register! {
    /// Pointer authentication: Instruction key A, high half.
    apiakeyhi_el1::APIAKEYHI_EL1 = "s3_0_c2_c1_1", read write
}

system_register! {
    /// Pointer authentication: Instruction key B, low half.
    apibkeylo_el1::APIBKEYLO_EL1 = "s3_0_c2_c1_2", read write
}

system_register! {
    /// Pointer authentication: Instruction key B, high half.
    apibkeyhi_el1::APIBKEYHI_EL1 = "s3_0_c2_c1_3", read write
}

system_register! {
    /// Pointer authentication: Data key A, low half.
    apdakeylo_el1::APDAKEYLO_EL1 = "s3_0_c2_c2_0", read write
}

system_register! {
    /// Pointer authentication: Data key A, high half.
    apdakeyhi_el1::APDAKEYHI_EL1 = "s3_0_c2_c2_1", read write
}

system_register! {
    /// Pointer authentication: Data key B, low half.
    apdbkeylo_el1::APDBKEYLO_EL1 = "s3_0_c2_c2_2", read write
}

system_register! {
    /// Pointer authentication: Data key B, high half.
    apdbkeyhi_el1::APDBKEYHI_EL1 = "s3_0_c2_c2_3", read write
}

system_register! {
    /// Pointer authentication: Generic key, low half.
    apgakeylo_el1::APGAKEYLO_EL1 = "s3_0_c2_c3_0", read write
}

system_register! {
    /// Pointer authentication: Generic key, high half.
    apgakeyhi_el1::APGAKEYHI_EL1 = "s3_0_c2_c3_1", read write
}

// ---- Fields aarch64-cpu lacks on registers it models ----

/// `SCTLR_EL2` in the non-VHE layout.
pub mod sctlr_el2 {
    extra_fields! { SCTLR_EL2:
        /// Allocation tag access at EL2 (FEAT_MTE2).
        ATA OFFSET(43) NUMBITS(1),
    }

    /// Bits that are RES1 in the non-VHE EL2 layout.
    pub const RES1: super::FieldValue<u64, aarch64_cpu::registers::SCTLR_EL2::Register> = super::bits_set(0x30C5_0830);
}

/// `TCR_EL2` in the non-VHE layout.
pub mod tcr_el2 {
    /// Bits 23 and 31, RES1 in the non-VHE layout.
    pub const RES1: super::FieldValue<u64, aarch64_cpu::registers::TCR_EL2::Register> =
        super::bits_set((1 << 31) | (1 << 23));
}

/// `CNTHCTL_EL2` (non-VHE): the FEAT_ECV trap `aarch64-cpu` lacks.
pub mod cnthctl_el2 {
    extra_fields! { CNTHCTL_EL2:
        /// Traps EL0/EL1 accesses to the EL1 virtual timer registers
        /// (`CNTV_CTL/CVAL/TVAL_EL0`) to EL2 (FEAT_ECV).
        EL1TVT OFFSET(13) NUMBITS(1),
    }
}

/// `CPTR_EL2` in the non-VHE layout (`aarch64-cpu` models only `TAM`).
pub mod cptr_el2 {
    extra_fields! { CPTR_EL2:
        /// Traps SVE (and SVE's use of FP/SIMD).
        TZ OFFSET(8) NUMBITS(1),
        /// Traps SME.
        TSM OFFSET(12) NUMBITS(1),
    }

    /// Bits 13, 9 and 7:0, RES1 in the non-VHE layout.
    pub const RES1: super::FieldValue<u64, aarch64_cpu::registers::CPTR_EL2::Register> = super::bits_set(0x22FF);
}

/// `PAR_EL1` after a successful translation.
pub mod par_el1 {
    extra_fields! { PAR_EL1:
        /// The output page address, bits 51:12 (FEAT_LPA); `aarch64-cpu`'s
        /// `PAR_EL1::PA` stops at bit 47.
        PA OFFSET(12) NUMBITS(40),
    }
}

// ---- The rest of the ID space ----

/// The ID register `S3_0_C0_C<crm>_<op2>` for the encodings of CRm 1..=7 that
/// neither `aarch64-cpu` nor this file names: the AArch32 ID registers,
/// `ID_AA64ZFR0/SMFR0/MMFR3/MMFR4_EL1` and the reserved encodings (RAZ at EL2
/// too, so every one is safe to read). `None` for every other (crm, op2),
/// including the named ones, which callers read by name.
pub fn read_unnamed_id_register(crm: u8, op2: u8) -> Option<u64> {
    macro_rules! by_encoding {
        ($( ($c:literal, $o:literal) )*) => {
            match (crm, op2) {
                $( ($c, $o) => Some(mrs!(concat!("s3_0_c0_c", $c, "_", $o))), )*
                _ => None,
            }
        };
    }
    by_encoding! {
        (1, 0) (1, 1) (1, 2) (1, 3) (1, 4) (1, 5) (1, 6) (1, 7)
        (2, 0) (2, 1) (2, 2) (2, 3) (2, 4) (2, 5) (2, 6) (2, 7)
        (3, 0) (3, 1) (3, 2) (3, 3) (3, 4) (3, 5) (3, 6) (3, 7)
        /* (4, 0) ID_AA64PFR0_EL1, (4, 1) ID_AA64PFR1_EL1 */ (4, 2) (4, 3) (4, 4) (4, 5) (4, 6) (4, 7)
        /* (5, 0) ID_AA64DFR0_EL1, (5, 1) ID_AA64DFR1_EL1 */ (5, 2) (5, 3)
        /* (5, 4) ID_AA64AFR0_EL1, (5, 5) ID_AA64AFR1_EL1 */ (5, 6) (5, 7)
        /* (6, 0) ID_AA64ISAR0_EL1, (6, 1) ID_AA64ISAR1_EL1, (6, 2) ID_AA64ISAR2_EL1 */ (6, 3) (6, 4) (6, 5) (6, 6) (6, 7)
        /* (7, 0..=2) ID_AA64MMFR0/1/2_EL1 */ (7, 3) (7, 4) (7, 5) (7, 6) (7, 7)
    }
}
