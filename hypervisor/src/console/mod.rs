//! The hypervisor's console: the platform UART the DTB names, and the `log` backend.
//!
//! Before the MMU is on, exclusive loads and stores (and so locks) do not work on
//! Device/non-cacheable memory, so output is unlocked until [`enable_locking`].

pub mod logger;
mod pl011;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pl011::Pl011;

use crate::vm::guest_output::ConsoleMux;

static UART_BASE: AtomicUsize = AtomicUsize::new(0);
static LOCKING: AtomicBool = AtomicBool::new(false);
/// The console lock, with the state of the current line (whose it is): guest
/// text and the hypervisor's lines share the UART (`vm::guest_output`).
static LOCK: spin::Mutex<ConsoleMux> = spin::Mutex::new(ConsoleMux::new());

/// Directs output to the PL011 at `base`.
///
/// # Safety
/// `base` must be a PL011's MMIO address that stays accessible (MMU off, or mapped
/// as Device memory) from now on.
pub unsafe fn init(base: usize) {
    UART_BASE.store(base, Ordering::Relaxed);
}

/// Called once the MMU and caches are on: from now on lines are not interleaved.
pub fn enable_locking() {
    LOCKING.store(true, Ordering::SeqCst);
}

struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let base = UART_BASE.load(Ordering::Relaxed);
        if base == 0 {
            return Ok(());
        }
        // SAFETY: `init`'s contract: `base` is a live PL011.
        let uart = unsafe { Pl011::new(base) };
        for byte in s.bytes() {
            if byte == b'\n' {
                uart.write_byte(b'\r');
            }
            uart.write_byte(byte);
        }
        Ok(())
    }
}

/// Writes formatted text as one uninterleaved unit, starting on a line of its own.
pub fn write_fmt(args: fmt::Arguments) {
    if LOCKING.load(Ordering::Relaxed) {
        let mut mux = LOCK.lock();
        mux.hypervisor_line(&mut raw_bytes);
        let _ = Uart.write_fmt(args);
        mux.flush_waiting(&mut raw_bytes);
    } else {
        let _ = Uart.write_fmt(args);
    }
}

/// Bytes straight to the UART (the caller holds the lock or runs before locking).
fn raw_bytes(bytes: &[u8]) {
    let base = UART_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: `init`'s contract: `base` is a live PL011.
    let uart = unsafe { Pl011::new(base) };
    bytes.iter().for_each(|&byte| uart.write_byte(byte));
}

/// Writes without waiting for the lock: for crash reports, where the lock holder
/// may be the CPU that crashed. Waits a bounded time for a clean line first.
pub fn write_fmt_unlocked(args: fmt::Arguments) {
    let mut guard = None;
    if LOCKING.load(Ordering::Relaxed) {
        for _ in 0..1_000_000 {
            if let Some(g) = LOCK.try_lock() {
                guard = Some(g);
                break;
            }
            core::hint::spin_loop();
        }
    }
    match guard.as_mut() {
        Some(mux) => mux.hypervisor_line(&mut raw_bytes),
        // Whoever holds the lock may be mid-line: start a fresh one regardless.
        None => raw_bytes(b"\r\n"),
    }
    let _ = Uart.write_fmt(args);
    drop(guard);
}

/// [`write_fmt_unlocked`] for a plain string.
pub fn write_str_unlocked(s: &str) {
    write_fmt_unlocked(format_args!("{s}"));
}

/// Writes bytes a guest printed (its PL011), prefixed and escaped
/// (`vm::guest_output`). `vm` is the VM's index in the config.
pub fn write_guest(vm: usize, name: &str, bytes: &[u8]) {
    let mut mux = LOCK.lock();
    mux.guest_bytes(vm, name, bytes, &mut raw_bytes);
}

/// Writes one whole line of guest text (HV_WRITE), prefixed and escaped.
pub fn write_guest_line(vm: usize, name: &str, bytes: &[u8]) {
    let mut mux = LOCK.lock();
    mux.guest_bytes(vm, name, bytes, &mut raw_bytes);
    mux.guest_bytes(vm, name, b"\n", &mut raw_bytes);
}

/// Calls `sink` with every byte the console UART has received.
pub fn drain_input(mut sink: impl FnMut(u8)) {
    let base = UART_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: `init`'s contract: `base` is a live PL011.
    let uart = unsafe { Pl011::new(base) };
    while let Some(byte) = uart.read_byte() {
        sink(byte);
    }
}

/// Makes received bytes raise the console UART's interrupt.
pub fn enable_input_interrupt() {
    let base = UART_BASE.load(Ordering::Relaxed);
    if base != 0 {
        // SAFETY: `init`'s contract: `base` is a live PL011.
        unsafe { Pl011::new(base) }.enable_receive_interrupt();
    }
}

/// Waits until the UART has sent everything (before powering off).
pub fn flush() {
    let base = UART_BASE.load(Ordering::Relaxed);
    if base != 0 {
        // SAFETY: `init`'s contract: `base` is a live PL011.
        unsafe { Pl011::new(base) }.flush();
    }
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
