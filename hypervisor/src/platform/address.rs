//! Reading `reg` properties and translating bus addresses to CPU physical
//! addresses through every parent bus's `ranges`.
//!
//! A `reg` address is only meaningful in its parent bus's address space. On
//! the FVP, for example, UART0's `reg = <0x90000 0x1000>` lives on
//! `iofpga-bus@300000000`, which maps its space to chip-select 3 of the
//! motherboard bus, which in turn maps chip-select 3 to `0x1c000000` on the
//! root: only after both steps is `0x1c090000` an address the CPU can use.

use super::PhysRange;
use super::devicetree::{Node, NodeRef, read_cells};
use super::error::PlatformError;

/// Most cells an address or size may span; 4 cells fill the `u128` we compute in.
const MAX_CELLS: u32 = 4;

/// How a bus encodes its children's addresses: `#address-cells` and
/// `#size-cells`, each a count of 32-bit big-endian cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellSizes {
    pub address: usize,
    pub size: usize,
}

impl CellSizes {
    /// The cell sizes `bus` declares for its children, defaulting to the
    /// devicetree specification's 2 address cells and 1 size cell.
    pub fn of_children(bus: &Node<'_>) -> Result<Self, PlatformError> {
        Ok(Self { address: cell_count(bus, "#address-cells", 2)?, size: cell_count(bus, "#size-cells", 1)? })
    }

    /// The cell sizes that apply to `node`'s own `reg`: its parent's.
    pub fn for_reg_of(node: NodeRef<'_, '_>) -> Result<Self, PlatformError> {
        match node.parent() {
            Some(parent) => Self::of_children(parent.node),
            None => Ok(Self { address: 2, size: 1 }),
        }
    }

    fn entry_bytes(&self) -> usize {
        (self.address + self.size) * 4
    }
}

/// Reads a cell-count property, rejecting values too wide to compute with.
fn cell_count(node: &Node<'_>, property: &'static str, default: u32) -> Result<usize, PlatformError> {
    let count = match node.property(property) {
        None => default,
        Some(_) => node.u32_property(property).ok_or(PlatformError::MalformedProperty {
            node: node.error_name(),
            property,
            problem: "must be a single cell",
        })?,
    };
    if count > MAX_CELLS {
        return Err(PlatformError::MalformedProperty {
            node: node.error_name(),
            property,
            problem: "more than 4 cells are not supported",
        });
    }
    Ok(count as usize)
}

/// One untranslated `reg` entry, in the parent bus's address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusRegion {
    pub address: u128,
    pub size: u128,
}

/// The raw entries of `node`'s `reg` (empty if it has none), checked to be a
/// whole number of `(address, size)` tuples.
pub fn bus_regions<'a>(node: NodeRef<'_, 'a>) -> Result<impl Iterator<Item = BusRegion> + 'a, PlatformError> {
    let sizes = CellSizes::for_reg_of(node)?;
    let reg = node.node.property("reg").unwrap_or_default();
    let entry_bytes = sizes.entry_bytes();
    if !reg.is_empty() && (entry_bytes == 0 || !reg.len().is_multiple_of(entry_bytes)) {
        return Err(PlatformError::MalformedProperty {
            node: node.node.error_name(),
            property: "reg",
            problem: "length is not a multiple of the parent's #address-cells + #size-cells",
        });
    }
    // `max(1)` only matters for an empty `reg` under 0/0 cells: no entries.
    Ok(reg.chunks_exact(entry_bytes.max(1)).filter_map(move |entry| {
        Some(BusRegion {
            address: read_cells(entry, 0, sizes.address)?,
            size: read_cells(entry, sizes.address * 4, sizes.size)?,
        })
    }))
}

/// Every `reg` entry of `node` as a CPU physical range, in property order.
pub fn for_each_physical_region<F>(node: NodeRef<'_, '_>, mut visit: F) -> Result<(), PlatformError>
where
    F: FnMut(PhysRange) -> Result<(), PlatformError>,
{
    for region in bus_regions(node)? {
        visit(translate_region(node, region)?)?;
    }
    Ok(())
}

/// The `index`-th `reg` entry of `node` as a CPU physical range, if present.
pub fn physical_region(node: NodeRef<'_, '_>, index: usize) -> Result<Option<PhysRange>, PlatformError> {
    match bus_regions(node)?.nth(index) {
        Some(region) => translate_region(node, region).map(Some),
        None => Ok(None),
    }
}

/// Translates a `reg` entry of `node` to the root's (CPU physical) space.
pub fn translate_region(node: NodeRef<'_, '_>, region: BusRegion) -> Result<PhysRange, PlatformError> {
    let overflow = || PlatformError::AddressOverflow { node: node.node.error_name() };
    let base = translate_to_root(node, region.address)?;
    let size = u64::try_from(region.size).map_err(|_| overflow())?;
    PhysRange::checked(base, size).ok_or_else(overflow)
}

/// Walks `address` from `node`'s parent bus up to the root, applying each
/// bus's `ranges`. An empty `ranges` is an identity mapping; a missing one
/// means the bus is not memory-mapped, which is an error here.
pub fn translate_to_root(node: NodeRef<'_, '_>, address: u128) -> Result<u64, PlatformError> {
    let mut address = address;
    let mut bus = node.parent();
    while let Some(current) = bus {
        let Some(above) = current.parent() else { break };
        address = translate_through_bus(node.node, current.node, above.node, address)?;
        bus = Some(above);
    }
    u64::try_from(address).map_err(|_| PlatformError::AddressOverflow { node: node.node.error_name() })
}

/// Maps `address` from `bus`'s child space into `above`'s child space.
fn translate_through_bus(
    device: &Node<'_>,
    bus: &Node<'_>,
    above: &Node<'_>,
    address: u128,
) -> Result<u128, PlatformError> {
    let untranslatable = PlatformError::Untranslatable { node: device.error_name(), bus: bus.error_name(), address };
    let ranges = bus.property("ranges").ok_or(untranslatable)?;
    if ranges.is_empty() {
        return Ok(address);
    }
    let child = CellSizes::of_children(bus)?;
    let parent_address_cells = CellSizes::of_children(above)?.address;
    let entry_bytes = (child.address + parent_address_cells + child.size) * 4;
    if entry_bytes == 0 || !ranges.len().is_multiple_of(entry_bytes) {
        return Err(PlatformError::MalformedProperty {
            node: bus.error_name(),
            property: "ranges",
            problem: "length is not a multiple of the (child, parent, size) entry size",
        });
    }
    for entry in ranges.chunks_exact(entry_bytes) {
        let child_base = read_cells(entry, 0, child.address).unwrap_or_default();
        let parent_base = read_cells(entry, child.address * 4, parent_address_cells);
        let size_offset = (child.address + parent_address_cells) * 4;
        let size = read_cells(entry, size_offset, child.size).unwrap_or_default();
        let Some(offset) = address.checked_sub(child_base).filter(|&offset| offset < size) else {
            continue;
        };
        return parent_base
            .and_then(|parent_base| parent_base.checked_add(offset))
            .ok_or(PlatformError::AddressOverflow { node: device.error_name() });
    }
    Err(untranslatable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::devicetree::DeviceTree;
    use crate::platform::test_support::{FdtBuilder, fixture};

    /// `/bus@0` (2 address cells, 1 size cell) maps child `<1 0>` to
    /// `0x4000_0000`; `/bus@0/sub@1` (1/1) maps its `0` to the bus's `<1 0>`.
    fn nested_bus_tree(sub_ranges: Option<&[u32]>) -> std::vec::Vec<u8> {
        let mut builder = FdtBuilder::new();
        builder.begin_node("");
        builder.property_u32s("#address-cells", &[2]);
        builder.property_u32s("#size-cells", &[2]);
        builder.begin_node("bus@0");
        builder.property_u32s("#address-cells", &[2]);
        builder.property_u32s("#size-cells", &[1]);
        builder.property_u32s("ranges", &[1, 0, 0, 0x4000_0000, 0x1000_0000]);
        builder.begin_node("sub@1");
        builder.property_u32s("#address-cells", &[1]);
        builder.property_u32s("#size-cells", &[1]);
        if let Some(ranges) = sub_ranges {
            builder.property_u32s("ranges", ranges);
        }
        builder.begin_node("device@2000");
        builder.property_u32s("reg", &[0x2000, 0x100, 0x3000, 0x10]);
        builder.end_node();
        builder.end_node();
        builder.end_node();
        builder.end_node();
        builder.finish()
    }

    fn device_regions(blob: &[u8]) -> Result<std::vec::Vec<PhysRange>, PlatformError> {
        let tree = DeviceTree::parse(blob).unwrap();
        let device = tree.find_path("/bus/sub/device@2000").unwrap().unwrap();
        let mut regions = std::vec::Vec::new();
        for_each_physical_region(device.as_ref(), |region| {
            regions.push(region);
            Ok(())
        })?;
        Ok(regions)
    }

    #[test]
    fn translates_through_nested_ranges() {
        let blob = nested_bus_tree(Some(&[0, 1, 0, 0x10_0000]));
        assert_eq!(
            device_regions(&blob).unwrap(),
            [PhysRange::new(0x4000_2000, 0x100), PhysRange::new(0x4000_3000, 0x10)]
        );
    }

    #[test]
    fn empty_ranges_is_identity() {
        let blob = nested_bus_tree(Some(&[]));
        // The sub-bus passes 0x2000 through unchanged, but bus@0 only maps <1 x>.
        assert!(matches!(device_regions(&blob), Err(PlatformError::Untranslatable { address: 0x2000, .. })));
    }

    #[test]
    fn missing_ranges_is_untranslatable() {
        let blob = nested_bus_tree(None);
        let error = device_regions(&blob).unwrap_err();
        assert_eq!(
            error,
            PlatformError::Untranslatable {
                node: crate::platform::error::NodeName::new("device@2000"),
                bus: crate::platform::error::NodeName::new("sub@1"),
                address: 0x2000,
            }
        );
    }

    #[test]
    fn address_outside_every_range_is_untranslatable() {
        let blob = nested_bus_tree(Some(&[0, 1, 0, 0x2800]));
        assert!(matches!(device_regions(&blob), Err(PlatformError::Untranslatable { address: 0x3000, .. })));
    }

    #[test]
    fn malformed_ranges_length_is_reported() {
        let blob = nested_bus_tree(Some(&[0, 1, 0]));
        assert!(matches!(device_regions(&blob), Err(PlatformError::MalformedProperty { property: "ranges", .. })));
    }

    #[test]
    fn fvp_uart0_translates_through_three_buses() {
        let blob = fixture("fvp-base-revc.dtb");
        let tree = DeviceTree::parse(&blob).unwrap();
        let uart = tree
            .find_path("/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000/serial@90000")
            .unwrap()
            .expect("FVP UART0 node");
        assert_eq!(physical_region(uart.as_ref(), 0).unwrap(), Some(PhysRange::new(0x1c09_0000, 0x1000)));
        assert_eq!(physical_region(uart.as_ref(), 1).unwrap(), None);
    }

    #[test]
    fn cell_sizes_default_and_limits() {
        let mut builder = FdtBuilder::new();
        builder.begin_node("");
        builder.begin_node("wide");
        builder.property_u32s("#address-cells", &[5]);
        builder.end_node();
        builder.end_node();
        let blob = builder.finish();
        let tree = DeviceTree::parse(&blob).unwrap();
        let root = tree.find_path("/").unwrap().unwrap();
        assert_eq!(CellSizes::of_children(&root.node).unwrap(), CellSizes { address: 2, size: 1 });
        let wide = tree.find_path("/wide").unwrap().unwrap();
        assert!(CellSizes::of_children(&wide.node).is_err());
    }
}
