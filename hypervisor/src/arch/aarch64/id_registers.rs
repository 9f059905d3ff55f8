//! Reading an ID register (`S3_0_C0_C<crm>_<op2>`, CRm 1..=7) by its encoding, to
//! answer a guest's trapped read. The encodings without a register read as zero
//! at EL2 too (they are RAZ in this space), so every one is safe to read.

use aarch64_cpu::registers::*;

use super::registers::{ID_AA64ISAR2_EL1, read_unnamed_id_register};

/// The real value of the ID register `S3_0_C0_C<crm>_<op2>`; `None` outside CRm 1..=7.
pub fn read_id_register(crm: u8, op2: u8) -> Option<u64> {
    let value = match (crm, op2) {
        (4, 0) => ID_AA64PFR0_EL1.get(),
        (4, 1) => ID_AA64PFR1_EL1.get(),
        (5, 0) => ID_AA64DFR0_EL1.get(),
        (5, 1) => ID_AA64DFR1_EL1.get(),
        (5, 4) => ID_AA64AFR0_EL1.get(),
        (5, 5) => ID_AA64AFR1_EL1.get(),
        (6, 0) => ID_AA64ISAR0_EL1.get(),
        (6, 1) => ID_AA64ISAR1_EL1.get(),
        (6, 2) => ID_AA64ISAR2_EL1.get(),
        (7, 0) => ID_AA64MMFR0_EL1.get(),
        (7, 1) => ID_AA64MMFR1_EL1.get(),
        (7, 2) => ID_AA64MMFR2_EL1.get(),
        _ => return read_unnamed_id_register(crm, op2),
    };
    Some(value)
}
