//! Bare-metal conformance guest for differential tests: the same `Image` boots on
//! bare QEMU `virt` at EL1 and under the hypervisor (as a Linux-protocol VM), runs
//! the cases the kernel command line (`/chosen/bootargs`) names, prints one
//! deterministic line per check on the PL011, and powers off with PSCI
//! `SYSTEM_OFF`. xtask (`differential.rs`) compares the two outputs line by line.
//! See README.md for the cases.
//!
//! Built for `aarch64-unknown-none-softfloat`; for the host (workspace builds) it
//! is an empty program.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod cases;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod dtb;
#[cfg(target_os = "none")]
mod entry;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod mmio;
#[cfg(target_os = "none")]
mod mmu;
#[cfg(target_os = "none")]
mod psci;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod sysreg;
#[cfg(target_os = "none")]
mod timer;

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use crate::console::{self, println};
    use crate::{cases, dtb, mmu, psci, sysreg};

    /// Called by the entry code with x0 as the loader left it (the device tree),
    /// MMU off, relocated, BSS clear.
    #[unsafe(no_mangle)]
    extern "C" fn primary_main(dtb_address: u64) -> ! {
        mmu::enable();
        console::init();
        sysreg::PstateFeatures::detect();
        let tree = dtb::parse(dtb_address);
        let bootargs = tree.as_ref().and_then(|tree| tree.chosen().bootargs()).unwrap_or("");
        println!("machine-check: bootargs \"{bootargs}\"");
        match tree {
            Some(tree) => cases::run(bootargs, &tree),
            None => println!("machine-check: no device tree in x0"),
        }
        println!("machine-check: done");
        psci::system_off()
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        println!("machine-check: panic on vCPU {}: {info}", crate::cpu::index());
        psci::system_off()
    }
}
