//! The state of one interrupt at one target, and the INTID-indexed register
//! block that the Distributor and a Redistributor's `SGI_base` frame share.
//!
//! The GICv3 specification ("Interrupt handling state machine") gives every
//! interrupt four states — inactive, pending, active, active and pending — plus
//! its enable, priority and trigger configuration. Pending has two sources
//! ("Edge-triggered and level-sensitive interrupts"): a *latch* set by an edge,
//! an SGI or a write to `GICx_ISPENDR`, cleared when the interrupt is
//! acknowledged or by `GICx_ICPENDR`; and, for level-sensitive interrupts, the
//! *line* itself, pending for as long as it is asserted.
//!
//! Virtualization adds one more fact: once the runtime has put an interrupt in
//! a list register, the virtual CPU interface owns that instance (the guest
//! acknowledges and deactivates it without trapping), so the model remembers
//! which list register holds it and what the runtime last saw there.

use super::list_register::LrState;

/// How an interrupt's pending state follows its source (`GICx_ICFGR<n>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Pending while the line is asserted (the virtual timer, the PL011).
    Level,
    /// Pending latched on each rising edge (SGIs always; MSIs).
    Edge,
}

/// An interrupt handed to a list register and not yet retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InListRegister {
    /// The vCPU whose list register holds it (for an SPI, routing may have
    /// changed since).
    pub vcpu: usize,
    /// What the runtime last saw in the list register: `Pending` when it was
    /// written, then whatever [`Vgic::sync_list_register`](super::Vgic::sync_list_register)
    /// reported.
    pub state: LrState,
    /// The guest cleared its pending state (`ICPENDR`) while the list register
    /// held it pending: the runtime takes it back at the next flush.
    pub withdrawn: bool,
}

/// One interrupt at one target: an SPI in the Distributor, or an SGI/PPI of one
/// Redistributor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqState {
    /// `GICx_ISENABLER`/`GICx_ICENABLER`.
    pub enabled: bool,
    /// `GICx_IPRIORITYR`: lower is more urgent.
    pub priority: u8,
    pub trigger: Trigger,
    /// Latched pending: an edge, an SGI, or a `GICx_ISPENDR` write.
    pub latch: bool,
    /// The input line (sampled for level-sensitive interrupts; for edge-triggered
    /// ones only used to detect rising edges).
    pub line: bool,
    /// Active in the model itself (set through `GICx_ISACTIVER`); an instance the
    /// guest has acknowledged through a list register is tracked in
    /// [`list_register`](Self::list_register) instead.
    pub active: bool,
    pub list_register: Option<InListRegister>,
}

impl IrqState {
    /// The reset state: disabled, inactive, priority 0.
    pub const fn new(trigger: Trigger) -> Self {
        IrqState { enabled: false, priority: 0, trigger, latch: false, line: false, active: false, list_register: None }
    }

    /// Pending in the model (not counting an instance already in a list register).
    pub const fn pending(&self) -> bool {
        self.latch || (matches!(self.trigger, Trigger::Level) && self.line)
    }

    /// Whether this interrupt may be offered for a list register: enabled,
    /// pending, not active, and not already in one. (A pending-and-active
    /// interrupt is offered again once its list register is retired, as the
    /// hardware would signal it again after deactivation.)
    pub const fn deliverable(&self) -> bool {
        self.enabled && self.pending() && !self.active && self.list_register.is_none()
    }

    /// The pending bit a guest reads from `GICx_ISPENDR`.
    pub fn reads_pending(&self) -> bool {
        self.pending() || self.list_register.is_some_and(|lr| lr.state.is_pending())
    }

    /// The active bit a guest reads from `GICx_ISACTIVER`.
    pub fn reads_active(&self) -> bool {
        self.active || self.list_register.is_some_and(|lr| lr.state.is_active())
    }

    /// Drives the input line. A rising edge latches an edge-triggered interrupt.
    /// Returns whether anything changed.
    pub fn set_line(&mut self, high: bool) -> bool {
        let before = *self;
        if high && !self.line && self.trigger == Trigger::Edge {
            self.latch = true;
        }
        self.line = high;
        *self != before
    }

    /// The runtime wrote a list register in the *pending* state for this
    /// interrupt. An edge's latch moves into the list register (a later edge
    /// latches again). A level interrupt keeps its latch: the acknowledge that
    /// clears it happens inside the CPU interface and is learnt later.
    pub fn hand_to_list_register(&mut self, vcpu: usize) {
        if self.trigger == Trigger::Edge {
            self.latch = false;
        }
        self.list_register = Some(InListRegister { vcpu, state: LrState::Pending, withdrawn: false });
    }

    /// The runtime read the list register back and found `state` (not `Invalid`).
    pub fn observe_list_register(&mut self, state: LrState) {
        if let Some(lr) = self.list_register.as_mut() {
            lr.state = state;
        }
        if !state.is_pending() {
            self.acknowledged();
        }
    }

    /// The list register no longer holds this interrupt. `still_pending`: it was
    /// taken out in a pending state, i.e. the guest never acknowledged that
    /// instance, which goes back to the model.
    pub fn retire_from_list_register(&mut self, still_pending: bool) {
        self.list_register = None;
        if still_pending {
            if self.trigger == Trigger::Edge {
                self.latch = true;
            }
        } else {
            self.acknowledged();
        }
    }

    /// Acknowledging an interrupt clears its latched pending state ("Interrupt
    /// handling state machine"); a level line still asserted keeps it pending.
    fn acknowledged(&mut self) {
        if self.trigger == Trigger::Level {
            self.latch = false;
        }
    }
}

/// A register in the INTID-indexed block at the same offsets in the Distributor
/// and in a Redistributor's `SGI_base` frame (GICv3 specification, "The GIC
/// Distributor register map" and "The GIC Redistributor register map").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqRegister {
    /// `IGROUPR<n>` (0x0080): RAO/WI, every interrupt is Group 1.
    Group,
    /// `ISENABLER<n>` (0x0100).
    SetEnable,
    /// `ICENABLER<n>` (0x0180).
    ClearEnable,
    /// `ISPENDR<n>` (0x0200).
    SetPending,
    /// `ICPENDR<n>` (0x0280).
    ClearPending,
    /// `ISACTIVER<n>` (0x0300).
    SetActive,
    /// `ICACTIVER<n>` (0x0380).
    ClearActive,
    /// `IPRIORITYR<n>` (0x0400), one byte per INTID.
    Priority,
    /// `ICFGR<n>` (0x0C00), two bits per INTID.
    Config,
    /// `IGRPMODR<n>` (0x0D00): RAZ/WI (a single Security state has no Secure Group 1).
    GroupModifier,
}

impl IrqRegister {
    /// Decodes `offset` into the register and the first INTID it covers.
    pub const fn decode(offset: u64) -> Option<(IrqRegister, u32)> {
        // (register, its first offset, INTIDs per byte of register space)
        let (register, base, intids_per_byte) = match offset {
            0x0080..0x0100 => (IrqRegister::Group, 0x0080, 8),
            0x0100..0x0180 => (IrqRegister::SetEnable, 0x0100, 8),
            0x0180..0x0200 => (IrqRegister::ClearEnable, 0x0180, 8),
            0x0200..0x0280 => (IrqRegister::SetPending, 0x0200, 8),
            0x0280..0x0300 => (IrqRegister::ClearPending, 0x0280, 8),
            0x0300..0x0380 => (IrqRegister::SetActive, 0x0300, 8),
            0x0380..0x0400 => (IrqRegister::ClearActive, 0x0380, 8),
            0x0400..0x0800 => (IrqRegister::Priority, 0x0400, 1),
            0x0C00..0x0D00 => (IrqRegister::Config, 0x0C00, 4),
            0x0D00..0x0D80 => (IrqRegister::GroupModifier, 0x0D00, 8),
            _ => return None,
        };
        Some((register, ((offset - base) * intids_per_byte) as u32))
    }

    /// The access sizes the specification allows: bytes and words for
    /// `IPRIORITYR`, words for everything else ("GIC memory-mapped register access").
    pub const fn size_allowed(self, size: u8) -> bool {
        match self {
            IrqRegister::Priority => size == 1 || size == 4,
            _ => size == 4,
        }
    }

    /// How many INTIDs an access of `size` bytes covers.
    pub const fn intids(self, size: u8) -> u32 {
        match self {
            IrqRegister::Priority => size as u32,
            IrqRegister::Config => 16,
            _ => 32,
        }
    }

    /// Reads the register over `irqs`, the implemented interrupts it covers in
    /// INTID order starting at its first one (bits of missing INTIDs read as zero).
    pub fn read(self, irqs: &[IrqState]) -> u32 {
        let bit = |test: fn(&IrqState) -> bool| {
            irqs.iter().enumerate().filter(|(_, irq)| test(irq)).fold(0u32, |acc, (i, _)| acc | (1 << i))
        };
        match self {
            IrqRegister::Group => bit(|_| true),
            IrqRegister::SetEnable | IrqRegister::ClearEnable => bit(|irq| irq.enabled),
            IrqRegister::SetPending | IrqRegister::ClearPending => bit(IrqState::reads_pending),
            IrqRegister::SetActive | IrqRegister::ClearActive => bit(IrqState::reads_active),
            IrqRegister::Priority => {
                irqs.iter().enumerate().fold(0, |acc, (i, irq)| acc | ((irq.priority as u32) << (8 * i)))
            }
            IrqRegister::Config => irqs
                .iter()
                .enumerate()
                .filter(|(_, irq)| irq.trigger == Trigger::Edge)
                .fold(0, |acc, (i, _)| acc | (0b10 << (2 * i))),
            IrqRegister::GroupModifier => 0,
        }
    }

    /// Writes `value` over `irqs` (as for [`read`](Self::read)). Set/clear
    /// registers act only on the bits written as one. Returns whether any
    /// interrupt's state changed.
    pub fn write(self, irqs: &mut [IrqState], value: u32) -> bool {
        let mut changed = false;
        for (i, irq) in irqs.iter_mut().enumerate() {
            let before = *irq;
            let one = (value >> i) & 1 != 0;
            match self {
                IrqRegister::Group | IrqRegister::GroupModifier => {}
                IrqRegister::SetEnable if one => irq.enabled = true,
                IrqRegister::ClearEnable if one => irq.enabled = false,
                IrqRegister::SetPending if one => irq.latch = true,
                IrqRegister::ClearPending if one => {
                    irq.latch = false;
                    if let Some(lr) = irq.list_register.as_mut().filter(|lr| lr.state == LrState::Pending) {
                        lr.withdrawn = true;
                    }
                }
                IrqRegister::SetActive if one => irq.active = true,
                IrqRegister::ClearActive if one => irq.active = false,
                IrqRegister::Priority => irq.priority = (value >> (8 * i)) as u8,
                IrqRegister::Config => {
                    irq.trigger = if (value >> (2 * i + 1)) & 1 != 0 { Trigger::Edge } else { Trigger::Level };
                }
                _ => {}
            }
            changed |= *irq != before;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irqs(n: usize, trigger: Trigger) -> std::vec::Vec<IrqState> {
        std::vec![IrqState::new(trigger); n]
    }

    #[test]
    fn offsets_decode_to_register_and_first_intid() {
        assert_eq!(IrqRegister::decode(0x0084), Some((IrqRegister::Group, 32)));
        assert_eq!(IrqRegister::decode(0x0104), Some((IrqRegister::SetEnable, 32)));
        assert_eq!(IrqRegister::decode(0x0180), Some((IrqRegister::ClearEnable, 0)));
        assert_eq!(IrqRegister::decode(0x0288), Some((IrqRegister::ClearPending, 64)));
        assert_eq!(IrqRegister::decode(0x0421), Some((IrqRegister::Priority, 33)));
        assert_eq!(IrqRegister::decode(0x0C04), Some((IrqRegister::Config, 16)));
        assert_eq!(IrqRegister::decode(0x0C08), Some((IrqRegister::Config, 32)));
        assert_eq!(IrqRegister::decode(0x0D04), Some((IrqRegister::GroupModifier, 32)));
        assert_eq!(IrqRegister::decode(0x0800), None);
        assert_eq!(IrqRegister::decode(0x0000), None);
    }

    #[test]
    fn set_and_clear_registers_only_act_on_ones() {
        let mut bank = irqs(32, Trigger::Level);
        assert!(IrqRegister::SetEnable.write(&mut bank, 0b1010));
        assert_eq!(IrqRegister::SetEnable.read(&bank), 0b1010);
        assert!(!IrqRegister::SetEnable.write(&mut bank, 0b0010), "already enabled");
        assert!(IrqRegister::ClearEnable.write(&mut bank, 0b1000));
        assert_eq!(IrqRegister::ClearEnable.read(&bank), 0b0010);
        assert_eq!(IrqRegister::Group.read(&bank), u32::MAX);
        assert!(!IrqRegister::Group.write(&mut bank, 0));
        assert_eq!(IrqRegister::GroupModifier.read(&bank), 0);
    }

    #[test]
    fn level_line_and_latch_both_make_pending() {
        let mut irq = IrqState::new(Trigger::Level);
        irq.enabled = true;
        assert!(irq.set_line(true));
        assert!(irq.deliverable());
        // ICPENDR clears only the latch: the asserted line keeps it pending.
        IrqRegister::ClearPending.write(core::slice::from_mut(&mut irq), 1);
        assert!(irq.pending());
        irq.set_line(false);
        assert!(!irq.pending());
        IrqRegister::SetPending.write(core::slice::from_mut(&mut irq), 1);
        assert!(irq.pending() && irq.latch);
    }

    #[test]
    fn edge_latches_on_rising_edges_only() {
        let mut irq = IrqState::new(Trigger::Edge);
        irq.set_line(true);
        assert!(irq.latch);
        irq.latch = false;
        assert!(!irq.set_line(true), "no edge while the line stays high");
        assert!(!irq.pending());
        irq.set_line(false);
        irq.set_line(true);
        assert!(irq.pending());
    }

    #[test]
    fn list_register_hand_off_for_edge_and_level() {
        let mut edge = IrqState::new(Trigger::Edge);
        edge.enabled = true;
        edge.latch = true;
        edge.hand_to_list_register(0);
        assert!(!edge.deliverable() && !edge.latch);
        assert!(edge.reads_pending() && !edge.reads_active());
        edge.observe_list_register(LrState::Active);
        assert!(!edge.reads_pending() && edge.reads_active());
        // A new edge while the first is being handled: pending and active.
        edge.set_line(true);
        assert!(edge.reads_pending() && !edge.deliverable());
        edge.retire_from_list_register(false);
        assert!(edge.deliverable(), "the second edge is offered after deactivation");

        let mut level = IrqState::new(Trigger::Level);
        level.enabled = true;
        level.latch = true; // set through ISPENDR
        level.hand_to_list_register(0);
        level.retire_from_list_register(true);
        assert!(level.latch, "never acknowledged: still latched");
        level.hand_to_list_register(0);
        level.retire_from_list_register(false);
        assert!(!level.pending(), "the acknowledge consumed the latch, the line is low");
    }

    #[test]
    fn priorities_and_config_pack_per_intid() {
        let mut bank = irqs(4, Trigger::Level);
        assert!(IrqRegister::Priority.write(&mut bank, 0xa0a0_a0a0));
        assert_eq!(IrqRegister::Priority.read(&bank), 0xa0a0_a0a0);
        IrqRegister::Priority.write(&mut bank[1..2], 0x40);
        assert_eq!(IrqRegister::Priority.read(&bank), 0xa0a0_40a0);
        assert_eq!(IrqRegister::Priority.read(&bank[1..2]), 0x40);

        let mut bank = irqs(16, Trigger::Level);
        assert_eq!(IrqRegister::Config.read(&bank), 0);
        // INTIDs 1 and 3 edge-triggered (bit 2n+1).
        assert!(IrqRegister::Config.write(&mut bank, 0b1000_1000));
        assert_eq!(bank[1].trigger, Trigger::Edge);
        assert_eq!(bank[3].trigger, Trigger::Edge);
        assert_eq!(IrqRegister::Config.read(&bank), 0b1000_1000);
    }
}
