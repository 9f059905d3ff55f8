//! Ending the run: print how it ended, then power off through PSCI `SYSTEM_OFF`.
//!
//! The last hypervisor line is `power-off: success` or `power-off: failure`; a
//! runner (xtask) turns it into an exit status. Guests cannot forge it: every
//! guest line on the console carries its VM's prefix (`vm::guest_output`).
//! Semihosting is not used for this: it would have to be enabled in QEMU, and
//! QEMU lets EL1 use it too, which would give every guest the host's files.

use super::{cpu, psci};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// The line that tells a runner how the run ended.
pub const SUCCESS_LINE: &str = "power-off: success";
pub const FAILURE_LINE: &str = "power-off: failure";

/// Reports `outcome` and powers the machine off (halts if PSCI refuses).
pub fn power_off(outcome: Outcome) -> ! {
    let line = match outcome {
        Outcome::Success => SUCCESS_LINE,
        Outcome::Failure => FAILURE_LINE,
    };
    crate::console::write_fmt_unlocked(format_args!("{line}\n"));
    crate::console::flush();
    let error = psci::system_off();
    crate::console::write_str_unlocked("PSCI SYSTEM_OFF failed: ");
    crate::console::write_fmt_unlocked(format_args!("{error}; halting\n"));
    cpu::halt()
}
