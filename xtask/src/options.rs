//! Command-line options that more than one subcommand takes.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::vm_scenarios::{self, LinuxGuest};

/// The Linux guest of `cargo xtask qemu` and `cargo xtask fvp`: its images and
/// command line (the vCPUs and RAM are each subcommand's own options).
#[derive(Args, Clone, Debug, Default)]
pub struct LinuxGuestOptions {
    /// Linux kernel for the guest (default: Debian's arm64 cloud kernel, fetched and cached).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Initramfs for the guest (default: busybox, an init and mte-check, built by xtask).
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// Extra kernel command line for the guest.
    #[arg(long, default_value = "")]
    pub append: String,
}

impl LinuxGuestOptions {
    /// Fetches or builds the default images where none were given, and writes the VM
    /// bundle `name` of one Linux VM with `vcpus` vCPUs and `memory` of RAM
    /// (`vms.conf` syntax).
    pub fn bundle(&self, name: &str, vcpus: u32, memory: &str) -> Result<PathBuf> {
        let (kernel, initrd) = crate::guest_images::resolve(self.kernel.as_deref(), self.initrd.as_deref())?;
        let guest = LinuxGuest { kernel: &kernel, initrd: &initrd, append: &self.append, vcpus, memory };
        vm_scenarios::linux_bundle(name, &guest)
    }
}
