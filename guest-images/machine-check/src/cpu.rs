//! Which vCPU this is.

use aarch64_cpu::registers::{MPIDR_EL1, Readable};

/// This vCPU's index: MPIDR_EL1.Aff0 (vCPU n has Aff0 = n on both machines).
pub fn index() -> usize {
    (MPIDR_EL1.get() & 0xff) as usize
}
