//! Making sense of exceptions taken to EL2.
//!
//! [`esr`] decodes the syndrome register, which both the trap handlers (to
//! emulate what a guest did) and the crash path (to explain what went wrong)
//! need; [`dump`] formats the crash report printed when EL2 takes an
//! exception it did not expect, or panics.
//!
//! Both are plain, allocation-free Rust so that they work on the crash path
//! and can be unit-tested on the host.

pub mod dump;
pub mod esr;

pub use dump::{CrashReport, Spsr, TrapFrame, faulting_ipa};
pub use esr::{DataAbort, Esr, ExceptionClass, FaultStatus, InstructionAbort, SysRegAccess, SysRegDirection, WfxKind};
