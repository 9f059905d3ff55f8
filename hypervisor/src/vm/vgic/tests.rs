//! The vGIC driven the way a Linux guest and the runtime drive it.

use std::vec::Vec;

use hv_abi::machine::{GICR_SGI_OFFSET, UART_INTID, VIRTUAL_TIMER_INTID};

use super::*;

const GICD: u64 = GICD_BASE;
const CTLR_RWP: u64 = 1 << 31;
const GICR_TYPER_LAST: u64 = 1 << 4;
const WAKER_PROCESSOR_SLEEP: u64 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u64 = 1 << 2;

/// A guest doing MMIO through the IPA entry points, insisting every access is handled.
struct Guest<'a> {
    vgic: &'a mut Vgic,
}

impl Guest<'_> {
    fn read(&self, ipa: u64, size: u8) -> u64 {
        let result = self.vgic.mmio_read(ipa, size).expect("inside the vGIC");
        assert!(!result.unhandled, "read{size} at {ipa:#x} unhandled");
        result.value
    }

    fn write(&mut self, ipa: u64, size: u8, value: u64) -> bool {
        let result = self.vgic.mmio_write(ipa, size, value).expect("inside the vGIC");
        assert!(!result.unhandled, "write{size} at {ipa:#x} unhandled");
        result.changed
    }

    fn read32(&self, ipa: u64) -> u64 {
        self.read(ipa, 4)
    }

    fn write32(&mut self, ipa: u64, value: u32) -> bool {
        self.write(ipa, 4, value.into())
    }
}

/// `gic_mpidr_to_affinity()` / the `aff` value `gic_populate_rdist()` compares
/// with `GICR_TYPER[63:32]`.
fn linux_affinity(mpidr: u64) -> u64 {
    (((mpidr >> 32) & 0xFF) << 24) | (((mpidr >> 16) & 0xFF) << 16) | (((mpidr >> 8) & 0xFF) << 8) | (mpidr & 0xFF)
}

/// What drivers/irqchip/irq-gic-v3.c does at boot: `gic_init_bases()`,
/// `gic_dist_init()` on the boot CPU, then `gic_cpu_init()` on each CPU. Returns
/// the Redistributor base each CPU found.
fn linux_boot(vgic: &mut Vgic, mpidrs: &[u64]) -> Vec<u64> {
    let mut guest = Guest { vgic };

    // gic_validate_dist_version(): ArchRev of GICD_PIDR2 must be 3 or 4.
    assert_eq!(guest.read32(GICD + 0xFFE8) & 0xF0, 0x30);
    let typer = guest.read32(GICD + 0x0004);
    let gic_irqs = (32 * ((typer & 0x1F) + 1)).min(1020);
    assert_eq!(gic_irqs, 96);
    assert_eq!(typer & (1 << 17), 0, "no LPIs: no ITS probing");
    assert_eq!(guest.read32(GICD + 0x000C), 0, "GICD_TYPER2");
    assert_ne!(guest.read32(GICD) & (1 << 6), 0, "gic_dist_security_disabled()");

    // gic_dist_init(): disable, then wait for RWP.
    guest.write32(GICD, 0);
    assert_eq!(guest.read32(GICD) & CTLR_RWP, 0);
    for i in (32..gic_irqs).step_by(32) {
        guest.write32(GICD + 0x0080 + i / 8, !0);
    }
    // gic_dist_config(): all SPIs level, priority 0xa0, inactive, disabled.
    for i in (32..gic_irqs).step_by(16) {
        guest.write32(GICD + 0x0C00 + i / 4, 0);
    }
    for i in (32..gic_irqs).step_by(4) {
        guest.write32(GICD + 0x0400 + i, 0xa0a0_a0a0);
    }
    for i in (32..gic_irqs).step_by(32) {
        guest.write32(GICD + 0x0380 + i / 8, !0);
        guest.write32(GICD + 0x0180 + i / 8, !0);
    }
    assert_eq!(guest.read32(GICD) & CTLR_RWP, 0);
    // ARE_NS | ENABLE_G1A | ENABLE_G1.
    guest.write32(GICD, 0x13);
    assert_eq!(guest.read32(GICD) & CTLR_RWP, 0);
    // Every SPI to the boot CPU (writeq: a 64-bit access).
    let boot = mpidrs[0] & 0xFF_00FF_FFFF;
    for i in 32..gic_irqs {
        guest.write(GICD + 0x6000 + i * 8, 8, boot);
    }

    let mut bases = Vec::new();
    for &mpidr in mpidrs {
        // gic_populate_rdist(): check PIDR2, then walk frames until Last.
        assert_eq!(guest.read32(GICR_BASE + 0xFFE8) & 0xF0, 0x30);
        let aff = linux_affinity(mpidr);
        let mut ptr = GICR_BASE;
        let rbase = loop {
            let typer = guest.read(ptr + 0x0008, 8);
            if typer >> 32 == aff {
                break ptr;
            }
            assert_eq!(typer & GICR_TYPER_LAST, 0, "CPU {mpidr:#x} has no Redistributor");
            ptr += 0x2_0000;
        };
        bases.push(rbase);

        // gic_enable_redist(true): clear ProcessorSleep, poll ChildrenAsleep.
        let waker = guest.read32(rbase + 0x0014) & !WAKER_PROCESSOR_SLEEP;
        guest.write32(rbase + 0x0014, waker as u32);
        assert_eq!(guest.read32(rbase + 0x0014) & WAKER_CHILDREN_ASLEEP, 0);

        // SGIs and PPIs Group 1, then gic_cpu_config(): inactive, disabled, 0xa0.
        let sgi_base = rbase + GICR_SGI_OFFSET;
        guest.write32(sgi_base + 0x0080, !0);
        guest.write32(sgi_base + 0x0380, !0);
        guest.write32(sgi_base + 0x0180, !0);
        for i in (0..32).step_by(4) {
            guest.write32(sgi_base + 0x0400 + i, 0xa0a0_a0a0);
        }
        // gic_redist_wait_for_rwp(): GICR_CTLR.RWP (bit 3).
        assert_eq!(guest.read32(rbase) & (1 << 3), 0);
    }
    bases
}

/// Linux's `gic_unmask_irq()` for a private interrupt of `vcpu`.
fn enable_private(vgic: &mut Vgic, vcpu: usize, intid: u32) {
    let result = vgic.redistributor_write(vcpu, GICR_SGI_OFFSET + 0x0100, 4, 1 << intid);
    assert!(!result.unhandled);
}

/// Linux's `gic_unmask_irq()` for an SPI.
fn enable_spi(vgic: &mut Vgic, intid: u32) {
    let offset = 0x0100 + u64::from(intid / 32) * 4;
    assert!(!vgic.distributor_write(offset, 4, 1 << (intid % 32)).unhandled);
}

fn booted(vcpus: usize) -> Vgic {
    let mut vgic = Vgic::new(vcpus);
    let mpidrs: Vec<u64> = (0..vcpus as u64).map(|i| (1 << 31) | i).collect();
    linux_boot(&mut vgic, &mpidrs);
    vgic
}

/// Takes what `next_pending` offers, as the runtime filling list registers would.
fn drain(vgic: &mut Vgic, vcpu: usize) -> Vec<u32> {
    let mut taken = Vec::new();
    while let Some(irq) = vgic.next_pending(vcpu) {
        assert!(vgic.mark_in_list_register(vcpu, irq.intid));
        taken.push(irq.intid);
    }
    taken
}

#[test]
fn linux_boot_sequence_is_fully_handled() {
    let mut vgic = Vgic::new(4);
    let bases = linux_boot(&mut vgic, &[0x8000_0000, 0x8000_0001, 0x8000_0002, 0x8000_0003]);
    assert_eq!(bases, [0x080A_0000, 0x080C_0000, 0x080E_0000, 0x0810_0000]);
    assert!(vgic.distributor().group1_enabled());
    assert_eq!(vgic.distributor_read(0, 4).value, 0x52);
    for intid in FIRST_SPI..NUM_INTIDS {
        let irq = vgic.irq_state(0, intid).unwrap();
        assert_eq!((irq.enabled, irq.priority, irq.trigger), (false, 0xa0, Trigger::Level), "SPI {intid}");
        assert_eq!(vgic.spi_target(intid), Some(0));
    }
    for vcpu in 0..4 {
        assert!(vgic.redistributor(vcpu).unwrap().awake());
        assert_eq!(vgic.irq_state(vcpu, 27).unwrap().priority, 0xa0);
        assert_eq!(vgic.next_pending(vcpu), None);
    }
    // Only the last frame says Last.
    let lasts: Vec<u64> = (0..4).map(|vcpu| vgic.redistributor_read(vcpu, 0x0008, 8).value & GICR_TYPER_LAST).collect();
    assert_eq!(lasts, [0, 0, 0, GICR_TYPER_LAST]);
}

#[test]
fn clustered_mpidrs_are_found_by_the_redistributor_walk() {
    let mpidrs = [0x8000_0000, 0x8000_0001, 0x8000_0100, 0x8000_0101];
    let mut vgic = Vgic::with_mpidrs(&mpidrs);
    let bases = linux_boot(&mut vgic, &[mpidrs[2], mpidrs[0], mpidrs[3], mpidrs[1]]);
    assert_eq!(bases, [0x080E_0000, 0x080A_0000, 0x0810_0000, 0x080C_0000]);
    // The boot CPU was 0.1.0 (vCPU 2): Linux routed every SPI there.
    assert_eq!(vgic.spi_target(UART_INTID), Some(2));
}

#[test]
fn timer_ppi_level_through_a_list_register() {
    let mut vgic = booted(2);
    enable_private(&mut vgic, 0, VIRTUAL_TIMER_INTID);
    assert_eq!(vgic.next_pending(0), None);

    assert_eq!(vgic.set_level(VIRTUAL_TIMER_INTID, 0, true), Some(0));
    let irq = vgic.next_pending(0).unwrap();
    assert_eq!(irq, PendingIrq { intid: 27, priority: 0xa0, trigger: Trigger::Level });
    assert_eq!(vgic.next_pending(1), None, "a PPI belongs to its own vCPU");
    // Pending, Group 1, priority 0xa0, EOI maintenance (level), vINTID 27.
    assert_eq!(irq.list_register().to_bits(), 0x50a0_0200_0000_001b);

    assert!(vgic.mark_in_list_register(0, 27));
    assert_eq!(vgic.next_pending(0), None, "not offered twice");
    assert!(!vgic.mark_in_list_register(0, 27), "already in a list register");

    // The guest handled it but the timer condition still holds (not reprogrammed yet).
    assert!(vgic.list_register_retired(0, 27, false));
    assert_eq!(vgic.next_pending(0).map(|irq| irq.intid), Some(27), "level still high: pending again");

    // Second round: the guest reprograms the timer, the line drops.
    assert!(vgic.mark_in_list_register(0, 27));
    assert_eq!(vgic.set_level(VIRTUAL_TIMER_INTID, 0, false), None);
    assert!(vgic.list_register_retired(0, 27, false));
    assert_eq!(vgic.next_pending(0), None);
}

#[test]
fn uart_spi_routed_by_irouter_goes_to_that_vcpu_only() {
    let mut vgic = booted(2);
    enable_spi(&mut vgic, UART_INTID);
    // irq_set_affinity(): IROUTER<33> = vCPU 1's affinity.
    let result = vgic.distributor_write(0x6000 + 8 * u64::from(UART_INTID), 8, 1);
    assert!(result.changed && !result.unhandled);
    assert_eq!(vgic.spi_target(UART_INTID), Some(1));

    assert_eq!(vgic.set_level(UART_INTID, 0, true), Some(1), "the vcpu argument is unused for SPIs");
    assert_eq!(vgic.next_pending(0), None);
    assert_eq!(vgic.next_pending(1).map(|irq| irq.intid), Some(UART_INTID));
    // GICD_ISPENDR1 shows it pending.
    assert_eq!(vgic.distributor_read(0x0204, 4).value, 1 << 1);
}

#[test]
fn spi_moved_while_in_a_list_register_is_retired_by_its_holder() {
    let mut vgic = booted(2);
    enable_spi(&mut vgic, UART_INTID);
    vgic.set_level(UART_INTID, 0, true);
    assert!(vgic.mark_in_list_register(0, UART_INTID));
    vgic.distributor_write(0x6000 + 8 * u64::from(UART_INTID), 8, 1);
    assert_eq!(vgic.next_pending(1), None, "still in vCPU 0's list register");
    assert!(!vgic.list_register_retired(1, UART_INTID, false), "vCPU 1 does not hold it");
    assert!(vgic.list_register_retired(0, UART_INTID, false));
    assert_eq!(vgic.next_pending(1).map(|irq| irq.intid), Some(UART_INTID));
}

#[test]
fn sgi_to_a_target_list() {
    let mut vgic = booted(4);
    for vcpu in 0..4 {
        enable_private(&mut vgic, vcpu, 1);
    }
    // vCPU 0 sends IPI_CALL_FUNC (SGI 1) to CPUs 1 and 3.
    let kicked = vgic.send_sgi(0, 0x0000_0000_0100_000a);
    assert_eq!(kicked.iter().collect::<Vec<_>>(), [1, 3]);
    assert_eq!(vgic.next_pending(0), None);
    assert_eq!(vgic.next_pending(2), None);
    assert_eq!(vgic.next_pending(1), Some(PendingIrq { intid: 1, priority: 0xa0, trigger: Trigger::Edge }));
    // GICR_ISPENDR0 of vCPU 3.
    assert_eq!(vgic.redistributor_read(3, GICR_SGI_OFFSET + 0x0200, 4).value, 1 << 1);

    // Broadcast to all but self (IRM); SGI 2 is not enabled anywhere: pending, no kick.
    assert!(vgic.send_sgi(2, 0x0000_0100_0200_0000).is_empty());
    assert_eq!(vgic.redistributor_read(2, GICR_SGI_OFFSET + 0x0200, 4).value, 0);
    assert_eq!(vgic.redistributor_read(0, GICR_SGI_OFFSET + 0x0200, 4).value, 1 << 2);
}

#[test]
fn edge_arriving_while_in_a_list_register_is_delivered_after_retirement() {
    let mut vgic = booted(1);
    enable_private(&mut vgic, 0, 0);
    vgic.send_sgi(0, 0x0000_0000_0000_0001);
    assert!(vgic.mark_in_list_register(0, 0));
    assert!(vgic.sync_list_register(0, 0, LrState::Active));
    // Another reschedule IPI while the guest handles the first: pending + active.
    // Not deliverable while in an LR, but the target is still kicked: only an
    // exit lets the runtime see the guest finish the first instance.
    assert_eq!(vgic.send_sgi(0, 0x0000_0000_0000_0001).iter().collect::<Vec<_>>(), [0]);
    assert_eq!(vgic.redistributor_read(0, GICR_SGI_OFFSET + 0x0200, 4).value, 1, "ISPENDR0");
    assert_eq!(vgic.redistributor_read(0, GICR_SGI_OFFSET + 0x0300, 4).value, 1, "ISACTIVER0");
    assert_eq!(vgic.next_pending(0), None);
    assert!(vgic.sync_list_register(0, 0, LrState::Invalid), "invalid retires");
    assert_eq!(drain(&mut vgic, 0), [0]);
    assert!(vgic.list_register_retired(0, 0, false));
    assert_eq!(vgic.next_pending(0), None, "exactly two deliveries");
}

#[test]
fn list_register_taken_back_while_pending_returns_the_edge() {
    let mut vgic = booted(1);
    enable_private(&mut vgic, 0, 3);
    vgic.raise_edge(3, 0);
    assert!(vgic.mark_in_list_register(0, 3));
    assert_eq!(vgic.redistributor_read(0, GICR_SGI_OFFSET + 0x0200, 4).value, 1 << 3, "pending in the LR");
    assert!(vgic.list_register_retired(0, 3, true));
    assert_eq!(vgic.next_pending(0).map(|irq| irq.intid), Some(3));
    assert!(!vgic.list_register_retired(0, 3, false), "no longer in a list register");
}

#[test]
fn level_interrupt_set_pending_by_software_is_consumed_by_the_acknowledge() {
    let mut vgic = booted(1);
    enable_spi(&mut vgic, 40);
    // GICD_ISPENDR1 bit 8: INTID 40, line low.
    assert!(vgic.distributor_write(0x0204, 4, 1 << 8).changed);
    assert_eq!(drain(&mut vgic, 0), [40]);
    assert!(vgic.sync_list_register(0, 40, LrState::Active));
    assert_eq!(vgic.distributor_read(0x0204, 4).value, 0, "acknowledged: no longer pending");
    assert_eq!(vgic.distributor_read(0x0304, 4).value, 1 << 8, "active");
    assert!(vgic.list_register_retired(0, 40, false));
    assert_eq!(vgic.next_pending(0), None);
}

#[test]
fn priority_order_then_lowest_intid() {
    let mut vgic = booted(2);
    let setup: [(u32, u8); 5] = [(1, 0x80), (27, 0x20), (33, 0x20), (40, 0xf0), (30, 0x80)];
    for (intid, priority) in setup {
        if intid < FIRST_SPI {
            enable_private(&mut vgic, 0, intid);
            vgic.redistributor_write(0, GICR_SGI_OFFSET + 0x0400 + u64::from(intid), 1, priority.into());
        } else {
            enable_spi(&mut vgic, intid);
            vgic.distributor_write(0x0400 + u64::from(intid), 1, priority.into());
        }
        vgic.raise_edge(intid, 0);
    }
    assert_eq!(vgic.next_pending(0), Some(PendingIrq { intid: 27, priority: 0x20, trigger: Trigger::Level }));
    assert_eq!(drain(&mut vgic, 0), [27, 33, 1, 30, 40]);
    assert_eq!(vgic.next_pending(1), None);
}

#[test]
fn active_interrupt_is_not_offered_until_cleared() {
    let mut vgic = booted(1);
    enable_spi(&mut vgic, 34);
    vgic.distributor_write(0x0304, 4, 1 << 2); // ISACTIVER1: INTID 34
    vgic.set_level(34, 0, true);
    assert_eq!(vgic.next_pending(0), None);
    assert!(vgic.distributor_write(0x0384, 4, 1 << 2).changed); // ICACTIVER1
    assert_eq!(vgic.next_pending(0).map(|irq| irq.intid), Some(34));
}

#[test]
fn byte_priority_writes() {
    let mut vgic = booted(1);
    // GICD_IPRIORITYR8 covers INTIDs 32..35; byte 1 is INTID 33.
    let result = vgic.distributor_write(0x0421, 1, 0x40);
    assert!(result.changed && !result.unhandled);
    assert_eq!(vgic.distributor_read(0x0420, 4).value, 0xa0a0_40a0);
    assert_eq!(vgic.distributor_read(0x0421, 1).value, 0x40);
    assert!(!vgic.distributor_write(0x0421, 1, 0x40).changed, "same value");
    // GICR_IPRIORITYR6 byte 3: PPI 27.
    assert!(vgic.redistributor_write(0, GICR_SGI_OFFSET + 0x041B, 1, 0x10).changed);
    assert_eq!(vgic.redistributor_read(0, GICR_SGI_OFFSET + 0x0418, 4).value, 0x10a0_a0a0);
    assert_eq!(vgic.irq_state(0, 27).unwrap().priority, 0x10);
}

#[test]
fn bad_sizes_and_reserved_offsets_are_reported_unhandled() {
    let mut vgic = booted(2);
    for (offset, size) in [(0x0000, 8), (0x0000, 2), (0x0000, 1), (0x0100, 1), (0x0C08, 8), (0x0102, 4), (0x6100, 2)] {
        let read = vgic.distributor_read(offset, size);
        assert!(read.unhandled && read.value == 0, "GICD {offset:#x} size {size}");
        assert!(vgic.distributor_write(offset, size, u64::MAX).unhandled, "GICD {offset:#x} size {size}");
    }
    assert!(vgic.distributor_read(0x0014, 4).unhandled, "reserved");
    for (offset, size) in [(0x0014, 8), (0x0004, 2), (GICR_SGI_OFFSET + 0x0100, 2), (GICR_SGI_OFFSET + 0x0C00, 1)] {
        assert!(vgic.redistributor_read(0, offset, size).unhandled, "GICR {offset:#x} size {size}");
        assert!(vgic.redistributor_write(0, offset, size, u64::MAX).unhandled, "GICR {offset:#x} size {size}");
    }
    // No third Redistributor; nothing past 128 KiB.
    assert!(vgic.redistributor_read(2, 0x0008, 8).unhandled);
    assert!(vgic.redistributor_read(0, GICR_FRAME_SIZE, 4).unhandled);
    // State survived all of that.
    assert!(vgic.distributor().group1_enabled());
    assert!(!vgic.irq_state(0, 0).unwrap().enabled);
}

#[test]
fn word_halves_of_64_bit_registers() {
    let mut vgic = booted(2);
    assert_eq!(vgic.redistributor_read(1, 0x0008, 4).value, 0x0000_0110);
    assert_eq!(vgic.redistributor_read(1, 0x000C, 4).value, 0x0000_0001);
    let irouter_33 = 0x6000 + 8 * u64::from(UART_INTID);
    assert!(vgic.distributor_write(irouter_33, 4, 1).changed);
    assert!(!vgic.distributor_write(irouter_33 + 4, 4, 0).changed);
    assert_eq!(vgic.spi_target(UART_INTID), Some(1));
}

#[test]
fn group_enable_gates_delivery_and_gicr_waker_does_not() {
    let mut vgic = booted(1);
    enable_private(&mut vgic, 0, VIRTUAL_TIMER_INTID);
    enable_spi(&mut vgic, UART_INTID);
    vgic.set_level(VIRTUAL_TIMER_INTID, 0, true);
    vgic.set_level(UART_INTID, 0, true);

    assert!(vgic.distributor_write(0, 4, 0x10).changed);
    assert_eq!(vgic.next_pending(0), None, "GICD_CTLR.EnableGrp1 clear");
    assert_eq!(vgic.set_level(UART_INTID, 0, true), None);
    vgic.distributor_write(0, 4, 0x12);

    // Software written for KVM never touches GICR_WAKER: an asleep redistributor
    // still delivers, and the handshake still reads back.
    vgic.redistributor_write(0, 0x0014, 4, WAKER_PROCESSOR_SLEEP);
    assert_eq!(vgic.redistributor_read(0, 0x0014, 4).value & WAKER_PROCESSOR_SLEEP, WAKER_PROCESSOR_SLEEP);
    assert_eq!(drain(&mut vgic, 0), [27, 33]);
}

#[test]
fn disabled_interrupt_stays_pending_until_enabled() {
    let mut vgic = booted(1);
    assert_eq!(vgic.set_level(UART_INTID, 0, true), None);
    assert_eq!(vgic.distributor_read(0x0204, 4).value, 1 << 1, "pending though disabled");
    assert_eq!(vgic.next_pending(0), None);
    enable_spi(&mut vgic, UART_INTID);
    assert_eq!(vgic.next_pending(0).map(|irq| irq.intid), Some(UART_INTID));
    // ICENABLER1 withdraws it again.
    assert!(vgic.distributor_write(0x0184, 4, 1 << 1).changed);
    assert_eq!(vgic.next_pending(0), None);
}

#[test]
fn ipa_windows() {
    let mut vgic = Vgic::new(2);
    assert_eq!(vgic.region(0x0800_FFFC), Some(Region::Distributor { offset: 0xFFFC }));
    assert_eq!(vgic.region(0x0801_0000), None);
    assert_eq!(vgic.region(0x080C_0008), Some(Region::Redistributor { vcpu: 1, offset: 8 }));
    assert_eq!(vgic.region(0x080D_0100), Some(Region::Redistributor { vcpu: 1, offset: 0x1_0100 }));
    assert_eq!(vgic.region(0x080E_0000), None, "no third Redistributor");
    assert_eq!(vgic.region(0x0809_FFFC), None);
    assert_eq!(vgic.mmio_read(0x0900_0000, 4), None);
    assert_eq!(vgic.mmio_read(0x080C_FFE8, 4).unwrap().value, 0x3B);
    assert!(vgic.mmio_write(0x080D_0100, 4, 1).unwrap().changed);
    assert!(vgic.irq_state(1, 0).unwrap().enabled);
}

#[test]
fn unknown_intids_and_vcpus_are_ignored() {
    let mut vgic = booted(2);
    assert_eq!(vgic.set_level(NUM_INTIDS, 0, true), None);
    assert_eq!(vgic.set_level(27, 2, true), None);
    assert_eq!(vgic.raise_edge(1020, 0), None);
    assert!(!vgic.mark_in_list_register(2, 27));
    assert!(!vgic.mark_in_list_register(0, NUM_INTIDS));
    assert!(!vgic.list_register_retired(0, 27, false));
    assert_eq!(vgic.next_pending(2), None);
}

#[test]
fn level_spi_asks_for_an_eoi_maintenance_interrupt() {
    let uart = PendingIrq { intid: 33, priority: 0xa0, trigger: Trigger::Level };
    let lr = uart.list_register();
    assert!(lr.eoi_maintenance);
    // EOI is bit 41.
    assert_eq!(lr.to_bits(), 0x50a0_0200_0000_0021);
    assert_eq!(ListRegister::from_bits(0x50a0_0200_0000_0021), lr);

    let sgi = PendingIrq { intid: 1, priority: 0x80, trigger: Trigger::Edge };
    assert_eq!(sgi.list_register().to_bits(), 0x5080_0000_0000_0001);
}
