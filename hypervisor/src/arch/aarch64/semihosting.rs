//! Arm semihosting `SYS_EXIT`, used only to give QEMU (and the FVP) an exit status.
//!
//! When no debugger or emulator implements semihosting, `HLT #0xF000` is an
//! undefined instruction: the exception handler sees [`PROBING`] set, marks
//! semihosting unavailable and skips the instruction, so calling this is always safe.

use core::sync::atomic::{AtomicBool, Ordering};

/// Set while a semihosting call is in flight, for the exception handler.
pub static PROBING: AtomicBool = AtomicBool::new(false);
/// Set by the exception handler when `HLT #0xF000` trapped instead of exiting.
pub static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

/// Asks the semihosting host to exit with `status`. Returns if semihosting is unavailable.
pub fn exit(status: u32) {
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return;
    }
    let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, status as u64];
    PROBING.store(true, Ordering::SeqCst);
    // SAFETY: SYS_EXIT reads the two-word parameter block at x1, which lives on our
    // stack for the duration of the call; if semihosting is absent the instruction
    // traps and the exception handler resumes after it.
    unsafe {
        core::arch::asm!("hlt #0xf000", inout("x0") SYS_EXIT => _, in("x1") block.as_ptr(), options(nostack));
    }
    PROBING.store(false, Ordering::SeqCst);
}

const SYS_WRITE0: u64 = 0x04;

/// Writes a line to the semihosting host's console (QEMU: its stderr), for
/// errors that happen before any UART is known. No-op without semihosting.
pub fn write_line(message: core::fmt::Arguments) {
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return;
    }
    let mut buffer: arrayvec::ArrayString<256> = arrayvec::ArrayString::new();
    let _ = core::fmt::write(&mut buffer, format_args!("mte-hypervisor: {message}\n"));
    let mut bytes = [0u8; 258];
    let len = buffer.len().min(256);
    bytes[..len].copy_from_slice(&buffer.as_bytes()[..len]);
    PROBING.store(true, Ordering::SeqCst);
    // SAFETY: SYS_WRITE0 reads the NUL-terminated string at x1 (on our stack,
    // terminated by the zero-filled tail); a missing host traps and is skipped.
    unsafe {
        core::arch::asm!("hlt #0xf000", inout("x0") SYS_WRITE0 => _, in("x1") bytes.as_ptr(), options(nostack));
    }
    PROBING.store(false, Ordering::SeqCst);
}
