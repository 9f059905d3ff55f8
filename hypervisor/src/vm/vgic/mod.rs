//! A virtual GICv3 for guests: the Distributor and Redistributors modelled in
//! portable Rust, with the decisions the runtime needs to drive the hardware's
//! virtual CPU interface.
//!
//! The GICv3 architecture (Arm IHI 0069, "GIC architecture version 3 and
//! version 4") splits an interrupt controller into a Distributor (SPIs,
//! global enables), one Redistributor per PE (SGIs, PPIs, power management)
//! and a CPU interface per PE (acknowledge, priority masking, end of
//! interrupt). Virtualization support ("Virtual interrupt handling and
//! prioritization") provides the CPU interface in hardware: the guest's
//! `ICC_*_EL1` accesses go to a virtual CPU interface fed by the hypervisor's
//! list registers `ICH_LR<n>_EL2`. Distributor and Redistributors have no
//! hardware support and are emulated here, from trapped MMIO accesses.
//!
//! # Guest address map
//!
//! The windows are the guest machine's ([`hv_abi::machine`]):
//!
//! | IPA | what |
//! | --- | --- |
//! | [`GICD_BASE`] ([`GICD_SIZE`]) | Distributor |
//! | [`GICR_BASE`] + [`GICR_FRAME_SIZE`] × n | vCPU n's Redistributor: `RD_base`, then `SGI_base` at [`GICR_SGI_OFFSET`](hv_abi::machine::GICR_SGI_OFFSET) |
//!
//! # Who does what
//!
//! - The VM's MMIO bus (`vm::mmio`) routes a trapped access in these windows
//!   (registered by [`Vgic::register_windows`]) to
//!   [`Vgic::distributor_read`]/[`write`](Vgic::distributor_write) or
//!   [`Vgic::redistributor_read`]/[`write`](Vgic::redistributor_write). A result with
//!   `changed` means enables, pending state, priorities or routes moved: the runtime
//!   should look for newly deliverable interrupts. `unhandled` means the access was
//!   to a reserved offset or of a size the register does not allow; it read as zero
//!   or was ignored (RAZ/WI), and the runtime may log it (rate limited).
//! - Devices drive interrupts with [`Vgic::set_level`] (level-sensitive sources: the
//!   virtual timer, [`VIRTUAL_TIMER_INTID`](hv_abi::machine::VIRTUAL_TIMER_INTID), and
//!   the PL011, [`UART_INTID`](hv_abi::machine::UART_INTID)) and [`Vgic::raise_edge`]; a trapped
//!   `ICC_SGI1R_EL1` write becomes [`Vgic::send_sgi`]. Each returns the vCPU(s) that
//!   now have something deliverable, to be kicked if running or woken if in WFI.
//! - `vcpu_lrs` fills each vCPU's list registers from [`Vgic::next_pending`] and
//!   tells the model what happens to them, including recalls
//!   ([`Vgic::review_list_register`]).
//!
//! # List-register hand-off
//!
//! The model owns an interrupt's state until the runtime puts it in a list
//! register; from then on the virtual CPU interface owns that instance, and
//! the guest acknowledges (LR pending → active) and deactivates (active →
//! invalid) it without trapping. The protocol, per vCPU:
//!
//! 1. Fill: while an LR is free, `irq = next_pending(vcpu)` gives the most urgent
//!    interrupt (lowest priority value; lowest INTID on ties) that is enabled,
//!    pending, not active, not already in an LR, and routed to `vcpu`, with the
//!    Distributor's Group 1 enable set. (`GICR_WAKER` does not gate delivery: KVM
//!    treats it as RAZ/WI and guests written for KVM never clear ProcessorSleep;
//!    the handshake stays readable for those that do.) Write
//!    `irq.list_register().to_bits()` (state *pending*, Group 1, EOI
//!    maintenance for level-sensitive interrupts) and call
//!    `mark_in_list_register(vcpu, irq.intid)`. For an edge-triggered interrupt
//!    this moves the latched edge into the LR; a new edge latches again but is not
//!    offered until the LR is retired (pending and active, as in hardware). A level
//!    interrupt stays as it is: its line (or `ISPENDR` latch) is re-examined at
//!    retirement.
//! 2. Optionally, at exits, `sync_list_register(vcpu, intid, state)` with the state read
//!    back from the LR, so guest reads of `ISPENDR`/`ISACTIVER` reflect acknowledges.
//!    Until then an interrupt in an LR reads as pending, not active.
//! 3. Retire: when the LR has gone *invalid* (the guest deactivated it: seen in
//!    `ICH_ELRSR_EL2`, or on the EOI maintenance interrupt), call
//!    `list_register_retired(vcpu, intid, false)`: the acknowledge consumes a level
//!    interrupt's `ISPENDR` latch, and if its line is still high, or another edge
//!    arrived meanwhile, the interrupt is pending again and `next_pending` offers it.
//!    When the runtime takes back an LR still *pending* (never acknowledged, e.g. to
//!    make room for a more urgent interrupt), `list_register_retired(vcpu, intid, true)`
//!    returns that instance to the model. An LR that is *active* must be left in
//!    place until the guest deactivates it.
//!
//! Guest writes that withdraw state (`ICENABLER`, `ICPENDR`, `ICACTIVER`) act on the
//! model; an instance already in an LR stays there until retired (the guest may see
//! it once more, like an interrupt that was already acknowledged).

pub mod distributor;
pub mod irq_state;
pub mod list_register;
mod mmio;
pub mod redistributor;
pub mod sgi;
pub mod vcpu_lrs;

#[cfg(test)]
mod tests;

use alloc::vec::Vec;

pub use distributor::{Distributor, FIRST_SPI, NUM_INTIDS, SPI_BLOCKS, SPI_COUNT};
pub use irq_state::{InListRegister, IrqState, Trigger};
pub use list_register::{ListRegister, LrState};
pub use redistributor::Redistributor;
pub use sgi::{SgiRequest, SgiRouting, VcpuSet, sgi_targets};

use hv_abi::machine::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_FRAME_SIZE, MAX_VCPUS};

// A `VcpuSet` is a u64.
const _: () = assert!(MAX_VCPUS <= 64);

/// `GICD_IIDR`/`GICR_IIDR`: Arm's JEP106 code 0x43B as implementer, product ID
/// 0x4D. No Linux quirk matches it, which is the point.
const IIDR: u32 = 0x4D00_043B;

const fn iidr() -> u32 {
    IIDR
}

/// The identification registers at 0xFFD0..=0xFFFC of the Distributor and of a
/// Redistributor's `RD_base` ("Identification registers"). Linux checks
/// `GICx_PIDR2.ArchRev` (bits `[7:4]`) is 3 or 4 before using either.
const fn id_register(offset: u64) -> Option<u32> {
    Some(match offset {
        // PIDR4: DES_2 = 4, the JEP106 continuation code of Arm.
        0xFFD0 => 0x04,
        // PIDR1: DES_0 [7:4] = low nibble of Arm's JEP106 identity 0x3B.
        0xFFE4 => 0xB0,
        // PIDR2: ArchRev 3 (GICv3), JEDEC [3], DES_1 [2:0] = 0b011.
        0xFFE8 => 0x3B,
        // CIDR0..3: the CoreSight component preamble.
        0xFFF0 => 0x0D,
        0xFFF4 => 0xF0,
        0xFFF8 => 0x05,
        0xFFFC => 0xB1,
        // PIDR5..7, PIDR0, PIDR3.
        0xFFD4 | 0xFFD8 | 0xFFDC | 0xFFE0 | 0xFFEC => 0,
        _ => return None,
    })
}

/// Whether an access of `size` bytes at `offset` is naturally aligned ("GIC
/// memory-mapped register access" allows nothing else).
const fn aligned(offset: u64, size: u8) -> bool {
    matches!(size, 1 | 2 | 4 | 8) && offset.is_multiple_of(size as u64)
}

/// The affinity fields of an `MPIDR_EL1` or `GICD_IROUTER<n>` value: Aff3
/// `[39:32]`, Aff2 `[23:16]`, Aff1 `[15:8]`, Aff0 `[7:0]` (the same positions in both).
const fn affinity_of(value: u64) -> u64 {
    value & 0xFF_00FF_FFFF
}

/// What an emulated MMIO access did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MmioResult {
    /// For reads: the value to put in the destination register (zero-extended).
    pub value: u64,
    /// Interrupt state that affects delivery changed (enables, pending, active,
    /// priorities, trigger, routes, the group enable): the runtime
    /// should look for newly deliverable interrupts.
    pub changed: bool,
    /// Reserved offset or disallowed access size/alignment: read as zero or
    /// ignored. Worth logging once.
    pub unhandled: bool,
}

impl MmioResult {
    pub const fn read(value: u64) -> Self {
        MmioResult { value, changed: false, unhandled: false }
    }

    pub const fn wrote(changed: bool) -> Self {
        MmioResult { value: 0, changed, unhandled: false }
    }

    pub const fn unhandled() -> Self {
        MmioResult { value: 0, changed: false, unhandled: true }
    }
}

/// Which vGIC register window an IPA falls in (for tests and fuzzing, which
/// address the model by IPA; the runtime reaches it through the VM's MMIO bus).
#[cfg(any(test, fuzzing))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// `offset` from [`GICD_BASE`].
    Distributor { offset: u64 },
    /// `offset` within vCPU `vcpu`'s Redistributor (0..128 KiB; `SGI_base` from 64 KiB).
    Redistributor { vcpu: usize, offset: u64 },
}

/// An interrupt ready for a list register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingIrq {
    pub intid: u32,
    pub priority: u8,
    /// Level-sensitive interrupts want an EOI maintenance interrupt (see
    /// [`PendingIrq::list_register`]).
    pub trigger: Trigger,
}

impl PendingIrq {
    /// The list register that injects this interrupt: Group 1, *pending*.
    /// Level-sensitive interrupts ask for an EOI maintenance interrupt, so the
    /// runtime gets an exit when the guest is done with one and can retire it and
    /// sample the line again (GICv3 specification, "Maintenance interrupts");
    /// edge-triggered ones do not need one. Set [`ListRegister::hw`] instead when
    /// a physical interrupt backs it.
    pub const fn list_register(self) -> ListRegister {
        ListRegister {
            intid: self.intid,
            priority: self.priority,
            group1: true,
            state: LrState::Pending,
            hw: None,
            eoi_maintenance: matches!(self.trigger, Trigger::Level),
        }
    }
}

/// What [`Vgic::review_list_register`] decided for an interrupt in a list register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrReview {
    Keep,
    /// Rewrite the list register as *pending and active*.
    PendingActive,
    /// Take it out of the list register (then report it with
    /// [`Vgic::list_register_retired`]`(vcpu, intid, still_pending)`).
    Recall {
        still_pending: bool,
    },
}

/// The virtual GIC of one VM.
#[derive(Debug, Clone)]
pub struct Vgic {
    distributor: Distributor,
    redistributors: Vec<Redistributor>,
    /// Each vCPU's MPIDR affinity, for routing SPIs and SGIs.
    affinities: Vec<u64>,
}

impl Vgic {
    /// A vGIC for `vcpu_count` vCPUs whose MPIDR affinity is their index (Aff0 =
    /// index, as the runtime programs `VMPIDR_EL2`).
    ///
    /// Panics unless `1 <= vcpu_count <= MAX_VCPUS` (the configuration parser
    /// guarantees it).
    pub fn new(vcpu_count: usize) -> Self {
        let mpidrs: Vec<u64> = (0..vcpu_count as u64).collect();
        Self::with_mpidrs(&mpidrs)
    }

    /// A vGIC for vCPUs reading `mpidrs[i]` from `MPIDR_EL1`.
    pub fn with_mpidrs(mpidrs: &[u64]) -> Self {
        assert!((1..=MAX_VCPUS).contains(&mpidrs.len()), "a vGIC needs 1..={MAX_VCPUS} vCPUs");
        let affinities: Vec<u64> = mpidrs.iter().map(|&mpidr| affinity_of(mpidr)).collect();
        let last = mpidrs.len() - 1;
        let redistributors =
            mpidrs.iter().enumerate().map(|(index, &mpidr)| Redistributor::new(index, mpidr, index == last)).collect();
        Vgic { distributor: Distributor::new(&affinities), redistributors, affinities }
    }

    pub fn vcpu_count(&self) -> usize {
        self.redistributors.len()
    }

    pub fn distributor(&self) -> &Distributor {
        &self.distributor
    }

    pub fn redistributor(&self, vcpu: usize) -> Option<&Redistributor> {
        self.redistributors.get(vcpu)
    }

    /// The state of `intid` as seen by `vcpu` (for an SPI, `vcpu` is not used).
    pub fn irq_state(&self, vcpu: usize, intid: u32) -> Option<&IrqState> {
        if intid < FIRST_SPI { self.redistributors.get(vcpu)?.irq(intid) } else { self.distributor.spi(intid) }
    }

    /// The vCPU an SPI is routed to by its `GICD_IROUTER<n>` (for tests and the
    /// `vgic_mmio` fuzz target; the runtime asks [`Self::next_pending`]).
    #[cfg(any(test, fuzzing))]
    pub fn spi_target(&self, intid: u32) -> Option<usize> {
        self.distributor.target(intid)
    }

    /// Which register window `ipa` is in, if any.
    #[cfg(any(test, fuzzing))]
    pub fn region(&self, ipa: u64) -> Option<Region> {
        if (GICD_BASE..GICD_BASE + GICD_SIZE).contains(&ipa) {
            return Some(Region::Distributor { offset: ipa - GICD_BASE });
        }
        let offset = ipa.checked_sub(GICR_BASE)?;
        let vcpu = usize::try_from(offset / GICR_FRAME_SIZE).ok()?;
        (vcpu < self.vcpu_count()).then_some(Region::Redistributor { vcpu, offset: offset % GICR_FRAME_SIZE })
    }

    /// A guest read of `size` bytes at `ipa`; `None` if `ipa` is not the vGIC's.
    #[cfg(any(test, fuzzing))]
    pub fn mmio_read(&self, ipa: u64, size: u8) -> Option<MmioResult> {
        Some(match self.region(ipa)? {
            Region::Distributor { offset } => self.distributor_read(offset, size),
            Region::Redistributor { vcpu, offset } => self.redistributor_read(vcpu, offset, size),
        })
    }

    /// A guest write of `size` bytes of `value` at `ipa`; `None` if `ipa` is not the vGIC's.
    #[cfg(any(test, fuzzing))]
    pub fn mmio_write(&mut self, ipa: u64, size: u8, value: u64) -> Option<MmioResult> {
        Some(match self.region(ipa)? {
            Region::Distributor { offset } => self.distributor_write(offset, size, value),
            Region::Redistributor { vcpu, offset } => self.redistributor_write(vcpu, offset, size, value),
        })
    }

    pub fn distributor_read(&self, offset: u64, size: u8) -> MmioResult {
        self.distributor.read(offset, size)
    }

    pub fn distributor_write(&mut self, offset: u64, size: u8, value: u64) -> MmioResult {
        self.distributor.write(offset, size, value, &self.affinities)
    }

    /// A read in Redistributor `frame` (the vCPU index); `offset` < 128 KiB.
    pub fn redistributor_read(&self, frame: usize, offset: u64, size: u8) -> MmioResult {
        match self.redistributors.get(frame) {
            Some(redistributor) if offset < GICR_FRAME_SIZE => redistributor.read(offset, size),
            _ => MmioResult::unhandled(),
        }
    }

    pub fn redistributor_write(&mut self, frame: usize, offset: u64, size: u8, value: u64) -> MmioResult {
        match self.redistributors.get_mut(frame) {
            Some(redistributor) if offset < GICR_FRAME_SIZE => redistributor.write(offset, size, value),
            _ => MmioResult::unhandled(),
        }
    }

    /// Drives the input line of `intid`: a PPI of `vcpu`, or an SPI (`vcpu` then
    /// unused). Level-sensitive interrupts are pending while it is high;
    /// edge-triggered ones latch on its rising edge. Returns the vCPU to kick if the
    /// interrupt is now deliverable. Unknown INTIDs and vCPUs are ignored.
    pub fn set_level(&mut self, intid: u32, vcpu: usize, high: bool) -> Option<usize> {
        self.state_mut(vcpu, intid)?.set_line(high);
        self.kick_target(vcpu, intid)
    }

    /// Makes `intid` pending as an edge would (on a level-sensitive interrupt, as
    /// an `ISPENDR` write would: latched until acknowledged). Returns the vCPU to kick.
    pub fn raise_edge(&mut self, intid: u32, vcpu: usize) -> Option<usize> {
        self.state_mut(vcpu, intid)?.latch = true;
        self.kick_target(vcpu, intid)
    }

    /// Delivers the SGI a guest's trapped `ICC_SGI1R_EL1` write of `icc_sgi1r` on
    /// `from_vcpu` asks for. Returns the vCPUs to kick: every target that has the
    /// SGI enabled, even where
    /// the new instance is not deliverable yet. The previous instance may still
    /// sit in the target's list register, already handled by a guest that has not
    /// exited since; only an exit lets the runtime see that and offer the new one
    /// (without the kick, a target spinning without exits never gets it).
    pub fn send_sgi(&mut self, from_vcpu: usize, icc_sgi1r: u64) -> VcpuSet {
        let affinities = &self.affinities;
        let (intid, targets) = sgi_targets(from_vcpu, icc_sgi1r, affinities.len(), |vcpu| affinities[vcpu]);
        let mut kick = VcpuSet::EMPTY;
        for vcpu in targets.iter() {
            let enabled = self.state_mut(vcpu, intid).is_some_and(|state| state.enabled);
            self.raise_edge(intid, vcpu);
            if enabled {
                kick.insert(vcpu);
            }
        }
        kick
    }

    /// The most urgent interrupt to put in a list register of `vcpu` (see the
    /// module documentation), if any.
    pub fn next_pending(&self, vcpu: usize) -> Option<PendingIrq> {
        let redistributor = self.redistributors.get(vcpu)?;
        if !self.distributor.group1_enabled() {
            return None;
        }
        let spis =
            self.distributor.spis().filter(|&(_, _, target)| target == Some(vcpu)).map(|(intid, irq, _)| (intid, irq));
        let mut best: Option<PendingIrq> = None;
        // Ascending INTIDs: on equal priority the first (lowest INTID) wins.
        for (intid, irq) in redistributor.irqs().chain(spis).filter(|(_, irq)| irq.deliverable()) {
            if best.is_none_or(|b| irq.priority < b.priority) {
                best = Some(PendingIrq { intid, priority: irq.priority, trigger: irq.trigger });
            }
        }
        best
    }

    /// The runtime wrote a list register of `vcpu` with `intid` in the *pending*
    /// state. Returns false (and changes nothing) if the INTID or vCPU is unknown or
    /// the interrupt is already in a list register.
    pub fn mark_in_list_register(&mut self, vcpu: usize, intid: u32) -> bool {
        if vcpu >= self.vcpu_count() {
            return false;
        }
        match self.state_mut(vcpu, intid) {
            Some(irq) if irq.list_register.is_none() => {
                irq.hand_to_list_register(vcpu);
                true
            }
            _ => false,
        }
    }

    /// The runtime read `state` back from the list register of `vcpu` holding
    /// `intid`. `Invalid` retires it (as `list_register_retired(.., false)`).
    /// Returns false if that list register was not known to hold it.
    pub fn sync_list_register(&mut self, vcpu: usize, intid: u32, state: LrState) -> bool {
        if state == LrState::Invalid {
            return self.list_register_retired(vcpu, intid, false);
        }
        match self.held_by(vcpu, intid) {
            Some(irq) => {
                irq.observe_list_register(state);
                true
            }
            None => false,
        }
    }

    /// The list register of `vcpu` holding `intid` no longer does: it went invalid
    /// (`still_pending == false`: the guest acknowledged and deactivated it) or the
    /// runtime took it back while still pending (`true`: the instance returns to the
    /// model). Afterwards the interrupt may be pending again (a level line still
    /// high, a new edge): call [`next_pending`](Self::next_pending). Returns false
    /// if that list register was not known to hold it.
    /// Before a flush: what to do with `intid`, which a list register of `vcpu`
    /// holds, now that the model may have moved on (KVM's `vgic_prune_ap_list`
    /// and multi-pending handling, in one question):
    ///
    /// - held only *pending* (never acknowledged) but the guest disabled it,
    ///   re-routed it to another vCPU (an SPI), or cleared its pending state:
    ///   [`LrReview::Recall`] it (the first two keep it pending in the model, for
    ///   when it is enabled again or for its new target);
    /// - held *active* while a new edge latched (another SGI, a re-pended edge
    ///   interrupt): [`LrReview::PendingActive`], the new instance goes into the
    ///   list register at once, as the hardware holds an edge that arrives
    ///   while the previous one is active, so the guest takes it right after its
    ///   EOI without needing another exit;
    /// - held pending while a new edge latched: the two merge (as in hardware);
    /// - otherwise [`LrReview::Keep`].
    pub fn review_list_register(&mut self, vcpu: usize, intid: u32) -> LrReview {
        let target = (intid >= FIRST_SPI).then(|| self.distributor.target(intid));
        let Some(irq) = self.held_by(vcpu, intid) else { return LrReview::Keep };
        let Some(lr) = irq.list_register else { return LrReview::Keep };
        let edge = irq.trigger == Trigger::Edge;
        match lr.state {
            LrState::Pending if lr.withdrawn => LrReview::Recall { still_pending: false },
            LrState::Pending if !irq.enabled || target.is_some_and(|t| t != Some(vcpu)) => {
                LrReview::Recall { still_pending: true }
            }
            LrState::Pending if edge && irq.latch => {
                irq.latch = false;
                LrReview::Keep
            }
            LrState::Active if edge && irq.latch && irq.enabled => {
                irq.latch = false;
                if let Some(held) = irq.list_register.as_mut() {
                    held.state = LrState::PendingActive;
                }
                LrReview::PendingActive
            }
            _ => LrReview::Keep,
        }
    }

    pub fn list_register_retired(&mut self, vcpu: usize, intid: u32, still_pending: bool) -> bool {
        match self.held_by(vcpu, intid) {
            Some(irq) => {
                irq.retire_from_list_register(still_pending);
                true
            }
            None => false,
        }
    }

    fn state_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut IrqState> {
        if intid < FIRST_SPI {
            self.redistributors.get_mut(vcpu)?.irq_mut(intid)
        } else {
            self.distributor.spi_mut(intid)
        }
    }

    /// `intid`'s state if a list register of `vcpu` holds it.
    fn held_by(&mut self, vcpu: usize, intid: u32) -> Option<&mut IrqState> {
        self.state_mut(vcpu, intid).filter(|irq| irq.list_register.is_some_and(|lr| lr.vcpu == vcpu))
    }

    /// The vCPU `intid` (private to `vcpu`, or an SPI) would be offered to right now.
    fn kick_target(&self, vcpu: usize, intid: u32) -> Option<usize> {
        let target = if intid < FIRST_SPI { vcpu } else { self.distributor.target(intid)? };
        self.next_pending_includes(target, intid).then_some(target)
    }

    fn next_pending_includes(&self, vcpu: usize, intid: u32) -> bool {
        vcpu < self.redistributors.len()
            && self.distributor.group1_enabled()
            && self.irq_state(vcpu, intid).is_some_and(IrqState::deliverable)
    }
}
