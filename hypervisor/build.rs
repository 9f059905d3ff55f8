//! Links the bare-metal binary with the image layout from `linker/`.

use std::{env, path::PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let script = manifest_dir.join("../linker/hypervisor.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        // Position independent: boot/ applies the relative relocations itself.
        println!("cargo:rustc-link-arg-bins=--pie");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        // libcore is not built PIC: its vtables in .rodata need relocating too, which
        // is fine because relocation happens before the MMU makes .rodata read-only.
        println!("cargo:rustc-link-arg-bins=-znotext");
        println!("cargo:rustc-link-arg-bins=-znostart-stop-gc");
        println!("cargo:rustc-link-arg-bins=--gc-sections");
    }
}
