//! The portable core of the hypervisor, plus (on the bare-metal target) the
//! thin arch layer that drives the hardware.
//!
//! Everything outside `arch` is plain Rust that `cargo test` runs on the host.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod exception;
pub mod platform;
