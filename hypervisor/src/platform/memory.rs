//! RAM banks and the ranges inside them that are not ours to use.

use arrayvec::ArrayVec;

use super::address::for_each_physical_region;
use super::devicetree::{DeviceTree, Node};
use super::error::{NodeName, PlatformError};
use super::{MAX_RAM_RANGES, MAX_RESERVED_RANGES, PhysRange, push_within_capacity};

/// Every non-empty `reg` entry of the root's enabled memory nodes, sorted by base.
pub(super) fn ram(tree: &DeviceTree<'_>) -> Result<ArrayVec<PhysRange, MAX_RAM_RANGES>, PlatformError> {
    let mut ram = ArrayVec::new();
    tree.for_each_node(|found| {
        if found.depth() != 1 || !is_memory_node(found.node) || !found.node.is_enabled() {
            return Ok(());
        }
        for_each_physical_region(found, |bank| push_non_empty(&mut ram, bank, "RAM ranges"))
    })?;
    if ram.is_empty() {
        return Err(PlatformError::NoMemory);
    }
    ram.sort_unstable_by_key(|bank: &PhysRange| bank.base);
    Ok(ram)
}

/// Memory nodes are named `memory[@unit]` or carry `device_type = "memory"`.
fn is_memory_node(node: &Node<'_>) -> bool {
    node.base_name() == "memory" || node.str_property("device_type") == Some("memory")
}

/// The `/memreserve/` entries and every enabled `/reserved-memory` child
/// with a `reg`, sorted by base. Children that only ask for a dynamically
/// placed `size` have nothing to reserve yet and are skipped; `no-map` is not
/// distinguished because the hypervisor must not hand out either kind.
pub(super) fn reserved(tree: &DeviceTree<'_>) -> Result<ArrayVec<PhysRange, MAX_RESERVED_RANGES>, PlatformError> {
    const WHAT: &str = "reserved memory ranges";
    let mut reserved = ArrayVec::new();
    for entry in tree.memory_reservations() {
        let (base, size) = entry?;
        let range = PhysRange::checked(base, size)
            .ok_or(PlatformError::AddressOverflow { node: NodeName::new("/memreserve/") })?;
        push_non_empty(&mut reserved, range, WHAT)?;
    }
    tree.for_each_node(|found| {
        if !found.is_grandchild_of_root_under("reserved-memory") || !found.node.is_enabled() {
            return Ok(());
        }
        for_each_physical_region(found, |range| push_non_empty(&mut reserved, range, WHAT))
    })?;
    reserved.sort_unstable_by_key(|range: &PhysRange| range.base);
    Ok(reserved)
}

fn push_non_empty<const N: usize>(
    list: &mut ArrayVec<PhysRange, N>,
    range: PhysRange,
    what: &'static str,
) -> Result<(), PlatformError> {
    if range.size == 0 {
        return Ok(());
    }
    push_within_capacity(list, range, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::test_support::FdtBuilder;

    fn tree_with_memory(banks: &[(u64, u64)], reserved_children: &[(u64, u64)]) -> std::vec::Vec<u8> {
        let mut builder = FdtBuilder::new();
        builder.reserve(0x4000_0000, 0x1000);
        builder.begin_node("");
        builder.property_u32s("#address-cells", &[2]);
        builder.property_u32s("#size-cells", &[2]);
        for (index, &(base, size)) in banks.iter().enumerate().rev() {
            builder.begin_node(&format!("memory@{index}"));
            builder.property_strings("device_type", &["memory"]);
            let cells = [(base >> 32) as u32, base as u32, (size >> 32) as u32, size as u32];
            builder.property_u32s("reg", &cells);
            builder.end_node();
        }
        builder.begin_node("reserved-memory");
        builder.property_u32s("#address-cells", &[2]);
        builder.property_u32s("#size-cells", &[2]);
        builder.property("ranges", &[]);
        for &(base, size) in reserved_children {
            builder.begin_node("region");
            let cells = [(base >> 32) as u32, base as u32, (size >> 32) as u32, size as u32];
            builder.property_u32s("reg", &cells);
            builder.end_node();
        }
        builder.begin_node("dynamic");
        builder.property_u32s("size", &[0, 0x10_0000]);
        builder.end_node();
        builder.begin_node("disabled");
        builder.property_strings("status", &["disabled"]);
        builder.property_u32s("reg", &[0, 0x7000_0000, 0, 0x1000]);
        builder.end_node();
        builder.end_node();
        builder.end_node();
        builder.finish()
    }

    #[test]
    fn ram_is_sorted_and_skips_empty_banks() {
        let blob = tree_with_memory(&[(0x4000_0000, 0x1000_0000), (0x1_0000_0000, 0), (0x8000, 0x8000)], &[]);
        let tree = DeviceTree::parse(&blob).unwrap();
        assert_eq!(
            ram(&tree).unwrap().as_slice(),
            [PhysRange::new(0x8000, 0x8000), PhysRange::new(0x4000_0000, 0x1000_0000)]
        );
    }

    #[test]
    fn too_many_ram_banks_is_a_capacity_error() {
        let banks: std::vec::Vec<_> = (0..=MAX_RAM_RANGES as u64).map(|i| (i << 32, 0x1000)).collect();
        let blob = tree_with_memory(&banks, &[]);
        let tree = DeviceTree::parse(&blob).unwrap();
        assert_eq!(
            ram(&tree).unwrap_err(),
            PlatformError::CapacityExceeded { what: "RAM ranges", capacity: MAX_RAM_RANGES }
        );
    }

    #[test]
    fn missing_memory_is_an_error() {
        let blob = tree_with_memory(&[], &[]);
        let tree = DeviceTree::parse(&blob).unwrap();
        assert_eq!(ram(&tree).unwrap_err(), PlatformError::NoMemory);
    }

    #[test]
    fn reserved_merges_memreserve_and_reserved_memory_but_skips_dynamic_and_disabled() {
        let blob = tree_with_memory(&[(0x4000_0000, 0x1000_0000)], &[(0x4800_0000, 0x2000)]);
        let tree = DeviceTree::parse(&blob).unwrap();
        assert_eq!(
            reserved(&tree).unwrap().as_slice(),
            [PhysRange::new(0x4000_0000, 0x1000), PhysRange::new(0x4800_0000, 0x2000)]
        );
    }
}
