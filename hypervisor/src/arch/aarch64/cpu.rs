//! Identity and state of the executing CPU.

use aarch64_cpu::registers::*;

use super::registers::{DCZID_EL0, GMID_EL1};
use crate::mte::MteInfo;

/// The exception level we are running at.
pub fn current_el() -> u8 {
    CurrentEL.read(CurrentEL::EL) as u8
}

/// This CPU's affinity fields (Aff3..Aff0) from MPIDR_EL1, as DTB `cpu` nodes list them.
pub fn mpidr_affinity() -> u64 {
    let affinity = MPIDR_EL1::Aff3::SET + MPIDR_EL1::Aff2::SET + MPIDR_EL1::Aff1::SET + MPIDR_EL1::Aff0::SET;
    MPIDR_EL1.get() & affinity.mask()
}

/// The hypervisor's index of this CPU (position in the DTB's `/cpus`), kept in TPIDR_EL2.
pub fn index() -> usize {
    TPIDR_EL2.get() as usize
}

/// Records this CPU's index; done once per CPU at bring-up.
pub fn set_index(index: usize) {
    // TPIDR_EL2 is a scratch register reserved for the hypervisor's CPU index.
    TPIDR_EL2.set(index as u64);
}

/// MTE capabilities of this CPU.
pub fn mte_info() -> MteInfo {
    let pfr1 = ID_AA64PFR1_EL1.get();
    let dczid = DCZID_EL0.get();
    let probe = MteInfo::from_registers(pfr1, dczid, None);
    let gmid = probe.level.has_tag_storage().then(|| GMID_EL1.get());
    MteInfo::from_registers(pfr1, dczid, gmid)
}

/// Physical address size the CPU supports, `ID_AA64MMFR0_EL1.PARange` (raw encoding).
pub fn pa_range() -> u64 {
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)
}

/// Ticks of the generic timer since reset and its frequency in Hz.
pub fn counter() -> (u64, u64) {
    let frequency = CNTFRQ_EL0.get();
    let ticks = CNTPCT_EL0.get();
    (ticks, frequency)
}

/// Masks all exceptions on this CPU and waits forever.
pub fn halt() -> ! {
    // SAFETY: masking D, A, I and F only changes which exceptions this CPU takes.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    loop {
        aarch64_cpu::asm::wfe();
    }
}
