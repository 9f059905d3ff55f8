//! Running a check that may raise SIGSEGV in a forked child, so that a tag check fault
//! (expected or not) never takes down the checker itself. The child's SIGSEGV handler
//! reports the signal code through the child's exit status; this avoids unwinding or
//! `longjmp` out of a signal handler.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{c_int, c_void, siginfo_t};

use crate::mte::ADDRESS_MASK;

/// Exit status of a child whose SIGSEGV handler ran: this plus `si_code` ...
const FAULT_STATUS: i32 = 64;
/// ... plus this when `si_addr` was not the address the check expected.
const WRONG_ADDRESS: i32 = 32;
/// Bodies return statuses below this; higher ones are the handler's.
const MAX_BODY_STATUS: i32 = 63;

/// The untagged address a sync fault should report, or 0 for "do not check" (the child's
/// copy; set before the access).
static EXPECTED_FAULT_ADDR: AtomicUsize = AtomicUsize::new(0);

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    /// The body returned this status without faulting.
    Exited(i32),
    /// SIGSEGV with this `si_code`; `at_expected_address` is false when `si_addr` was
    /// not the expected address (always true when none was given).
    Faulted { si_code: i32, at_expected_address: bool },
    /// Killed by another signal.
    Signaled(i32),
}

impl fmt::Display for ChildEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exited(status) => write!(f, "child exited with status {status}"),
            Self::Faulted { si_code, at_expected_address } => {
                write!(f, "SIGSEGV with si_code {si_code}")?;
                if !at_expected_address {
                    write!(f, " at an unexpected address")?;
                }
                Ok(())
            }
            Self::Signaled(signal) => write!(f, "child killed by signal {signal}"),
        }
    }
}

/// Forks; the child installs the SIGSEGV reporter, runs `body` and exits with its
/// status (0..=63). `expected_fault_addr` is what a synchronous fault's `si_addr` must be
/// (tag bits are ignored). Returns how the child ended.
pub fn run_in_child(expected_fault_addr: Option<usize>, body: impl FnOnce() -> i32) -> io::Result<ChildEnd> {
    // Buffered output would otherwise be written twice.
    io::stdout().flush()?;
    io::stderr().flush()?;
    // SAFETY: the process is single-threaded, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        EXPECTED_FAULT_ADDR.store(expected_fault_addr.map_or(0, |a| a & ADDRESS_MASK), Ordering::SeqCst);
        let status = match install_sigsegv_reporter() {
            Ok(()) => body().clamp(0, MAX_BODY_STATUS),
            Err(_) => MAX_BODY_STATUS,
        };
        // SAFETY: _exit ends the child without running the parent's atexit handlers or
        // flushing buffers inherited from it.
        unsafe { libc::_exit(status) };
    }
    let mut status: c_int = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    if libc::WIFSIGNALED(status) {
        return Ok(ChildEnd::Signaled(libc::WTERMSIG(status)));
    }
    let code = libc::WEXITSTATUS(status);
    Ok(if code > MAX_BODY_STATUS && code < FAULT_STATUS + 2 * WRONG_ADDRESS {
        let offset = code - FAULT_STATUS;
        ChildEnd::Faulted { si_code: offset % WRONG_ADDRESS, at_expected_address: offset < WRONG_ADDRESS }
    } else {
        ChildEnd::Exited(code)
    })
}

fn install_sigsegv_reporter() -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigsegv as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `action` is a valid sigaction whose handler has the SA_SIGINFO signature.
    if unsafe { libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reports the fault through the exit status; only async-signal-safe calls.
extern "C" fn on_sigsegv(_signal: c_int, info: *mut siginfo_t, _context: *mut c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t for SIGSEGV, whose
    // si_addr field is the one `si_addr()` reads.
    let (si_code, addr) = unsafe { ((*info).si_code, (*info).si_addr().addr()) };
    let expected = EXPECTED_FAULT_ADDR.load(Ordering::SeqCst);
    let wrong_address = expected != 0 && addr & ADDRESS_MASK != expected;
    let status = FAULT_STATUS + si_code.clamp(0, WRONG_ADDRESS - 1) + if wrong_address { WRONG_ADDRESS } else { 0 };
    // SAFETY: _exit is async-signal-safe and ends the child here.
    unsafe { libc::_exit(status) };
}
