//! Entry point, EL1 exception vectors and the "expect a fault" machinery.
//!
//! Entry contract (hv_abi): EL1h, MMU and caches off, PC = `RAM_BASE`, x0 = the
//! scenario `arg`, x1 = RAM base IPA, x2 = RAM size, x3/x4 = first shared region.
//! `_start` sets the stack, zeroes BSS, installs the vectors and calls
//! `guest_main(arg, ram_base, ram_size, shared_base, shared_size)`.
//!
//! Every exception lands in [`el1_trap`], on any vCPU; the fault machinery is
//! per vCPU (indexed by MPIDR_EL1.Aff0). A synchronous exception taken while a
//! fault is expected ([`expect_fault`]) is recorded (ESR, FAR, ELR, SPSR, vector,
//! registers) and the faulting instruction skipped, or execution resumes at an
//! address the code under test chose ([`expect_exception`], [`run_el0`]: exceptions
//! from EL0, AArch64 or AArch32, and instruction aborts). Inside [`catch`] an
//! unexpected exception is reported as one line and control returns to `catch`'s
//! caller; anything else is reported (`FAIL <scenario>: unexpected exception ...`)
//! and ends the VM with [`EXIT_UNEXPECTED_EXCEPTION`].
//!
//! `secondary_entry` / `secondary_entry_alt` are the entry points other vCPUs
//! are started at (PSCI CPU_ON): see `smp.rs`.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::console::println;
use crate::{hypercall, sysreg};

/// HV_EXIT status after an unexpected exception.
pub const EXIT_UNEXPECTED_EXCEPTION: u64 = 0xE1;

/// Size of the register frame the vectors push (x0-x30, ELR, SPSR, padding).
const TRAP_FRAME_SIZE: usize = 272;

global_asm!(
    r#"
.section .text.entry, "ax"
.global _start
_start:
    /* Keep the entry arguments in callee-saved registers. */
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3
    mov     x23, x4

    msr     daifset, #0xf
    msr     spsel, #1
    adrp    x9, __stack_top
    add     x9, x9, :lo12:__stack_top
    mov     sp, x9

    /* Zero BSS (16-byte aligned by the linker script). MMU off: plain stores. */
    adrp    x10, __bss_start
    add     x10, x10, :lo12:__bss_start
    adrp    x11, __bss_end
    add     x11, x11, :lo12:__bss_end
1:  cmp     x10, x11
    b.hs    2f
    stp     xzr, xzr, [x10], #16
    b       1b
2:
    adrp    x9, el1_vectors
    add     x9, x9, :lo12:el1_vectors
    msr     vbar_el1, x9
    isb
    /* SErrors are reported; the guest never enables interrupts. */
    msr     daifclr, #4

    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    mov     x3, x22
    mov     x4, x23
    mov     x29, xzr
    mov     x30, xzr
    bl      guest_main
3:  wfe
    b       3b

/*
 * EL1 vector table: 4 groups (current EL with SP_EL0, current EL with SP_ELx,
 * lower EL AArch64, lower EL AArch32) of 4 kinds (sync, IRQ, FIQ, SError).
 * Each entry pushes x0/x1 and passes its index (group * 4 + kind) in x0.
 */
.section .text.vectors, "ax"
.balign 2048
el1_vectors:
.irp index, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
.balign 128
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\index
    b       el1_trap_entry
.endr

el1_trap_entry:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x30, x2, [sp, #240]
    str     x3, [sp, #256]

    mov     x1, sp
    bl      el1_trap

    ldp     x30, x2, [sp, #240]
    ldr     x3, [sp, #256]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame}
    eret

/*
 * Secondary vCPUs (PSCI CPU_ON): x0 = context id = the address of this vCPU's
 * smp::StartBlock (cleaned to the point of coherency: the MMU and caches are
 * off). Takes the stack from it, installs the vectors, enables the MMU with
 * the same tables and controls as vCPU 0, then calls secondary_rust_entry(block,
 * alt) where alt is 0 for secondary_entry and 1 for secondary_entry_alt.
 */
.section .text, "ax"
.global secondary_entry
.global secondary_entry_alt
.balign 8
secondary_entry:
    mov     x1, #0
    b       4f
secondary_entry_alt:
    mov     x1, #1
4:  msr     daifset, #0xf
    adrp    x9, el1_vectors
    add     x9, x9, :lo12:el1_vectors
    msr     vbar_el1, x9
    msr     spsel, #1
    ldr     x9, [x0, #0]
    mov     sp, x9
    ldr     x9, [x0, #8]
    msr     mair_el1, x9
    ldr     x9, [x0, #16]
    msr     tcr_el1, x9
    ldr     x9, [x0, #24]
    msr     ttbr0_el1, x9
    ldr     x9, [x0, #32]
    msr     ttbr1_el1, x9
    ldr     x9, [x0, #48]
    msr     cpacr_el1, x9
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    ldr     x9, [x0, #40]
    msr     sctlr_el1, x9
    isb
    msr     daifclr, #4
    mov     x29, xzr
    mov     x30, xzr
    bl      secondary_rust_entry
5:  wfe
    b       5b

/*
 * u64 catch_call(fn(*mut u8), *mut u8 arg, *mut CatchBuf buf): calls fn(arg)
 * and returns 0, unless the trap handler diverts an unexpected exception to
 * catch_recover (x0 = buf), which returns 1 from catch_call instead.
 */
.global catch_call
.balign 8
catch_call:
    stp     x19, x20, [x2, #0]
    stp     x21, x22, [x2, #16]
    stp     x23, x24, [x2, #32]
    stp     x25, x26, [x2, #48]
    stp     x27, x28, [x2, #64]
    stp     x29, x30, [x2, #80]
    mov     x9, sp
    stp     x9, x18, [x2, #96]
    stp     x29, x30, [sp, #-16]!
    mov     x29, sp
    mov     x9, x0
    mov     x0, x1
    blr     x9
    ldp     x29, x30, [sp], #16
    mov     x0, #0
    ret

.global catch_recover
.balign 8
catch_recover:
    ldp     x19, x20, [x0, #0]
    ldp     x21, x22, [x0, #16]
    ldp     x23, x24, [x0, #32]
    ldp     x25, x26, [x0, #48]
    ldp     x27, x28, [x0, #64]
    ldp     x29, x30, [x0, #80]
    ldp     x9, x18, [x0, #96]
    mov     sp, x9
    mov     x0, #1
    ret

/*
 * void el0_run(entry, spsr, sp_el0, const u64 regs[4], u64 *resume_slot):
 * enters EL0 (AArch64 or AArch32, per spsr) at entry with x0-x3 = regs and the
 * other general registers zero. The first exception from EL0 comes back here
 * (the handler resumes at the address stored in *resume_slot), with SP_EL1 as
 * it was at the ERET.
 */
.global el0_run
.balign 8
el0_run:
    sub     sp, sp, #112
    stp     x18, x19, [sp, #0]
    stp     x20, x21, [sp, #16]
    stp     x22, x23, [sp, #32]
    stp     x24, x25, [sp, #48]
    stp     x26, x27, [sp, #64]
    stp     x28, x29, [sp, #80]
    str     x30, [sp, #96]
    adr     x9, 6f
    str     x9, [x4]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    msr     sp_el0, x2
    mov     x9, x3
    ldp     x0, x1, [x9]
    ldp     x2, x3, [x9, #16]
    mov     x4, xzr
    mov     x5, xzr
    mov     x6, xzr
    mov     x7, xzr
    mov     x8, xzr
    mov     x9, xzr
    mov     x10, xzr
    mov     x11, xzr
    mov     x12, xzr
    mov     x13, xzr
    mov     x14, xzr
    mov     x15, xzr
    mov     x16, xzr
    mov     x17, xzr
    mov     x18, xzr
    mov     x19, xzr
    mov     x20, xzr
    mov     x21, xzr
    mov     x22, xzr
    mov     x23, xzr
    mov     x24, xzr
    mov     x25, xzr
    mov     x26, xzr
    mov     x27, xzr
    mov     x28, xzr
    mov     x29, xzr
    mov     x30, xzr
    isb
    eret
6:  ldp     x18, x19, [sp, #0]
    ldp     x20, x21, [sp, #16]
    ldp     x22, x23, [sp, #32]
    ldp     x24, x25, [sp, #48]
    ldp     x26, x27, [sp, #64]
    ldp     x28, x29, [sp, #80]
    ldr     x30, [sp, #96]
    add     sp, sp, #112
    ret
"#,
    frame = const TRAP_FRAME_SIZE,
);

/// The registers the vectors save, in stack order.
#[repr(C)]
struct TrapFrame {
    x: [u64; 31],
    elr: u64,
    spsr: u64,
    _pad: u64,
}

const _: () = assert!(size_of::<TrapFrame>() == TRAP_FRAME_SIZE);

/// Vector index of a synchronous exception from EL1 itself (SP_EL1).
const CURRENT_SPX_SYNC: u64 = 4;
/// Vector index of a synchronous exception from AArch64 EL0 (VBAR_EL1 + 0x400).
pub const LOWER_A64_SYNC: u64 = 8;
/// Vector index of a synchronous exception from AArch32 EL0 (VBAR_EL1 + 0x600).
pub const LOWER_A32_SYNC: u64 = 12;
/// SPSR for resuming at EL1h with D, I, F masked (A unmasked, as at boot).
const SPSR_EL1H_MASKED: u64 = 0x2C5;

/// Most vCPUs the guest handles (the fault machinery is per vCPU).
pub const MAX_CPUS: usize = 4;

/// A synchronous exception taken at EL1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception {
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
    /// SPSR_EL1 at the exception (the interrupted PSTATE).
    pub spsr: u64,
    /// Vector index: group * 4 + kind (see [`vector_name`]); 4 = sync from EL1,
    /// 8 = sync from AArch64 EL0 (VBAR + 0x400), 12 = from AArch32 EL0 (+ 0x600).
    pub vector: u64,
    /// x0-x30 at the exception.
    pub regs: [u64; 31],
}

/// ESR_EL1.EC values the scenarios check.
pub mod ec {
    /// Unknown reason (UNDEFINED instruction).
    pub const UNKNOWN: u64 = 0x00;
    /// SVC from AArch32.
    pub const SVC_A32: u64 = 0x11;
    /// SVC from AArch64.
    pub const SVC_A64: u64 = 0x15;
    /// Trapped MSR/MRS/system instruction (FEAT_IDST reports unallocated ID
    /// registers with it).
    pub const SYSREG_TRAP: u64 = 0x18;
    /// Instruction abort from a lower exception level.
    pub const INSN_ABORT_LOWER_EL: u64 = 0x20;
    /// Instruction abort taken without a change in exception level.
    pub const INSN_ABORT_SAME_EL: u64 = 0x21;
    /// Data abort from a lower exception level.
    pub const DATA_ABORT_LOWER_EL: u64 = 0x24;
    /// Data abort taken without a change in exception level.
    pub const DATA_ABORT_SAME_EL: u64 = 0x25;
}

/// Data fault status codes (ESR_EL1.ISS.DFSC) the scenarios check.
pub mod dfsc {
    /// Synchronous external abort, not on a translation table walk.
    pub const SYNC_EXTERNAL: u64 = 0x10;
    /// Synchronous tag check fault.
    pub const TAG_CHECK: u64 = 0x11;
}

impl Exception {
    /// Exception class, ESR_EL1[31:26].
    pub fn ec(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }

    /// Data/instruction fault status code, ESR_EL1[5:0].
    pub fn fsc(&self) -> u64 {
        self.esr & 0x3f
    }

    /// Data abort caused by a write (ESR_EL1.ISS.WnR).
    pub fn wnr(&self) -> bool {
        self.esr & (1 << 6) != 0
    }

    /// FAR not valid (ESR_EL1.ISS.FnV, for external aborts).
    pub fn far_not_valid(&self) -> bool {
        self.esr & (1 << 10) != 0
    }

    /// A synchronous external abort (data or instruction, any EL, EC `ec`) with
    /// FSC 0x10 on the instruction at `insn`, FAR = `addr` unless marked invalid.
    pub fn is_external_abort(&self, ec: u64, insn: u64, addr: u64) -> bool {
        self.ec() == ec
            && self.fsc() == dfsc::SYNC_EXTERNAL
            && self.elr == insn
            && (self.far_not_valid() || self.far == addr)
    }
}

impl core::fmt::Display for Exception {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ESR=0x{:x} EC=0x{:x} FSC=0x{:x} FAR=0x{:x} ELR=0x{:x} vector {}",
            self.esr,
            self.ec(),
            self.fsc(),
            self.far,
            self.elr,
            vector_name(self.vector)
        )
    }
}

/// One vCPU's fault machinery.
struct CpuTraps {
    /// Set while a fault is expected; cleared by the handler when it takes one.
    armed: AtomicBool,
    /// Set by the handler when it absorbed an expected fault.
    taken: AtomicBool,
    /// Where to resume after the expected exception (0: skip the instruction).
    resume: AtomicU64,
    /// The [`CatchBuf`] of the innermost [`catch`] (0: none).
    catch: AtomicU64,
    /// The last exception taken, whatever it was.
    esr: AtomicU64,
    far: AtomicU64,
    elr: AtomicU64,
    spsr: AtomicU64,
    vector: AtomicU64,
    regs: [AtomicU64; 31],
    /// Set while an unexpected exception is being reported, to stop recursion.
    reporting: AtomicBool,
}

static TRAPS: [CpuTraps; MAX_CPUS] = [const {
    CpuTraps {
        armed: AtomicBool::new(false),
        taken: AtomicBool::new(false),
        resume: AtomicU64::new(0),
        catch: AtomicU64::new(0),
        esr: AtomicU64::new(0),
        far: AtomicU64::new(0),
        elr: AtomicU64::new(0),
        spsr: AtomicU64::new(0),
        vector: AtomicU64::new(0),
        regs: [const { AtomicU64::new(0) }; 31],
        reporting: AtomicBool::new(false),
    }
}; MAX_CPUS];

fn traps() -> &'static CpuTraps {
    &TRAPS[(sysreg::cpu_index() as usize).min(MAX_CPUS - 1)]
}

/// The last exception this vCPU's vectors saw.
pub fn last_exception() -> Exception {
    let t = traps();
    let mut regs = [0u64; 31];
    for (reg, saved) in regs.iter_mut().zip(&t.regs) {
        *reg = saved.load(Ordering::SeqCst);
    }
    Exception {
        esr: t.esr.load(Ordering::SeqCst),
        far: t.far.load(Ordering::SeqCst),
        elr: t.elr.load(Ordering::SeqCst),
        spsr: t.spsr.load(Ordering::SeqCst),
        vector: t.vector.load(Ordering::SeqCst),
        regs,
    }
}

/// Runs `f` with "expect fault" armed: the first synchronous exception at EL1
/// is recorded, the faulting instruction skipped (ELR += 4) and execution goes
/// on. Returns `f`'s result and the exception, if one was taken. A second
/// exception inside `f` is unexpected.
///
/// Only meaningful when the faulting instruction sits in an `asm!` block, so
/// that skipping it leaves Rust's state consistent (see [`probe_load`]).
pub fn expect_fault<R>(f: impl FnOnce() -> R) -> (R, Option<Exception>) {
    let t = traps();
    t.resume.store(0, Ordering::SeqCst);
    t.taken.store(false, Ordering::SeqCst);
    t.armed.store(true, Ordering::SeqCst);
    let result = f();
    t.armed.store(false, Ordering::SeqCst);
    t.resume.store(0, Ordering::SeqCst);
    let fault = t.taken.load(Ordering::SeqCst).then(last_exception);
    (result, fault)
}

/// Like [`expect_fault`], but the handler resumes at the address `f`'s code
/// stores into [`resume_slot`] before the instruction that may fault (at EL1h,
/// with the registers as they were at the exception), instead of skipping the
/// instruction. For instruction aborts, code run elsewhere and EL0.
pub fn expect_exception<R>(f: impl FnOnce(*const AtomicU64) -> R) -> (R, Option<Exception>) {
    let t = traps();
    expect_fault(|| f(&raw const t.resume))
}

/// The register frame of [`run_el0`]: x0-x3 at entry.
pub type El0Regs = [u64; 4];

/// SPSR_EL1 to enter AArch64 EL0 (EL0t) with D, A, I, F masked.
pub const SPSR_EL0_A64: u64 = 0x3C0;
/// SPSR_EL1 to enter AArch32 User mode (M = 0x10) in A32, with A, I, F masked.
pub const SPSR_EL0_A32: u64 = 0x1D0;
/// SPSR T bit: T32 (Thumb) state.
pub const SPSR_T: u64 = 1 << 5;

unsafe extern "C" {
    fn el0_run(entry: u64, spsr: u64, sp: u64, regs: *const El0Regs, resume: *const AtomicU64);
    fn catch_call(f: extern "C" fn(*mut u8), arg: *mut u8, buf: *mut CatchBuf) -> u64;
    fn catch_recover();
}

/// Runs code at EL0 (`spsr` says AArch64 or AArch32, and the instruction set)
/// from `entry` with `sp` and x0-x3 = `regs`, until its first exception, which
/// is returned (its `regs` are EL0's registers then).
///
/// # Safety
///
/// `entry` and `sp` must be mapped for EL0 (and only memory no Rust object
/// lives in may be EL0-writable); the code must not change EL1 state.
pub unsafe fn run_el0(entry: u64, spsr: u64, sp: u64, regs: El0Regs) -> Option<Exception> {
    let (_, exception) = expect_exception(|slot| {
        // SAFETY: el0_run saves and restores the callee-saved registers and the
        // stack pointer around its excursion to EL0 (ABI-compliant call); the
        // caller vouches for the EL0 code and its mappings.
        unsafe { el0_run(entry, spsr, sp, &raw const regs, slot) };
    });
    exception
}

/// What `catch_call` saves: x19-x30, SP, x18.
#[repr(C)]
struct CatchBuf([u64; 14]);

/// Runs `f`; an unexpected exception inside it (outside [`expect_fault`]) is
/// reported as one console line and makes `catch` return it as `Err`, abandoning
/// the rest of `f` (nothing is unwound: `f` must not hold anything that needs
/// dropping for correctness). Only for code that owns its state, like a test case.
// No heap: the exception record is returned by value, like every report here.
#[allow(clippy::result_large_err)]
pub fn catch<R, F: FnOnce() -> R>(f: F) -> Result<R, Exception> {
    struct Slot<F, R> {
        f: Option<F>,
        result: Option<R>,
    }
    extern "C" fn trampoline<G: FnOnce() -> T, T>(slot: *mut u8) {
        // SAFETY: `slot` is the `Slot<G, T>` `catch` passed to catch_call, alive
        // on its stack for the duration of the call.
        let slot = unsafe { &mut *slot.cast::<Slot<G, T>>() };
        if let Some(f) = slot.f.take() {
            slot.result = Some(f());
        }
    }
    let t = traps();
    let mut slot = Slot { f: Some(f), result: None };
    let mut buf = CatchBuf([0; 14]);
    let outer = t.catch.swap((&raw mut buf) as u64, Ordering::SeqCst);
    // SAFETY: catch_call is an ABI-compliant call of `trampoline(&mut slot)`; if
    // an exception diverts to catch_recover, the callee-saved registers and SP
    // are restored from `buf` and catch_call returns 1 here.
    let diverted = unsafe { catch_call(trampoline::<F, R>, (&raw mut slot).cast(), &raw mut buf) };
    t.catch.store(outer, Ordering::SeqCst);
    match (diverted, slot.result) {
        (0, Some(result)) => Ok(result),
        _ => Err(last_exception()),
    }
}

/// The outcome of a single access that may fault.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// Address of the access instruction (what ELR_EL1 must hold if it faults).
    pub insn: u64,
    /// The value loaded ([`PROBE_POISON`] if the load faulted; 0 for stores).
    pub value: u64,
    /// The exception the access raised, if any.
    pub fault: Option<Exception>,
}

/// What a faulting [`probe_load`] leaves in its destination register.
pub const PROBE_POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;

/// Loads 8 bytes from `addr` (an address, tag bits included) with one `LDR`,
/// expecting that it may fault.
///
/// # Safety
///
/// If `addr` is readable it must be memory whose reading has no side effects the
/// rest of the guest depends on.
pub unsafe fn probe_load(addr: u64) -> Probe {
    let ((insn, value), fault) = expect_fault(|| {
        let insn: u64;
        let mut value = PROBE_POISON;
        // SAFETY: a single load from `addr`, which the caller vouches for; if it
        // faults the handler skips it and `value` keeps the poison.
        unsafe {
            core::arch::asm!(
                "adr {insn}, 1f",
                "1: ldr {value}, [{addr}]",
                insn = out(reg) insn,
                value = inout(reg) value,
                addr = in(reg) addr,
                options(nostack, preserves_flags),
            );
        }
        (insn, value)
    });
    Probe { insn, value, fault }
}

/// Stores `value` (8 bytes) to `addr` with one `STR`, expecting that it may fault.
///
/// # Safety
///
/// If `addr` is writable it must be memory no Rust object lives in.
pub unsafe fn probe_store(addr: u64, value: u64) -> Probe {
    let (insn, fault) = expect_fault(|| {
        let insn: u64;
        // SAFETY: a single store to `addr`, which the caller vouches for; if it
        // faults the handler skips it.
        unsafe {
            core::arch::asm!(
                "adr {insn}, 1f",
                "1: str {value}, [{addr}]",
                insn = out(reg) insn,
                value = in(reg) value,
                addr = in(reg) addr,
                options(nostack, preserves_flags),
            );
        }
        insn
    });
    Probe { insn, value: 0, fault }
}

/// Runs an `asm!` template whose instruction labelled `1:` may fault (the
/// handler skips it), with "expect fault" armed. Evaluates to
/// `(address of the 1: instruction, Option<Exception>)`. Every use must carry
/// its own `// SAFETY:` comment justifying the template.
macro_rules! probe_asm {
    ($($template:literal),+ ; $($operands:tt)*) => {{
        $crate::boot::expect_fault(|| {
            let insn: u64;
            // SAFETY: each invocation's own SAFETY comment vouches for its
            // template; a faulting `1:` instruction is skipped by the handler.
            unsafe {
                core::arch::asm!("adr {insn}, 1f", $($template),+, insn = out(reg) insn, $($operands)*);
            }
            insn
        })
    }};
}
pub(crate) use probe_asm;

/// Reads a system register with one `MRS`, expecting that it may be UNDEFINED.
/// Evaluates to a [`Probe`] whose `value` is [`PROBE_POISON`] if it faulted.
macro_rules! probe_mrs {
    ($reg:literal) => {{
        let ((insn, value), fault) = $crate::boot::expect_fault(|| {
            let insn: u64;
            let mut value = $crate::boot::PROBE_POISON;
            // SAFETY: reading a system register has no memory effects; if it is
            // UNDEFINED the handler skips the MRS and `value` keeps the poison.
            unsafe {
                core::arch::asm!(
                    "adr {insn}, 1f",
                    concat!("1: mrs {value}, ", $reg),
                    insn = out(reg) insn,
                    value = inout(reg) value,
                    options(nostack, preserves_flags),
                );
            }
            (insn, value)
        });
        $crate::boot::Probe { insn, value, fault }
    }};
}
pub(crate) use probe_mrs;

/// Writes a system register with one `MSR`, expecting that it may be UNDEFINED.
macro_rules! probe_msr {
    ($reg:literal, $value:expr) => {{
        let value: u64 = $value;
        let (insn, fault) = $crate::boot::expect_fault(|| {
            let insn: u64;
            // SAFETY: the callers only write registers whose values do not affect
            // memory safety (MTE controls, debug/PMU registers with their enables
            // clear, ID and EL2 registers the CPU or hypervisor must refuse); if
            // the MSR is UNDEFINED the handler skips it.
            unsafe {
                core::arch::asm!(
                    "adr {insn}, 1f",
                    concat!("1: msr ", $reg, ", {value}"),
                    "isb",
                    insn = out(reg) insn,
                    value = in(reg) value,
                    options(nostack, preserves_flags),
                );
            }
            insn
        });
        $crate::boot::Probe { insn, value: 0, fault }
    }};
}
pub(crate) use probe_msr;

pub fn vector_name(index: u64) -> &'static str {
    const NAMES: [&str; 16] = [
        "sync (EL1, SP_EL0)",
        "IRQ (EL1, SP_EL0)",
        "FIQ (EL1, SP_EL0)",
        "SError (EL1, SP_EL0)",
        "sync",
        "IRQ",
        "FIQ",
        "SError",
        "sync (from EL0 AArch64)",
        "IRQ (from EL0 AArch64)",
        "FIQ (from EL0 AArch64)",
        "SError (from EL0 AArch64)",
        "sync (from EL0 AArch32)",
        "IRQ (from EL0 AArch32)",
        "FIQ (from EL0 AArch32)",
        "SError (from EL0 AArch32)",
    ];
    NAMES.get(index as usize).copied().unwrap_or("?")
}

/// Called by the vectors with the vector index and the saved registers.
#[unsafe(no_mangle)]
extern "C" fn el1_trap(index: u64, frame: *mut TrapFrame) {
    // SAFETY: `frame` is the register frame the vector code just pushed on this
    // CPU's stack; nothing else refers to it until we return.
    let frame = unsafe { &mut *frame };
    let t = traps();
    let esr = sysreg::esr_el1();
    let far = sysreg::far_el1();
    t.esr.store(esr, Ordering::SeqCst);
    t.far.store(far, Ordering::SeqCst);
    t.elr.store(frame.elr, Ordering::SeqCst);
    t.spsr.store(frame.spsr, Ordering::SeqCst);
    t.vector.store(index, Ordering::SeqCst);
    for (saved, &reg) in t.regs.iter().zip(&frame.x) {
        saved.store(reg, Ordering::SeqCst);
    }

    let sync = index.is_multiple_of(4);
    if sync && t.armed.load(Ordering::SeqCst) {
        let resume = t.resume.swap(0, Ordering::SeqCst);
        if resume != 0 || index == CURRENT_SPX_SYNC {
            t.armed.store(false, Ordering::SeqCst);
            t.taken.store(true, Ordering::SeqCst);
            if resume != 0 {
                frame.elr = resume;
                if index != CURRENT_SPX_SYNC {
                    frame.spsr = SPSR_EL1H_MASKED;
                }
            } else {
                frame.elr = frame.elr.wrapping_add(4);
            }
            return;
        }
    }

    let exception = last_exception();
    let catch = t.catch.swap(0, Ordering::SeqCst);
    if catch != 0 {
        t.armed.store(false, Ordering::SeqCst);
        t.resume.store(0, Ordering::SeqCst);
        println!("  unexpected exception: {} SPSR=0x{:x}", exception, frame.spsr);
        frame.x[0] = catch;
        frame.elr = catch_recover as *const () as usize as u64;
        frame.spsr = SPSR_EL1H_MASKED;
        return;
    }

    if t.reporting.load(Ordering::SeqCst) {
        // Faulted while reporting a fault: stop without printing again.
        hypercall::exit(EXIT_UNEXPECTED_EXCEPTION);
    }
    t.reporting.store(true, Ordering::SeqCst);
    println!(
        "FAIL {}: unexpected exception on vCPU {}: {} SPSR=0x{:x}",
        crate::scenarios::current_name(),
        sysreg::cpu_index(),
        exception,
        frame.spsr
    );
    for (i, pair) in frame.x.chunks(4).enumerate() {
        let mut line = crate::console::Text::<128>::new();
        for (j, value) in pair.iter().enumerate() {
            let _ = core::fmt::Write::write_fmt(&mut line, format_args!(" x{:<2}=0x{:016x}", i * 4 + j, value));
        }
        println!("  regs:{}", line);
    }
    hypercall::exit(EXIT_UNEXPECTED_EXCEPTION);
}

/// Addresses the linker script defines.
pub mod layout {
    unsafe extern "C" {
        static __guest_image_start: u8;
        static __bss_start: u8;
        static __guest_image_end: u8;
    }

    /// First byte of the image (the link and load address).
    pub fn image_start() -> u64 {
        (&raw const __guest_image_start) as u64
    }

    /// First byte of BSS (page aligned; the page tables and stack follow).
    pub fn bss_start() -> u64 {
        (&raw const __bss_start) as u64
    }

    /// End of the image including BSS and stack (page aligned): RAM from here
    /// on is free for the scenarios.
    pub fn image_end() -> u64 {
        (&raw const __guest_image_end) as u64
    }
}
