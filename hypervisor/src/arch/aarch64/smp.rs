//! Bringing up the secondary CPUs through PSCI `CPU_ON`, each with its own stack.
//! Each CPU reports in to [`crate::cpus::CPUS`] once it runs.

use boot::SecondaryBootArgs;

use super::mmu::El2Translation;
use super::{cache, cpu, psci};
use crate::cpus::{CPUS, MAX_CPUS};
use crate::mm::PAGE_SIZE;
use crate::mm::frame_alloc::OutOfMemory;
use crate::platform::Platform;

/// Stack of each secondary CPU.
const STACK_BYTES: u64 = 64 * 1024;
/// How long to wait for all CPUs to report in.
const BRING_UP_TIMEOUT_MS: u64 = 5000;

/// The index of the boot CPU in the platform's CPU list.
pub fn boot_cpu_index(platform: &Platform) -> Option<usize> {
    let me = cpu::mpidr_affinity();
    platform.cpus.iter().position(|c| c.mpidr == me)
}

/// Starts every CPU the DTB lists except the caller, then waits until they all
/// report in or the timeout passes. Their stacks and boot arguments come from
/// `allocate` (bytes wanted, a multiple of the page size). Returns how many CPUs
/// are not online.
///
/// # Safety
/// `allocate` must return the address of fresh, page-aligned memory of the size
/// asked, owned by nobody else and identity-mapped read-write; it is handed to
/// the new CPUs for good.
pub unsafe fn start_secondaries(
    platform: &Platform,
    translation: &El2Translation,
    boot_index: usize,
    allocate: &mut dyn FnMut(u64) -> Result<u64, OutOfMemory>,
) -> usize {
    let mut failed = 0;
    for (index, target) in platform.cpus.iter().enumerate().take(MAX_CPUS) {
        if index == boot_index {
            continue;
        }
        // SAFETY: `allocate` keeps the contract this function's caller promised.
        if let Err(error) = unsafe { start_one(index, target.mpidr, translation, allocate) } {
            log::error!("cpu{index} (MPIDR {:#x}) failed to start: {error}", target.mpidr);
            failed += 1;
        }
    }
    let expected = platform.cpus.len().min(MAX_CPUS) - failed;
    let (start, frequency) = cpu::counter();
    let deadline = start + frequency * BRING_UP_TIMEOUT_MS / 1000;
    while CPUS.online_count() < expected && cpu::counter().0 < deadline {
        core::hint::spin_loop();
    }
    for (index, target) in platform.cpus.iter().enumerate().take(MAX_CPUS) {
        if !CPUS.is_online(index) && index != boot_index {
            log::error!("cpu{index} (MPIDR {:#x}) did not report in within {BRING_UP_TIMEOUT_MS} ms", target.mpidr);
        }
    }
    platform.cpus.len().min(MAX_CPUS) - CPUS.online_count()
}

/// Starts CPU `index` with a stack and boot arguments from `allocate`.
///
/// # Safety
/// As for [`start_secondaries`]: `allocate` returns fresh, exclusively owned,
/// identity-mapped read-write memory.
unsafe fn start_one(
    index: usize,
    mpidr: u64,
    translation: &El2Translation,
    allocate: &mut dyn FnMut(u64) -> Result<u64, OutOfMemory>,
) -> Result<(), StartError> {
    let stack = allocate(STACK_BYTES).map_err(StartError::Memory)?;
    let args_page = allocate(PAGE_SIZE).map_err(StartError::Memory)?;
    let args = SecondaryBootArgs {
        stack_top: stack + STACK_BYTES,
        ttbr0_el2: translation.ttbr0,
        tcr_el2: translation.tcr,
        mair_el2: translation.mair,
        sctlr_el2: translation.sctlr,
        cpu_index: index as u64,
    };
    // SAFETY: `args_page` is fresh memory we own, identity-mapped read-write
    // (`start_secondaries`' contract on `allocate`).
    unsafe { (args_page as *mut SecondaryBootArgs).write(args) };
    // The new CPU reads its arguments with the MMU and caches off.
    cache::clean_to_poc(args_page, core::mem::size_of::<SecondaryBootArgs>() as u64);
    let entry = boot::secondary_entry as *const () as u64;
    psci::cpu_on(mpidr, entry, args_page).map_err(StartError::Psci)
}

enum StartError {
    Memory(OutOfMemory),
    Psci(crate::psci::PsciError),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Memory(e) => write!(f, "{e}"),
            Self::Psci(e) => write!(f, "CPU_ON: {e}"),
        }
    }
}
