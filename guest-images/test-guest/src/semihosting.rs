//! Arm semihosting, for local smoke tests under QEMU without the hypervisor
//! (feature `semihosting-console`; run QEMU with
//! `-semihosting-config enable=on,target=native`).

use core::arch::asm;

const SYS_WRITE0: u64 = 0x04;
const SYS_EXIT: u64 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

fn call(op: u64, param: u64) {
    // SAFETY: HLT #0xF000 is the A64 semihosting trap; QEMU reads the parameter
    // block or string that `param` points to and returns a value in x0.
    unsafe {
        asm!("hlt #0xf000", inlateout("x0") op => _, in("x1") param, options(nostack));
    }
}

/// Prints `text` followed by a newline (SYS_WRITE0 wants a NUL-terminated string).
pub fn write_line(text: &[u8]) {
    let mut buf = [0u8; 258];
    let len = text.len().min(256);
    buf[..len].copy_from_slice(&text[..len]);
    buf[len] = b'\n';
    call(SYS_WRITE0, buf.as_ptr() as u64);
}

/// Stops QEMU with `status` as its exit code (SYS_EXIT with the AArch64 parameter block).
pub fn exit(status: u64) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, status];
    call(SYS_EXIT, block.as_ptr() as u64);
    loop {
        // SAFETY: WFE only waits for an event.
        unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
    }
}
