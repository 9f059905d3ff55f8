//! Software-generated interrupts: decoding a guest's write to `ICC_SGI1R_EL1`
//! into the set of vCPUs it targets.
//!
//! With affinity routing, SGIs are not sent through the Distributor's
//! `GICD_SGIR` but by writing `ICC_SGI1R_EL1` in the CPU interface (GICv3
//! specification, "Software Generated Interrupts" and the `ICC_SGI1R_EL1`
//! register description). A guest's write traps to EL2 (`HCR_EL2.IMO` makes
//! the SGI registers trap, ESR EC 0x18), and the hypervisor delivers the SGI.
//!
//! ```text
//!  55..48  47..44  40   39..32  27..24  23..16  15..0
//! [ Aff3 ][  RS  ][IRM][ Aff2 ][ INTID][ Aff1 ][TargetList]
//! ```
//!
//! `IRM == 1` targets every PE but the sender. Otherwise the targets are the
//! PEs with affinity `Aff3.Aff2.Aff1.<Aff0>` where `Aff0 = RS * 16 + n` for
//! every bit `n` set in `TargetList` (the range selector `RS` reaches Aff0
//! values above 15; `GICD_TYPER.RSS` says it is supported).

/// A set of vCPU indices (at most 64, the most a VM can have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VcpuSet(pub u64);

impl VcpuSet {
    pub const EMPTY: VcpuSet = VcpuSet(0);

    pub const fn contains(self, vcpu: usize) -> bool {
        vcpu < 64 && (self.0 >> vcpu) & 1 != 0
    }

    pub fn insert(&mut self, vcpu: usize) {
        if vcpu < 64 {
            self.0 |= 1 << vcpu;
        }
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The members in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |&vcpu| self.contains(vcpu))
    }
}

/// Which PEs an SGI goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SgiRouting {
    /// `IRM == 1`: every PE except the sender.
    AllButSelf,
    /// `IRM == 0`: the PEs of one cluster named by a target list.
    Targeted { aff3: u8, aff2: u8, aff1: u8, range_selector: u8, target_list: u16 },
}

/// A decoded `ICC_SGI1R_EL1` write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SgiRequest {
    /// The SGI, 0..=15.
    pub intid: u32,
    pub routing: SgiRouting,
}

impl SgiRequest {
    pub const fn decode(value: u64) -> Self {
        let intid = ((value >> 24) & 0xF) as u32;
        let routing = if (value >> 40) & 1 != 0 {
            SgiRouting::AllButSelf
        } else {
            SgiRouting::Targeted {
                aff3: (value >> 48) as u8,
                aff2: (value >> 32) as u8,
                aff1: (value >> 16) as u8,
                range_selector: ((value >> 44) & 0xF) as u8,
                target_list: value as u16,
            }
        };
        SgiRequest { intid, routing }
    }

    /// The vCPUs among `0..vcpu_count` the SGI targets, `from_vcpu` being the
    /// sender and `vcpu_mpidr(i)` the `MPIDR_EL1` vCPU `i` reads.
    pub fn targets(&self, from_vcpu: usize, vcpu_count: usize, vcpu_mpidr: impl Fn(usize) -> u64) -> VcpuSet {
        let mut set = VcpuSet::EMPTY;
        for vcpu in 0..vcpu_count.min(64) {
            let hit = match self.routing {
                SgiRouting::AllButSelf => vcpu != from_vcpu,
                SgiRouting::Targeted { aff3, aff2, aff1, range_selector, target_list } => {
                    let mpidr = vcpu_mpidr(vcpu);
                    let aff0 = mpidr as u8;
                    (mpidr >> 32) as u8 == aff3
                        && (mpidr >> 16) as u8 == aff2
                        && (mpidr >> 8) as u8 == aff1
                        && aff0 >> 4 == range_selector
                        && (target_list >> (aff0 & 0xF)) & 1 != 0
                }
            };
            if hit {
                set.insert(vcpu);
            }
        }
        set
    }
}

/// Decodes an `ICC_SGI1R_EL1` value written by `from_vcpu` and resolves its
/// targets: the SGI's INTID and the vCPUs it must be made pending on.
pub fn sgi_targets(
    from_vcpu: usize,
    icc_sgi1r: u64,
    vcpu_count: usize,
    vcpu_mpidr: impl Fn(usize) -> u64,
) -> (u32, VcpuSet) {
    let request = SgiRequest::decode(icc_sgi1r);
    (request.intid, request.targets(from_vcpu, vcpu_count, vcpu_mpidr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vCPU MPIDRs the runtime gives today: Aff0 = index, with the RES1 bit 31.
    fn flat(vcpu: usize) -> u64 {
        (1 << 31) | vcpu as u64
    }

    /// Two clusters of four, as on a big.LITTLE board: Aff1 = cluster, Aff0 = core.
    fn clustered(vcpu: usize) -> u64 {
        (1 << 31) | (((vcpu / 4) << 8) | (vcpu % 4)) as u64
    }

    fn set(vcpus: &[usize]) -> VcpuSet {
        let mut set = VcpuSet::EMPTY;
        vcpus.iter().for_each(|&v| set.insert(v));
        set
    }

    #[test]
    fn linux_reschedule_ipi_to_cpus_1_and_3() {
        // arm64 Linux IPI_RESCHEDULE is SGI 0; gic_send_sgi() writes TargetList 0b1010.
        assert_eq!(sgi_targets(0, 0x0000_0000_0000_000a, 4, flat), (0, set(&[1, 3])));
    }

    #[test]
    fn call_function_ipi_to_cpu_2() {
        // IPI_CALL_FUNC is SGI 1: INTID in [27:24].
        let value = 0x0000_0000_0100_0004;
        assert_eq!(
            SgiRequest::decode(value),
            SgiRequest {
                intid: 1,
                routing: SgiRouting::Targeted { aff3: 0, aff2: 0, aff1: 0, range_selector: 0, target_list: 0b100 }
            }
        );
        assert_eq!(sgi_targets(0, value, 4, flat), (1, set(&[2])));
    }

    #[test]
    fn irm_broadcast_excludes_the_sender() {
        // IRM (bit 40), SGI 3.
        assert_eq!(sgi_targets(2, 0x0000_0100_0300_0000, 4, flat), (3, set(&[0, 1, 3])));
        assert_eq!(sgi_targets(0, 0x0000_0100_0300_0000, 1, flat), (3, VcpuSet::EMPTY));
    }

    #[test]
    fn aff1_selects_the_cluster() {
        // SGI 5 to core 1 of cluster 1 (Aff1 = 1 in [23:16]): vCPU 5.
        assert_eq!(sgi_targets(0, 0x0000_0000_0501_0002, 8, clustered), (5, set(&[5])));
        // Same target list in cluster 0: vCPU 1.
        assert_eq!(sgi_targets(0, 0x0000_0000_0500_0002, 8, clustered), (5, set(&[1])));
        // Aff2 = 1 (bits [39:32]) matches nobody.
        assert_eq!(sgi_targets(0, 0x0000_0001_0500_0002, 8, clustered).1, VcpuSet::EMPTY);
        // Aff3 = 1 (bits [55:48]) neither.
        assert_eq!(sgi_targets(0, 0x0001_0000_0500_0002, 8, clustered).1, VcpuSet::EMPTY);
    }

    #[test]
    fn range_selector_reaches_aff0_above_15() {
        // RS = 1 (bits [47:44]), TargetList bit 1: Aff0 = 17.
        let value = 0x0000_1000_0000_0002;
        assert_eq!(sgi_targets(0, value, 32, flat), (0, set(&[17])));
        // Without RS the same list means Aff0 = 1.
        assert_eq!(sgi_targets(0, 0x2, 32, flat), (0, set(&[1])));
    }

    #[test]
    fn sender_can_target_itself_and_absent_cpus_are_ignored() {
        assert_eq!(sgi_targets(0, 0x0000_0000_0f00_0001, 2, flat), (15, set(&[0])));
        // TargetList names CPUs 0..15 but only 2 exist.
        assert_eq!(sgi_targets(0, 0xffff, 2, flat).1, set(&[0, 1]));
    }

    #[test]
    fn vcpu_set_basics() {
        let s = set(&[0, 5, 63]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.iter().collect::<std::vec::Vec<_>>(), [0, 5, 63]);
        assert!(!s.contains(64) && !s.is_empty());
    }
}
