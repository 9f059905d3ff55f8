//! The CPUs and the PSCI firmware interface that powers them on and off.

use arrayvec::ArrayVec;

use super::address::CellSizes;
use super::devicetree::{DeviceTree, NodeRef, read_cells};
use super::error::PlatformError;
use super::{Cpu, MAX_CPUS, Psci, PsciCompat, PsciConduit, push_within_capacity};

/// `/cpus/*` nodes with `device_type = "cpu"` (so not `cpu-map`), in DTB order.
pub(super) fn cpus(tree: &DeviceTree<'_>) -> Result<ArrayVec<Cpu, MAX_CPUS>, PlatformError> {
    let mut cpus = ArrayVec::new();
    tree.for_each_node(|found| {
        if found.is_grandchild_of_root_under("cpus") && found.node.str_property("device_type") == Some("cpu") {
            push_within_capacity(&mut cpus, Cpu { mpidr: mpidr(found)? }, "CPUs")?;
        }
        Ok(())
    })?;
    if cpus.is_empty() {
        return Err(PlatformError::NoCpus);
    }
    Ok(cpus)
}

/// A CPU node's `reg`: its MPIDR affinity, one or two cells per `/cpus`'s
/// `#address-cells`.
fn mpidr(cpu: NodeRef<'_, '_>) -> Result<u64, PlatformError> {
    let malformed =
        |problem| PlatformError::MalformedProperty { node: cpu.node.error_name(), property: "reg", problem };
    let cells = CellSizes::for_reg_of(cpu)?.address;
    if !(1..=2).contains(&cells) {
        return Err(malformed("/cpus #address-cells must be 1 or 2"));
    }
    let reg = cpu.node.property("reg").ok_or(malformed("CPU node has no reg"))?;
    let value = read_cells(reg, 0, cells).ok_or(malformed("shorter than /cpus #address-cells"))?;
    u64::try_from(value).map_err(|_| malformed("wider than 64 bits"))
}

/// `compatible` strings of PSCI nodes and the version each promises.
const PSCI_COMPATIBLES: [(&str, PsciCompat); 3] =
    [("arm,psci-1.0", PsciCompat::V1_0), ("arm,psci-0.2", PsciCompat::V0_2), ("arm,psci", PsciCompat::V0_1)];

/// The first enabled PSCI node: the highest version among its `compatible`
/// strings and the `method` conduit (`"smc"` or `"hvc"`).
pub(super) fn psci(tree: &DeviceTree<'_>) -> Result<Option<Psci>, PlatformError> {
    let found = tree.find_node(|found| {
        found.node.is_enabled() && PSCI_COMPATIBLES.iter().any(|(compatible, _)| found.node.is_compatible(compatible))
    })?;
    let Some(found) = found else {
        return Ok(None);
    };
    let node = &found.node;
    let version_compatible = PSCI_COMPATIBLES
        .iter()
        .filter(|(compatible, _)| node.is_compatible(compatible))
        .map(|&(_, version)| version)
        .max()
        .unwrap_or(PsciCompat::V0_1);
    let conduit = match node.str_property("method") {
        Some("smc") => PsciConduit::Smc,
        Some("hvc") => PsciConduit::Hvc,
        _ => {
            return Err(PlatformError::MalformedProperty {
                node: node.error_name(),
                property: "method",
                problem: "must be \"smc\" or \"hvc\"",
            });
        }
    };
    Ok(Some(Psci { conduit, version_compatible }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::test_support::FdtBuilder;

    fn tree(cpu_address_cells: u32, cpu_regs: &[&[u32]], psci: Option<(&[&str], Option<&str>)>) -> std::vec::Vec<u8> {
        let mut builder = FdtBuilder::new();
        builder.begin_node("");
        if let Some((compatibles, method)) = psci {
            builder.begin_node("psci");
            builder.property_strings("compatible", compatibles);
            if let Some(method) = method {
                builder.property_strings("method", &[method]);
            }
            builder.end_node();
        }
        builder.begin_node("cpus");
        builder.property_u32s("#address-cells", &[cpu_address_cells]);
        builder.property_u32s("#size-cells", &[0]);
        builder.begin_node("cpu-map");
        builder.end_node();
        for (index, reg) in cpu_regs.iter().enumerate() {
            builder.begin_node(&format!("cpu@{index}"));
            builder.property_strings("device_type", &["cpu"]);
            builder.property_u32s("reg", reg);
            builder.end_node();
        }
        builder.end_node();
        builder.end_node();
        builder.finish()
    }

    #[test]
    fn cpus_with_one_and_two_cell_mpidrs() {
        let blob = tree(1, &[&[0x0], &[0x101]], None);
        let found = cpus(&DeviceTree::parse(&blob).unwrap()).unwrap();
        assert_eq!(found.as_slice(), [Cpu { mpidr: 0 }, Cpu { mpidr: 0x101 }]);

        let blob = tree(2, &[&[0x1, 0x0]], None);
        let found = cpus(&DeviceTree::parse(&blob).unwrap()).unwrap();
        assert_eq!(found.as_slice(), [Cpu { mpidr: 0x1_0000_0000 }]);
    }

    #[test]
    fn no_cpus_and_too_many_cpus_are_errors() {
        let blob = tree(1, &[], None);
        assert_eq!(cpus(&DeviceTree::parse(&blob).unwrap()).unwrap_err(), PlatformError::NoCpus);

        let regs: std::vec::Vec<[u32; 1]> = (0..=MAX_CPUS as u32).map(|mpidr| [mpidr]).collect();
        let regs: std::vec::Vec<&[u32]> = regs.iter().map(|reg| reg.as_slice()).collect();
        let blob = tree(1, &regs, None);
        assert_eq!(
            cpus(&DeviceTree::parse(&blob).unwrap()).unwrap_err(),
            PlatformError::CapacityExceeded { what: "CPUs", capacity: MAX_CPUS }
        );
    }

    #[test]
    fn cpu_reg_shorter_than_address_cells_is_an_error() {
        let blob = tree(2, &[&[0x1]], None);
        assert!(matches!(
            cpus(&DeviceTree::parse(&blob).unwrap()),
            Err(PlatformError::MalformedProperty { property: "reg", .. })
        ));
    }

    #[test]
    fn psci_picks_the_highest_version_and_the_conduit() {
        let blob = tree(1, &[&[0]], Some((&["arm,psci", "arm,psci-0.2"], Some("hvc"))));
        assert_eq!(
            psci(&DeviceTree::parse(&blob).unwrap()).unwrap(),
            Some(Psci { conduit: PsciConduit::Hvc, version_compatible: PsciCompat::V0_2 })
        );
        let blob = tree(1, &[&[0]], Some((&["arm,psci"], Some("smc"))));
        assert_eq!(psci(&DeviceTree::parse(&blob).unwrap()).unwrap().unwrap().version_compatible, PsciCompat::V0_1);
        let blob = tree(1, &[&[0]], None);
        assert_eq!(psci(&DeviceTree::parse(&blob).unwrap()).unwrap(), None);
    }

    #[test]
    fn psci_without_a_valid_method_is_an_error() {
        for method in [None, Some("svc")] {
            let blob = tree(1, &[&[0]], Some((&["arm,psci-1.0"], method)));
            assert!(matches!(
                psci(&DeviceTree::parse(&blob).unwrap()),
                Err(PlatformError::MalformedProperty { property: "method", .. })
            ));
        }
    }
}
