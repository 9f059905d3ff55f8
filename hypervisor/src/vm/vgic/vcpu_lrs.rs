//! One vCPU's list registers, seen from the model: which interrupt each holds,
//! filling them before entry (*flush*, KVM's `vgic_flush_lr_state`) and reading
//! them back after an exit (*sync*, KVM's `vgic_sync_hwstate`), and keeping
//! their contents while another vCPU has the CPU. The hardware's registers are
//! reached through [`ListRegisterFile`], so all of this runs in host tests.
//!
//! The hand-off protocol with the model is described in the module docs of
//! `vm::vgic` ("List-register hand-off").

use hv_abi::machine::{PHYS_TIMER_INTID, VIRTUAL_TIMER_INTID};
use spin::Mutex;

use super::list_register::{ListRegister, LrState};
use super::{LrReview, PendingIrq, Vgic};

/// Most list registers the architecture allows.
pub const MAX_LIST_REGISTERS: usize = 16;

/// The CPU's list registers (`ICH_LR<n>_EL2`) and the underflow maintenance
/// interrupt (`ICH_HCR_EL2.UIE`).
pub trait ListRegisterFile {
    /// How many list registers the CPU implements (at most [`MAX_LIST_REGISTERS`]).
    fn count(&self) -> usize;
    fn read(&self, n: usize) -> u64;
    fn write(&mut self, n: usize, bits: u64);
    /// Asks for a maintenance interrupt when at most one list register is valid.
    fn set_underflow_interrupt(&mut self, enabled: bool);
    /// Deactivates physical interrupt `intid`, which a hardware-linked list
    /// register held (the guest's EOI would have done it).
    fn deactivate_physical(&mut self, intid: u32);
}

/// The host INTIDs of the EL1 timers' physical interrupts on this CPU. The
/// guest's timer interrupts (PPI 27 virtual, PPI 30 physical) are
/// hardware-linked to them: the physical interrupt stays active while the
/// guest handles its virtual copy, and the guest's EOI deactivates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerLinks {
    pub virtual_timer: u32,
    pub physical_timer: u32,
}

impl TimerLinks {
    /// The host INTID a guest interrupt is linked to, if it is a timer's.
    pub fn host_intid(self, guest_intid: u32) -> Option<u32> {
        match guest_intid {
            VIRTUAL_TIMER_INTID => Some(self.virtual_timer),
            PHYS_TIMER_INTID => Some(self.physical_timer),
            _ => None,
        }
    }
}

/// What a list register holds, as far as this vCPU knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    intid: u32,
    /// A timer's interrupt, linked to this host INTID: the guest's EOI
    /// deactivates the physical interrupt while the list register carries the link.
    hw: Option<u32>,
    /// The list register still carries the link. A switch to another vCPU
    /// strips it (the physical interrupt belongs to the CPU); the physical
    /// interrupt may then fire and be left active again while the guest still
    /// handles its copy, and nothing but the retirement releases it.
    linked: bool,
}

#[derive(Debug, Clone)]
pub struct VcpuListRegisters {
    slots: [Option<Slot>; MAX_LIST_REGISTERS],
    /// List register contents while another vCPU has the CPU.
    saved: [u64; MAX_LIST_REGISTERS],
    /// The VM's interrupt generation when the list registers were last filled.
    filled_at: u64,
    /// A list register retired since the last fill.
    retired: bool,
}

impl Default for VcpuListRegisters {
    fn default() -> Self {
        Self { slots: [None; MAX_LIST_REGISTERS], saved: [0; MAX_LIST_REGISTERS], filled_at: 0, retired: false }
    }
}

impl VcpuListRegisters {
    /// Forces the next flush to look at the model (e.g. after a CPU_ON reset).
    pub fn invalidate(&mut self) {
        self.filled_at = 0;
    }

    /// Before entry: brings the list registers up to date with the model, as
    /// KVM's flush does. Interrupts they hold that the guest disabled, re-routed
    /// or un-pended are recalled, and a new edge of one held active is added to
    /// it (*pending and active*), so a vCPU spinning without exits still takes
    /// it after its EOI; free list registers get `vcpu`'s most urgent pending
    /// interrupts; an interrupt more urgent than one held merely pending evicts
    /// it (the evicted one stays pending in the model); an underflow
    /// maintenance interrupt is requested when more wait than fit. Does nothing
    /// unless the VM's interrupt `generation` moved or a list register retired
    /// since the last flush. The timers' interrupts are hardware-linked as
    /// `links` says. Returns true when a recalled interrupt went back to the
    /// model still pending (re-routed, or disabled until re-enabled): another
    /// vCPU may now have to take it, so the caller must tell the VM's vCPUs.
    pub fn flush(
        &mut self,
        vgic: &Mutex<Vgic>,
        vcpu: usize,
        generation: u64,
        links: TimerLinks,
        file: &mut impl ListRegisterFile,
    ) -> bool {
        if generation == self.filled_at && !self.retired {
            return false;
        }
        self.filled_at = generation;
        self.retired = false;
        let count = file.count().min(MAX_LIST_REGISTERS);
        let mut vgic = vgic.lock();
        let mut returned = false;
        for n in 0..count {
            let Some(slot) = self.slots[n] else { continue };
            match vgic.review_list_register(vcpu, slot.intid) {
                LrReview::Keep => {}
                LrReview::PendingActive => {
                    let mut lr = ListRegister::from_bits(file.read(n));
                    lr.state = LrState::PendingActive;
                    file.write(n, lr.to_bits());
                }
                LrReview::Recall { still_pending } => {
                    self.take_out(n, &mut vgic, vcpu, still_pending, file);
                    returned |= still_pending;
                }
            }
        }
        for n in 0..count {
            if self.slots[n].is_some() {
                continue;
            }
            let Some(irq) = vgic.next_pending(vcpu) else { break };
            self.place(n, irq, &mut vgic, vcpu, links, file);
        }
        // Full: evict the least urgent interrupt held only pending for a more
        // urgent one (each pass evicts one; at most one pass per register).
        for _ in 0..count {
            let Some(irq) = vgic.next_pending(vcpu) else { break };
            let victim = (0..count)
                .filter_map(|n| {
                    let slot = self.slots[n].filter(|slot| slot.hw.is_none())?;
                    let lr = ListRegister::from_bits(file.read(n));
                    (lr.state == LrState::Pending).then_some((n, lr.priority, slot.intid))
                })
                .max_by_key(|&(_, priority, _)| priority);
            let Some((n, priority, _)) = victim.filter(|&(_, priority, _)| priority > irq.priority) else { break };
            debug_assert!(priority > irq.priority);
            self.take_out(n, &mut vgic, vcpu, true, file);
            self.place(n, irq, &mut vgic, vcpu, links, file);
        }
        file.set_underflow_interrupt(vgic.next_pending(vcpu).is_some());
        returned
    }

    /// Writes `irq` into free list register `n`.
    fn place(
        &mut self,
        n: usize,
        irq: PendingIrq,
        vgic: &mut Vgic,
        vcpu: usize,
        links: TimerLinks,
        file: &mut impl ListRegisterFile,
    ) {
        let mut lr = irq.list_register();
        let hw = links.host_intid(irq.intid);
        if hw.is_some() {
            // The physical timer interrupt is active (left so by the
            // physical interrupt handler); the guest's EOI deactivates it.
            lr.hw = hw;
            lr.eoi_maintenance = false;
        }
        file.write(n, lr.to_bits());
        vgic.mark_in_list_register(vcpu, irq.intid);
        self.slots[n] = Some(Slot { intid: irq.intid, hw, linked: hw.is_some() });
    }

    /// Empties list register `n` before the guest acknowledged what it holds;
    /// `still_pending`: that instance goes back to the model. A hardware-linked
    /// one releases its physical interrupt (which the guest's EOI would have
    /// deactivated) and its line is sampled afresh.
    fn take_out(
        &mut self,
        n: usize,
        vgic: &mut Vgic,
        vcpu: usize,
        still_pending: bool,
        file: &mut impl ListRegisterFile,
    ) {
        let Some(slot) = self.slots[n].take() else { return };
        file.write(n, 0);
        vgic.list_register_retired(vcpu, slot.intid, still_pending);
        if let Some(host_intid) = slot.hw {
            vgic.set_level(slot.intid, vcpu, false);
            file.deactivate_physical(host_intid);
        }
    }

    /// A timer's output went low while its interrupt (`guest_intid`, linked to
    /// `host_intid`) was pending (the guest masked, disabled or reprogrammed
    /// it): the interrupt is no longer pending, as on hardware, whether a list
    /// register holds it (taken out unless the guest already acknowledged it)
    /// or only the model. The physical interrupt, left active for the hardware
    /// link, is released so the timer can fire again.
    pub fn timer_deasserted(
        &mut self,
        vgic: &Mutex<Vgic>,
        vcpu: usize,
        guest_intid: u32,
        host_intid: u32,
        file: &mut impl ListRegisterFile,
    ) {
        let count = file.count().min(MAX_LIST_REGISTERS);
        let held =
            (0..count).find(|&n| self.slots[n].is_some_and(|slot| slot.intid == guest_intid && slot.hw.is_some()));
        let mut vgic = vgic.lock();
        match held {
            Some(n) => {
                if ListRegister::from_bits(file.read(n)).state == LrState::Pending {
                    self.take_out(n, &mut vgic, vcpu, false, file);
                    self.retired = true;
                }
            }
            None => {
                let line_high = vgic.irq_state(vcpu, guest_intid).is_some_and(|irq| irq.line);
                if line_high {
                    vgic.set_level(guest_intid, vcpu, false);
                    file.deactivate_physical(host_intid);
                    self.retired = true;
                }
            }
        }
    }

    /// After an exit: interrupts the guest finished with go back to the model (a
    /// level line still high becomes pending again); the others' state is synced
    /// so the model's registers read what the guest did.
    pub fn sync(&mut self, vgic: &Mutex<Vgic>, vcpu: usize, file: &mut impl ListRegisterFile) {
        let count = file.count().min(MAX_LIST_REGISTERS);
        if self.slots[..count].iter().all(Option::is_none) {
            return;
        }
        let mut vgic = vgic.lock();
        for n in 0..count {
            let Some(slot) = self.slots[n] else { continue };
            let lr = ListRegister::from_bits(file.read(n));
            if lr.state == LrState::Invalid {
                vgic.list_register_retired(vcpu, slot.intid, false);
                if let Some(host_intid) = slot.hw {
                    // Deactivated through the link (or here, if a switch cut the
                    // link); if the timer is still due, the physical interrupt
                    // fires again and raises the line anew.
                    vgic.set_level(slot.intid, vcpu, false);
                    if !slot.linked {
                        file.deactivate_physical(host_intid);
                    }
                }
                self.slots[n] = None;
                self.retired = true;
                file.write(n, 0);
            } else {
                vgic.sync_list_register(vcpu, slot.intid, lr.state);
            }
        }
    }

    /// Whether a live list register holds a pending interrupt.
    pub fn live_pending(&self, file: &impl ListRegisterFile) -> bool {
        (0..file.count().min(MAX_LIST_REGISTERS))
            .any(|n| self.slots[n].is_some() && ListRegister::from_bits(file.read(n)).state.is_pending())
    }

    /// Whether a saved (switched-out) list register holds a pending interrupt.
    pub fn saved_pending(&self) -> bool {
        self.saved.iter().any(|&bits| ListRegister::from_bits(bits).state.is_pending())
    }

    /// Another vCPU takes the CPU: keeps the list registers' contents and clears
    /// them. The physical timer interrupt belongs to the CPU, not to the vCPU:
    /// the virtual interrupt is kept, its hardware link dropped (the caller
    /// deactivates the physical one).
    pub fn save(&mut self, file: &mut impl ListRegisterFile) {
        for n in 0..file.count().min(MAX_LIST_REGISTERS) {
            let mut lr = ListRegister::from_bits(file.read(n));
            lr.hw = None;
            if let Some(slot) = self.slots[n].as_mut() {
                slot.linked = false;
            }
            self.saved[n] = lr.to_bits();
            file.write(n, 0);
        }
        file.set_underflow_interrupt(false);
    }

    /// This vCPU takes the CPU again.
    pub fn restore(&self, file: &mut impl ListRegisterFile) {
        for n in 0..file.count().min(MAX_LIST_REGISTERS) {
            file.write(n, self.saved[n]);
        }
    }

    /// The vCPU stopped for good: forget and clear every list register.
    pub fn discard(&mut self, file: &mut impl ListRegisterFile) {
        for n in 0..file.count().min(MAX_LIST_REGISTERS) {
            self.slots[n] = None;
            file.write(n, 0);
        }
        file.set_underflow_interrupt(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hv_abi::machine::{GICD_BASE, GICR_BASE, GICR_SGI_OFFSET};

    /// Host INTIDs of the timers (distinct from the guest's, to tell them apart).
    const LINKS: TimerLinks = TimerLinks { virtual_timer: 127, physical_timer: 130 };

    /// Four list registers in a plain array.
    #[derive(Default)]
    struct FakeFile {
        lrs: [u64; 4],
        underflow: bool,
        deactivated: Vec<u32>,
    }

    impl ListRegisterFile for FakeFile {
        fn count(&self) -> usize {
            self.lrs.len()
        }
        fn read(&self, n: usize) -> u64 {
            self.lrs[n]
        }
        fn write(&mut self, n: usize, bits: u64) {
            self.lrs[n] = bits;
        }
        fn set_underflow_interrupt(&mut self, enabled: bool) {
            self.underflow = enabled;
        }
        fn deactivate_physical(&mut self, intid: u32) {
            self.deactivated.push(intid);
        }
    }

    /// A one-vCPU vGIC with the Distributor's Group 1 enabled and SGIs 0..n enabled and pending.
    fn vgic_with_pending_sgis(n: u32) -> Mutex<Vgic> {
        let mut vgic = Vgic::new(1);
        vgic.mmio_write(GICD_BASE, 4, 0b10).unwrap(); // GICD_CTLR.EnableGrp1NS
        let sgi_base = GICR_BASE + GICR_SGI_OFFSET;
        vgic.mmio_write(sgi_base + 0x100, 4, (1 << n) - 1).unwrap(); // ISENABLER0
        vgic.mmio_write(sgi_base + 0x200, 4, (1 << n) - 1).unwrap(); // ISPENDR0
        Mutex::new(vgic)
    }

    /// A one-vCPU vGIC with Group 1 and the virtual timer PPI enabled and its line high.
    fn vgic_with_virtual_timer_raised() -> Mutex<Vgic> {
        let mut vgic = Vgic::new(1);
        vgic.mmio_write(GICD_BASE, 4, 0b10).unwrap();
        vgic.mmio_write(GICR_BASE + GICR_SGI_OFFSET + 0x100, 4, 1 << VIRTUAL_TIMER_INTID).unwrap();
        vgic.set_level(VIRTUAL_TIMER_INTID, 0, true);
        Mutex::new(vgic)
    }

    fn intids(file: &FakeFile) -> [Option<u32>; 4] {
        file.lrs.map(|bits| {
            let lr = ListRegister::from_bits(bits);
            (lr.state != LrState::Invalid).then_some(lr.intid)
        })
    }

    #[test]
    fn flush_fills_free_registers_and_asks_for_underflow_when_more_wait() {
        let vgic = vgic_with_pending_sgis(6);
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        assert_eq!(intids(&file), [Some(0), Some(1), Some(2), Some(3)]);
        assert!(file.underflow, "two SGIs did not fit");
        // Nothing moved: a second flush does no work (and touches nothing).
        file.lrs[0] = 0;
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        assert_eq!(file.lrs[0], 0);
    }

    #[test]
    fn sync_retires_what_the_guest_deactivated_and_the_next_flush_refills() {
        let vgic = vgic_with_pending_sgis(6);
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        // The guest handled SGI 1 (acknowledge + EOI: the LR went invalid).
        file.lrs[1] = 0;
        lrs.sync(&vgic, 0, &mut file);
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        assert_eq!(intids(&file), [Some(0), Some(4), Some(2), Some(3)]);
        assert!(file.underflow, "SGI 5 still waits");
    }

    #[test]
    fn save_and_restore_keep_pending_state_across_a_switch() {
        let vgic = vgic_with_pending_sgis(2);
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        let live = file.lrs;
        assert!(lrs.live_pending(&file));
        lrs.save(&mut file);
        assert_eq!(file.lrs, [0; 4]);
        assert!(lrs.saved_pending());
        lrs.restore(&mut file);
        assert_eq!(file.lrs, live);
        lrs.discard(&mut file);
        assert_eq!(file.lrs, [0; 4]);
        assert!(!lrs.live_pending(&file));
    }

    /// Sets list register `n`'s state as the guest's acknowledge/EOI would.
    fn set_state(file: &mut FakeFile, n: usize, state: LrState) {
        let mut lr = ListRegister::from_bits(file.lrs[n]);
        lr.state = state;
        file.lrs[n] = lr.to_bits();
    }

    fn state(file: &FakeFile, n: usize) -> LrState {
        ListRegister::from_bits(file.lrs[n]).state
    }

    #[test]
    fn a_new_sgi_while_the_last_is_active_becomes_pending_and_active() {
        let vgic = vgic_with_pending_sgis(1);
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        // The guest acknowledged SGI 0 and is in its handler; another SGI 0 arrives.
        set_state(&mut file, 0, LrState::Active);
        lrs.sync(&vgic, 0, &mut file);
        vgic.lock().send_sgi(0, 1); // SGI 0 to Aff0 = 0 (TargetList bit 0)
        lrs.flush(&vgic, 0, 2, LINKS, &mut file);
        assert_eq!(state(&file, 0), LrState::PendingActive, "taken after the EOI, without an exit");
        // The EOI leaves it pending; its acknowledge and EOI retire it, and nothing is left.
        set_state(&mut file, 0, LrState::Pending);
        lrs.sync(&vgic, 0, &mut file);
        file.lrs[0] = 0;
        lrs.sync(&vgic, 0, &mut file);
        lrs.flush(&vgic, 0, 3, LINKS, &mut file);
        assert_eq!(intids(&file), [None; 4]);
    }

    #[test]
    fn a_more_urgent_interrupt_evicts_one_held_only_pending() {
        // Four SGIs at priority 0xA0 fill every list register (the guest masks them with PMR).
        let vgic = vgic_with_pending_sgis(4);
        let sgi_base = GICR_BASE + GICR_SGI_OFFSET;
        vgic.lock().mmio_write(sgi_base + 0x400, 4, 0xA0A0_A0A0).unwrap(); // IPRIORITYR0: SGIs 0..3
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        assert_eq!(intids(&file), [Some(0), Some(1), Some(2), Some(3)]);
        // SGI 4 at 0x40 becomes pending: it must get a list register.
        {
            let mut vgic = vgic.lock();
            vgic.mmio_write(sgi_base + 0x404, 1, 0x40).unwrap();
            vgic.mmio_write(sgi_base + 0x100, 4, 1 << 4).unwrap();
            vgic.mmio_write(sgi_base + 0x200, 4, 1 << 4).unwrap();
        }
        lrs.flush(&vgic, 0, 2, LINKS, &mut file);
        let held = intids(&file);
        assert!(held.contains(&Some(4)), "{held:?}");
        assert_eq!(held.iter().flatten().count(), 4);
        assert!(file.underflow, "the evicted SGI still waits");
        // The evicted one is still pending in the model.
        let evicted = (0..4).find(|intid| !held.contains(&Some(*intid))).unwrap();
        assert!(vgic.lock().irq_state(0, evicted).unwrap().pending());
    }

    #[test]
    fn equal_priorities_never_evict() {
        let vgic = vgic_with_pending_sgis(6);
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        let before = file.lrs;
        lrs.flush(&vgic, 0, 2, LINKS, &mut file);
        assert_eq!(file.lrs, before);
    }

    #[test]
    fn disabled_or_unpended_interrupts_are_recalled_from_pending_list_registers() {
        let vgic = vgic_with_pending_sgis(2);
        let sgi_base = GICR_BASE + GICR_SGI_OFFSET;
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        {
            let mut vgic = vgic.lock();
            vgic.mmio_write(sgi_base + 0x180, 4, 1 << 0).unwrap(); // ICENABLER0: SGI 0
            vgic.mmio_write(sgi_base + 0x280, 4, 1 << 1).unwrap(); // ICPENDR0: SGI 1
        }
        lrs.sync(&vgic, 0, &mut file);
        lrs.flush(&vgic, 0, 2, LINKS, &mut file);
        assert_eq!(intids(&file), [None; 4]);
        let vgic = vgic.lock();
        assert!(vgic.irq_state(0, 0).unwrap().pending(), "a disabled interrupt stays pending");
        assert!(!vgic.irq_state(0, 1).unwrap().pending(), "a cleared one does not");
    }

    #[test]
    fn an_spi_rerouted_while_pending_moves_to_its_new_target() {
        let mut model = Vgic::new(2);
        model.mmio_write(GICD_BASE, 4, 0b10).unwrap();
        let spi = 40u64;
        model.mmio_write(GICD_BASE + 0x6000 + 8 * spi, 8, 1).unwrap(); // IROUTER: vCPU 1
        model.mmio_write(GICD_BASE + 0x100 + 4, 4, 1 << (spi - 32)).unwrap(); // ISENABLER1
        model.mmio_write(GICD_BASE + 0x200 + 4, 4, 1 << (spi - 32)).unwrap(); // ISPENDR1
        let vgic = Mutex::new(model);
        let (mut lrs1, mut file1) = (VcpuListRegisters::default(), FakeFile::default());
        lrs1.flush(&vgic, 1, 1, LINKS, &mut file1);
        assert_eq!(intids(&file1)[0], Some(40));
        vgic.lock().mmio_write(GICD_BASE + 0x6000 + 8 * spi, 8, 0).unwrap(); // to vCPU 0
        assert!(lrs1.flush(&vgic, 1, 2, LINKS, &mut file1), "the other vCPUs must be told");
        assert_eq!(intids(&file1), [None; 4], "recalled from vCPU 1");
        let (mut lrs0, mut file0) = (VcpuListRegisters::default(), FakeFile::default());
        lrs0.flush(&vgic, 0, 2, LINKS, &mut file0);
        assert_eq!(intids(&file0)[0], Some(40), "delivered at vCPU 0");
    }

    #[test]
    fn a_masked_virtual_timer_is_no_longer_pending() {
        let vgic = vgic_with_virtual_timer_raised();
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        assert_eq!(intids(&file)[0], Some(VIRTUAL_TIMER_INTID));
        // The guest set CNTV_CTL.IMASK before taking it.
        lrs.timer_deasserted(&vgic, 0, VIRTUAL_TIMER_INTID, 127, &mut file);
        assert_eq!(intids(&file), [None; 4]);
        assert_eq!(file.deactivated, [127], "the physical interrupt is released");
        lrs.flush(&vgic, 0, 2, LINKS, &mut file);
        assert_eq!(intids(&file), [None; 4], "and not offered again");
        // Acknowledged already: the guest handles it; nothing is taken back.
        vgic.lock().set_level(VIRTUAL_TIMER_INTID, 0, true);
        lrs.flush(&vgic, 0, 3, LINKS, &mut file);
        set_state(&mut file, 0, LrState::Active);
        lrs.timer_deasserted(&vgic, 0, VIRTUAL_TIMER_INTID, 127, &mut file);
        assert_eq!(intids(&file)[0], Some(VIRTUAL_TIMER_INTID));
    }

    #[test]
    fn a_timer_interrupt_handled_across_a_switch_releases_its_physical_interrupt() {
        let vgic = vgic_with_virtual_timer_raised();
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, LINKS, &mut file);
        assert_eq!(ListRegister::from_bits(file.lrs[0]).hw, Some(127), "linked while live");
        // The guest acknowledged it; another vCPU takes the CPU and gives it back.
        set_state(&mut file, 0, LrState::Active);
        lrs.save(&mut file);
        lrs.restore(&mut file);
        assert_eq!(ListRegister::from_bits(file.lrs[0]).hw, None, "the link does not survive the switch");
        // Its EOI deactivates only the virtual copy: the retirement releases the physical one.
        file.lrs[0] = 0;
        lrs.sync(&vgic, 0, &mut file);
        assert_eq!(file.deactivated, [127]);
        assert!(!vgic.lock().irq_state(0, VIRTUAL_TIMER_INTID).unwrap().line);
    }
}
