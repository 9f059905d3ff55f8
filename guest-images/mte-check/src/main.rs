//! `mte-check`: checks, from Linux user space inside a guest, that the Memory Tagging
//! Extension works end to end: the CPU feature reaches the guest kernel, the kernel
//! enables tag checks, fresh tagged memory reads as tag 0, tags are stored per 16-byte
//! granule, mismatches fault synchronously and asynchronously with the right signal
//! codes, and tags survive `fork` and copy-on-write. Each of these depends on the
//! hypervisor handing MTE through correctly (ID registers, HCR_EL2.ATA, stage-2 memory
//! types, tag sanitising, tag storage on page copies).
//!
//! Output: one line per check, `mte-check: <check>: ok` or `mte-check: <check>: FAIL
//! (<why>)`, then `mte-check: PASS (N checks)` or `mte-check: FAIL (N of M checks
//! failed)`. Exit status 0 only on PASS.
//!
//! Built for `aarch64-unknown-linux-musl` (static). On any other target it is a stub, so
//! that building and linting the whole workspace on the host still works.

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod checks;
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod child;
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod mte;

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
fn main() {
    std::process::exit(checks::run_all());
}

#[cfg(not(all(target_arch = "aarch64", target_os = "linux")))]
fn main() {
    eprintln!(
        "mte-check runs on aarch64 Linux only: build it with \
         `cargo build -p mte-check --release --target aarch64-unknown-linux-musl`"
    );
    std::process::exit(1);
}
