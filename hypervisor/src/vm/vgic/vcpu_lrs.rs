//! One vCPU's list registers, seen from the model: which interrupt each holds,
//! filling them before entry (*flush*, KVM's `vgic_flush_lr_state`) and reading
//! them back after an exit (*sync*, KVM's `vgic_sync_hwstate`), and keeping
//! their contents while another vCPU has the CPU. The hardware's registers are
//! reached through [`ListRegisterFile`], so all of this runs in host tests.
//!
//! The hand-off protocol with the model is described in the module docs of
//! `vm::vgic` ("List-register hand-off").

use hv_abi::machine::VIRTUAL_TIMER_INTID;
use spin::Mutex;

use super::Vgic;
use super::list_register::{ListRegister, LrState};

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
}

/// What a list register holds, as far as this vCPU knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    intid: u32,
    /// Hardware-linked: the physical interrupt is deactivated by the guest's EOI.
    hw: bool,
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

    /// Before entry: loads free list registers with `vcpu`'s most urgent pending
    /// interrupts and asks for an underflow maintenance interrupt when more are
    /// waiting than fit. Does nothing unless the VM's interrupt `generation`
    /// moved or a list register retired since the last flush. The virtual timer
    /// (PPI 27) is hardware-linked to `physical_timer`, the INTID its physical
    /// interrupt has on this CPU.
    pub fn flush(
        &mut self,
        vgic: &Mutex<Vgic>,
        vcpu: usize,
        generation: u64,
        physical_timer: u32,
        file: &mut impl ListRegisterFile,
    ) {
        if generation == self.filled_at && !self.retired {
            return;
        }
        self.filled_at = generation;
        self.retired = false;
        let mut vgic = vgic.lock();
        for n in 0..file.count().min(MAX_LIST_REGISTERS) {
            if self.slots[n].is_some() {
                continue;
            }
            let Some(irq) = vgic.next_pending(vcpu) else { break };
            let mut lr = irq.list_register();
            let hw = irq.intid == VIRTUAL_TIMER_INTID;
            if hw {
                // The physical timer interrupt is active (left so by the
                // physical interrupt handler); the guest's EOI deactivates it.
                lr.hw = Some(physical_timer);
                lr.eoi_maintenance = false;
            }
            file.write(n, lr.to_bits());
            vgic.mark_in_list_register(vcpu, irq.intid);
            self.slots[n] = Some(Slot { intid: irq.intid, hw });
        }
        file.set_underflow_interrupt(vgic.next_pending(vcpu).is_some());
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
                if slot.hw {
                    // Deactivated through the link; if the timer is still due, the
                    // physical interrupt fires again and raises the line anew.
                    vgic.set_level(slot.intid, vcpu, false);
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

    /// Four list registers in a plain array.
    #[derive(Default)]
    struct FakeFile {
        lrs: [u64; 4],
        underflow: bool,
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
        lrs.flush(&vgic, 0, 1, 27, &mut file);
        assert_eq!(intids(&file), [Some(0), Some(1), Some(2), Some(3)]);
        assert!(file.underflow, "two SGIs did not fit");
        // Nothing moved: a second flush does no work (and touches nothing).
        file.lrs[0] = 0;
        lrs.flush(&vgic, 0, 1, 27, &mut file);
        assert_eq!(file.lrs[0], 0);
    }

    #[test]
    fn sync_retires_what_the_guest_deactivated_and_the_next_flush_refills() {
        let vgic = vgic_with_pending_sgis(6);
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, 27, &mut file);
        // The guest handled SGI 1 (acknowledge + EOI: the LR went invalid).
        file.lrs[1] = 0;
        lrs.sync(&vgic, 0, &mut file);
        lrs.flush(&vgic, 0, 1, 27, &mut file);
        assert_eq!(intids(&file), [Some(0), Some(4), Some(2), Some(3)]);
        assert!(file.underflow, "SGI 5 still waits");
    }

    #[test]
    fn save_and_restore_keep_pending_state_across_a_switch() {
        let vgic = vgic_with_pending_sgis(2);
        let (mut lrs, mut file) = (VcpuListRegisters::default(), FakeFile::default());
        lrs.flush(&vgic, 0, 1, 27, &mut file);
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
}
