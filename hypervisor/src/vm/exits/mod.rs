//! Handling a guest's synchronous exits, one room per exception class (as KVM's
//! `handle_exit.c` and Hafnium's `handler.c` split them):
//!
//! | exit | module |
//! | --- | --- |
//! | stage-2 data/instruction abort: guest RAM faults, emulated MMIO, bad addresses | [`abort`] |
//! | trapped system-register access or system instruction | [`sysreg`] (a table of encodings) |
//! | `HVC`/`SMC`: SMCCC, PSCI and our hypercalls | [`call`] |
//! | `WFI`/`WFIT` (and stray `WFE`/`WFET`) | [`wfx`] |
//! | anything else | UNDEFINED, here |
//!
//! Handlers are portable: they see the VM's model ([`VmModel`]), the exiting
//! vCPU's registers and syndrome, and the rest of the machine through
//! [`Services`], which the runtime implements on the hardware and host tests
//! with a fake (`tests.rs`). Every value they read from the guest is hostile:
//! they answer the guest at the guest (an injected exception, an error code) and
//! log through the VM's rate-limited diagnostics.

pub mod abort;
pub mod call;
pub mod sysreg;
#[cfg(test)]
mod tests;
pub mod wfx;

use alloc::string::String;

use super::events::BadEvent;
use super::exit::{self, GuestExit};
use super::hypercall::NotGuestRam;
use super::inject;
use super::model::VmModel;
use super::stage1_walk::El1Translation;
use crate::guest_context::{El1ExceptionRegisters, El1VectorState, GuestRegisters, VirtualTimerRegister};
use crate::mm::{GuestVa, Ipa};

/// What the vCPU does after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Re-enter the guest.
    Resume,
    /// Let another vCPU on this CPU run (HV_YIELD).
    Yield,
    /// Wait for an interrupt, or until the physical counter reaches `until`
    /// (a WFIT deadline) if given.
    Block { until: Option<u64> },
    /// `CPU_OFF`: the vCPU does not run again until a `CPU_ON`, interrupts or not.
    PowerOff,
    /// The VM is stopping.
    Stop,
}

/// Everything an exit handler needs beyond the VM's model: the CPU it runs on,
/// the VM's memory, the console, the other CPUs. The runtime implements it on the
/// hardware; host tests use a fake that records what was asked.
pub trait Services {
    /// The generic counter: (count, frequency in Hz).
    fn counter(&self) -> (u64, u64);
    /// The CPU's own value of ID register `S3_0_C0_C<crm>_<op2>` (0 if unknown).
    fn host_id_register(&self, crm: u8, op2: u8) -> u64;
    /// The 32-bit instruction at guest virtual address `va` of the live vCPU,
    /// through its stage 1 and stage 2; `None` if it does not translate to RAM.
    fn read_guest_instruction(&mut self, va: GuestVa) -> Option<u32>;
    /// Performs a data-cache clean and invalidate by set/way (`DC CISW` operand).
    fn clean_invalidate_by_set_way(&mut self, operand: u64);
    /// The live vCPU's VBAR_EL1 and SCTLR_EL1.
    fn el1_vector_state(&self) -> El1VectorState;
    /// Writes the live vCPU's ELR/SPSR/ESR/FAR_EL1.
    fn write_el1_exception_registers(&mut self, registers: &El1ExceptionRegisters);
    /// Makes the given physical CPUs look at their vCPUs again.
    fn kick_cpus(&mut self, cpus: &[usize]);
    /// Bytes the VM's UART transmitted.
    fn guest_output(&mut self, bytes: &[u8]);
    /// A whole line the VM printed through `HV_PRINT`.
    fn guest_line(&mut self, text: &[u8]);
    /// Moves waiting console input into the VM's UART, if it is the console VM.
    fn deliver_console_input(&mut self);
    /// Whether `ipa` is in the VM's RAM or shared regions.
    fn is_guest_memory(&self, ipa: Ipa) -> bool;
    /// Backs the guest-memory page holding `ipa` (the stage-2 fault path, with
    /// MTE tag sanitising). An error is fatal to the VM.
    fn back_guest_memory(&mut self, ipa: Ipa) -> Result<(), String>;
    /// Copies guest RAM at `ipa` into `out`.
    fn read_guest(&mut self, ipa: Ipa, out: &mut [u8]) -> Result<(), NotGuestRam>;
    /// `HV_EVENT_SET` / `HV_EVENT_GET` on the VM's event group.
    fn event_set(&mut self, index: u64, value: u64) -> Result<(), BadEvent>;
    fn event_get(&mut self, index: u64) -> Result<u64, BadEvent>;
    /// The CPU implements FEAT_WFxT (so a trapped WFI may be a WFIT QEMU misreports).
    fn has_wfxt(&self) -> bool;
    /// Reads the live vCPU's virtual timer `register`, or writes `value` to it
    /// (accesses trapped by `CNTHCTL_EL2.EL1TVT`). The run loop samples the
    /// timer's output before the next entry.
    fn virtual_timer_register(&mut self, register: VirtualTimerRegister, value: Option<u64>) -> u64;
    /// The live vCPU's TTBR0/TTBR1/TCR_EL1 (to replay its stage-1 walk).
    fn el1_translation(&self) -> El1Translation;
}

/// One synchronous exit being handled.
pub struct Exit<'a, S: Services> {
    pub vm: &'a VmModel,
    /// The exiting vCPU's index in its VM.
    pub vcpu: usize,
    pub registers: &'a mut GuestRegisters,
    /// ESR_EL2 of the exit (its IL says how far the PC advances).
    pub esr: u64,
    pub services: &'a mut S,
}

/// Handles one decoded synchronous exit.
pub fn handle<S: Services>(exit: &mut Exit<'_, S>, decoded: GuestExit) -> Next {
    match decoded {
        GuestExit::Hvc { imm } => call::handle_hvc(exit, imm),
        GuestExit::Smc { imm } => call::handle_smc(exit, imm),
        GuestExit::Stage2Abort(abort) => abort::handle(exit, abort),
        GuestExit::SysReg(access) => sysreg::handle(exit, access),
        GuestExit::Wait(kind) => wfx::handle(exit, kind),
        GuestExit::Unhandled(class) => {
            let pc = exit.registers.pc;
            exit.diagnostic(
                log::Level::Warn,
                format_args!("unexpected {} at {pc:#x}; injecting UNDEFINED", class.name()),
            );
            exit.inject_undefined();
            Next::Resume
        }
    }
}

impl<S: Services> Exit<'_, S> {
    /// Completes the trapped instruction: the PC moves past it by its length
    /// (ESR_EL2.IL), wrapping like the hardware's own increment.
    pub fn skip_instruction(&mut self) {
        self.registers.pc = inject::next_pc(self.registers.pc, self.esr, self.registers.pstate);
    }

    /// Injects a synchronous exception whose syndrome reports the length of the
    /// instruction that trapped (IL = 0 for a 16-bit T32 instruction).
    pub fn inject(&mut self, esr: u64, far: u64) {
        let esr = (esr & !inject::ESR_IL) | (self.esr & inject::ESR_IL);
        let el1 = self.services.el1_vector_state();
        let saved = inject::take_synchronous(self.registers, el1, esr, far, self.vm.identity.mte);
        self.services.write_el1_exception_registers(&saved);
    }

    pub fn inject_undefined(&mut self) {
        self.inject(exit::INJECTED_UNDEFINED_SYNDROME, 0);
    }

    /// A rate-limited diagnostic about this VM.
    pub fn diagnostic(&self, level: log::Level, message: core::fmt::Arguments) {
        self.vm.diagnostic_at(self.services.counter(), level, message);
    }

    /// Stops the VM with `status` (the first request wins) and kicks its CPUs.
    pub fn stop_vm(&mut self, status: i64) -> Next {
        if self.vm.request_stop(status) {
            self.services.kick_cpus(&self.vm.identity.hosts);
        }
        Next::Stop
    }

    /// Interrupt state changed: the VM's vCPUs look again (on their CPUs).
    pub fn interrupts_changed(&mut self) {
        self.vm.interrupts_changed();
        self.services.kick_cpus(&self.vm.identity.hosts);
    }
}
