//! vCPU 1: started with PSCI CPU_ON when a case needs it, then it runs jobs vCPU 0
//! posts, spinning in between (no WFI: waiting causes no exit under the
//! hypervisor). Each secondary vCPU has a start block and a stack in BSS; the
//! block's address is the CPU_ON context id, and `secondary_entry` reads it with
//! the MMU off, so it is cleaned to the point of coherency first.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::exceptions::MAX_CPUS;
use crate::{entry, gic, mmu, psci, timer};

const STACK_SIZE: usize = 32 << 10;

/// What `secondary_entry` reads, at fixed offsets (keep in step with entry.rs).
#[repr(C, align(64))]
struct StartBlock {
    stack_top: u64,
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    ttbr1: u64,
    sctlr: u64,
    cpu: u64,
}

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

struct Secondaries {
    blocks: [UnsafeCell<StartBlock>; MAX_CPUS],
    stacks: [UnsafeCell<Stack>; MAX_CPUS],
}

// SAFETY: vCPU 0 writes a block only while its vCPU is off; a secondary only
// reads its own block and uses its own stack.
unsafe impl Sync for Secondaries {}

static SECONDARIES: Secondaries = Secondaries {
    blocks: [const { UnsafeCell::new(StartBlock { stack_top: 0, mair: 0, tcr: 0, ttbr0: 0, ttbr1: 0, sctlr: 0, cpu: 0 }) };
        MAX_CPUS],
    stacks: [const { UnsafeCell::new(Stack([0; STACK_SIZE])) }; MAX_CPUS],
};

/// Set by vCPU `n` once it runs Rust code with its MMU on (cleared by CPU_OFF).
static ONLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// The job mailbox of vCPU 1: a `fn(u64)` and its argument, and whether it is
/// posted / done.
static JOB: AtomicU64 = AtomicU64::new(0);
static JOB_ARG: AtomicU64 = AtomicU64::new(0);
static JOB_POSTED: AtomicBool = AtomicBool::new(false);
static JOB_DONE: AtomicBool = AtomicBool::new(false);
/// A job asking vCPU 1 to power itself off (CPU_OFF) instead of running.
const JOB_CPU_OFF: u64 = 1;

/// Fills vCPU `cpu`'s start block and issues CPU_ON: the raw PSCI answer. Only
/// while that vCPU is off (or to see CPU_ON refused).
pub fn cpu_on(cpu: usize) -> i64 {
    let controls = mmu::controls();
    let block = SECONDARIES.blocks[cpu].get();
    if !ONLINE[cpu].load(Ordering::SeqCst) {
        let stack = SECONDARIES.stacks[cpu].get() as u64;
        // SAFETY: the vCPU is not running (not online), so nothing reads the block.
        unsafe {
            block.write(StartBlock {
                stack_top: stack + STACK_SIZE as u64,
                mair: controls.mair,
                tcr: controls.tcr,
                ttbr0: controls.ttbr0,
                ttbr1: controls.ttbr1,
                sctlr: controls.sctlr,
                cpu: cpu as u64,
            })
        };
        mmu::clean_to_poc(block as u64, block as u64 + size_of::<StartBlock>() as u64);
    }
    psci::cpu_on(cpu as u64, entry::secondary_entry as *const () as usize as u64, block as u64)
}

/// Whether vCPU `cpu` has reported in.
pub fn online(cpu: usize) -> bool {
    ONLINE[cpu].load(Ordering::SeqCst)
}

/// Starts vCPU 1 unless it runs, and waits (bounded) for it to report in.
pub fn ensure_cpu1() -> bool {
    if !online(1) {
        let _ = cpu_on(1);
    }
    timer::wait_until(2000, || online(1))
}

/// Posts `job(arg)` to vCPU 1 (which must be online and idle).
pub fn post(job: fn(u64), arg: u64) {
    post_raw(job as usize as u64, arg);
}

fn post_raw(job: u64, arg: u64) {
    JOB_DONE.store(false, Ordering::SeqCst);
    JOB.store(job, Ordering::SeqCst);
    JOB_ARG.store(arg, Ordering::SeqCst);
    JOB_POSTED.store(true, Ordering::SeqCst);
}

/// Waits (bounded) for vCPU 1 to finish the posted job.
pub fn wait_job(ms: u64) -> bool {
    timer::wait_until(ms, || JOB_DONE.load(Ordering::SeqCst))
}

/// Asks vCPU 1 to call CPU_OFF.
pub fn post_cpu_off() {
    post_raw(JOB_CPU_OFF, 0);
}

/// Called by `secondary_entry` with the MMU on, on the vCPU's own stack.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(cpu: u64) -> ! {
    let cpu = cpu as usize;
    gic::init_for_this_cpu(cpu);
    ONLINE[cpu].store(true, Ordering::SeqCst);
    loop {
        while !JOB_POSTED.load(Ordering::SeqCst) {
            core::hint::spin_loop();
        }
        JOB_POSTED.store(false, Ordering::SeqCst);
        let job = JOB.load(Ordering::SeqCst);
        if job == JOB_CPU_OFF {
            ONLINE[cpu].store(false, Ordering::SeqCst);
            JOB_DONE.store(true, Ordering::SeqCst);
            let _ = psci::cpu_off();
            // CPU_OFF returned: it failed. Say so through the mailbox.
            ONLINE[cpu].store(true, Ordering::SeqCst);
            continue;
        }
        // SAFETY: `post` stores a `fn(u64)`.
        let job: fn(u64) = unsafe { core::mem::transmute::<usize, fn(u64)>(job as usize) };
        job(JOB_ARG.load(Ordering::SeqCst));
        JOB_DONE.store(true, Ordering::SeqCst);
    }
}
