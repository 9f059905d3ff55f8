//! Ending the run: power off cleanly on success, report failure on a crash.

use super::{cpu, psci, semihosting};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// Powers the machine off. A failure is reported through semihosting with exit
/// status 1 when the platform offers it (QEMU with `-semihosting`), so scripted
/// runs see it; otherwise, and on success, through PSCI `SYSTEM_OFF`.
pub fn power_off(outcome: Outcome) -> ! {
    if outcome == Outcome::Failure {
        semihosting::exit(1);
    }
    let error = psci::system_off();
    crate::console::write_str_unlocked("PSCI SYSTEM_OFF failed: ");
    crate::console::write_fmt_unlocked(format_args!("{error}; halting\n"));
    cpu::halt()
}
