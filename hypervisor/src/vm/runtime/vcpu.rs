//! A vCPU: the guest's registers, its EL1, MTE, FP and interrupt-controller
//! state, and its run loop. What each exit means is decided in `vm::exits`.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use hv_abi::machine;

use super::host::Host;
use super::interrupts;
use super::kick;
use super::services::{HardwareListRegisters, MachineServices};
use super::virtual_machine::Vm;
use crate::arch::aarch64::gic::{self, VirtualInterfaceState};
use crate::arch::aarch64::guest::{
    self, El1Context, ExitVector, FpContext, GuestRegisters, MteContext, PSTATE_EL1H_MASKED, PauthContext,
    SCTLR_EL1_RESET,
};
use crate::vm::exit;
use crate::vm::exits::{self, Exit, Next};
use crate::vm::stats::add;
use crate::vm::vgic::vcpu_lrs::{TimerLinks, VcpuListRegisters};

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
    list_registers: VcpuListRegisters,
    /// Powered off (before its first `CPU_ON`, or after `CPU_OFF`): it runs
    /// again only through a start request. The vCPU's own record, not the PSCI
    /// model's, which calls the target ON as soon as a `CPU_ON` is accepted
    /// (before the request that starts it is queued).
    off: bool,
    /// Waiting for an interrupt (WFI / CPU_SUSPEND).
    waiting: bool,
    /// While waiting: physical counter value at which to stop waiting anyway
    /// (a WFIT deadline).
    wake_at: Option<u64>,
}

impl Vcpu {
    /// vCPU `index` of `vm` at its reset state: vCPU 0 at the VM's entry point,
    /// the others powered off until `CPU_ON`.
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
            list_registers: VcpuListRegisters::default(),
            // Whatever the boot protocol, only vCPU 0 starts; the others wait for CPU_ON.
            off: index != 0,
            waiting: false,
            wake_at: None,
        }
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
        if self.off {
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
            if self.list_registers.saved_pending() {
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
        let armed = |ctl: u64, cval: u64| (ctl & 0b11 == 0b01).then_some(cval);
        let virtual_timer = armed(self.el1.cntv_ctl, self.el1.cntv_cval);
        let physical_timer = armed(self.el1.cntp_ctl, self.el1.cntp_cval);
        match (virtual_timer, physical_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Makes this vCPU's state live on the current CPU.
    pub fn load(&self, host: &Host) {
        guest::set_virtual_mpidr(self.index as u64);
        self.el1.restore();
        self.fp.restore();
        if host.mte.level.has_tag_storage() {
            self.mte.restore();
        }
        if host.pointer_authentication {
            self.pauth.restore();
        }
        self.interface.restore();
        self.list_registers.restore(&mut HardwareListRegisters { count: host.list_registers });
    }

    /// Saves the live state into this vCPU before another one takes the CPU.
    pub fn save(&mut self, host: &Host) {
        self.el1.save();
        self.fp.save();
        if host.mte.level.has_tag_storage() {
            self.mte.save();
        }
        if host.pointer_authentication {
            self.pauth.save();
        }
        self.interface.save();
        // The list registers keep the timer interrupts without their links to
        // the physical ones, which belong to this CPU: free those.
        self.list_registers.save(&mut HardwareListRegisters { count: host.list_registers });
        gic::deactivate(gic::layout().virtual_timer);
        gic::deactivate(gic::layout().physical_timer);
    }

    /// Drops this vCPU's live interrupt state for good (it stopped): the physical
    /// timer interrupt, which may be active (behind a hardware-linked list register,
    /// or acknowledged just before the stop), is deactivated so it can fire for
    /// whoever runs next.
    pub fn unload(&mut self, host: &Host) {
        self.list_registers.discard(&mut HardwareListRegisters { count: host.list_registers });
        gic::deactivate(gic::layout().virtual_timer);
        gic::deactivate(gic::layout().physical_timer);
        guest::disable_virtual_timer();
        guest::disable_physical_timer();
        guest::park_stage2();
    }

    /// Runs the guest until it yields, blocks or its VM stops. The vCPU must be loaded.
    pub fn run(&mut self, host: &Host) -> Event {
        if self.off && !self.take_start_request() {
            return Event::Blocked;
        }
        self.waiting = false;
        self.wake_at = None;
        loop {
            if self.vm.stopping.load(Ordering::Acquire) {
                return Event::Stopped;
            }
            let mut list_registers = HardwareListRegisters { count: host.list_registers };
            let generation = self.vm.interrupt_generation.load(Ordering::Acquire);
            let layout = gic::layout();
            let links = TimerLinks { virtual_timer: layout.virtual_timer, physical_timer: layout.physical_timer };
            // A timer masked, disabled or reprogrammed since it fired (seen at
            // this exit, or just emulated when its registers trap): its interrupt
            // is no longer pending (level-sensitive, as on hardware).
            let timers = [
                (guest::virtual_timer_asserted(), machine::VIRTUAL_TIMER_INTID, links.virtual_timer),
                (guest::physical_timer_asserted(), machine::PHYS_TIMER_INTID, links.physical_timer),
            ];
            for (asserted, guest_intid, host_intid) in timers {
                if !asserted {
                    let vgic = &self.vm.vgic;
                    self.list_registers.timer_deasserted(
                        vgic,
                        self.index,
                        guest_intid,
                        host_intid,
                        &mut list_registers,
                    );
                }
            }
            if self.list_registers.flush(&self.vm.vgic, self.index, generation, links, &mut list_registers) {
                // A re-routed interrupt left this vCPU: its new target must look.
                self.vm.interrupts_changed();
                kick::kick_cpus(&self.vm.identity.hosts);
            }
            // SAFETY: `load` made this vCPU's EL1 state live; the VM's stage-2
            // tables only map memory it owns, and live as long as the VM.
            let (vector, syndrome) = unsafe { guest::run(&self.vm.controls, &mut self.registers) };
            add(&self.vm.stats.exits, 1);
            self.list_registers.sync(&self.vm.vgic, self.index, &mut list_registers);
            let next = match vector {
                ExitVector::Synchronous => {
                    let decoded = exit::decode(syndrome.esr, syndrome.far, syndrome.hpfar);
                    let mut services = MachineServices { vm: &self.vm, host };
                    let mut exit = Exit {
                        vm: &self.vm.model,
                        vcpu: self.index,
                        registers: &mut self.registers,
                        esr: syndrome.esr,
                        services: &mut services,
                    };
                    exits::handle(&mut exit, decoded)
                }
                ExitVector::Irq | ExitVector::Fiq => {
                    interrupts::handle_physical(host, Some((&self.vm, self.index)));
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
                    if super::kick::take_reschedule() {
                        return Event::Yield;
                    }
                }
                Next::Yield => return Event::Yield,
                Next::Block { until } => {
                    if self.has_pending_interrupt(host) {
                        continue;
                    }
                    self.waiting = true;
                    self.wake_at = until;
                    return Event::Blocked;
                }
                Next::PowerOff => {
                    self.off = true;
                    return Event::Blocked;
                }
                Next::Stop => return Event::Stopped,
            }
        }
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
        self.off = false;
        self.list_registers.invalidate();
        true
    }

    fn has_pending_interrupt(&self, host: &Host) -> bool {
        self.list_registers.live_pending(&HardwareListRegisters { count: host.list_registers })
            || self.vm.vgic.lock().next_pending(self.index).is_some()
    }
}
