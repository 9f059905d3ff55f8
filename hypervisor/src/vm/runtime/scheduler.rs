//! Each physical CPU runs the vCPUs pinned to it, round robin: a vCPU keeps the
//! CPU until it yields (HV_YIELD), blocks (WFI, CPU_SUSPEND, powered off), its
//! VM stops, or its time slice ends while another vCPU of this CPU is runnable.
//! Switching vCPUs saves the outgoing one's EL1, MTE and virtual interrupt state
//! and restores the incoming one's. With nothing to run, the CPU waits for a
//! physical interrupt: a guest timer, console input, a kick from another CPU, or
//! the EL2 timer.
//!
//! The EL2 physical timer (CNTHP) is armed before every entry and every idle
//! wait for the earliest of: a waiting vCPU's WFIT deadline, the virtual timer
//! deadline of each waiting vCPU that is switched out (its timer cannot raise
//! the physical interrupt: another vCPU's timer state is live), and the end of
//! the running vCPU's [`TIME_SLICE_MS`] if another vCPU here is runnable. So a
//! sleeping vCPU wakes at its deadline whatever shares its CPU, and no vCPU
//! can keep its CPU from a runnable neighbour for longer than a time slice.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::director::{self, Director};
use super::vcpu::{Event, Vcpu};
use super::{interrupts, kick};
use crate::arch::aarch64::{cpu, guest};

/// How long a vCPU runs before a runnable vCPU on the same CPU gets its turn.
pub const TIME_SLICE_MS: u64 = 10;

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
        // Nothing stale may survive a pass: this pass looks at everything.
        kick::take_reschedule();
        let count = vcpus.len();
        let (now, frequency) = cpu::counter();
        // Round robin from `next`; each vCPU is asked at most once per pass.
        let mut ready =
            (0..count).map(|k| (next + k) % count.max(1)).filter(|&i| vcpus[i].ready(loaded == Some(i), now));
        let Some(current) = ready.next() else {
            // Nothing to run: wait for an interrupt (masked at EL2, it still ends WFI).
            // Reaping may itself have queued vCPUs here (a VM restarted by this
            // CPU), and nobody kicks us for those.
            if !director.incoming[cpu].lock().is_empty() {
                continue;
            }
            guest::set_wakeup(earliest_wakeup(&vcpus, loaded, None));
            aarch64_cpu::asm::wfi();
            let live = loaded.map(|i| (&vcpus[i].vm, vcpus[i].index));
            interrupts::handle_physical(&director.host, live);
            continue;
        };
        // A time slice only matters if someone else here could run.
        let contended = ready.next().is_some();
        let slice_end = contended.then(|| now.saturating_add(frequency.saturating_mul(TIME_SLICE_MS) / 1000));
        switch_to(director, &mut vcpus, &mut loaded, current);
        guest::set_wakeup(earliest_wakeup(&vcpus, loaded, slice_end));
        match vcpus[current].run(&director.host) {
            Event::Yield | Event::Blocked => next = current + 1,
            Event::Stopped => next = current,
        }
    }
}

/// The earliest of `slice_end` and every waiting vCPU's wake-up deadline.
fn earliest_wakeup(vcpus: &[Box<Vcpu>], loaded: Option<usize>, slice_end: Option<u64>) -> Option<u64> {
    vcpus.iter().enumerate().filter_map(|(i, vcpu)| vcpu.wakeup_deadline(loaded == Some(i))).chain(slice_end).min()
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
                vcpu.unload(&director.host);
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
        vcpus[previous].save(&director.host);
    }
    log::debug!("vm {} vCPU {} loaded", vcpus[target].vm.identity.name, vcpus[target].index);
    vcpus[target].load(&director.host);
    *loaded = Some(target);
}
