//! Ending the run: a clean power-off, or a crash report (an unexpected EL2
//! exception, a panic) followed by a failing one.
//!
//! The last hypervisor line is `power-off: success` or `power-off: failure`; a
//! runner (xtask) turns it into an exit status. Guests cannot forge it: every
//! guest line on the console carries its VM's prefix (`vm::guest_output`).
//! Semihosting is not used for this: it would have to be enabled in QEMU, and
//! QEMU lets EL1 use it too, which would give every guest the host's files.

use crate::arch::aarch64::{cpu, exceptions, psci};
use crate::console;
use crate::exception::CrashReport;

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// The line that tells a runner how the run ended.
pub const SUCCESS_LINE: &str = "power-off: success";
pub const FAILURE_LINE: &str = "power-off: failure";

/// Reports `outcome` and powers the machine off through PSCI `SYSTEM_OFF` (halts
/// if the firmware refuses).
pub fn power_off(outcome: Outcome) -> ! {
    let line = match outcome {
        Outcome::Success => SUCCESS_LINE,
        Outcome::Failure => FAILURE_LINE,
    };
    console::write_fmt_unlocked(format_args!("{line}\n"));
    console::flush();
    let error = psci::system_off();
    console::write_str_unlocked("PSCI SYSTEM_OFF failed: ");
    console::write_fmt_unlocked(format_args!("{error}; halting\n"));
    cpu::halt()
}

/// Prints a crash report and stops the machine with a failure status. This is
/// the handler every CPU gives [`exceptions::install`].
pub fn crash(report: &CrashReport) -> ! {
    console::write_fmt_unlocked(format_args!("\n{report}\n"));
    console::flush();
    power_off(Outcome::Failure)
}

/// A hypervisor bug: print the message with a full register dump and stop the machine.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let frame = exceptions::capture_frame();
    let message = info.message();
    let location = info.location();
    let kind = format_args!("panic: {message}");
    let mut text: arrayvec::ArrayString<512> = arrayvec::ArrayString::new();
    let _ = core::fmt::write(&mut text, kind);
    if let Some(location) = location {
        let _ = core::fmt::write(&mut text, format_args!(" at {}:{}", location.file(), location.line()));
    }
    crash(&CrashReport { cpu: cpu::index(), kind: &text, frame: &frame, hpfar: None })
}
