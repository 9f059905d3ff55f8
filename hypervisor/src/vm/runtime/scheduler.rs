//! Each physical CPU runs the vCPUs pinned to it, round robin: a vCPU keeps the
//! CPU until it yields (HV_YIELD, WFI) or its VM stops. Switching vCPUs saves the
//! outgoing one's EL1 and MTE registers and restores the incoming one's.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::director::{self, Director};
use super::vcpu::{Event, Vcpu};
use crate::arch::aarch64::guest;

/// Runs guests on this CPU forever (the machine powers off when all VMs stop).
pub fn run_cpu(cpu: usize) -> ! {
    guest::init_el2_for_guests();
    let director = loop {
        if let Some(director) = director::get() {
            break director;
        }
        aarch64_cpu::asm::wfe();
    };
    let mut vcpus: Vec<Box<Vcpu>> = Vec::new();
    // Index in `vcpus` of the vCPU whose EL1 state is live on this CPU.
    let mut loaded: Option<usize> = None;
    let mut next = 0usize;
    loop {
        vcpus.append(&mut director.incoming[cpu].lock());
        if vcpus.is_empty() {
            aarch64_cpu::asm::wfe();
            continue;
        }
        let current = next % vcpus.len();
        switch_to(director, &mut vcpus, &mut loaded, current);
        match vcpus[current].run(director) {
            Event::Yield => next = current + 1,
            Event::Stopped => {
                let vcpu = vcpus.remove(current);
                loaded = None;
                next = current;
                director.vcpu_stopped(vcpu);
            }
        }
    }
}

fn switch_to(director: &Director, vcpus: &mut [Box<Vcpu>], loaded: &mut Option<usize>, target: usize) {
    if *loaded == Some(target) {
        return;
    }
    if let Some(previous) = *loaded {
        vcpus[previous].save(director);
    }
    vcpus[target].load(director);
    *loaded = Some(target);
}
