//! A vCPU: the guest's registers, EL1 and interrupt-controller state, and what
//! happens on each exit.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use hv_abi::{Stat, machine};

use super::director::Director;
use super::interrupts;
use super::stage2::FaultResolution;
use super::virtual_machine::Vm;
use crate::arch::aarch64::gic::{self, VirtualInterfaceState};
use crate::arch::aarch64::guest::{
    self, El1Context, ExitVector, FpContext, GuestRegisters, MteContext, PSTATE_EL1H_MASKED, PauthContext,
    SCTLR_EL1_RESET,
};
use crate::arch::aarch64::id_registers::read_id_register;
use crate::arch::aarch64::{cache, cpu};
use crate::exception::{SysRegAccess, SysRegDirection, WfxKind};
use crate::vm::events::BadEvent;
use crate::vm::exit::{self, GuestExit, MmioAccess, Stage2Abort, Stage2FaultKind, injected_abort_syndrome};
use crate::vm::stats::add;
use crate::vm::vgic::list_register::{ListRegister, LrState};
use crate::vm::vgic::sgi;
use crate::vm::vpsci::{PowerState, PsciOutcome};
use crate::vm::{hypercall, id_registers, inject};

/// What the scheduler should do after running a vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Let another vCPU on this CPU run (HV_YIELD).
    Yield,
    /// The vCPU waits for an interrupt (WFI, CPU_SUSPEND) or is powered off.
    Blocked,
    /// The VM is stopping: this vCPU is done.
    Stopped,
}

/// What handling one exit decided.
enum Next {
    Resume,
    Yield,
    /// Wait for an interrupt (or the vCPU's wake-up deadline).
    Block,
    /// `CPU_OFF`: the vCPU does not run again until a `CPU_ON`, interrupts or not.
    PowerOff,
    Stop,
}

/// Most list registers the architecture allows.
const MAX_LIST_REGISTERS: usize = 16;

/// What a list register holds, as far as this vCPU knows.
#[derive(Debug, Clone, Copy)]
struct ListRegisterSlot {
    intid: u32,
    /// Hardware-linked: the physical interrupt is deactivated by the guest's EOI.
    hw: bool,
}

pub struct Vcpu {
    pub vm: Arc<Vm>,
    /// vCPU number within the VM (its virtual MPIDR affinity).
    pub index: usize,
    registers: GuestRegisters,
    el1: El1Context,
    mte: MteContext,
    fp: FpContext,
    pauth: PauthContext,
    interface: VirtualInterfaceState,
    slots: [Option<ListRegisterSlot>; MAX_LIST_REGISTERS],
    /// List register contents while another vCPU has the CPU.
    saved_list_registers: [u64; MAX_LIST_REGISTERS],
    /// Waiting for an interrupt (WFI / CPU_SUSPEND).
    waiting: bool,
    /// While waiting: physical counter value at which to stop waiting anyway
    /// (a WFIT deadline).
    wake_at: Option<u64>,
    /// ESR_EL2 of the exit being handled (its IL says how far the PC advances).
    exit_esr: u64,
    /// The VM's interrupt generation when the list registers were last filled.
    filled_at: u64,
    /// A list register retired since the last fill.
    retired: bool,
}

impl Vcpu {
    /// vCPU `index` of `vm` at its reset state: vCPU 0 (and every vCPU of a bare
    /// VM) at the VM's entry point, the others powered off until `CPU_ON`.
    pub fn new(vm: Arc<Vm>, index: usize) -> Self {
        let mut registers = GuestRegisters { pc: vm.entry.pc, pstate: PSTATE_EL1H_MASKED, ..Default::default() };
        registers.x[..5].copy_from_slice(&vm.entry.args);
        let el1 = El1Context { sctlr: SCTLR_EL1_RESET, ..Default::default() };
        Self {
            vm,
            index,
            registers,
            el1,
            mte: MteContext::default(),
            fp: FpContext::default(),
            pauth: PauthContext::default(),
            interface: VirtualInterfaceState::default(),
            slots: [None; MAX_LIST_REGISTERS],
            saved_list_registers: [0; MAX_LIST_REGISTERS],
            waiting: false,
            wake_at: None,
            exit_esr: 0,
            filled_at: 0,
            retired: false,
        }
    }

    fn powered_on(&self) -> bool {
        self.vm.psci.lock().state(self.index) == Some(PowerState::On)
    }

    fn start_request(&self) -> Option<(u64, u64)> {
        self.vm.start_requests.lock()[self.index]
    }

    /// Whether the scheduler should run this vCPU now. `loaded`: its state is
    /// live on this CPU (so its virtual timer raises the physical interrupt
    /// itself); a switched-out vCPU is due when its saved timer deadline passed.
    pub fn ready(&self, loaded: bool, now: u64) -> bool {
        if self.vm.stopping.load(Ordering::Acquire) {
            return true;
        }
        if !self.powered_on() {
            return self.start_request().is_some();
        }
        if !self.waiting {
            return true;
        }
        if self.wake_at.is_some_and(|deadline| now >= deadline) {
            return true;
        }
        if !loaded {
            if self.timer_deadline().is_some_and(|deadline| now >= deadline) {
                return true;
            }
            let saved_pending =
                self.saved_list_registers.iter().any(|&bits| ListRegister::from_bits(bits).state.is_pending());
            if saved_pending {
                return true;
            }
        }
        self.vm.vgic.lock().next_pending(self.index).is_some()
    }

    /// When this vCPU, if it is waiting, must be looked at again: its WFIT
    /// deadline, and (switched out) its virtual timer's deadline.
    pub fn wakeup_deadline(&self, loaded: bool) -> Option<u64> {
        if !self.waiting || self.vm.stopping.load(Ordering::Relaxed) {
            return None;
        }
        let timer = if loaded { None } else { self.timer_deadline() };
        match (self.wake_at, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The saved virtual timer's deadline, if it is enabled and unmasked
    /// (CNTV_CTL_EL0 ENABLE = 1, IMASK = 0). Only meaningful while switched out.
    fn timer_deadline(&self) -> Option<u64> {
        (self.el1.cntv_ctl & 0b11 == 0b01).then_some(self.el1.cntv_cval)
    }

    /// Makes this vCPU's state live on the current CPU.
    pub fn load(&self, director: &Director) {
        guest::set_virtual_mpidr(self.index as u64);
        self.el1.restore();
        self.fp.restore();
        if director.mte.level.has_tag_storage() {
            self.mte.restore();
        }
        if director.pointer_authentication {
            self.pauth.restore();
        }
        self.interface.restore();
        for n in 0..director.list_registers {
            gic::write_list_register(n, self.saved_list_registers[n]);
        }
    }

    /// Forces the next entry to look at the vGIC (e.g. after a CPU_ON reset).
    fn invalidate_fill(&mut self) {
        self.filled_at = 0;
    }

    /// Saves the live state into this vCPU before another one takes the CPU.
    pub fn save(&mut self, director: &Director) {
        self.el1.save();
        self.fp.save();
        if director.mte.level.has_tag_storage() {
            self.mte.save();
        }
        if director.pointer_authentication {
            self.pauth.save();
        }
        self.interface.save();
        for n in 0..director.list_registers {
            let mut lr = ListRegister::from_bits(gic::read_list_register(n));
            // The physical timer interrupt belongs to this CPU, not to the vCPU:
            // keep the virtual interrupt, drop the link, free the physical one.
            lr.hw = None;
            self.saved_list_registers[n] = lr.to_bits();
            gic::write_list_register(n, 0);
        }
        gic::deactivate(gic::layout().virtual_timer);
        gic::set_underflow_interrupt(false);
    }

    /// Drops this vCPU's live interrupt state for good (it stopped): the physical
    /// timer interrupt, which may be active (behind a hardware-linked list register,
    /// or acknowledged just before the stop), is deactivated so it can fire for
    /// whoever runs next.
    pub fn unload(&mut self, director: &Director) {
        for n in 0..director.list_registers {
            self.slots[n] = None;
            gic::write_list_register(n, 0);
        }
        gic::deactivate(gic::layout().virtual_timer);
        gic::set_underflow_interrupt(false);
        guest::disable_virtual_timer();
        guest::park_stage2();
    }

    /// Runs the guest until it yields, blocks or its VM stops. The vCPU must be loaded.
    pub fn run(&mut self, director: &Director) -> Event {
        if !self.powered_on() {
            match self.take_start_request() {
                true => {}
                false => return Event::Blocked,
            }
        }
        self.waiting = false;
        self.wake_at = None;
        loop {
            if self.vm.stopping.load(Ordering::Acquire) {
                return Event::Stopped;
            }
            self.fill_list_registers(director);
            // SAFETY: `load` made this vCPU's EL1 state live; the VM's stage-2
            // tables only map memory it owns, and live as long as the VM.
            let (vector, syndrome) = unsafe { guest::run(&self.vm.controls, &mut self.registers) };
            self.exit_esr = syndrome.esr;
            add(&self.vm.stats.exits, 1);
            self.retire_list_registers(director);
            let next = match vector {
                ExitVector::Synchronous => {
                    self.handle_synchronous(director, exit::decode(syndrome.esr, syndrome.far, syndrome.hpfar))
                }
                ExitVector::Irq | ExitVector::Fiq => {
                    interrupts::handle_physical(director, Some((&self.vm, self.index)));
                    Next::Resume
                }
                ExitVector::SError => {
                    self.vm.diagnostic(
                        log::Level::Error,
                        format_args!("SError (ESR {:#x}); stopping the VM", syndrome.esr),
                    );
                    self.vm.request_stop(-1);
                    Next::Stop
                }
            };
            match next {
                Next::Resume => {
                    // Another vCPU of this CPU became runnable, or a wake-up or
                    // time-slice deadline passed: let the scheduler choose.
                    if super::scheduler::take_reschedule() {
                        return Event::Yield;
                    }
                }
                Next::Yield => return Event::Yield,
                Next::Block => {
                    if self.has_pending_interrupt(director) {
                        continue;
                    }
                    self.waiting = true;
                    return Event::Blocked;
                }
                Next::PowerOff => return Event::Blocked,
                Next::Stop => return Event::Stopped,
            }
        }
    }

    /// Completes the trapped instruction: the PC moves past it by its length
    /// (ESR_EL2.IL), wrapping like the hardware's own increment.
    fn skip_instruction(&mut self) {
        self.registers.pc = inject::next_pc(self.registers.pc, self.exit_esr, self.registers.pstate);
    }

    /// A `CPU_ON` for this vCPU: reset to its entry point with the context ID in x0.
    fn take_start_request(&mut self) -> bool {
        let Some((entry, context)) = self.vm.start_requests.lock()[self.index].take() else { return false };
        self.registers = GuestRegisters { pc: entry, pstate: PSTATE_EL1H_MASKED, ..Default::default() };
        self.registers.x[0] = context;
        self.el1 = El1Context { sctlr: SCTLR_EL1_RESET, ..Default::default() };
        self.el1.restore();
        self.waiting = false;
        self.wake_at = None;
        self.vm.psci.lock().vcpu_started(self.index);
        self.invalidate_fill();
        true
    }

    fn has_pending_interrupt(&self, director: &Director) -> bool {
        let in_list_register = (0..director.list_registers)
            .any(|n| self.slots[n].is_some() && ListRegister::from_bits(gic::read_list_register(n)).state.is_pending());
        in_list_register || self.vm.vgic.lock().next_pending(self.index).is_some()
    }

    /// Loads free list registers with the most urgent pending interrupts; asks for
    /// an underflow maintenance interrupt when more are waiting than fit.
    fn fill_list_registers(&mut self, director: &Director) {
        let generation = self.vm.interrupt_generation.load(Ordering::Acquire);
        if generation == self.filled_at && !self.retired {
            return;
        }
        self.filled_at = generation;
        self.retired = false;
        let mut vgic = self.vm.vgic.lock();
        for n in 0..director.list_registers {
            if self.slots[n].is_some() {
                continue;
            }
            let Some(irq) = vgic.next_pending(self.index) else { break };
            let mut lr = ListRegister::from_pending(irq);
            let hw = irq.intid == machine::VIRTUAL_TIMER_INTID;
            if hw {
                // The physical timer interrupt is active (left so by
                // `interrupts::handle_physical`); the guest's EOI deactivates it.
                lr.hw = Some(gic::layout().virtual_timer);
                lr.eoi_maintenance = false;
            }
            gic::write_list_register(n, lr.to_bits());
            vgic.mark_in_list_register(self.index, irq.intid);
            self.slots[n] = Some(ListRegisterSlot { intid: irq.intid, hw });
        }
        gic::set_underflow_interrupt(vgic.next_pending(self.index).is_some());
    }

    /// Reads the list registers back after an exit: interrupts the guest finished
    /// with go back to the model (a level line still high becomes pending again).
    fn retire_list_registers(&mut self, director: &Director) {
        if self.slots[..director.list_registers].iter().all(Option::is_none) {
            return;
        }
        let mut vgic = self.vm.vgic.lock();
        for n in 0..director.list_registers {
            let Some(slot) = self.slots[n] else { continue };
            let lr = ListRegister::from_bits(gic::read_list_register(n));
            if lr.state == LrState::Invalid {
                vgic.list_register_retired(self.index, slot.intid, false);
                if slot.hw {
                    // Deactivated through the link; if the timer is still due, the
                    // physical interrupt fires again and raises the line anew.
                    vgic.set_level(slot.intid, self.index, false);
                }
                self.slots[n] = None;
                self.retired = true;
                gic::write_list_register(n, 0);
            } else {
                vgic.sync_list_register(self.index, slot.intid, lr.state);
            }
        }
    }

    fn handle_synchronous(&mut self, director: &Director, exit: GuestExit) -> Next {
        match exit {
            GuestExit::Hvc { imm } => self.handle_conduit(director, imm),
            GuestExit::Smc { imm } => {
                // Trapped SMC: ELR points at the instruction itself.
                self.skip_instruction();
                self.handle_conduit(director, imm)
            }
            GuestExit::Stage2Abort(abort) => self.handle_stage2_abort(director, abort),
            GuestExit::SysReg(access) => self.handle_sysreg(access),
            GuestExit::Wait(kind) => self.handle_wait(director, kind),
            GuestExit::Unhandled(class) => {
                let pc = self.registers.pc;
                self.vm.diagnostic(
                    log::Level::Warn,
                    format_args!("unexpected {} at {pc:#x}; injecting UNDEFINED", class.name()),
                );
                self.inject_undefined();
                Next::Resume
            }
        }
    }

    /// An HVC or SMC: SMCCC uses `#0` only; other immediates are not calls (KVM
    /// answers them the same way: NOT_SUPPORTED in x0).
    fn handle_conduit(&mut self, director: &Director, imm: u16) -> Next {
        if imm != 0 {
            self.registers.x[0] = hv_abi::Error::NotSupported as i64 as u64;
            return Next::Resume;
        }
        self.handle_call(director)
    }

    /// WFI blocks until an interrupt is pending for the vCPU; WFIT also until its
    /// deadline (an absolute virtual-counter value; CNTVOFF_EL2 is 0, so it is
    /// the physical counter's). WFE and WFET are not trapped, but if one arrives
    /// it completes at once (a spurious wake-up, which the architecture allows).
    fn handle_wait(&mut self, director: &Director, kind: WfxKind) -> Next {
        let pc = self.registers.pc;
        let passed = inject::condition_passed(self.exit_esr, self.registers.pstate);
        self.skip_instruction();
        if !passed {
            return Next::Resume;
        }
        // A WFIT reported as WFI (QEMU does that): find its register in the
        // instruction (the PC still points at it here: it was advanced above).
        let qemu_wfit = match kind {
            WfxKind::Wfi if director.wfxt => {
                guest::read_guest_instruction(pc).and_then(inject::wfit_instruction_register)
            }
            _ => None,
        };
        let kind = if qemu_wfit.is_some() { WfxKind::Wfit } else { kind };
        match kind {
            WfxKind::Wfi => Next::Block,
            WfxKind::Wfit => {
                let deadline = inject::wfxt_register(self.exit_esr).or(qemu_wfit).map_or(0, |rt| self.register(rt));
                if cpu::counter().0 >= deadline {
                    return Next::Resume;
                }
                self.wake_at = Some(deadline);
                Next::Block
            }
            WfxKind::Wfe | WfxKind::Wfet => Next::Resume,
        }
    }

    fn handle_stage2_abort(&mut self, director: &Director, abort: Stage2Abort) -> Next {
        let in_guest_memory = self.vm.memory.lock().guest.contains(abort.ipa);
        match abort.kind {
            Stage2FaultKind::Translation if in_guest_memory => {
                let sanitiser = self.vm.sanitiser(&director.mte, &director.tag_state);
                let result = self.vm.memory.lock().handle_translation_fault(abort.ipa, &sanitiser, &self.vm.stats);
                match result {
                    Ok(FaultResolution::Mapped { .. } | FaultResolution::AlreadyMapped) => Next::Resume,
                    Err(error) => {
                        log::error!("vm {}: cannot back IPA {:#x}: {error}; stopping the VM", self.vm.name, abort.ipa);
                        self.vm.request_stop(-2);
                        Next::Stop
                    }
                }
            }
            // We map with the access flag set and full permissions, so these only
            // mean another vCPU changed the mapping meanwhile: retry.
            Stage2FaultKind::AccessFlag | Stage2FaultKind::Permission if in_guest_memory => Next::Resume,
            Stage2FaultKind::Translation if !abort.instruction && self.emulate_mmio(director, &abort) => Next::Resume,
            _ => {
                self.vm.diagnostic(
                    log::Level::Warn,
                    format_args!(
                        "{} IPA {:#x} outside its memory and devices (pc {:#x}{}); injecting a synchronous external abort",
                        if abort.instruction {
                            "instruction fetch from"
                        } else if abort.write {
                            "write to"
                        } else {
                            "read from"
                        },
                        abort.ipa,
                        self.registers.pc,
                        if abort.access.is_none() && !abort.instruction { ", no instruction syndrome" } else { "" }
                    ),
                );
                add(&self.vm.stats.injected_aborts, 1);
                let esr =
                    injected_abort_syndrome(abort.instruction, abort.write, inject::from_el1(self.registers.pstate));
                self.inject(esr, abort.far);
                Next::Resume
            }
        }
    }

    /// Emulates a load or store to the vGIC or the PL011. Returns false if the
    /// IPA is not a device, or the access cannot be decoded (no valid syndrome:
    /// the guest used an instruction the hypervisor does not emulate).
    fn emulate_mmio(&mut self, director: &Director, abort: &Stage2Abort) -> bool {
        let Some(access) = abort.access else { return false };
        let size = access.size_bytes;
        let ipa = abort.ipa;
        let value = match abort.write {
            true => Some(self.register(access.register) & size_mask(size)),
            false => None,
        };
        let handled = if self.vm.vgic.lock().region(ipa).is_some() {
            self.emulate_vgic(ipa, size, value, access)
        } else if (machine::UART_BASE..machine::UART_BASE + machine::UART_SIZE).contains(&ipa) {
            self.emulate_uart(director, ipa - machine::UART_BASE, size, value, access)
        } else {
            false
        };
        if handled {
            self.skip_instruction();
        }
        handled
    }

    fn emulate_vgic(&mut self, ipa: u64, size: u8, value: Option<u64>, access: MmioAccess) -> bool {
        let result = {
            let mut vgic = self.vm.vgic.lock();
            match value {
                Some(value) => vgic.mmio_write(ipa, size, value),
                None => vgic.mmio_read(ipa, size),
            }
        };
        let Some(result) = result else { return false };
        if result.unhandled {
            self.vm.diagnostic(log::Level::Debug, format_args!("vGIC access to {ipa:#x} (size {size}) ignored"));
        }
        if value.is_none() {
            self.complete_load(access, result.value);
        }
        if result.changed {
            self.vm.interrupts_changed();
            super::scheduler::kick_cpus(&self.vm.hosts);
        }
        true
    }

    fn emulate_uart(
        &mut self,
        director: &Director,
        offset: u64,
        size: u8,
        value: Option<u64>,
        access: MmioAccess,
    ) -> bool {
        let mut output = arrayvec::ArrayVec::<u8, 8>::new();
        let (handled, read) = {
            let mut uart = self.vm.uart.lock();
            match value {
                Some(value) => (
                    uart.write(offset, size, value, &mut |byte| {
                        // A full buffer drops the byte: one access never emits more than 8.
                        let _ = output.try_push(byte);
                    }),
                    None,
                ),
                None => match uart.read(offset, size) {
                    Some(v) => (true, Some(v)),
                    None => (false, None),
                },
            }
        };
        if !handled {
            return false;
        }
        if !output.is_empty() {
            crate::console::write_guest(self.vm.index, &self.vm.name, &output);
        }
        if let Some(read) = read {
            self.complete_load(access, read);
        }
        director.deliver_console_input(&self.vm);
        interrupts::update_uart_line(&self.vm);
        true
    }

    /// Writes a loaded value to the destination register, sign-extended or
    /// truncated as the syndrome says.
    fn complete_load(&mut self, access: MmioAccess, value: u64) {
        let bits = u32::from(access.size_bytes) * 8;
        let mut value = value & size_mask(access.size_bytes);
        if access.sign_extend && bits < 64 {
            let shift = 64 - bits;
            value = (((value << shift) as i64) >> shift) as u64;
        }
        if !access.sixty_four_bit_register {
            value &= 0xFFFF_FFFF;
        }
        self.set_register(access.register, value);
    }

    fn handle_sysreg(&mut self, access: SysRegAccess) -> Next {
        let is_id = id_registers::is_id_register(access.op0, access.op1, access.crn, access.crm);
        if is_id && access.direction == SysRegDirection::Read {
            let real = read_id_register(access.crm, access.op2).unwrap_or(0);
            let value = id_registers::guest_view(access.crm, access.op2, real, self.vm.mte);
            self.set_register(access.rt, value);
            self.skip_instruction();
            return Next::Resume;
        }
        if sgi::is_icc_sgi1r(access.op0, access.op1, access.crn, access.crm, access.op2)
            && access.direction == SysRegDirection::Write
        {
            let value = self.register(access.rt);
            let targets = self.vm.vgic.lock().send_sgi(self.index, value);
            self.vm.interrupts_changed();
            let hosts: arrayvec::ArrayVec<usize, 64> =
                targets.iter().filter_map(|v| self.vm.hosts.get(v).copied()).take(64).collect();
            super::scheduler::kick_cpus(&hosts);
            self.skip_instruction();
            return Next::Resume;
        }
        if is_debug_or_pmu_register(&access) {
            // Trapped by MDCR_EL2: read as zero, writes ignored (no guest debug or
            // PMU, and nothing a guest writes there can reach another).
            if access.direction == SysRegDirection::Read {
                self.set_register(access.rt, 0);
            }
            self.skip_instruction();
            return Next::Resume;
        }
        if is_set_way_maintenance(&access) {
            cache::clean_invalidate_by_set_way(self.register(access.rt));
            self.skip_instruction();
            return Next::Resume;
        }
        // MTE registers of a VM without MTE (HCR_EL2.ATA = 0), GMID_EL1 (TID5),
        // writes to ID registers: all UNDEFINED for the guest.
        let pc = self.registers.pc;
        self.vm.diagnostic(log::Level::Debug, format_args!("trapped {access} at {pc:#x}; injecting UNDEFINED"));
        self.inject_undefined();
        Next::Resume
    }

    fn inject_undefined(&mut self) {
        self.inject(exit::INJECTED_UNDEFINED_SYNDROME, 0);
    }

    /// Injects a synchronous exception whose syndrome reports the length of the
    /// instruction that trapped (IL = 0 for a 16-bit T32 instruction).
    fn inject(&mut self, esr: u64, far: u64) {
        let esr = (esr & !inject::ESR_IL) | (self.exit_esr & inject::ESR_IL);
        let el1 = inject::take_synchronous(&mut self.registers, guest::el1_vector_state(), esr, far, self.vm.mte);
        guest::write_el1_exception_registers(&el1);
    }

    fn register(&self, index: u8) -> u64 {
        // Register 31 is XZR in these encodings.
        self.registers.x.get(index as usize).copied().unwrap_or(0)
    }

    fn set_register(&mut self, index: u8, value: u64) {
        if let Some(slot) = self.registers.x.get_mut(index as usize) {
            *slot = value;
        }
    }

    /// An SMCCC call through HVC or (trapped) SMC: PSCI and SMCCC discovery, and
    /// the hypercalls of `hv-abi`.
    fn handle_call(&mut self, director: &Director) -> Next {
        add(&self.vm.stats.hypercalls, 1);
        let function = self.registers.x[0] as u32;
        let [a1, a2, a3] = [self.registers.x[1], self.registers.x[2], self.registers.x[3]];
        if hypercall::is_hypercall(function) {
            return self.handle_hypercall(director, function, a1, a2);
        }
        let outcome =
            self.vm.psci.lock().call(self.index, function, [a1, a2, a3], (machine::RAM_BASE, self.vm.ram_bytes));
        if let Some(x0) = outcome.caller_x0() {
            self.registers.x[0] = x0;
        }
        match outcome {
            PsciOutcome::Return(_) => Next::Resume,
            PsciOutcome::StartVcpu { target, entry, context_id } => {
                if let Some(request) = self.vm.start_requests.lock().get_mut(target) {
                    *request = Some((entry, context_id));
                }
                if let Some(&host) = self.vm.hosts.get(target) {
                    super::scheduler::kick_cpus(&[host]);
                }
                Next::Resume
            }
            PsciOutcome::Suspend => Next::Block,
            PsciOutcome::StopCallingVcpu => {
                if !self.vm.psci.lock().any_running() {
                    log::info!("vm {}: last vCPU called CPU_OFF; stopping the VM", self.vm.name);
                    self.vm.request_stop(0);
                    return Next::Stop;
                }
                Next::PowerOff
            }
            PsciOutcome::SystemOff => {
                log::info!("vm {}: PSCI SYSTEM_OFF", self.vm.name);
                self.vm.request_stop(0);
                Next::Stop
            }
            PsciOutcome::SystemReset => {
                log::info!("vm {}: PSCI SYSTEM_RESET", self.vm.name);
                self.vm.reset_requested.store(true, Ordering::Release);
                self.vm.request_stop(0);
                Next::Stop
            }
        }
    }

    fn handle_hypercall(&mut self, director: &Director, function: u32, a1: u64, a2: u64) -> Next {
        let mut env = VcpuHypercalls { vm: &self.vm, director };
        match hypercall::handle(function, a1, a2, &mut env) {
            hypercall::Outcome::Return(x0) => {
                self.registers.x[0] = x0;
                Next::Resume
            }
            hypercall::Outcome::Exit(status) => {
                self.vm.request_stop(status);
                Next::Stop
            }
            hypercall::Outcome::Yield => {
                self.registers.x[0] = 0;
                Next::Yield
            }
        }
    }
}

/// What a vCPU's hypercalls reach: its VM and the VM's event group.
struct VcpuHypercalls<'a> {
    vm: &'a Vm,
    director: &'a Director,
}

impl hypercall::HypercallEnv for VcpuHypercalls<'_> {
    fn read_guest(&mut self, ipa: u64, out: &mut [u8]) -> Result<(), hypercall::NotGuestRam> {
        self.vm.memory.lock().read_guest(ipa, out).map_err(|_| hypercall::NotGuestRam)
    }

    fn print_line(&mut self, text: &[u8]) {
        crate::console::write_guest_line(self.vm.index, &self.vm.name, text);
    }

    fn event_set(&mut self, index: u64, value: u64) -> Result<(), BadEvent> {
        self.director.events.set(self.vm.index, index, value)
    }

    fn event_get(&mut self, index: u64) -> Result<u64, BadEvent> {
        self.director.events.get(self.vm.index, index)
    }

    fn stat(&mut self, stat: Stat) -> u64 {
        let stats = &self.vm.stats;
        match stat {
            Stat::Faults4K => stats.faults_4k.load(Ordering::Relaxed),
            Stat::Faults2M => stats.faults_2m.load(Ordering::Relaxed),
            Stat::BytesSanitised => stats.bytes_sanitised(),
            Stat::BootCount => self.vm.boot_count,
        }
    }
}

/// DC ISW, DC CSW and DC CISW (op0 = 1, op1 = 0, CRn = 7, CRm = 6/10/14, op2 = 2),
/// trapped by HCR_EL2.TSW.
fn is_set_way_maintenance(access: &SysRegAccess) -> bool {
    access.op0 == 1
        && access.op1 == 0
        && access.crn == 7
        && matches!(access.crm, 6 | 10 | 14)
        && access.op2 == 2
        && access.direction == SysRegDirection::Write
}

/// Debug registers (op0 = 2) and the PMU's (PMCR_EL0 & co. at op0 = 3, op1 = 3,
/// CRn = 9, CRm = 12..=14; PMEVCNTR/PMEVTYPER at CRn = 14, CRm = 8..=15; PMINTEN*
/// at op1 = 0, CRn = 9, CRm = 14).
fn is_debug_or_pmu_register(access: &SysRegAccess) -> bool {
    let pmu_el0 = access.op0 == 3
        && access.op1 == 3
        && ((access.crn == 9 && (12..=14).contains(&access.crm)) || (access.crn == 14 && access.crm >= 8));
    let pmu_el1 = access.op0 == 3 && access.op1 == 0 && access.crn == 9 && access.crm == 14;
    access.op0 == 2 || pmu_el0 || pmu_el1
}

fn size_mask(size: u8) -> u64 {
    match size {
        8 => u64::MAX,
        n => (1u64 << (u32::from(n) * 8)) - 1,
    }
}
