//! AArch64 EL2 support: the mechanisms only (system registers, the EL2 map and
//! MMU, vectors, GIC, PSCI calls, CPU bring-up, guest entry). It knows nothing of
//! VMs, the scheduler or the console: it logs through `log`, and what it must
//! report without the logger (a crash) goes to a handler its caller installs.

pub mod cache;
pub mod cpu;
pub mod exceptions;
pub mod gic;
pub mod guest;
pub mod id_registers;
pub mod mmu;
pub mod psci;
pub mod registers;
pub mod sanitise;
pub mod semihosting;
pub mod smp;
