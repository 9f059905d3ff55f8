//! EL2 exception entry: the vector table and the first-level dispatch.
//!
//! Nothing at EL2 is expected to trap yet except the semihosting probe: anything
//! else is a hypervisor bug, handed as a crash report to the fatal-exception
//! handler the caller of [`install`] chose (which reports it and stops the machine).

use core::sync::atomic::{AtomicPtr, Ordering};

use aarch64_cpu::registers::*;

use super::registers::NZCV;
use super::{cpu, semihosting};
use crate::exception::{CrashReport, Esr, ExceptionClass, TrapFrame};

core::arch::global_asm!(include_str!("vectors.S"));

unsafe extern "C" {
    static el2_vectors: u8;
}

/// Which of the 16 vectors was taken, as the assembly passes it.
fn vector_name(kind: u64) -> &'static str {
    const NAMES: [&str; 16] = [
        "synchronous exception from EL2 (SP_EL0)",
        "IRQ at EL2 (SP_EL0)",
        "FIQ at EL2 (SP_EL0)",
        "SError at EL2 (SP_EL0)",
        "synchronous exception from EL2 (SP_ELx)",
        "IRQ at EL2 (SP_ELx)",
        "FIQ at EL2 (SP_ELx)",
        "SError at EL2 (SP_ELx)",
        "synchronous exception from a lower EL (AArch64)",
        "IRQ from a lower EL (AArch64)",
        "FIQ from a lower EL (AArch64)",
        "SError from a lower EL (AArch64)",
        "synchronous exception from a lower EL (AArch32)",
        "IRQ from a lower EL (AArch32)",
        "FIQ from a lower EL (AArch32)",
        "SError from a lower EL (AArch32)",
    ];
    NAMES.get(kind as usize).copied().unwrap_or("unknown vector")
}

/// What to do with an exception EL2 did not expect: report it and stop the machine.
pub type FatalHandler = fn(&CrashReport) -> !;

/// The [`FatalHandler`], stored as a pointer: a plain store, because [`install`]
/// runs before the MMU is on, when atomic read-modify-writes do not work.
static FATAL_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the vector table on this CPU; unexpected exceptions go to `on_fatal`.
pub fn install(on_fatal: FatalHandler) {
    FATAL_HANDLER.store(on_fatal as *mut (), Ordering::Release);
    let vectors = core::ptr::addr_of!(el2_vectors) as u64;
    // SAFETY: `el2_vectors` is a complete, 2 KiB-aligned EL2 vector table whose
    // handlers are valid for the whole life of the hypervisor.
    unsafe {
        VBAR_EL2.set(vectors);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}

/// Called from `vectors.S` with the saved frame of the interrupted context.
#[unsafe(no_mangle)]
extern "C" fn el2_trap_handler(frame: &mut TrapFrame, kind: u64) {
    let esr = Esr(frame.esr);
    let is_current_el_sync = kind == 4;
    if is_current_el_sync && esr.ec() == ExceptionClass::Unknown && semihosting::PROBING.load(Ordering::SeqCst) {
        // `HLT #0xF000` without a semihosting host: note it and skip the instruction.
        semihosting::UNAVAILABLE.store(true, Ordering::SeqCst);
        frame.elr += 4;
        return;
    }
    let hpfar = (kind >= 8).then(|| HPFAR_EL2.get());
    let report = CrashReport { cpu: cpu::index(), kind: vector_name(kind), frame, hpfar };
    let handler = FATAL_HANDLER.load(Ordering::Acquire);
    if handler.is_null() {
        // Unreachable: `install` stores the handler before pointing VBAR_EL2 here.
        cpu::halt();
    }
    // SAFETY: the only non-null value ever stored is a `FatalHandler` (in `install`).
    let handler = unsafe { core::mem::transmute::<*mut (), FatalHandler>(handler) };
    handler(&report)
}

/// The CPU's registers at the call site, for a panic report: x0-x30 as they are
/// inside the panic handler (x29/x30 show the frame and return address), SP, and
/// ELR set to the return address. ESR/FAR are zero: no exception was taken.
#[inline(always)]
pub fn capture_frame() -> TrapFrame {
    let mut frame = TrapFrame::default();
    let base = frame.x.as_mut_ptr();
    // SAFETY: stores the registers into `frame`, which is 288 bytes of our own
    // stack; x0-x30 occupy its first 248 bytes and SP goes at offset 248.
    unsafe {
        core::arch::asm!(
            "stp x0, x1, [{base}, #0]", "stp x2, x3, [{base}, #16]", "stp x4, x5, [{base}, #32]",
            "stp x6, x7, [{base}, #48]", "stp x8, x9, [{base}, #64]", "stp x10, x11, [{base}, #80]",
            "stp x12, x13, [{base}, #96]", "stp x14, x15, [{base}, #112]", "stp x16, x17, [{base}, #128]",
            "stp x18, x19, [{base}, #144]", "stp x20, x21, [{base}, #160]", "stp x22, x23, [{base}, #176]",
            "stp x24, x25, [{base}, #192]", "stp x26, x27, [{base}, #208]", "stp x28, x29, [{base}, #224]",
            "str x30, [{base}, #240]", "mov {tmp}, sp", "str {tmp}, [{base}, #248]",
            base = in(reg) base, tmp = out(reg) _, options(nostack, preserves_flags)
        );
    }
    frame.elr = frame.x[30];
    frame.spsr = DAIF.get() | NZCV.get() | 0b1001;
    frame
}
