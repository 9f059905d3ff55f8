//! Following a device's `interrupts` to the interrupt controller that
//! finally receives them, and decoding GICv3 interrupt specifiers.
//!
//! This mirrors Linux's `of_irq_parse_raw`: the interrupt parent is found by
//! walking up the tree (or jumping through `interrupt-parent` phandles) to the
//! first node with `#interrupt-cells`; a parent with an `interrupt-map` is a
//! nexus that rewrites the specifier for the next parent. The FVP needs the
//! nexus step: its UARTs sit under `bus@8000000`, whose `interrupt-map` turns
//! the one-cell `<5>` into the GIC's `<SPI 5 level-high>`.
//!
//! `interrupts-extended` is not supported; none of the nodes we read use it.

use arrayvec::ArrayVec;

use super::devicetree::{DeviceTree, Located, Node, NodeRef, be_u32_at};
use super::error::PlatformError;

/// Widest interrupt specifier or unit address we handle (GICv3 uses 3 or 4).
pub const MAX_INTERRUPT_CELLS: usize = 4;
/// Bound on parent hops and nexus translations, so a cyclic tree cannot loop.
const MAX_HOPS: usize = 16;

/// An interrupt specifier or unit address: a short list of cells.
pub type Cells = ArrayVec<u32, MAX_INTERRUPT_CELLS>;

/// How the GIC should sense an interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerType {
    Edge,
    Level,
}

/// A private peripheral interrupt, such as one of the architected timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ppi {
    /// GIC INTID: 16 + the PPI number (or 1056 + n for an extended PPI).
    pub intid: u32,
    pub trigger: TriggerType,
}

/// The four interrupt ranges a GICv3 specifier's first cell selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicInterruptKind {
    Spi,
    Ppi,
    ExtendedSpi,
    ExtendedPpi,
}

/// A decoded GICv3 interrupt specifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GicInterrupt {
    pub kind: GicInterruptKind,
    pub intid: u32,
    pub trigger: TriggerType,
}

impl GicInterrupt {
    /// Decodes `<type number flags>` per the `arm,gic-v3` binding; `None` for
    /// fewer than 3 cells or a number out of range for its type.
    pub fn from_specifier(specifier: &[u32]) -> Option<Self> {
        let (&kind, &number, &flags) = (specifier.first()?, specifier.get(1)?, specifier.get(2)?);
        let (kind, intid) = match kind {
            0 if number < 988 => (GicInterruptKind::Spi, 32 + number),
            1 if number < 16 => (GicInterruptKind::Ppi, 16 + number),
            2 if number < 1024 => (GicInterruptKind::ExtendedSpi, 4096 + number),
            3 if number < 64 => (GicInterruptKind::ExtendedPpi, 1056 + number),
            _ => return None,
        };
        Some(Self { kind, intid, trigger: trigger_from_flags(flags) })
    }

    /// This interrupt as a [`Ppi`], if it is one.
    pub fn as_ppi(&self) -> Option<Ppi> {
        matches!(self.kind, GicInterruptKind::Ppi | GicInterruptKind::ExtendedPpi)
            .then_some(Ppi { intid: self.intid, trigger: self.trigger })
    }

    /// The INTID if this is a (possibly extended) SPI.
    pub fn spi_intid(&self) -> Option<u32> {
        matches!(self.kind, GicInterruptKind::Spi | GicInterruptKind::ExtendedSpi).then_some(self.intid)
    }
}

/// Linux `IRQ_TYPE_*` flags: 1/2 are rising/falling edge, 4/8 high/low level.
/// 0 ("none") is treated as level, the safe choice for a shared line.
fn trigger_from_flags(flags: u32) -> TriggerType {
    if flags & 0b0011 != 0 { TriggerType::Edge } else { TriggerType::Level }
}

/// An interrupt followed to the controller that receives it.
#[derive(Debug, Clone)]
pub struct ResolvedInterrupt<'a> {
    pub controller: Node<'a>,
    pub specifier: Cells,
}

impl ResolvedInterrupt<'_> {
    /// The decoded interrupt if the controller is a GICv3.
    pub fn on_gic_v3(&self) -> Option<GicInterrupt> {
        if self.controller.is_compatible("arm,gic-v3") { GicInterrupt::from_specifier(&self.specifier) } else { None }
    }
}

/// The `interrupts` of one device, ready to be resolved one by one.
pub struct DeviceInterrupts<'t, 'a> {
    tree: &'t DeviceTree<'a>,
    device: Node<'a>,
    interrupts: &'a [u8],
    parent: Located<'a>,
    cells_per_interrupt: usize,
    parent_address_cells: usize,
}

impl<'t, 'a> DeviceInterrupts<'t, 'a> {
    /// Finds `device`'s interrupt parent; `None` if it has no `interrupts`.
    pub fn of(tree: &'t DeviceTree<'a>, device: NodeRef<'_, 'a>) -> Result<Option<Self>, PlatformError> {
        let Some(interrupts) = device.node.property("interrupts") else {
            return Ok(None);
        };
        let parent = interrupt_parent(tree, device)?;
        let cells_per_interrupt = interrupt_cells(device.node, &parent.node)?;
        if cells_per_interrupt == 0 || !interrupts.len().is_multiple_of(cells_per_interrupt * 4) {
            return Err(PlatformError::MalformedProperty {
                node: device.node.error_name(),
                property: "interrupts",
                problem: "length is not a multiple of the parent's #interrupt-cells",
            });
        }
        Ok(Some(Self {
            tree,
            device: *device.node,
            interrupts,
            parent_address_cells: nexus_address_cells(parent.as_ref()),
            parent,
            cells_per_interrupt,
        }))
    }

    /// How many interrupts the device lists.
    pub fn count(&self) -> usize {
        self.interrupts.len() / (self.cells_per_interrupt * 4)
    }

    /// Follows interrupt `index` through any nexus to its controller;
    /// `None` if the device lists fewer interrupts.
    pub fn resolve(&self, index: usize) -> Result<Option<ResolvedInterrupt<'a>>, PlatformError> {
        if index >= self.count() {
            return Ok(None);
        }
        let mut specifier = Cells::new();
        let first_cell = index * self.cells_per_interrupt;
        for cell in first_cell..first_cell + self.cells_per_interrupt {
            specifier.push(be_u32_at(self.interrupts, cell * 4).unwrap_or_default());
        }
        let unit_address = self.device_unit_address();
        self.follow(self.parent.clone(), unit_address, specifier).map(Some)
    }

    /// The first cells of the device's `reg`, zero-padded, which an
    /// `interrupt-map` may match on.
    fn device_unit_address(&self) -> Cells {
        let reg = self.device.property("reg").unwrap_or_default();
        (0..self.parent_address_cells).map(|cell| be_u32_at(reg, cell * 4).unwrap_or(0)).collect()
    }

    fn follow(
        &self,
        mut current: Located<'a>,
        mut unit_address: Cells,
        mut specifier: Cells,
    ) -> Result<ResolvedInterrupt<'a>, PlatformError> {
        for _ in 0..MAX_HOPS {
            let map = current.node.property("interrupt-map");
            if map.is_none() && current.node.has_property("interrupt-controller") {
                return Ok(ResolvedInterrupt { controller: current.node, specifier });
            }
            let next = match map {
                Some(map) => {
                    let nexus = NexusKey { unit_address: &unit_address, specifier: &specifier };
                    nexus.map(self.tree, &current.node, map, self.device.error_name())?
                }
                None => {
                    // Neither controller nor nexus: pass the specifier up unchanged.
                    let parent = interrupt_parent(self.tree, current.as_ref())?;
                    (parent, unit_address.clone(), specifier.clone())
                }
            };
            (current, unit_address, specifier) = next;
        }
        Err(self.unresolved("interrupt tree is deeper than 16 hops or cyclic"))
    }

    fn unresolved(&self, problem: &'static str) -> PlatformError {
        PlatformError::UnresolvedInterrupt { node: self.device.error_name(), problem }
    }
}

/// The interrupt parent of `node`: the first node with `#interrupt-cells`
/// reached by following `interrupt-parent` phandles or, where a node has
/// none, its parent node (Linux's `of_irq_find_parent`).
fn interrupt_parent<'a>(tree: &DeviceTree<'a>, node: NodeRef<'_, 'a>) -> Result<Located<'a>, PlatformError> {
    let unresolved = |problem| PlatformError::UnresolvedInterrupt { node: node.node.error_name(), problem };
    let mut current = node.to_located();
    for _ in 0..MAX_HOPS {
        let next = match current.node.property("interrupt-parent") {
            Some(_) => {
                let phandle =
                    current.node.u32_property("interrupt-parent").ok_or(PlatformError::MalformedProperty {
                        node: current.node.error_name(),
                        property: "interrupt-parent",
                        problem: "must be a single phandle cell",
                    })?;
                tree.find_phandle(phandle)?.ok_or(unresolved("interrupt-parent names a phandle no node has"))?
            }
            None => {
                current.as_ref().parent().ok_or(unresolved("no interrupt-parent anywhere up to the root"))?.to_located()
            }
        };
        if next.node.has_property("#interrupt-cells") {
            return Ok(next);
        }
        current = next;
    }
    Err(unresolved("interrupt-parent chain is longer than 16 hops or cyclic"))
}

/// `#interrupt-cells` of `controller`, checked to be usable.
fn interrupt_cells(device: &Node<'_>, controller: &Node<'_>) -> Result<usize, PlatformError> {
    match controller.u32_property("#interrupt-cells") {
        Some(cells @ 1..=4) => Ok(cells as usize),
        _ => Err(PlatformError::UnresolvedInterrupt {
            node: device.error_name(),
            problem: "interrupt parent's #interrupt-cells is missing or not 1 to 4",
        }),
    }
}

/// Linux's rule for the unit-address width of the first interrupt parent:
/// its own `#address-cells` or the nearest ancestor's, else 2.
fn nexus_address_cells(parent: NodeRef<'_, '_>) -> usize {
    let mut node = Some(parent);
    while let Some(current) = node {
        if let Some(cells) = current.node.u32_property("#address-cells") {
            return (cells as usize).min(MAX_INTERRUPT_CELLS);
        }
        node = current.parent();
    }
    2
}

/// What an `interrupt-map` is matched against: unit address then specifier.
struct NexusKey<'k> {
    unit_address: &'k [u32],
    specifier: &'k [u32],
}

/// The cell counts of one `interrupt-map` parent, cached because a map
/// usually names the same parent in every entry and each lookup walks the tree.
#[derive(Clone, Copy)]
struct MapParent {
    phandle: u32,
    address_cells: usize,
    interrupt_cells: usize,
}

impl NexusKey<'_> {
    fn cells(&self) -> impl Iterator<Item = u32> + '_ {
        self.unit_address.iter().chain(self.specifier.iter()).copied()
    }

    fn len(&self) -> usize {
        self.unit_address.len() + self.specifier.len()
    }

    /// Finds the `interrupt-map` entry matching this key and returns the
    /// parent it names with the parent's unit address and specifier.
    fn map<'a>(
        &self,
        tree: &DeviceTree<'a>,
        nexus: &Node<'a>,
        map: &'a [u8],
        device: super::error::NodeName,
    ) -> Result<(Located<'a>, Cells, Cells), PlatformError> {
        let malformed =
            |property, problem| PlatformError::MalformedProperty { node: nexus.error_name(), property, problem };
        let mask = nexus.property("interrupt-map-mask");
        if mask.is_some_and(|mask| mask.len() < self.len() * 4) {
            return Err(malformed("interrupt-map-mask", "shorter than unit address + specifier"));
        }
        let mask_cell = |index: usize| mask.map_or(u32::MAX, |mask| be_u32_at(mask, index * 4).unwrap_or(0));
        let truncated = || malformed("interrupt-map", "entry runs past the end of the property");

        let mut cached: Option<MapParent> = None;
        let mut offset = 0;
        while offset < map.len() {
            let mut matches = true;
            for (index, key_cell) in self.cells().enumerate() {
                let map_cell = be_u32_at(map, offset + index * 4).ok_or_else(truncated)?;
                matches &= (map_cell ^ key_cell) & mask_cell(index) == 0;
            }
            offset += self.len() * 4;
            let phandle = be_u32_at(map, offset).ok_or_else(truncated)?;
            offset += 4;
            let parent = match cached {
                Some(parent) if parent.phandle == phandle => parent,
                _ => map_parent(tree, phandle, device)?,
            };
            cached = Some(parent);
            let unit_address = read_cell_list(map, offset, parent.address_cells).ok_or_else(truncated)?;
            offset += parent.address_cells * 4;
            let specifier = read_cell_list(map, offset, parent.interrupt_cells).ok_or_else(truncated)?;
            offset += parent.interrupt_cells * 4;
            if matches {
                let located = tree.find_phandle(phandle)?.ok_or(PlatformError::UnresolvedInterrupt {
                    node: device,
                    problem: "interrupt-map names a phandle no node has",
                })?;
                return Ok((located, unit_address, specifier));
            }
        }
        Err(PlatformError::UnresolvedInterrupt {
            node: device,
            problem: "no interrupt-map entry matches the interrupt",
        })
    }
}

/// Looks up the cell counts of an `interrupt-map` parent. As in Linux, a
/// parent without `#address-cells` contributes no unit-address cells.
fn map_parent(tree: &DeviceTree<'_>, phandle: u32, device: super::error::NodeName) -> Result<MapParent, PlatformError> {
    let unresolved = |problem| PlatformError::UnresolvedInterrupt { node: device, problem };
    let parent = tree.find_phandle(phandle)?.ok_or(unresolved("interrupt-map names a phandle no node has"))?;
    let interrupt_cells = match parent.node.u32_property("#interrupt-cells") {
        Some(cells @ 1..=4) => cells as usize,
        _ => {
            return Err(unresolved("interrupt-map parent's #interrupt-cells is missing or not 1 to 4"));
        }
    };
    let address_cells = match parent.node.u32_property("#address-cells").unwrap_or(0) {
        cells @ 0..=4 => cells as usize,
        _ => {
            return Err(unresolved("interrupt-map parent's #address-cells is larger than 4"));
        }
    };
    Ok(MapParent { phandle, address_cells, interrupt_cells })
}

/// `count` cells starting at byte `offset`, if all are present.
fn read_cell_list(bytes: &[u8], offset: usize, count: usize) -> Option<Cells> {
    (0..count).map(|index| be_u32_at(bytes, offset + index * 4)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::test_support::{FdtBuilder, fixture, replace_bytes};
    use std::string::String;

    /// The first interrupt of the node at `path`, as (controller name, specifier).
    fn resolve_first(blob: &[u8], path: &str) -> Result<Option<(String, Cells)>, PlatformError> {
        let tree = DeviceTree::parse(blob).unwrap();
        let device = tree.find_path(path).unwrap().expect("device node");
        let Some(interrupts) = DeviceInterrupts::of(&tree, device.as_ref())? else {
            return Ok(None);
        };
        Ok(interrupts.resolve(0)?.map(|resolved| (String::from(resolved.controller.name), resolved.specifier)))
    }

    #[test]
    fn decodes_gic_v3_specifiers() {
        let spi = GicInterrupt::from_specifier(&[0, 1, 4]).unwrap();
        assert_eq!(spi, GicInterrupt { kind: GicInterruptKind::Spi, intid: 33, trigger: TriggerType::Level });
        assert_eq!(spi.as_ppi(), None);
        assert_eq!(spi.spi_intid(), Some(33));

        let ppi = GicInterrupt::from_specifier(&[1, 9, 1]).unwrap();
        assert_eq!(ppi.as_ppi(), Some(Ppi { intid: 25, trigger: TriggerType::Edge }));
        assert_eq!(ppi.spi_intid(), None);

        assert_eq!(GicInterrupt::from_specifier(&[2, 0, 4]).unwrap().intid, 4096);
        assert_eq!(GicInterrupt::from_specifier(&[3, 0, 4]).unwrap().intid, 1056);
        assert_eq!(GicInterrupt::from_specifier(&[1, 16, 4]), None);
        assert_eq!(GicInterrupt::from_specifier(&[4, 0, 4]), None);
        assert_eq!(GicInterrupt::from_specifier(&[0, 1]), None);
        assert_eq!(GicInterrupt::from_specifier(&[1, 13, 8]).unwrap().trigger, TriggerType::Level);
    }

    #[test]
    fn qemu_uart_interrupt_inherits_the_root_interrupt_parent() {
        let blob = fixture("qemu-virt-mte-smp4.dtb");
        let (controller, specifier) = resolve_first(&blob, "/pl011@9000000").unwrap().unwrap();
        assert_eq!(controller, "intc@8000000");
        let interrupt = GicInterrupt::from_specifier(&specifier).unwrap();
        assert_eq!(interrupt.spi_intid(), Some(33));
        assert_eq!(interrupt.trigger, TriggerType::Level);
    }

    #[test]
    fn fvp_uart_interrupt_goes_through_the_interrupt_map() {
        let blob = fixture("fvp-base-revc.dtb");
        let path = "/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000/serial@90000";
        let (controller, specifier) = resolve_first(&blob, path).unwrap().unwrap();
        assert_eq!(controller, "interrupt-controller@2f000000");
        assert_eq!(specifier.as_slice(), [0, 5, 4]);
        assert_eq!(GicInterrupt::from_specifier(&specifier).unwrap().spi_intid(), Some(37));
    }

    #[test]
    fn unmatched_interrupt_map_entry_is_an_error() {
        // virtio@200000 uses `<0x2e>`; knock its map entry out by changing
        // that entry's child specifier to the unused 0x2d.
        let mut blob = fixture("fvp-base-revc.dtb");
        let needle = [0u8, 0, 0, 0, 0, 0, 0, 0x2e, 0, 0, 0, 1];
        let replacement = [0u8, 0, 0, 0, 0, 0, 0, 0x2d, 0, 0, 0, 1];
        assert_eq!(replace_bytes(&mut blob, &needle, &replacement), 1);
        let path = "/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000/virtio@200000";
        assert!(matches!(
            resolve_first(&blob, path),
            Err(PlatformError::UnresolvedInterrupt { problem: "no interrupt-map entry matches the interrupt", .. })
        ));
    }

    #[test]
    fn missing_interrupt_parent_is_an_error() {
        let mut builder = FdtBuilder::new();
        builder.begin_node("");
        builder.begin_node("device@0");
        builder.property_u32s("interrupts", &[3]);
        builder.end_node();
        builder.end_node();
        let blob = builder.finish();
        assert!(matches!(resolve_first(&blob, "/device@0"), Err(PlatformError::UnresolvedInterrupt { .. })));
    }

    #[test]
    fn interrupt_parent_cycle_is_bounded() {
        // Two nexus nodes without #interrupt-cells pointing at each other.
        let mut builder = FdtBuilder::new();
        builder.begin_node("");
        builder.begin_node("a");
        builder.property_u32s("phandle", &[1]);
        builder.property_u32s("interrupt-parent", &[2]);
        builder.end_node();
        builder.begin_node("b");
        builder.property_u32s("phandle", &[2]);
        builder.property_u32s("interrupt-parent", &[1]);
        builder.end_node();
        builder.begin_node("device@0");
        builder.property_u32s("interrupt-parent", &[1]);
        builder.property_u32s("interrupts", &[3]);
        builder.end_node();
        builder.end_node();
        let blob = builder.finish();
        assert!(matches!(resolve_first(&blob, "/device@0"), Err(PlatformError::UnresolvedInterrupt { .. })));
    }
}
