//! Links the guest as a position-independent arm64 `Image` with `machine-check.ld`:
//! linked at 0, it applies its own relative relocations at entry, so it runs wherever
//! a loader puts it (bare QEMU `-kernel` loads it at RAM + 2 MiB, the hypervisor's
//! Linux boot protocol at the RAM base).

use std::{env, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let script = manifest_dir.join("machine-check.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        println!("cargo:rustc-link-arg-bins=--pie");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        // libcore is not built position independent: its vtables in .rodata carry
        // relocations too (applied at entry, with the MMU off, like all the others).
        println!("cargo:rustc-link-arg-bins=-znotext");
        println!("cargo:rustc-link-arg-bins=--gc-sections");
    }
}
