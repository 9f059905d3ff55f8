//! Virtual machines: guest memory, and (on the target) VMs and vCPUs at EL1.

pub mod exit;
pub mod id_registers;
pub mod memory;
pub mod stats;
#[cfg(target_os = "none")]
pub mod runtime;
