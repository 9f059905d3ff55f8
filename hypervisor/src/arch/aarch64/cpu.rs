//! Identity and state of the executing CPU.

use super::registers::{read_sysreg, write_sysreg};
use crate::mte::MteInfo;

/// The exception level we are running at.
pub fn current_el() -> u8 {
    ((read_sysreg!("CurrentEL") >> 2) & 3) as u8
}

/// This CPU's affinity fields (Aff3..Aff0) from MPIDR_EL1, as DTB `cpu` nodes list them.
pub fn mpidr_affinity() -> u64 {
    read_sysreg!("mpidr_el1") & 0xFF_00FF_FFFF
}

/// The hypervisor's index of this CPU (position in the DTB's `/cpus`), kept in TPIDR_EL2.
pub fn index() -> usize {
    read_sysreg!("tpidr_el2") as usize
}

/// Records this CPU's index; done once per CPU at bring-up.
pub fn set_index(index: usize) {
    // SAFETY: TPIDR_EL2 is a scratch register reserved for the hypervisor's CPU index.
    unsafe { write_sysreg!("tpidr_el2", index as u64) };
}

/// MTE capabilities of this CPU.
pub fn mte_info() -> MteInfo {
    let pfr1 = read_sysreg!("id_aa64pfr1_el1");
    let dczid = read_sysreg!("dczid_el0");
    let probe = MteInfo::from_registers(pfr1, dczid, None);
    let gmid = probe.level.has_tag_storage().then(|| read_sysreg!("s3_1_c0_c0_4"));
    MteInfo::from_registers(pfr1, dczid, gmid)
}

/// Physical address size the CPU supports, `ID_AA64MMFR0_EL1.PARange` (raw encoding).
pub fn pa_range() -> u64 {
    read_sysreg!("id_aa64mmfr0_el1") & 0xF
}

/// Ticks of the generic timer since reset and its frequency in Hz.
pub fn counter() -> (u64, u64) {
    let frequency = read_sysreg!("cntfrq_el0");
    let ticks = read_sysreg!("cntpct_el0");
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
