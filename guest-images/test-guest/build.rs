//! Links the bare-metal guest at the guest RAM base with `linker/test-guest.ld`.
//! The base comes from `hv_abi::machine`, written for the script to `INCLUDE`.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let script = manifest_dir.join("../../linker/test-guest.ld");
    let script = script.canonicalize().unwrap_or(script);
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TEST_GUEST_SMOKE_ARG");
    println!("cargo:rerun-if-env-changed=TEST_GUEST_SMOKE_RAM_MIB");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
        let ram_base = format!("GUEST_RAM_BASE = {:#x};\n", hv_abi::machine::RAM_BASE);
        fs::write(out_dir.join("guest-ram-base.ld"), ram_base).unwrap();
        println!("cargo:rustc-link-arg-bins=-L{}", out_dir.display());
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        // The workspace builds this target with `-C relocation-model=pie` (for the
        // hypervisor). Position-independent code linked statically at a fixed address
        // is fine: the guest is an EXEC linked at the RAM base with no dynamic
        // relocations, so nothing has to relocate it at run time.
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=--gc-sections");
    }
}
