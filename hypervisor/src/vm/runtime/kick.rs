//! Making a physical CPU choose again which vCPU to run: for this CPU a flag its
//! scheduler takes at the next exit, for another CPU an SGI (the kick) that
//! brings it out of its guest or its idle wait.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::aarch64::{cpu, gic};
use crate::cpus::{CPUS, MAX_CPUS};

/// Set when this CPU must re-run its scheduling decision at the next exit
/// (a vCPU of this CPU became runnable from this CPU, or the EL2 timer fired).
static RESCHEDULE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Asks this CPU's scheduler to choose again at the next exit.
pub fn request_reschedule() {
    if let Some(flag) = RESCHEDULE.get(cpu::index()) {
        flag.store(true, Ordering::Release);
    }
}

/// Whether a reschedule was requested on this CPU since the last call.
pub fn take_reschedule() -> bool {
    RESCHEDULE.get(cpu::index()).is_some_and(|flag| flag.swap(false, Ordering::AcqRel))
}

/// Makes the given physical CPUs look at their vCPUs again (new work, an
/// interrupt for a waiting vCPU, a VM stopping); for this CPU itself, at its
/// next exit.
pub fn kick_cpus(cpus: &[usize]) {
    let me = cpu::index();
    for &target in cpus {
        if target == me {
            request_reschedule();
        } else if let Some(mpidr) = CPUS.mpidr(target) {
            gic::kick(mpidr);
        }
    }
}
