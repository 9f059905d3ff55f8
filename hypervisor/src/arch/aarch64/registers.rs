//! Raw system-register access for registers `aarch64-cpu` does not model
//! (MTE's GMID_EL1, SCTLR_EL2's MTE fields, ...), by name or `S<op0>_<op1>_C<n>_C<m>_<op2>`.

/// Reads a system register. Reading an ID or status register has no side effects.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: an MRS of the named register only reads it; callers only name
        // registers that exist at EL2 on every CPU we run on (or check first).
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack, preserves_flags));
        }
        value
    }};
}

/// Writes a system register. Must be used inside an `unsafe` block whose SAFETY
/// comment justifies the effect of the write.
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nostack, preserves_flags));
    }};
}

pub(crate) use read_sysreg;
pub(crate) use write_sysreg;

/// SCTLR_EL2 bits used by the hypervisor (non-VHE layout).
pub mod sctlr_el2 {
    pub const M: u64 = 1 << 0;
    pub const C: u64 = 1 << 2;
    pub const SA: u64 = 1 << 3;
    pub const I: u64 = 1 << 12;
    pub const WXN: u64 = 1 << 19;
    /// Allocation tag access at EL2 (FEAT_MTE2).
    pub const ATA: u64 = 1 << 43;
    /// Bits that are RES1 in the non-VHE EL2 layout.
    pub const RES1: u64 = 0x30C5_0830;
}
