//! `bench`: what a guest pays, in instructions, for the exits issue 12 sets
//! targets for. Not a differential case (not in `CASES`, not in `all`): the
//! numbers differ between the machines by design. `cargo xtask bench` boots it
//! under `-icount shift=0` on both and tabulates the lines.
//!
//! Each operation runs as a loop of [`ITERATIONS`] iterations between two reads of
//! `CNTVCT_EL0`, written in asm so the loop is the same instructions on every
//! build: the body, `subs`, `b.ne`. An empty loop is measured the same way and
//! subtracted, leaving the body's cost. Every loop runs [`REPETITIONS`] times and
//! the fewest ticks count: the first run also pays for cold TLBs, stage-2 faults
//! on first touch and any timer interrupt that happened to land inside it.
//!
//! From ticks to instructions: under `-icount shift=0` QEMU advances its virtual
//! clock by exactly 1 ns per instruction executed (2^shift ns), and the generic
//! counter follows the virtual clock at `CNTFRQ_EL0` ticks per second. So
//! `instructions = ticks * 10^9 / CNTFRQ_EL0`: 16 per tick at the 62.5 MHz of
//! older machine types, 1 per tick at the 1 GHz QEMU 9+ gives `-cpu max`. With
//! thousands of iterations either is exact to well below one instruction per
//! operation. Without `-icount` the same lines are nanoseconds of TCG time,
//! meaningless as counts.
//!
//! Under the hypervisor every body but the baseline traps to EL2: the HVC
//! (PSCI_VERSION, answered by the hypervisor's PSCI without touching any other
//! vCPU), the two MMIO reads (stage-2 data aborts, emulated PL011 and vGIC
//! Distributor), and the ID register read (`HCR_EL2.TID3`). On bare QEMU at EL1
//! none traps (QEMU answers the HVC itself): those numbers are the guest-side
//! floor.

use core::arch::asm;

use aarch64_cpu::registers::{CNTFRQ_EL0, Readable};
use fdt::Fdt;
use hv_abi::machine::{GICD_BASE, UART_BASE};

use crate::console::println;

/// Iterations of each loop: enough that one tick at 62.5 MHz (16 instructions)
/// is a small fraction of an instruction per operation.
const ITERATIONS: u64 = 1000;
/// Runs of each loop; the fewest ticks count.
const REPETITIONS: usize = 5;

/// PL011 flag register (UARTFR): a read with no side effects.
const UARTFR: u64 = 0x18;
/// GICD_TYPER: read-only, no side effects.
const GICD_TYPER: u64 = 0x0004;

/// SMCCC function ID of PSCI_VERSION (SMC32/HVC32, fast call).
const PSCI_VERSION: u32 = 0x8400_0000;

/// Ticks of [`ITERATIONS`] turns of an empty loop (`subs`, `b.ne`).
fn empty_loop_ticks() -> u64 {
    let (start, end): (u64, u64);
    // SAFETY: reads the virtual counter and counts a register down; touches no
    // memory.
    unsafe {
        asm!(
            "isb",
            "mrs {start}, cntvct_el0",
            "2:",
            "subs {count}, {count}, #1",
            "b.ne 2b",
            "isb",
            "mrs {end}, cntvct_el0",
            start = out(reg) start,
            end = out(reg) end,
            count = inout(reg) ITERATIONS => _,
            options(nostack, nomem),
        )
    }
    end - start
}

/// Ticks of [`ITERATIONS`] PSCI_VERSION calls over HVC (each with the `mov` that
/// loads the function ID: x0 returns the version).
fn hvc_loop_ticks() -> u64 {
    let (start, end): (u64, u64);
    // SAFETY: PSCI_VERSION has no side effects; the SMCCC lets the callee change
    // x0-x17, all declared clobbered, as `out` rather than `lateout` so that no
    // operand the loop reads again after the HVC is given one of them.
    unsafe {
        asm!(
            "isb",
            "mrs {start}, cntvct_el0",
            "2:",
            "mov w0, {function:w}",
            "hvc #0",
            "subs {count}, {count}, #1",
            "b.ne 2b",
            "isb",
            "mrs {end}, cntvct_el0",
            start = out(reg) start,
            end = out(reg) end,
            count = inout(reg) ITERATIONS => _,
            function = in(reg) PSCI_VERSION,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
            out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        )
    }
    end - start
}

/// Ticks of [`ITERATIONS`] 32-bit reads of the device register at `address` (a
/// single `LDR` with a valid syndrome, as [`crate::mmio::read32`]).
fn mmio_read_loop_ticks(address: u64) -> u64 {
    let (start, end): (u64, u64);
    // SAFETY: callers pass a read-only or side-effect-free register in the
    // Device-mapped window, which no Rust object lives in.
    unsafe {
        asm!(
            "isb",
            "mrs {start}, cntvct_el0",
            "2:",
            "ldr {value:w}, [{address}]",
            "subs {count}, {count}, #1",
            "b.ne 2b",
            "isb",
            "mrs {end}, cntvct_el0",
            start = out(reg) start,
            end = out(reg) end,
            count = inout(reg) ITERATIONS => _,
            address = in(reg) address,
            value = out(reg) _,
            options(nostack, readonly),
        )
    }
    end - start
}

/// Ticks of [`ITERATIONS`] reads of `ID_AA64PFR0_EL1` (trapped by `HCR_EL2.TID3`
/// under the hypervisor).
fn id_register_loop_ticks() -> u64 {
    let (start, end): (u64, u64);
    // SAFETY: an ID register read has no side effects.
    unsafe {
        asm!(
            "isb",
            "mrs {start}, cntvct_el0",
            "2:",
            "mrs {value}, id_aa64pfr0_el1",
            "subs {count}, {count}, #1",
            "b.ne 2b",
            "isb",
            "mrs {end}, cntvct_el0",
            start = out(reg) start,
            end = out(reg) end,
            count = inout(reg) ITERATIONS => _,
            value = out(reg) _,
            options(nostack, nomem),
        )
    }
    end - start
}

/// The fewest ticks of [`REPETITIONS`] runs of `measure`.
fn fewest_ticks(measure: impl Fn() -> u64) -> u64 {
    (0..REPETITIONS).map(|_| measure()).min().unwrap_or(0)
}

/// `ticks` of [`ITERATIONS`] iterations as instructions per iteration, rounded
/// to the nearest (1 ns per instruction under `-icount shift=0`, see the module
/// docs).
fn instructions_per_iteration(ticks: u64, frequency: u64) -> u64 {
    let nanoseconds = u128::from(ticks) * 1_000_000_000;
    let per_iteration = u128::from(frequency) * u128::from(ITERATIONS);
    ((nanoseconds + per_iteration / 2) / per_iteration) as u64
}

pub fn bench(_: &Fdt<'_>) {
    let frequency = CNTFRQ_EL0.get();
    println!("bench CNTFRQ_EL0: {frequency}");
    if frequency == 0 {
        println!("bench: no counter frequency, nothing measured");
        return;
    }
    let empty = fewest_ticks(empty_loop_ticks);
    // Loop overhead, absolute: 2 (`subs`, `b.ne`) when icount is on.
    println!("bench loop: {}", instructions_per_iteration(empty, frequency));
    let operations: [(&str, &dyn Fn() -> u64); 4] = [
        ("hvc-psci-version", &hvc_loop_ticks),
        ("mmio-read-pl011-uartfr", &|| mmio_read_loop_ticks(UART_BASE + UARTFR)),
        ("mmio-read-gicd-typer", &|| mmio_read_loop_ticks(GICD_BASE + GICD_TYPER)),
        ("sysreg-read-id-aa64pfr0", &id_register_loop_ticks),
    ];
    for (name, measure) in operations {
        let ticks = fewest_ticks(measure).saturating_sub(empty);
        println!("bench {name}: {}", instructions_per_iteration(ticks, frequency));
    }
}
