//! A vCPU: the guest's registers and EL1 state, and what happens on each exit.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use hv_abi::{RAM_BASE, Stat};

use super::director::Director;
use super::stage2::FaultResolution;
use super::virtual_machine::Vm;
use crate::arch::aarch64::guest::{
    self, El1Context, ExitVector, GuestRegisters, MteContext, PSTATE_EL1H_MASKED, SCTLR_EL1_RESET,
};
use crate::arch::aarch64::id_registers::read_id_register;
use crate::exception::{SysRegAccess, SysRegDirection};
use crate::vm::exit::{self, GuestExit, Stage2Abort, Stage2FaultKind, injected_abort_syndrome};
use crate::vm::id_registers;
use crate::vm::stats::add;

/// What the scheduler should do after running a vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Let another vCPU on this CPU run (HV_YIELD, WFI).
    Yield,
    /// The VM is stopping: this vCPU is done.
    Stopped,
}

/// What handling one exit decided.
enum Next {
    Resume,
    Yield,
    Stop,
}

pub struct Vcpu {
    pub vm: Arc<Vm>,
    /// vCPU number within the VM (its virtual MPIDR affinity).
    pub index: usize,
    registers: GuestRegisters,
    el1: El1Context,
    mte: MteContext,
}

impl Vcpu {
    /// A vCPU at its reset state: EL1h, MMU off, PC at the start of RAM, with the
    /// entry arguments of `hv_abi` in x0..x4.
    pub fn new(vm: Arc<Vm>, index: usize, arg: u64) -> Self {
        let mut registers = GuestRegisters { pc: RAM_BASE, pstate: PSTATE_EL1H_MASKED, ..Default::default() };
        let (shared_ipa, shared_size) = vm.first_shared.unwrap_or((0, 0));
        registers.x[..5].copy_from_slice(&[arg, RAM_BASE, vm.ram_bytes, shared_ipa, shared_size]);
        let el1 = El1Context { sctlr: SCTLR_EL1_RESET, ..Default::default() };
        Self { vm, index, registers, el1, mte: MteContext::default() }
    }

    /// Makes this vCPU's state live on the current CPU.
    pub fn load(&self, director: &Director) {
        // SAFETY: the VM's stage-2 tables only map memory it owns.
        unsafe { self.vm.controls.load() };
        guest::set_virtual_mpidr(self.index as u64);
        self.el1.restore();
        if director.mte.level.has_tag_storage() {
            self.mte.restore();
        }
    }

    /// Saves the live state into this vCPU before another one takes the CPU.
    pub fn save(&mut self, director: &Director) {
        self.el1.save();
        if director.mte.level.has_tag_storage() {
            self.mte.save();
        }
    }

    /// Runs the guest until it yields or its VM stops. The vCPU must be loaded.
    pub fn run(&mut self, director: &Director) -> Event {
        loop {
            if self.vm.stopping.load(Ordering::Acquire) {
                return Event::Stopped;
            }
            // SAFETY: `load` made this vCPU's VM controls and EL1 state live.
            let (vector, syndrome) = unsafe { guest::run(&mut self.registers) };
            add(&self.vm.stats.exits, 1);
            let next = match vector {
                ExitVector::Synchronous => {
                    self.handle_synchronous(director, exit::decode(syndrome.esr, syndrome.far, syndrome.hpfar))
                }
                // No physical interrupt is routed to guests yet: nothing to do.
                ExitVector::Irq | ExitVector::Fiq => Next::Resume,
                ExitVector::SError => {
                    log::error!("vm {}: SError (ESR {:#x}); stopping the VM", self.vm.name, syndrome.esr);
                    self.vm.request_stop(-1);
                    Next::Stop
                }
            };
            match next {
                Next::Resume => {}
                Next::Yield => return Event::Yield,
                Next::Stop => return Event::Stopped,
            }
        }
    }

    fn handle_synchronous(&mut self, director: &Director, exit: GuestExit) -> Next {
        match exit {
            GuestExit::Hvc { .. } => self.handle_call(director),
            GuestExit::Smc => {
                self.registers.pc += 4;
                self.handle_call(director)
            }
            GuestExit::Stage2Abort(abort) => self.handle_stage2_abort(director, abort),
            GuestExit::SysReg(access) => self.handle_sysreg(access),
            GuestExit::Wait(_) => {
                self.registers.pc += 4;
                Next::Yield
            }
            GuestExit::Unhandled(class) => {
                log::warn!("vm {}: unexpected {} at {:#x}; injecting UNDEFINED", self.vm.name, class.name(), self.registers.pc);
                self.inject_undefined();
                Next::Resume
            }
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
            _ => {
                log::warn!(
                    "vm {}: {} {} IPA {:#x} outside its memory (pc {:#x}); injecting a synchronous external abort",
                    self.vm.name,
                    if abort.instruction { "instruction fetch from" } else if abort.write { "write to" } else { "read from" },
                    match abort.kind {
                        Stage2FaultKind::Translation => "unmapped",
                        _ => "faulting",
                    },
                    abort.ipa,
                    self.registers.pc
                );
                add(&self.vm.stats.injected_aborts, 1);
                let from_el1 = self.registers.pstate & 0xC != 0;
                let esr = injected_abort_syndrome(abort.instruction, abort.write, from_el1);
                guest::inject_synchronous(&mut self.registers, esr, abort.far);
                Next::Resume
            }
        }
    }

    fn handle_sysreg(&mut self, access: SysRegAccess) -> Next {
        let is_id = id_registers::is_id_register(access.op0, access.op1, access.crn, access.crm);
        if is_id && access.direction == SysRegDirection::Read {
            let real = read_id_register(access.crm, access.op2).unwrap_or(0);
            let value = id_registers::guest_view(access.crm, access.op2, real, self.vm.mte);
            self.set_register(access.rt, value);
            self.registers.pc += 4;
            return Next::Resume;
        }
        // MTE registers of a VM without MTE (HCR_EL2.ATA = 0), GMID_EL1 (TID5),
        // writes to ID registers: all UNDEFINED for the guest.
        log::debug!("vm {}: trapped {access} at {:#x}; injecting UNDEFINED", self.vm.name, self.registers.pc);
        self.inject_undefined();
        Next::Resume
    }

    fn inject_undefined(&mut self) {
        guest::inject_synchronous(&mut self.registers, exit::INJECTED_UNDEFINED_SYNDROME, 0);
    }

    fn set_register(&mut self, rt: u8, value: u64) {
        // Register 31 is XZR for MRS: the value is discarded.
        if let Some(slot) = self.registers.x.get_mut(rt as usize) {
            *slot = value;
        }
    }

    /// An SMCCC call through HVC or (trapped) SMC: PSCI, SMCCC discovery, our hypercalls.
    fn handle_call(&mut self, director: &Director) -> Next {
        add(&self.vm.stats.hypercalls, 1);
        let function = self.registers.x[0] as u32;
        let [a1, a2, _a3] = [self.registers.x[1], self.registers.x[2], self.registers.x[3]];
        const NOT_SUPPORTED: u64 = -1i64 as u64;
        const INVALID: u64 = -2i64 as u64;
        let result = match function {
            crate::psci::PSCI_VERSION => 0x1_0001,
            crate::psci::SYSTEM_OFF => {
                log::info!("vm {}: PSCI SYSTEM_OFF", self.vm.name);
                self.vm.request_stop(0);
                return Next::Stop;
            }
            SMCCC_VERSION => 0x1_0001,
            hv_abi::HV_WRITE => match self.guest_write(a1, a2) {
                Ok(()) => 0,
                Err(()) => INVALID,
            },
            hv_abi::HV_EXIT => {
                self.vm.request_stop(a1 as i64);
                return Next::Stop;
            }
            hv_abi::HV_EVENT_SET => match director.events.get(a1 as usize) {
                Some(event) => {
                    event.store(a2, Ordering::Release);
                    0
                }
                None => INVALID,
            },
            hv_abi::HV_EVENT_GET => match director.events.get(a1 as usize) {
                Some(event) => event.load(Ordering::Acquire),
                None => INVALID,
            },
            hv_abi::HV_YIELD => {
                self.registers.x[0] = 0;
                return Next::Yield;
            }
            hv_abi::HV_STAT => {
                let stats = &self.vm.stats;
                match a1 {
                    x if x == Stat::Faults4K as u64 => stats.faults_4k.load(Ordering::Relaxed),
                    x if x == Stat::Faults2M as u64 => stats.faults_2m.load(Ordering::Relaxed),
                    x if x == Stat::BytesSanitised as u64 => stats.bytes_sanitised(),
                    _ => INVALID,
                }
            }
            _ => NOT_SUPPORTED,
        };
        self.registers.x[0] = result;
        Next::Resume
    }

    /// HV_WRITE: prints guest text as one console line tagged with the VM's name.
    fn guest_write(&mut self, ipa: u64, len: u64) -> Result<(), ()> {
        if len > hv_abi::MAX_WRITE {
            return Err(());
        }
        let mut buffer = [0u8; hv_abi::MAX_WRITE as usize];
        let text = &mut buffer[..len as usize];
        self.vm.memory.lock().read_guest(ipa, text).map_err(|_| ())?;
        let text = core::str::from_utf8(text).unwrap_or("<invalid UTF-8>");
        crate::println!("[{}] {}", self.vm.name, text.trim_end_matches('\n'));
        Ok(())
    }
}

/// SMCCC_VERSION.
const SMCCC_VERSION: u32 = 0x8000_0000;
