//! The portable core of the hypervisor, plus (on the bare-metal target) the
//! thin arch layer that drives the hardware and the top level that uses both.
//!
//! On the target, `boot` is the main program: the steps from the entry assembly
//! to running VMs, each a mechanism of `arch` (which imports nothing from the
//! VMs, the scheduler or the console) or of a portable module. `shutdown` ends
//! the run (power-off line, crash report, panic handler); `console` and `memory`
//! are the console and the global allocators; `vm::runtime` runs the guests.
//!
//! Everything outside `arch`, `boot`, `console`, `memory`, `shutdown` and
//! `vm::runtime` is plain Rust that `cargo test` runs on the host.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bundle;
pub mod config;
pub mod cpus;
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
mod boot;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod memory;
#[cfg(target_os = "none")]
pub mod shutdown;
