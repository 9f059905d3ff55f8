//! AArch64 EL2 support.

pub mod boot;
pub mod cache;
pub mod cpu;
pub mod exceptions;
pub mod gic;
pub mod guest;
pub mod id_registers;
pub mod mmu;
pub mod power;
pub mod psci;
pub mod registers;
pub mod sanitise;
pub mod semihosting;
pub mod smp;
