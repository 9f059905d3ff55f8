//! Console output through the PL011 at `hv_abi::machine::UART_BASE`, which bare
//! QEMU `virt` and the hypervisor's Linux VMs both have. Polled, one line at a
//! time under a lock, so lines of different vCPUs never mix.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use hv_abi::machine::UART_BASE;

use crate::mmio;

const UARTDR: u64 = 0x000;
const UARTFR: u64 = 0x018;
const UARTCR: u64 = 0x030;
/// UARTFR: transmit FIFO full.
const FR_TXFF: u32 = 1 << 5;
/// UARTCR: UART, transmit and receive enabled.
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;

static LOCK: AtomicBool = AtomicBool::new(false);

/// Turns the UART on if the loader left it off (bare QEMU resets it with
/// UARTEN clear). Call once, with the MMU on (the lock is an atomic).
pub fn init() {
    let cr = mmio::read32(UART_BASE + UARTCR);
    let on = CR_UARTEN | CR_TXE | CR_RXE;
    if cr & on != on {
        mmio::write32(UART_BASE + UARTCR, cr | on);
    }
}

struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            while mmio::read32(UART_BASE + UARTFR) & FR_TXFF != 0 {}
            mmio::write32(UART_BASE + UARTDR, u32::from(byte));
        }
        Ok(())
    }
}

/// Prints one line (a newline is added).
pub fn print_line(args: fmt::Arguments<'_>) {
    while LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    let _ = Uart.write_fmt(args);
    let _ = Uart.write_str("\n");
    LOCK.store(false, Ordering::Release);
}

/// Prints a formatted line on the console.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print_line(format_args!($($arg)*))
    };
}
pub(crate) use println;
