//! Entry point, EL1 exception vectors and the "expect a fault" machinery.
//!
//! Entry contract (hv_abi): EL1h, MMU and caches off, PC = `RAM_BASE`, x0 = the
//! scenario `arg`, x1 = RAM base IPA, x2 = RAM size, x3/x4 = first shared region.
//! `_start` sets the stack, zeroes BSS, installs the vectors and calls
//! `guest_main(arg, ram_base, ram_size, shared_base, shared_size)`.
//!
//! Every exception lands in [`el1_trap`]. A synchronous exception taken while a
//! fault is expected ([`expect_fault`]) is recorded and the faulting instruction
//! skipped; anything else is reported (`FAIL <scenario>: unexpected exception ...`)
//! and ends the VM with [`EXIT_UNEXPECTED_EXCEPTION`].

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

/// A synchronous exception taken at EL1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception {
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
}

/// ESR_EL1.EC values the scenarios check.
pub mod ec {
    /// Unknown reason (UNDEFINED instruction).
    pub const UNKNOWN: u64 = 0x00;
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
}

impl core::fmt::Display for Exception {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ESR=0x{:x} EC=0x{:x} FSC=0x{:x} FAR=0x{:x} ELR=0x{:x}",
            self.esr,
            self.ec(),
            self.fsc(),
            self.far,
            self.elr
        )
    }
}

/// Set while a fault is expected; cleared by the handler when it takes one.
static ARMED: AtomicBool = AtomicBool::new(false);
/// Set by the handler when it absorbed an expected fault.
static TAKEN: AtomicBool = AtomicBool::new(false);
/// The last exception taken, whatever it was.
static LAST_ESR: AtomicU64 = AtomicU64::new(0);
static LAST_FAR: AtomicU64 = AtomicU64::new(0);
static LAST_ELR: AtomicU64 = AtomicU64::new(0);
/// Set while an unexpected exception is being reported, to stop recursion.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// The last exception the vectors saw.
pub fn last_exception() -> Exception {
    Exception {
        esr: LAST_ESR.load(Ordering::SeqCst),
        far: LAST_FAR.load(Ordering::SeqCst),
        elr: LAST_ELR.load(Ordering::SeqCst),
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
    TAKEN.store(false, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    let result = f();
    ARMED.store(false, Ordering::SeqCst);
    let fault = TAKEN.load(Ordering::SeqCst).then(last_exception);
    (result, fault)
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
            // SAFETY: the callers only write MTE control registers, which do not
            // affect memory safety; if the MSR is UNDEFINED the handler skips it.
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

fn vector_name(index: u64) -> &'static str {
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
    let esr = sysreg::esr_el1();
    let far = sysreg::far_el1();
    LAST_ESR.store(esr, Ordering::SeqCst);
    LAST_FAR.store(far, Ordering::SeqCst);
    LAST_ELR.store(frame.elr, Ordering::SeqCst);

    if index == CURRENT_SPX_SYNC && ARMED.load(Ordering::SeqCst) {
        ARMED.store(false, Ordering::SeqCst);
        TAKEN.store(true, Ordering::SeqCst);
        frame.elr += 4;
        return;
    }

    if REPORTING.load(Ordering::SeqCst) {
        // Faulted while reporting a fault: stop without printing again.
        hypercall::exit(EXIT_UNEXPECTED_EXCEPTION);
    }
    REPORTING.store(true, Ordering::SeqCst);
    let exception = Exception { esr, far, elr: frame.elr };
    println!(
        "FAIL {}: unexpected exception: {} {} SPSR=0x{:x}",
        crate::scenarios::current_name(),
        vector_name(index),
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
