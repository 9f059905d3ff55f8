//! `HVC` and trapped `SMC`: SMCCC calls, answered by the VM's PSCI model or, for
//! the hypervisor's own function IDs, by `vm::hypercall`.

use core::sync::atomic::Ordering;

use hv_abi::Stat;

use super::{Exit, Next, Services};
use crate::mm::Ipa;
use crate::vm::events::BadEvent;
use crate::vm::hypercall::{self, HypercallEnv, NotGuestRam};
use crate::vm::model::VmModel;
use crate::vm::stats::add;
use crate::vm::vpsci::PsciOutcome;

/// `HVC #imm`: ELR already points past the instruction.
pub fn handle_hvc<S: Services>(exit: &mut Exit<'_, S>, imm: u16) -> Next {
    handle_conduit(exit, imm)
}

/// A trapped `SMC #imm` (HCR_EL2.TSC): ELR points at the instruction itself.
pub fn handle_smc<S: Services>(exit: &mut Exit<'_, S>, imm: u16) -> Next {
    exit.skip_instruction();
    handle_conduit(exit, imm)
}

/// SMCCC uses `#0` only; other immediates are not calls (KVM answers them the
/// same way: NOT_SUPPORTED in x0).
fn handle_conduit<S: Services>(exit: &mut Exit<'_, S>, imm: u16) -> Next {
    if imm != 0 {
        exit.registers.x[0] = hv_abi::Error::NotSupported as i64 as u64;
        return Next::Resume;
    }
    add(&exit.vm.stats.hypercalls, 1);
    let function = exit.registers.x[0] as u32;
    let [a1, a2, a3] = [exit.registers.x[1], exit.registers.x[2], exit.registers.x[3]];
    if hypercall::is_hypercall(function) {
        return handle_hypercall(exit, function, a1, a2);
    }
    let outcome = exit.vm.psci.lock().call(
        exit.vcpu,
        function,
        [a1, a2, a3],
        (hv_abi::machine::RAM_BASE, exit.vm.identity.ram_bytes),
    );
    if let Some(x0) = outcome.caller_x0() {
        exit.registers.x[0] = x0;
    }
    match outcome {
        PsciOutcome::Return(_) => Next::Resume,
        PsciOutcome::StartVcpu { target, entry, context_id } => {
            if let Some(request) = exit.vm.start_requests.lock().get_mut(target) {
                *request = Some((entry, context_id));
            }
            if let Some(&host) = exit.vm.identity.hosts.get(target) {
                exit.services.kick_cpus(&[host]);
            }
            Next::Resume
        }
        PsciOutcome::Suspend => Next::Block { until: None },
        PsciOutcome::StopCallingVcpu => {
            if !exit.vm.psci.lock().any_running() {
                log::info!("vm {}: last vCPU called CPU_OFF; stopping the VM", exit.vm.identity.name);
                return exit.stop_vm(0);
            }
            Next::PowerOff
        }
        PsciOutcome::SystemOff => {
            log::info!("vm {}: PSCI SYSTEM_OFF", exit.vm.identity.name);
            exit.stop_vm(0)
        }
        PsciOutcome::SystemReset => {
            log::info!("vm {}: PSCI SYSTEM_RESET", exit.vm.identity.name);
            exit.vm.reset_requested.store(true, Ordering::Release);
            exit.stop_vm(0)
        }
    }
}

fn handle_hypercall<S: Services>(exit: &mut Exit<'_, S>, function: u32, a1: u64, a2: u64) -> Next {
    let outcome = hypercall::handle(function, a1, a2, &mut CallEnv { vm: exit.vm, services: exit.services });
    match outcome {
        hypercall::Outcome::Return(x0) => {
            exit.registers.x[0] = x0;
            Next::Resume
        }
        hypercall::Outcome::Exit(status) => exit.stop_vm(status),
        hypercall::Outcome::Yield => {
            exit.registers.x[0] = 0;
            Next::Yield
        }
    }
}

/// What a vCPU's hypercalls reach: its VM and the machine's services.
struct CallEnv<'a, S> {
    vm: &'a VmModel,
    services: &'a mut S,
}

impl<S: Services> HypercallEnv for CallEnv<'_, S> {
    fn read_guest(&mut self, ipa: u64, out: &mut [u8]) -> Result<(), NotGuestRam> {
        self.services.read_guest(Ipa::new(ipa), out)
    }

    fn print_line(&mut self, text: &[u8]) {
        self.services.guest_line(text);
    }

    fn event_set(&mut self, index: u64, value: u64) -> Result<(), BadEvent> {
        self.services.event_set(index, value)
    }

    fn event_get(&mut self, index: u64) -> Result<u64, BadEvent> {
        self.services.event_get(index)
    }

    fn stat(&mut self, stat: Stat) -> u64 {
        let stats = &self.vm.stats;
        match stat {
            Stat::Faults4K => stats.faults_4k.load(Ordering::Relaxed),
            Stat::Faults2M => stats.faults_2m.load(Ordering::Relaxed),
            Stat::BytesSanitised => stats.bytes_sanitised(),
            Stat::BootCount => self.vm.identity.boot_count,
        }
    }
}
