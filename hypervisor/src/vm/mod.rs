//! Virtual machines: guest memory, and (on the target) VMs and vCPUs at EL1.

pub mod boot_layout;
pub mod events;
pub mod exit;
pub mod exits;
pub mod guest_dtb;
pub mod guest_output;
pub mod hypercall;
pub mod id_registers;
pub mod inject;
pub mod memory;
pub mod mmio;
pub mod model;
pub mod rate_limit;
#[cfg(target_os = "none")]
pub mod runtime;
pub mod stage1_walk;
pub mod stats;
pub mod vgic;
pub mod virtio_mmio;
pub mod vpl011;
pub mod vpsci;
