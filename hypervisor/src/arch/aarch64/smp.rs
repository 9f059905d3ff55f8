//! Bringing up the secondary CPUs through PSCI `CPU_ON`, each with its own stack
//! and per-CPU record.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use boot::SecondaryBootArgs;

use super::mmu::El2Translation;
use super::{cache, cpu, exceptions, psci};
use crate::mm::PAGE_SIZE;
use crate::platform::Platform;

/// Upper bound on CPUs, matching what the platform model can list.
pub const MAX_CPUS: usize = 64;
/// Stack of each secondary CPU.
const STACK_BYTES: u64 = 64 * 1024;
/// How long to wait for all CPUs to report in.
const BRING_UP_TIMEOUT_MS: u64 = 5000;

/// What every CPU publishes about itself.
pub struct PerCpu {
    pub online: AtomicBool,
    pub mpidr: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const OFFLINE: PerCpu = PerCpu { online: AtomicBool::new(false), mpidr: AtomicU64::new(0) };
pub static CPUS: [PerCpu; MAX_CPUS] = [OFFLINE; MAX_CPUS];
static ONLINE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Number of CPUs that reported in.
pub fn online_count() -> usize {
    ONLINE_COUNT.load(Ordering::Acquire)
}

/// Marks the calling CPU online.
pub fn report_in(index: usize) {
    CPUS[index].mpidr.store(cpu::mpidr_affinity(), Ordering::Relaxed);
    CPUS[index].online.store(true, Ordering::Release);
    ONLINE_COUNT.fetch_add(1, Ordering::AcqRel);
}

/// The index of the boot CPU in the platform's CPU list.
pub fn boot_cpu_index(platform: &Platform) -> Option<usize> {
    let me = cpu::mpidr_affinity();
    platform.cpus.iter().position(|c| c.mpidr == me)
}

/// Starts every CPU the DTB lists except the caller, then waits until they all
/// report in or the timeout passes. Returns how many failed to start.
pub fn start_secondaries(platform: &Platform, translation: &El2Translation, boot_index: usize) -> usize {
    let mut failed = 0;
    for (index, target) in platform.cpus.iter().enumerate().take(MAX_CPUS) {
        if index == boot_index {
            continue;
        }
        if let Err(error) = start_one(index, target.mpidr, translation) {
            log::error!("cpu{index} (MPIDR {:#x}) failed to start: {error}", target.mpidr);
            failed += 1;
        }
    }
    let expected = platform.cpus.len().min(MAX_CPUS) - failed;
    let (start, frequency) = cpu::counter();
    let deadline = start + frequency * BRING_UP_TIMEOUT_MS / 1000;
    while online_count() < expected && cpu::counter().0 < deadline {
        core::hint::spin_loop();
    }
    for (index, target) in platform.cpus.iter().enumerate().take(MAX_CPUS) {
        if !CPUS[index].online.load(Ordering::Acquire) && index != boot_index {
            log::error!("cpu{index} (MPIDR {:#x}) did not report in within {BRING_UP_TIMEOUT_MS} ms", target.mpidr);
        }
    }
    platform.cpus.len().min(MAX_CPUS) - online_count()
}

fn start_one(index: usize, mpidr: u64, translation: &El2Translation) -> Result<(), StartError> {
    let (stack, args_page) = {
        let mut frames = crate::memory::frames();
        let stack = frames.allocate(STACK_BYTES).map_err(StartError::Memory)?.as_u64();
        let args_page = frames.allocate(PAGE_SIZE).map_err(StartError::Memory)?.as_u64();
        (stack, args_page)
    };
    let args = SecondaryBootArgs {
        stack_top: stack + STACK_BYTES,
        ttbr0_el2: translation.ttbr0,
        tcr_el2: translation.tcr,
        mair_el2: translation.mair,
        sctlr_el2: translation.sctlr,
        cpu_index: index as u64,
    };
    // SAFETY: `args_page` is a fresh frame we own, identity-mapped read-write.
    unsafe { (args_page as *mut SecondaryBootArgs).write(args) };
    // The new CPU reads its arguments with the MMU and caches off.
    cache::clean_to_poc(args_page, core::mem::size_of::<SecondaryBootArgs>() as u64);
    let entry = boot::secondary_entry as *const () as u64;
    psci::cpu_on(mpidr, entry, args_page).map_err(StartError::Psci)
}

enum StartError {
    Memory(crate::mm::frame_alloc::OutOfMemory),
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

/// Rust entry of a secondary CPU, called by `boot`'s `secondary_entry` with the MMU on.
#[unsafe(no_mangle)]
extern "C" fn hypervisor_secondary_main(cpu_index: u64) -> ! {
    let index = cpu_index as usize;
    cpu::set_index(index);
    exceptions::install();
    if let Err(error) = super::gic::init_cpu() {
        log::error!("GIC: {error}; this CPU stays offline");
        cpu::halt();
    }
    log::info!("online (MPIDR {:#x})", cpu::mpidr_affinity());
    report_in(index);
    // Runs this CPU's vCPUs once the VMs exist (or waits until power-off).
    crate::vm::runtime::scheduler::run_cpu(index)
}
