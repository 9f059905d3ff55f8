//! The GICv3 list-register format (`ICH_LR<n>_EL2`), encoded and decoded in
//! portable Rust so that the runtime only has to move `u64`s in and out of the
//! system registers.
//!
//! A list register is how a hypervisor presents one virtual interrupt to the
//! virtual CPU interface (GICv3 architecture specification, "Virtual interrupt
//! handling and prioritization" and the `ICH_LR<n>_EL2` register description).
//! The hardware then does the guest-visible part on its own: a guest read of
//! `ICC_IAR1_EL1` moves the LR from *pending* to *active*, and the guest's
//! `ICC_EOIR1_EL1` (with `EOImode == 0`) or `ICC_DIR_EL1` moves it from *active*
//! to *invalid*, all without trapping.
//!
//! Layout:
//!
//! ```text
//!  63 62  61  60  59..56 55..48    47..45  44..32                 31..0
//! [State][HW][Group][RES0][Priority][RES0][pINTID / EOI at bit 41][vINTID]
//! ```
//!
//! With `HW == 1` bits `[44:32]` hold the physical INTID the hardware deactivates
//! when the guest deactivates the virtual one. With `HW == 0` bit 41 is `EOI`:
//! ask for a maintenance interrupt when the guest deactivates the interrupt (the
//! way a hypervisor learns that a level-sensitive interrupt has been handled and
//! its line must be sampled again); the other bits are RES0.

const VINTID_MASK: u64 = 0xFFFF_FFFF;
const PINTID_SHIFT: u32 = 32;
const PINTID_MASK: u64 = 0x1FFF;
const EOI_BIT: u64 = 1 << 41;
const PRIORITY_SHIFT: u32 = 48;
const GROUP_BIT: u64 = 1 << 60;
const HW_BIT: u64 = 1 << 61;
const STATE_SHIFT: u32 = 62;

/// The `State` field, bits `[63:62]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrState {
    /// 0b00: the list register is free (the guest has deactivated the interrupt).
    Invalid,
    /// 0b01: the guest has not acknowledged it yet.
    Pending,
    /// 0b10: acknowledged, not yet deactivated.
    Active,
    /// 0b11: active, and a further instance is already pending.
    PendingActive,
}

impl LrState {
    /// The two-bit encoding.
    pub const fn bits(self) -> u64 {
        match self {
            LrState::Invalid => 0b00,
            LrState::Pending => 0b01,
            LrState::Active => 0b10,
            LrState::PendingActive => 0b11,
        }
    }

    /// Decodes the two-bit field (only the low two bits of `bits` are used).
    pub const fn from_bits(bits: u64) -> Self {
        match bits & 0b11 {
            0b00 => LrState::Invalid,
            0b01 => LrState::Pending,
            0b10 => LrState::Active,
            _ => LrState::PendingActive,
        }
    }

    /// Whether the state includes *pending* (the guest has not acknowledged that instance).
    pub const fn is_pending(self) -> bool {
        matches!(self, LrState::Pending | LrState::PendingActive)
    }

    /// Whether the state includes *active* (acknowledged, not yet deactivated).
    pub const fn is_active(self) -> bool {
        matches!(self, LrState::Active | LrState::PendingActive)
    }
}

/// One `ICH_LR<n>_EL2` value, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRegister {
    /// The virtual INTID the guest reads from `ICC_IAR1_EL1`.
    pub intid: u32,
    /// The virtual priority. The CPU interface implements only the top
    /// `ICH_VTR_EL2.PRIbits` bits; the lower ones read back as zero.
    pub priority: u8,
    /// Group 1 (signalled as a virtual IRQ) rather than Group 0 (virtual FIQ).
    /// Every interrupt of this vGIC is Group 1.
    pub group1: bool,
    pub state: LrState,
    /// `HW == 1`: the physical INTID (13 bits) the hardware deactivates together
    /// with the virtual one.
    pub hw: Option<u32>,
    /// `EOI` (bit 41, only with `HW == 0`): request a maintenance interrupt when
    /// the guest deactivates this interrupt.
    pub eoi_maintenance: bool,
}

impl ListRegister {
    /// The `ICH_LR<n>_EL2` value. With `hw` set, `eoi_maintenance` is not
    /// encodable (bit 41 is part of the physical INTID) and is dropped.
    pub const fn to_bits(self) -> u64 {
        let mut bits = self.intid as u64 & VINTID_MASK;
        bits |= (self.priority as u64) << PRIORITY_SHIFT;
        if self.group1 {
            bits |= GROUP_BIT;
        }
        match self.hw {
            Some(physical) => bits |= HW_BIT | ((physical as u64 & PINTID_MASK) << PINTID_SHIFT),
            None => {
                if self.eoi_maintenance {
                    bits |= EOI_BIT;
                }
            }
        }
        bits | (self.state.bits() << STATE_SHIFT)
    }

    /// Decodes an `ICH_LR<n>_EL2` value read back from the hardware.
    pub const fn from_bits(bits: u64) -> Self {
        let hw = bits & HW_BIT != 0;
        ListRegister {
            intid: (bits & VINTID_MASK) as u32,
            priority: (bits >> PRIORITY_SHIFT) as u8,
            group1: bits & GROUP_BIT != 0,
            state: LrState::from_bits(bits >> STATE_SHIFT),
            hw: if hw { Some(((bits >> PINTID_SHIFT) & PINTID_MASK) as u32) } else { None },
            eoi_maintenance: !hw && bits & EOI_BIT != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The virtual timer PPI 27, pending, Group 1, Linux's default priority 0xa0:
    /// State 0b01 << 62 | Group << 60 | 0xa0 << 48 | 27.
    const TIMER_PENDING: u64 = 0x50a0_0000_0000_001b;

    fn timer() -> ListRegister {
        ListRegister {
            intid: 27,
            priority: 0xa0,
            group1: true,
            state: LrState::Pending,
            hw: None,
            eoi_maintenance: false,
        }
    }

    #[test]
    fn timer_ppi_pending_group1() {
        assert_eq!(timer().to_bits(), TIMER_PENDING);
        assert_eq!(ListRegister::from_bits(TIMER_PENDING), timer());
    }

    #[test]
    fn hardware_backed_timer_carries_the_physical_intid() {
        let lr = ListRegister { hw: Some(27), ..timer() };
        // HW (bit 61) and pINTID 27 in [44:32].
        assert_eq!(lr.to_bits(), 0x70a0_001b_0000_001b);
        assert_eq!(ListRegister::from_bits(0x70a0_001b_0000_001b), lr);
    }

    #[test]
    fn every_state_round_trips() {
        for (state, top) in [
            (LrState::Invalid, 0x10a0),
            (LrState::Pending, 0x50a0),
            (LrState::Active, 0x90a0),
            (LrState::PendingActive, 0xd0a0),
        ] {
            let bits = ListRegister { state, ..timer() }.to_bits();
            assert_eq!(bits >> 48, top, "{state:?}");
            assert_eq!(ListRegister::from_bits(bits).state, state);
        }
        assert!(LrState::PendingActive.is_pending() && LrState::PendingActive.is_active());
        assert!(!LrState::Invalid.is_pending() && !LrState::Invalid.is_active());
    }

    #[test]
    fn eoi_bit_is_not_read_as_such_when_hw_is_set() {
        // HW = 1 with pINTID 0x200 (bit 41 set as part of the physical INTID).
        let bits = 0x70a0_0200_0000_001b;
        let lr = ListRegister::from_bits(bits);
        assert_eq!(lr.hw, Some(0x200));
        assert!(!lr.eoi_maintenance);
        assert_eq!(lr.to_bits(), bits);
    }

    #[test]
    fn group0_and_large_vintid() {
        // A Group 0 LPI-sized vINTID 8192, active, priority 0.
        let bits = 0x8000_0000_0000_2000;
        let lr = ListRegister::from_bits(bits);
        assert_eq!((lr.intid, lr.priority, lr.group1, lr.state), (8192, 0, false, LrState::Active));
        assert_eq!(lr.to_bits(), bits);
    }
}
