//! Console forgery: lines that look like the hypervisor's own (a VM stopping,
//! a crash report, the final summary, an ERROR) printed through HV_WRITE and
//! through the PL011, with newlines, carriage returns and escape sequences to
//! start a fresh console line. The guest cannot see the result; the harness
//! checks that each `FORGED-LINE` only ever appears after a `[vm] ` prefix.
//! Also: the FOREIGN fill of this VM's free RAM, for bystanders to look for.

use hv_abi::machine::UART_BASE;

use super::{Ctx, Verdict, bad, fill_foreign, good, scratch};
use crate::hypercall;

const FORGERIES: [&[u8]; 6] = [
    b"\nvm bystander stopped with status 0 FORGED-LINE\n",
    b"\n=== HYPERVISOR CRASH on CPU 0 === FORGED-LINE\n",
    b"\x1b[2K\rall VMs stopped (0 failed) FORGED-LINE\n",
    b"\r\nERROR forged FORGED-LINE\n",
    b"\npower-off: success FORGED-LINE\r\n",
    b"\x00\x07\x7f\x1b]0;FORGED-LINE\x07\x0c\x0bvm hostile stopped with status 0 FORGED-LINE\n",
];

pub fn foreign_fill(ctx: &Ctx) -> Verdict {
    let bytes = fill_foreign(ctx);
    good!("{} KiB of free RAM filled with the FOREIGN magic", bytes >> 10)
}

pub fn hv_write(ctx: &Ctx) -> Verdict {
    let buf = ctx.scratch + scratch::TEXT;
    for line in FORGERIES {
        // SAFETY: a scratch page of free RAM; the forged text is copied there so
        // the call reads guest RAM the hypervisor must translate.
        unsafe { core::ptr::copy_nonoverlapping(line.as_ptr(), buf as *mut u8, line.len()) };
        let got = hypercall::write_raw(buf, line.len() as u64);
        if got != 0 {
            bad!("HV_WRITE of a forged line ({} bytes) returned {got}", line.len());
        }
    }
    good!("{} forged hypervisor lines printed through HV_WRITE", FORGERIES.len())
}

const UARTDR: u64 = UART_BASE;
const UARTFR: u64 = UART_BASE + 0x018;
const TXFF: u32 = 1 << 5;

pub fn pl011(_: &Ctx) -> Verdict {
    let mut bytes = 0;
    for line in FORGERIES {
        for &byte in line {
            let mut spins = 0;
            // SAFETY: UARTFR is a read-only status register of the (emulated) PL011.
            while unsafe { core::ptr::read_volatile(UARTFR as *const u32) } & TXFF != 0 {
                spins += 1;
                if spins > 1_000_000 {
                    bad!("PL011 transmit FIFO stays full");
                }
            }
            // SAFETY: writing UARTDR transmits a byte; no memory effect.
            unsafe { core::ptr::write_volatile(UARTDR as *mut u32, u32::from(byte)) };
            bytes += 1;
        }
    }
    good!("{} forged hypervisor lines ({bytes} bytes) written to the PL011", FORGERIES.len())
}
