//! What a guest sees in the ID registers it reads (trapped with `HCR_EL2.TID3`):
//! the CPU's real values, minus what the hypervisor does not give this VM — MTE
//! for VMs without it (as KVM does), SVE/SME, whose larger register state the
//! hypervisor does not switch between vCPUs, and the PMU and profiling units,
//! whose registers it traps and answers as zero.

const fn field(shift: u32) -> u64 {
    0xF << shift
}

/// The value a guest reads from the ID register `S3_0_C0_C<crm>_<op2>` whose real
/// value is `real`, for a VM with or without MTE.
pub fn guest_view(crm: u8, op2: u8, real: u64, mte: bool) -> u64 {
    match (crm, op2) {
        // ID_AA64PFR0_EL1: SVE [35:32].
        (4, 0) => real & !field(32),
        // ID_AA64PFR1_EL1: MTE [11:8], SME [27:24], MTE_frac [43:40].
        (4, 1) => {
            let hidden = field(24) | if mte { 0 } else { field(8) | field(40) };
            real & !hidden
        }
        // ID_AA64ZFR0_EL1 (SVE features), ID_AA64SMFR0_EL1 (SME features).
        (4, 4) | (4, 5) => 0,
        // ID_AA64DFR0_EL1: PMUVer [11:8], PMSVer [35:32], TraceBuffer [47:44]: the PMU,
        // statistical profiling and trace buffers are not offered (their registers
        // trap and read as zero).
        (5, 0) => real & !(field(8) | field(32) | field(44)),
        _ => real,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ID_AA64PFR1_EL1 as read on QEMU 10 `-cpu max` (MTE = 3, SME = 2, BT, SSBS...).
    const QEMU_MAX_PFR1: u64 = 0x0000_0000_0200_0321 | (0x2 << 24);

    #[test]
    fn mte_is_shown_only_to_mte_vms() {
        let with = guest_view(4, 1, QEMU_MAX_PFR1, true);
        assert_eq!((with >> 8) & 0xF, 3);
        let without = guest_view(4, 1, QEMU_MAX_PFR1 | (0xF << 40), false);
        assert_eq!((without >> 8) & 0xF, 0);
        assert_eq!((without >> 40) & 0xF, 0);
        // Other features (BT [3:0], SSBS [7:4]) stay visible; SME never is.
        assert_eq!(without & 0xFF, 0x21);
        assert_eq!((with >> 24) & 0xF, 0);
    }

    #[test]
    fn pmu_and_profiling_are_hidden() {
        // QEMU max: PMUVer 6 (bits 11:8), debug version 9 (bits 3:0).
        let dfr0 = guest_view(5, 0, 0x0000_0001_F210_6609, true);
        assert_eq!((dfr0 >> 8) & 0xF, 0);
        assert_eq!(dfr0 & 0xF, 9);
        assert_eq!((dfr0 >> 32) & 0xF, 0);
    }

    #[test]
    fn sve_is_hidden_and_other_registers_pass_through() {
        assert_eq!(guest_view(4, 0, 0x1_0000_0011, true), 0x11);
        assert_eq!(guest_view(4, 4, 0x1234, true), 0);
        assert_eq!(guest_view(7, 0, 0x1122, false), 0x1122);
    }
}
