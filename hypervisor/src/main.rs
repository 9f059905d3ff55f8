//! The hypervisor image. All code lives in the library; the `boot` crate supplies
//! the entry point and the library's `boot` module the Rust entry functions it calls.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use hypervisor as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the hypervisor is bare-metal firmware: build it with `cargo xtask build`");
    std::process::exit(1);
}
