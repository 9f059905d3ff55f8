//! The GICv3 and the architected timer, whose PPIs it delivers.

use arrayvec::ArrayVec;

use super::address::{for_each_physical_region, physical_region};
use super::devicetree::{DeviceTree, Located, Node};
use super::error::PlatformError;
use super::interrupts::{DeviceInterrupts, Ppi};
use super::{Gic, MAX_REDISTRIBUTOR_REGIONS, PhysRange, Timer, optional_u32_property, push_within_capacity};

/// Reads the first enabled `arm,gic-v3` node. Its `reg` is the distributor,
/// then `#redistributor-regions` redistributor regions, then optionally the
/// GICv2-compatible CPU interface frames, which we do not use.
pub(super) fn gic(tree: &DeviceTree<'_>) -> Result<Gic, PlatformError> {
    let found = tree.find_compatible("arm,gic-v3")?.ok_or(PlatformError::MissingGicV3)?;
    let node = &found.node;
    let region_count = redistributor_region_count(node)?;

    let mut distributor = None;
    let mut redistributor_regions = ArrayVec::new();
    let mut index = 0;
    for_each_physical_region(found.as_ref(), |range| {
        if index == 0 {
            distributor = Some(range);
        } else if index <= region_count {
            push_within_capacity(&mut redistributor_regions, range, "GICv3 redistributor regions")?;
        }
        index += 1;
        Ok(())
    })?;
    let distributor = distributor.ok_or(malformed_reg(node, "has no distributor region"))?;
    if redistributor_regions.len() < region_count {
        return Err(malformed_reg(node, "has fewer entries than #redistributor-regions"));
    }

    Ok(Gic {
        distributor,
        redistributor_regions,
        redistributor_stride: redistributor_stride(node)?,
        maintenance_irq: maintenance_interrupt(tree, &found)?,
        its: its_frame(tree)?,
    })
}

fn malformed_reg(node: &Node<'_>, problem: &'static str) -> PlatformError {
    PlatformError::MalformedProperty { node: node.error_name(), property: "reg", problem }
}

/// `#redistributor-regions`, 1 when absent.
fn redistributor_region_count(node: &Node<'_>) -> Result<usize, PlatformError> {
    match optional_u32_property(node, "#redistributor-regions")? {
        None => Ok(1),
        Some(0) => Err(PlatformError::MalformedProperty {
            node: node.error_name(),
            property: "#redistributor-regions",
            problem: "must be at least 1",
        }),
        Some(count) if count as usize > MAX_REDISTRIBUTOR_REGIONS => Err(PlatformError::CapacityExceeded {
            what: "GICv3 redistributor regions",
            capacity: MAX_REDISTRIBUTOR_REGIONS,
        }),
        Some(count) => Ok(count as usize),
    }
}

/// `redistributor-stride`, a 64-bit value in the binding (one cell accepted).
fn redistributor_stride(node: &Node<'_>) -> Result<Option<u64>, PlatformError> {
    let Some(value) = node.property("redistributor-stride") else {
        return Ok(None);
    };
    let stride = match value.len() {
        4 => super::devicetree::be_u32_at(value, 0).map(u64::from),
        8 => super::devicetree::be_u64_at(value, 0),
        _ => None,
    };
    match stride {
        Some(stride) if stride != 0 => Ok(Some(stride)),
        _ => Err(PlatformError::MalformedProperty {
            node: node.error_name(),
            property: "redistributor-stride",
            problem: "must be a non-zero 32- or 64-bit value",
        }),
    }
}

/// The GIC's own `interrupts`: the maintenance interrupt, which must be a PPI.
fn maintenance_interrupt<'a>(tree: &DeviceTree<'a>, gic: &Located<'a>) -> Result<Option<Ppi>, PlatformError> {
    let Some(interrupts) = DeviceInterrupts::of(tree, gic.as_ref())? else {
        return Ok(None);
    };
    let Some(resolved) = interrupts.resolve(0)? else {
        return Ok(None);
    };
    let ppi = resolved.on_gic_v3().and_then(|interrupt| interrupt.as_ppi());
    ppi.map(Some).ok_or(PlatformError::MalformedProperty {
        node: gic.node.error_name(),
        property: "interrupts",
        problem: "the maintenance interrupt is not a GICv3 PPI",
    })
}

/// The first enabled ITS (`arm,gic-v3-its`, always a child of the GIC node).
fn its_frame(tree: &DeviceTree<'_>) -> Result<Option<PhysRange>, PlatformError> {
    let Some(its) = tree.find_compatible("arm,gic-v3-its")? else {
        return Ok(None);
    };
    let frame = physical_region(its.as_ref(), 0)?;
    frame.map(Some).ok_or(malformed_reg(&its.node, "ITS node has no register frame"))
}

/// Reads the first enabled `arm,armv8-timer` (or `arm,armv7-timer`) node.
pub(super) fn timer(tree: &DeviceTree<'_>) -> Result<Timer, PlatformError> {
    let found = match tree.find_compatible("arm,armv8-timer")? {
        Some(found) => found,
        None => tree.find_compatible("arm,armv7-timer")?.ok_or(PlatformError::MissingTimer)?,
    };
    let missing = PlatformError::MalformedProperty {
        node: found.node.error_name(),
        property: "interrupts",
        problem: "the timer needs at least 4 interrupts (secure, non-secure, virtual, hypervisor)",
    };
    let interrupts = DeviceInterrupts::of(tree, found.as_ref())?.ok_or(missing)?;
    if interrupts.count() < 4 {
        return Err(missing);
    }
    let required = |index| timer_ppi(&interrupts, index)?.ok_or(missing);
    Ok(Timer {
        secure_phys: required(0)?,
        nonsecure_phys: required(1)?,
        virt: required(2)?,
        hyp_phys: required(3)?,
        hyp_virt: timer_ppi(&interrupts, 4)?,
        clock_frequency: optional_u32_property(&found.node, "clock-frequency")?,
    })
}

/// Timer interrupt `index` as a PPI; `None` past the end of the list.
fn timer_ppi(interrupts: &DeviceInterrupts<'_, '_>, index: usize) -> Result<Option<Ppi>, PlatformError> {
    let Some(resolved) = interrupts.resolve(index)? else {
        return Ok(None);
    };
    let ppi = resolved.on_gic_v3().and_then(|interrupt| interrupt.as_ppi());
    ppi.map(Some).ok_or(PlatformError::TimerInterruptNotPpi { index })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::TriggerType;
    use crate::platform::test_support::FdtBuilder;

    /// A root with a GICv3 (phandle 1) and a timer whose interrupts are `timer_interrupts`.
    fn tree(gic_extra: impl FnOnce(&mut FdtBuilder), timer_interrupts: &[u32]) -> std::vec::Vec<u8> {
        let mut builder = FdtBuilder::new();
        builder.begin_node("");
        builder.property_u32s("#address-cells", &[2]);
        builder.property_u32s("#size-cells", &[2]);
        builder.property_u32s("interrupt-parent", &[1]);
        builder.begin_node("interrupt-controller@8000000");
        builder.property_strings("compatible", &["arm,gic-v3"]);
        builder.property_u32s("phandle", &[1]);
        builder.property_u32s("#interrupt-cells", &[3]);
        builder.property("interrupt-controller", &[]);
        gic_extra(&mut builder);
        builder.end_node();
        builder.begin_node("timer");
        builder.property_strings("compatible", &["arm,armv7-timer"]);
        builder.property_u32s("interrupts", timer_interrupts);
        builder.end_node();
        builder.end_node();
        builder.finish()
    }

    const TIMER_PPIS: [u32; 12] = [1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8];

    #[test]
    fn two_redistributor_regions_and_stride() {
        let blob = tree(
            |gic| {
                gic.property_u32s("#redistributor-regions", &[2]);
                gic.property_u32s("redistributor-stride", &[0, 0x4_0000]);
                gic.property_u32s(
                    "reg",
                    &[0, 0x800_0000, 0, 0x1_0000, 0, 0x810_0000, 0, 0x10_0000, 0, 0x900_0000, 0, 0x20_0000],
                );
            },
            &TIMER_PPIS,
        );
        let tree = DeviceTree::parse(&blob).unwrap();
        let gic = gic(&tree).unwrap();
        assert_eq!(gic.distributor, PhysRange::new(0x800_0000, 0x1_0000));
        assert_eq!(
            gic.redistributor_regions.as_slice(),
            [PhysRange::new(0x810_0000, 0x10_0000), PhysRange::new(0x900_0000, 0x20_0000)]
        );
        assert_eq!(gic.redistributor_stride, Some(0x4_0000));
        assert_eq!(gic.maintenance_irq, None);
        assert_eq!(gic.its, None);
    }

    #[test]
    fn reg_shorter_than_redistributor_region_count_is_an_error() {
        let blob = tree(
            |gic| {
                gic.property_u32s("#redistributor-regions", &[2]);
                gic.property_u32s("reg", &[0, 0x800_0000, 0, 0x1_0000, 0, 0x810_0000, 0, 0x10_0000]);
            },
            &TIMER_PPIS,
        );
        let tree = DeviceTree::parse(&blob).unwrap();
        assert!(matches!(gic(&tree), Err(PlatformError::MalformedProperty { property: "reg", .. })));
    }

    #[test]
    fn too_many_redistributor_regions_is_a_capacity_error() {
        let blob = tree(
            |gic| {
                gic.property_u32s("#redistributor-regions", &[9]);
            },
            &TIMER_PPIS,
        );
        let tree = DeviceTree::parse(&blob).unwrap();
        assert!(matches!(gic(&tree), Err(PlatformError::CapacityExceeded { capacity: 8, .. })));
    }

    #[test]
    fn maintenance_interrupt_must_be_a_ppi() {
        let blob = tree(
            |gic| {
                gic.property_u32s("reg", &[0, 0x800_0000, 0, 0x1_0000, 0, 0x810_0000, 0, 0x10_0000]);
                gic.property_u32s("interrupts", &[0, 9, 4]);
            },
            &TIMER_PPIS,
        );
        let tree = DeviceTree::parse(&blob).unwrap();
        assert!(matches!(gic(&tree), Err(PlatformError::MalformedProperty { property: "interrupts", .. })));
    }

    #[test]
    fn armv7_timer_is_accepted_and_level_low_is_level() {
        let blob = tree(|_| {}, &TIMER_PPIS);
        let tree = DeviceTree::parse(&blob).unwrap();
        let timer = timer(&tree).unwrap();
        assert_eq!(timer.secure_phys, Ppi { intid: 29, trigger: TriggerType::Level });
        assert_eq!(timer.hyp_phys.intid, 26);
        assert_eq!(timer.hyp_virt, None);
        assert_eq!(timer.clock_frequency, None);
    }

    #[test]
    fn timer_spi_is_rejected() {
        let mut interrupts = TIMER_PPIS;
        interrupts[6] = 0; // the virtual timer becomes SPI 11
        let blob = tree(|_| {}, &interrupts);
        let tree = DeviceTree::parse(&blob).unwrap();
        assert_eq!(timer(&tree).unwrap_err(), PlatformError::TimerInterruptNotPpi { index: 2 });
    }

    #[test]
    fn timer_with_too_few_interrupts_is_rejected() {
        let blob = tree(|_| {}, &TIMER_PPIS[..9]);
        let tree = DeviceTree::parse(&blob).unwrap();
        assert!(matches!(timer(&tree), Err(PlatformError::MalformedProperty { property: "interrupts", .. })));
    }
}
