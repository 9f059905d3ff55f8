//! Starting other vCPUs with PSCI CPU_ON.
//!
//! Each secondary vCPU `n` has a [`StartBlock`] and a 16 KiB stack in BSS. The
//! block's address is the CPU_ON context id; `secondary_entry` (boot.rs) reads
//! it with the MMU off, so [`start`] cleans it to the point of coherency first.
//! The block carries vCPU 0's MMU controls (MAIR, TCR, TTBR0/1, SCTLR, CPACR):
//! all vCPUs share one set of tables.

use core::cell::UnsafeCell;

use crate::boot::MAX_CPUS;
use crate::{mmu, psci, sysreg};

const STACK_SIZE: usize = 16 << 10;

/// What a secondary vCPU runs: `main(arg, alt, context_id)`, never returning
/// (it ends with CPU_OFF, or loops). `alt` is 1 if it came in through
/// `secondary_entry_alt`.
pub type SecondaryMain = extern "C" fn(arg: u64, alt: u64, context: u64) -> !;

/// Read by `secondary_entry` at fixed offsets: keep in sync with boot.rs.
#[repr(C, align(64))]
pub struct StartBlock {
    stack_top: u64,
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    ttbr1: u64,
    sctlr: u64,
    cpacr: u64,
    main: u64,
    arg: u64,
}

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

struct Shared {
    blocks: [UnsafeCell<StartBlock>; MAX_CPUS],
    stacks: [UnsafeCell<Stack>; MAX_CPUS],
}

// SAFETY: vCPU 0 writes a block only while its vCPU is off or before CPU_ON
// (callers' protocol); a secondary only reads its own block and uses its own stack.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared {
    blocks: [const {
        UnsafeCell::new(StartBlock {
            stack_top: 0,
            mair: 0,
            tcr: 0,
            ttbr0: 0,
            ttbr1: 0,
            sctlr: 0,
            cpacr: 0,
            main: 0,
            arg: 0,
        })
    }; MAX_CPUS],
    stacks: [const { UnsafeCell::new(Stack([0; STACK_SIZE])) }; MAX_CPUS],
};

unsafe extern "C" {
    fn secondary_entry();
    fn secondary_entry_alt();
}

/// The IPA of `secondary_entry` (or `_alt`): the guest runs identity-mapped.
pub fn entry_point(alt: bool) -> u64 {
    let entry = if alt { secondary_entry_alt as *const () } else { secondary_entry as *const () };
    entry as usize as u64
}

/// The context id (start block address) for vCPU `cpu`.
pub fn context_of(cpu: usize) -> u64 {
    SHARED.blocks[cpu].get() as u64
}

/// Fills vCPU `cpu`'s start block for `main(arg)` and cleans it to the point of
/// coherency. Call only while that vCPU is off (or when a CPU_ON is expected to
/// fail), from vCPU 0.
pub fn prepare(cpu: usize, main: SecondaryMain, arg: u64) {
    let block = SHARED.blocks[cpu].get();
    let stack = SHARED.stacks[cpu].get() as u64;
    // SAFETY: the vCPU is off (caller's promise), so nothing reads the block now.
    unsafe {
        block.write(StartBlock {
            stack_top: stack + STACK_SIZE as u64,
            mair: sysreg::mair_el1(),
            tcr: sysreg::tcr_el1(),
            ttbr0: sysreg::ttbr0_el1(),
            ttbr1: sysreg::ttbr1_el1(),
            sctlr: sysreg::sctlr_el1(),
            cpacr: sysreg::cpacr_el1(),
            main: main as usize as u64,
            arg,
        })
    };
    mmu::clean_to_poc(block as u64, block as u64 + size_of::<StartBlock>() as u64);
}

/// Prepares vCPU `cpu` and starts it with CPU_ON at `secondary_entry` (or `_alt`);
/// returns the PSCI status.
pub fn start(cpu: usize, main: SecondaryMain, arg: u64, alt: bool) -> i64 {
    prepare(cpu, main, arg);
    psci::cpu_on(cpu as u64, entry_point(alt), context_of(cpu))
}

/// Called by `secondary_entry` with the MMU on, on the vCPU's own stack.
#[unsafe(no_mangle)]
extern "C" fn secondary_rust_entry(block: *const StartBlock, alt: u64) -> ! {
    // SAFETY: `block` is the context id, the address of this vCPU's start block,
    // which vCPU 0 does not write while the vCPU runs.
    let (main, arg) = unsafe { ((*block).main, (*block).arg) };
    // SAFETY: `main` was stored from a `SecondaryMain` by `prepare`.
    let main: SecondaryMain = unsafe { core::mem::transmute::<usize, SecondaryMain>(main as usize) };
    main(arg, alt, block as u64)
}

/// A secondary that loops on HV_YIELD forever (keeps its physical CPU switching).
pub extern "C" fn yield_forever(_: u64, _: u64, _: u64) -> ! {
    loop {
        let _ = crate::hypercall::yield_now();
    }
}
