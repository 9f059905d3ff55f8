//! The portable core of the hypervisor, plus (on the bare-metal target) the
//! thin arch layer that drives the hardware.
//!
//! Everything outside `arch`, `console` and `memory` is plain Rust that
//! `cargo test` runs on the host.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bundle;
pub mod config;
pub mod exception;
pub mod guest_context;
pub mod mm;
pub mod mte;
pub mod platform;
pub mod psci;
pub mod vm;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod memory;

/// A hypervisor bug: print the message with a full register dump and stop the machine.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use exception::CrashReport;
    let frame = arch::aarch64::exceptions::capture_frame();
    let message = info.message();
    let location = info.location();
    let kind = format_args!("panic: {message}");
    let mut text: arrayvec::ArrayString<512> = arrayvec::ArrayString::new();
    let _ = core::fmt::write(&mut text, kind);
    if let Some(location) = location {
        let _ = core::fmt::write(&mut text, format_args!(" at {}:{}", location.file(), location.line()));
    }
    arch::aarch64::exceptions::crash(&CrashReport {
        cpu: arch::aarch64::cpu::index(),
        kind: &text,
        frame: &frame,
        hpfar: None,
    })
}
