//! Each physical CPU runs the vCPUs pinned to it, round robin: a vCPU keeps the
//! CPU until it yields (HV_YIELD), blocks (WFI, CPU_SUSPEND, powered off) or its
//! VM stops. Switching vCPUs saves the outgoing one's EL1, MTE and virtual
//! interrupt state and restores the incoming one's. With nothing to run, the CPU
//! waits for a physical interrupt: a guest timer, console input, or a kick from
//! another CPU.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::director::{self, Director};
use super::interrupts;
use super::vcpu::{Event, Vcpu};
use crate::arch::aarch64::{cpu, gic, guest, smp};

/// Makes the given physical CPUs look at their vCPUs again (new work, an
/// interrupt for a waiting vCPU, a VM stopping).
pub fn kick_cpus(cpus: &[usize]) {
    let me = cpu::index();
    for &target in cpus {
        if target != me && target < smp::MAX_CPUS {
            gic::kick(smp::CPUS[target].mpidr.load(Ordering::Relaxed));
        }
    }
}

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
    // Index in `vcpus` of the vCPU whose state is live on this CPU.
    let mut loaded: Option<usize> = None;
    let mut next = 0usize;
    loop {
        vcpus.append(&mut director.incoming[cpu].lock());
        reap_stopped(director, &mut vcpus, &mut loaded);
        let count = vcpus.len();
        let ready = (0..count).map(|k| (next + k) % count.max(1)).find(|&i| vcpus[i].ready());
        let Some(current) = ready else {
            // Nothing to run: wait for an interrupt (masked at EL2, it still ends WFI).
            // Reaping may itself have queued vCPUs here (a VM restarted by this
            // CPU), and nobody kicks us for those.
            if !director.incoming[cpu].lock().is_empty() {
                continue;
            }
            aarch64_cpu::asm::wfi();
            let live = loaded.map(|i| (&vcpus[i].vm, vcpus[i].index));
            interrupts::handle_physical(director, live);
            continue;
        };
        switch_to(director, &mut vcpus, &mut loaded, current);
        match vcpus[current].run(director) {
            Event::Yield | Event::Blocked => next = current + 1,
            Event::Stopped => next = current,
        }
    }
}

/// Hands the vCPUs of stopping VMs back to the director.
#[allow(clippy::vec_box, reason = "vCPUs are boxed so moving them between CPU queues stays cheap")]
fn reap_stopped(director: &Director, vcpus: &mut Vec<Box<Vcpu>>, loaded: &mut Option<usize>) {
    let mut i = 0;
    while i < vcpus.len() {
        if !vcpus[i].vm.stopping.load(Ordering::Acquire) {
            i += 1;
            continue;
        }
        let mut vcpu = vcpus.remove(i);
        match *loaded {
            Some(l) if l == i => {
                vcpu.unload(director);
                *loaded = None;
            }
            Some(l) if l > i => *loaded = Some(l - 1),
            _ => {}
        }
        director.vcpu_stopped(vcpu);
    }
}

fn switch_to(director: &Director, vcpus: &mut [Box<Vcpu>], loaded: &mut Option<usize>, target: usize) {
    if *loaded == Some(target) {
        return;
    }
    if let Some(previous) = *loaded {
        vcpus[previous].save(director);
    }
    log::debug!("vm {} vCPU {} loaded", vcpus[target].vm.name, vcpus[target].index);
    vcpus[target].load(director);
    *loaded = Some(target);
}
