//! Device register accesses: one plain `LDR`/`STR` each (asm, so the compiler cannot
//! pick a pair or a writeback form the hypervisor could not emulate: only accesses
//! with a valid instruction syndrome can be).

use core::arch::asm;

/// 32-bit read of a device register.
pub fn read32(addr: u64) -> u32 {
    let value: u32;
    // SAFETY: callers pass device registers in the Device-mapped window; reading
    // them touches no memory a Rust object lives in.
    unsafe { asm!("ldr {v:w}, [{a}]", v = out(reg) value, a = in(reg) addr, options(nostack, preserves_flags)) };
    value
}

/// 32-bit write of a device register.
pub fn write32(addr: u64, value: u32) {
    // SAFETY: callers pass device registers in the Device-mapped window, which no
    // Rust object lives in.
    unsafe { asm!("str {v:w}, [{a}]", v = in(reg) value, a = in(reg) addr, options(nostack, preserves_flags)) };
}

/// 64-bit write of a device register.
pub fn write64(addr: u64, value: u64) {
    // SAFETY: as for `write32`.
    unsafe { asm!("str {v}, [{a}]", v = in(reg) value, a = in(reg) addr, options(nostack, preserves_flags)) };
}

/// 8-bit write of a device register (GIC priority bytes).
pub fn write8(addr: u64, value: u8) {
    // SAFETY: as for `write32`.
    unsafe {
        asm!("strb {v:w}, [{a}]", v = in(reg) u32::from(value), a = in(reg) addr, options(nostack, preserves_flags))
    };
}
