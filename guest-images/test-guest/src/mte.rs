//! This guest's MTE setup: whether the CPU has MTE, and the EL1 MTE registers
//! in a known state. The tag instructions and tagged-pointer arithmetic are the
//! `mte_insn` crate's (shared with `mte-check`).
//!
//! Tags live in address bits [59:56] (TCR_EL1.TBI0 = 1, so translation ignores
//! them).

use crate::sysreg;

/// ID_AA64PFR1_EL1.MTE: 0 = none, 1 = instructions only (FEAT_MTE),
/// 2 = FEAT_MTE2 (tag storage, checks), 3 = FEAT_MTE3.
pub fn cpu_level() -> u64 {
    (sysreg::id_aa64pfr1_el1() >> 8) & 0xf
}

/// Whether the CPU offers tag storage and tag checks (FEAT_MTE2 or later).
pub fn available() -> bool {
    cpu_level() >= 2
}

/// GCR_EL1 value set at boot: RRND = 0 (architected IRG), tag 0 excluded so
/// IRG never returns it.
pub const GCR_EXCLUDE_TAG0: u64 = 0x1;

/// Puts the MTE control registers in a known state after the MMU is on with
/// SCTLR_EL1.ATA and TCF set: IRG excludes tag 0 and is seeded from the
/// counter, no pending tag faults, tag checks not overridden (PSTATE.TCO = 0).
pub fn init() {
    sysreg::set_gcr_el1(GCR_EXCLUDE_TAG0);
    let seed = (sysreg::cntvct_el0() & 0xffff) | 1; // a zero seed would make IRG sequential
    sysreg::set_rgsr_el1(seed << 8);
    sysreg::set_tfsr_el1(0);
    sysreg::set_tfsre0_el1(0);
    // Tag checks on: this code's untagged pointers match the (zero) tags of the
    // memory Rust uses.
    mte_insn::set_tag_check_override(false);
}
