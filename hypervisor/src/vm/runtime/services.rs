//! The exit handlers' [`Services`] and the vGIC's [`ListRegisterFile`] on the
//! real machine: the arch layer, the VM's stage-2 memory, the console, the
//! scheduler's kicks.

use alloc::string::{String, ToString};

use super::host::Host;
use super::stage2::FaultResolution;
use super::virtual_machine::Vm;
use crate::arch::aarch64::id_registers::read_id_register;
use crate::arch::aarch64::{cache, cpu, gic, guest};
use crate::guest_context::{El1ExceptionRegisters, El1VectorState, VirtualTimerRegister};
use crate::mm::{GuestVa, Ipa};
use crate::vm::events::BadEvent;
use crate::vm::exits::Services;
use crate::vm::hypercall::NotGuestRam;
use crate::vm::stage1_walk::El1Translation;
use crate::vm::vgic::vcpu_lrs::ListRegisterFile;

/// The services for an exit of a vCPU of `vm`, whose state is live on this CPU.
pub struct MachineServices<'a> {
    pub vm: &'a Vm,
    pub host: &'a Host,
}

impl Services for MachineServices<'_> {
    fn counter(&self) -> (u64, u64) {
        cpu::counter()
    }

    fn host_id_register(&self, crm: u8, op2: u8) -> u64 {
        read_id_register(crm, op2).unwrap_or(0)
    }

    fn read_guest_instruction(&mut self, va: GuestVa) -> Option<u32> {
        guest::read_guest_instruction(va)
    }

    fn clean_invalidate_by_set_way(&mut self, operand: u64) {
        cache::clean_invalidate_by_set_way(operand);
    }

    fn el1_vector_state(&self) -> El1VectorState {
        guest::el1_vector_state()
    }

    fn write_el1_exception_registers(&mut self, registers: &El1ExceptionRegisters) {
        guest::write_el1_exception_registers(registers);
    }

    fn kick_cpus(&mut self, cpus: &[usize]) {
        super::kick::kick_cpus(cpus);
    }

    fn guest_output(&mut self, bytes: &[u8]) {
        crate::console::write_guest(self.vm.identity.index, &self.vm.identity.name, bytes);
    }

    fn guest_line(&mut self, text: &[u8]) {
        crate::console::write_guest_line(self.vm.identity.index, &self.vm.identity.name, text);
    }

    fn deliver_console_input(&mut self) {
        self.host.console.deliver(self.vm);
    }

    fn is_guest_memory(&self, ipa: Ipa) -> bool {
        self.vm.memory.lock().guest.contains(ipa)
    }

    fn back_guest_memory(&mut self, ipa: Ipa) -> Result<(), String> {
        let sanitiser = self.vm.sanitiser(&self.host.mte, &self.host.tag_state);
        match self.vm.memory.lock().handle_translation_fault(ipa, &sanitiser, &self.vm.stats) {
            Ok(FaultResolution::Mapped { .. } | FaultResolution::AlreadyMapped) => Ok(()),
            Err(error) => Err(error.to_string()),
        }
    }

    fn read_guest(&mut self, ipa: Ipa, out: &mut [u8]) -> Result<(), NotGuestRam> {
        self.vm.memory.lock().read_guest(ipa, out).map_err(|_| NotGuestRam)
    }

    fn event_set(&mut self, index: u64, value: u64) -> Result<(), BadEvent> {
        self.host.events.set(self.vm.identity.index, index, value)
    }

    fn event_get(&mut self, index: u64) -> Result<u64, BadEvent> {
        self.host.events.get(self.vm.identity.index, index)
    }

    fn has_wfxt(&self) -> bool {
        self.host.wfxt
    }

    fn virtual_timer_register(&mut self, register: VirtualTimerRegister, value: Option<u64>) -> u64 {
        guest::virtual_timer_register(register, value)
    }

    fn el1_translation(&self) -> El1Translation {
        let (ttbr0, ttbr1, tcr) = guest::el1_translation_registers();
        El1Translation { ttbr0, ttbr1, tcr }
    }
}

/// This CPU's list registers (`host.list_registers` of them).
pub struct HardwareListRegisters {
    pub count: usize,
}

impl ListRegisterFile for HardwareListRegisters {
    fn count(&self) -> usize {
        self.count
    }

    fn read(&self, n: usize) -> u64 {
        gic::read_list_register(n)
    }

    fn write(&mut self, n: usize, bits: u64) {
        gic::write_list_register(n, bits);
    }

    fn set_underflow_interrupt(&mut self, enabled: bool) {
        gic::set_underflow_interrupt(enabled);
    }

    fn deactivate_physical(&mut self, intid: u32) {
        gic::deactivate(intid);
    }
}
