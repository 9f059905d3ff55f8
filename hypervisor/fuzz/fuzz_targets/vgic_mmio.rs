//! The virtual GIC driven by an arbitrary guest (MMIO anywhere near the
//! Distributor and Redistributor windows, any size, any `ICC_SGI1R_EL1`) and an
//! arbitrary interleaving of device lines and list-register hand-offs, with the
//! model's invariants checked after every step.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hv_abi::machine::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_FRAME_SIZE, GICR_SGI_OFFSET};
use hypervisor::vm::vgic::{FIRST_SPI, LrState, NUM_INTIDS, Region, Vgic};
use libfuzzer_sys::fuzz_target;

/// List registers per vCPU in the runtime model (GIC-700 has 4, QEMU 4).
const LIST_REGISTERS: usize = 4;

/// Where an access goes: windows chosen so most accesses hit a register.
#[derive(Debug, Arbitrary)]
enum Target {
    Distributor(u16),
    /// vCPU (modulo 9, so one past the last is reached too) and offset in its 128 KiB.
    Redistributor(u8, u32),
    /// Any IPA at all.
    Raw(u64),
    /// Just below GICD, just past it, or just past the last Redistributor.
    Edge(u8, i16),
}

#[derive(Debug, Arbitrary)]
enum Size {
    Byte,
    Half,
    Word,
    Double,
    Odd(u8),
}

impl Size {
    fn bytes(&self) -> u8 {
        match self {
            Size::Byte => 1,
            Size::Half => 2,
            Size::Word => 4,
            Size::Double => 8,
            Size::Odd(n) => *n,
        }
    }
}

/// An INTID: mostly real ones, sometimes anything.
#[derive(Debug)]
struct Intid(u32);

impl<'a> Arbitrary<'a> for Intid {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Intid(if u.ratio(15, 16)? { u.int_in_range(0..=NUM_INTIDS + 1)? } else { u.arbitrary()? }))
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    Read(Target, Size),
    Write(Target, Size, u64),
    SendSgi {
        from: u8,
        value: u64,
    },
    SetLevel {
        intid: Intid,
        vcpu: u8,
        high: bool,
    },
    RaiseEdge {
        intid: Intid,
        vcpu: u8,
    },
    /// The runtime fills a free list register of `vcpu`.
    Fill {
        vcpu: u8,
    },
    /// The guest acknowledges list register `lr` of `vcpu` (pending -> active),
    /// or a new instance arrives while active (pending+active); the runtime syncs.
    Ack {
        vcpu: u8,
        lr: u8,
        again: bool,
    },
    /// The guest deactivates list register `lr` (it goes invalid); the runtime retires it.
    Deactivate {
        vcpu: u8,
        lr: u8,
    },
    /// The runtime takes back a list register still pending.
    TakeBack {
        vcpu: u8,
        lr: u8,
    },
    /// Protocol violations a buggy runtime could commit: must not panic.
    RawMark {
        vcpu: u8,
        intid: Intid,
    },
    RawRetire {
        vcpu: u8,
        intid: Intid,
        still_pending: bool,
    },
    RawSync {
        vcpu: u8,
        intid: Intid,
        state: u8,
    },
    /// The common Linux bring-up writes, so deeper states are reached quickly.
    Enable {
        vcpu: u8,
    },
}

#[derive(Debug)]
struct Input {
    mpidrs: Option<Vec<u64>>,
    vcpus: usize,
    ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let vcpus = u.int_in_range(1..=8usize)?;
        let mpidrs = if u.ratio(1, 4)? {
            Some((0..vcpus).map(|_| u.arbitrary()).collect::<arbitrary::Result<_>>()?)
        } else {
            None
        };
        let ops = u.arbitrary_iter()?.take(64).collect::<arbitrary::Result<_>>()?;
        Ok(Input { mpidrs, vcpus, ops })
    }
}

/// The runtime's view of one vCPU's list registers: `(intid, state)` per slot.
type ListRegisters = [Option<(u32, LrState)>; LIST_REGISTERS];

fn ipa(target: &Target, vcpus: usize) -> u64 {
    match *target {
        Target::Distributor(offset) => GICD_BASE + u64::from(offset),
        Target::Redistributor(vcpu, offset) => {
            GICR_BASE + u64::from(vcpu % 9) * GICR_FRAME_SIZE + u64::from(offset) % GICR_FRAME_SIZE
        }
        Target::Raw(ipa) => ipa,
        Target::Edge(which, delta) => {
            let base = match which % 3 {
                0 => GICD_BASE,
                1 => GICD_BASE + GICD_SIZE,
                _ => GICR_BASE + vcpus as u64 * GICR_FRAME_SIZE,
            };
            base.wrapping_add_signed(i64::from(delta))
        }
    }
}

/// What `next_pending` offers `vcpu` is deliverable there, and nothing
/// deliverable there is more urgent.
fn check(vgic: &Vgic, vcpu: usize) {
    let vcpus = vgic.vcpu_count();
    {
        let Some(irq) = vgic.next_pending(vcpu) else { return };
        assert!(vcpu < vcpus, "next_pending for absent vCPU {vcpu}");
        assert!(irq.intid < NUM_INTIDS, "{irq:?}");
        assert!(vgic.distributor().group1_enabled());
        let state = vgic.irq_state(vcpu, irq.intid).expect("offered INTID exists");
        assert!(state.enabled && state.pending() && !state.active, "{irq:?} {state:?}");
        assert!(state.list_register.is_none(), "offered twice: {irq:?} {state:?}");
        assert_eq!(state.priority, irq.priority);
        assert_eq!(state.trigger, irq.trigger);
        if irq.intid >= FIRST_SPI {
            assert_eq!(vgic.spi_target(irq.intid), Some(vcpu), "SPI offered to the wrong vCPU");
        }
        // Nothing deliverable to this vCPU is more urgent.
        for intid in 0..NUM_INTIDS {
            let other = vgic.irq_state(vcpu, intid).unwrap();
            let routed = intid < FIRST_SPI || vgic.spi_target(intid) == Some(vcpu);
            if routed && other.deliverable() {
                assert!(
                    other.priority > irq.priority || (other.priority == irq.priority && intid >= irq.intid),
                    "{intid} ({other:?}) beats {irq:?}"
                );
            }
        }
    }
}

fn check_access(ipa: u64, size: u8, vgic: &Vgic, result: Option<hypervisor::vm::vgic::MmioResult>, read: bool) {
    assert_eq!(result.is_some(), vgic.region(ipa).is_some());
    let Some(result) = result else { return };
    if result.unhandled {
        assert_eq!(result.value, 0);
        assert!(!result.changed);
        return;
    }
    assert!(matches!(size, 1 | 2 | 4 | 8), "size {size} handled at {ipa:#x}");
    assert!(ipa.is_multiple_of(u64::from(size)), "unaligned size {size} handled at {ipa:#x}");
    if read {
        assert!(!result.changed, "a read changed state at {ipa:#x}");
        if size < 8 {
            assert_eq!(result.value >> (8 * u32::from(size)), 0, "{size}-byte read at {ipa:#x}: {result:?}");
        }
    } else {
        assert_eq!(result.value, 0);
    }
}

/// Registers that read back what was written: the priorities and the set-enable
/// bits of implemented INTIDs (in the Distributor: the SPIs, INTIDs 32..95; in a
/// Redistributor's `SGI_base`: INTIDs 0..31).
fn check_read_back(vgic: &Vgic, ipa: u64, size: u8, value: u64) {
    let (offset, spis) = match vgic.region(ipa) {
        Some(Region::Distributor { offset }) => (offset, true),
        Some(Region::Redistributor { offset, .. }) if offset >= GICR_SGI_OFFSET => (offset - GICR_SGI_OFFSET, false),
        _ => return,
    };
    let implemented = if spis { u64::from(FIRST_SPI)..u64::from(NUM_INTIDS) } else { 0..u64::from(FIRST_SPI) };
    let mask = if size == 8 { u64::MAX } else { (1 << (8 * u32::from(size))) - 1 };
    let read = || vgic.mmio_read(ipa, size).unwrap().value;
    match offset {
        // GICx_IPRIORITYR<n>: one byte per INTID.
        0x400..0x800 if implemented.contains(&(offset - 0x400)) => {
            assert_eq!(read(), value & mask, "IPRIORITYR at {ipa:#x}");
        }
        // GICx_ISENABLER<n>: written ones read as one.
        0x100..0x180 if implemented.contains(&((offset - 0x100) * 8)) => {
            assert_eq!(read() & value & mask, value & mask, "ISENABLER at {ipa:#x}");
        }
        // GICx_ICENABLER<n>: written ones read as zero.
        0x180..0x200 if implemented.contains(&((offset - 0x180) * 8)) => {
            assert_eq!(read() & value & mask, 0, "ICENABLER at {ipa:#x}");
        }
        _ => {}
    }
}

fuzz_target!(|input: Input| {
    let mut vgic = match &input.mpidrs {
        Some(mpidrs) => Vgic::with_mpidrs(mpidrs),
        None => Vgic::new(input.vcpus),
    };
    let vcpus = vgic.vcpu_count();
    assert_eq!(vcpus, input.vcpus);
    let mut lrs: Vec<ListRegisters> = vec![[None; LIST_REGISTERS]; vcpus];
    // Once the fuzzer breaks the hand-off protocol, the runtime model no longer
    // matches the vGIC's and only the model's own invariants are checked.
    let mut protocol_kept = true;

    for op in &input.ops {
        match op {
            Op::Read(target, size) => {
                let ipa = ipa(target, vcpus);
                let size = size.bytes();
                let result = vgic.mmio_read(ipa, size);
                check_access(ipa, size, &vgic, result, true);
            }
            Op::Write(target, size, value) => {
                let ipa = ipa(target, vcpus);
                let size = size.bytes();
                let result = vgic.mmio_write(ipa, size, *value);
                check_access(ipa, size, &vgic, result, false);
                if result.is_some_and(|result| !result.unhandled) {
                    check_read_back(&vgic, ipa, size, *value);
                }
            }
            Op::SendSgi { from, value } => {
                let kick = vgic.send_sgi(usize::from(*from % 10), *value);
                assert!(kick.iter().all(|vcpu| vcpu < vcpus), "{kick:?}");
            }
            Op::SetLevel { intid, vcpu, high } => {
                if let Some(kick) = vgic.set_level(intid.0, usize::from(*vcpu % 10), *high) {
                    assert!(kick < vcpus);
                }
            }
            Op::RaiseEdge { intid, vcpu } => {
                if let Some(kick) = vgic.raise_edge(intid.0, usize::from(*vcpu % 10)) {
                    assert!(kick < vcpus);
                }
            }
            Op::Fill { vcpu } => {
                let vcpu = usize::from(*vcpu) % vcpus;
                check(&vgic, vcpu);
                let Some(slot) = lrs[vcpu].iter().position(Option::is_none) else { continue };
                if let Some(irq) = vgic.next_pending(vcpu) {
                    assert!(vgic.mark_in_list_register(vcpu, irq.intid), "offered {irq:?} but cannot mark it");
                    assert!(!vgic.mark_in_list_register(vcpu, irq.intid), "marked {irq:?} twice");
                    let state = vgic.irq_state(vcpu, irq.intid).unwrap();
                    assert_eq!(state.list_register.map(|lr| lr.vcpu), Some(vcpu));
                    assert!(state.reads_pending());
                    lrs[vcpu][slot] = Some((irq.intid, LrState::Pending));
                }
            }
            Op::Ack { vcpu, lr, again } => {
                let vcpu = usize::from(*vcpu) % vcpus;
                let Some((intid, state)) = lrs[vcpu][usize::from(*lr) % LIST_REGISTERS].as_mut() else { continue };
                *state = if *again { LrState::PendingActive } else { LrState::Active };
                let synced = vgic.sync_list_register(vcpu, *intid, *state);
                if protocol_kept {
                    assert!(synced, "sync of LR holding {intid} on vCPU {vcpu} refused");
                    assert!(vgic.irq_state(vcpu, *intid).unwrap().reads_active());
                }
            }
            Op::Deactivate { vcpu, lr } => {
                let vcpu = usize::from(*vcpu) % vcpus;
                let Some((intid, _)) = lrs[vcpu][usize::from(*lr) % LIST_REGISTERS].take() else { continue };
                let retired = vgic.sync_list_register(vcpu, intid, LrState::Invalid);
                if protocol_kept {
                    assert!(retired, "retiring {intid} from vCPU {vcpu} refused");
                    assert!(vgic.irq_state(vcpu, intid).unwrap().list_register.is_none());
                }
            }
            Op::TakeBack { vcpu, lr } => {
                let vcpu = usize::from(*vcpu) % vcpus;
                let slot = &mut lrs[vcpu][usize::from(*lr) % LIST_REGISTERS];
                let Some((intid, LrState::Pending)) = *slot else { continue };
                *slot = None;
                let retired = vgic.list_register_retired(vcpu, intid, true);
                if protocol_kept {
                    assert!(retired, "taking back {intid} from vCPU {vcpu} refused");
                    // An edge-triggered instance goes back to the latch; a level-sensitive
                    // one is pending again only while its line (or ISPENDR latch) says so.
                    let state = vgic.irq_state(vcpu, intid).unwrap();
                    assert!(state.list_register.is_none());
                    if state.trigger == hypervisor::vm::vgic::Trigger::Edge {
                        assert!(state.pending(), "a taken-back edge was lost: {state:?}");
                    }
                }
            }
            Op::RawMark { vcpu, intid } => {
                protocol_kept = false;
                let vcpu = usize::from(*vcpu % 10);
                if vgic.mark_in_list_register(vcpu, intid.0) {
                    assert!(vcpu < vcpus && intid.0 < NUM_INTIDS);
                }
            }
            Op::RawRetire { vcpu, intid, still_pending } => {
                protocol_kept = false;
                let vcpu = usize::from(*vcpu % 10);
                if vgic.list_register_retired(vcpu, intid.0, *still_pending) {
                    assert!(vcpu < vcpus && intid.0 < NUM_INTIDS);
                }
            }
            Op::RawSync { vcpu, intid, state } => {
                protocol_kept = false;
                let vcpu = usize::from(*vcpu % 10);
                if vgic.sync_list_register(vcpu, intid.0, LrState::from_bits(u64::from(*state))) {
                    assert!(vcpu < vcpus && intid.0 < NUM_INTIDS);
                }
            }
            Op::Enable { vcpu } => {
                let vcpu = u64::from(*vcpu) % vcpus as u64;
                // GICD_CTLR = EnableGrp1 | ARE, GICR_WAKER.ProcessorSleep = 0,
                // GICR_ISENABLER0 = all, GICD_ISENABLER1/2 = all.
                let rd = GICR_BASE + vcpu * GICR_FRAME_SIZE;
                for (ipa, value) in [
                    (GICD_BASE, 0x12),
                    (rd + 0x14, 0),
                    (rd + 0x1_0100, 0xFFFF_FFFF),
                    (GICD_BASE + 0x104, 0xFFFF_FFFF),
                    (GICD_BASE + 0x108, 0xFFFF_FFFF),
                ] {
                    let result = vgic.mmio_write(ipa, 4, value).expect("a vGIC register");
                    assert!(!result.unhandled, "{ipa:#x}");
                }
            }
        }
    }
    for vcpu in 0..=vcpus {
        check(&vgic, vcpu);
    }
});
