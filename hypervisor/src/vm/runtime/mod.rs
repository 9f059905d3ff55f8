//! Running VMs on the bare-metal target: VM and vCPU objects, the stage-2 fault
//! path, exit handling, and the per-CPU scheduler.

mod console_input;
pub mod director;
mod host;
mod interrupts;
mod kick;
pub mod scheduler;
mod services;
mod stage2;
mod vcpu;
mod virtual_machine;
