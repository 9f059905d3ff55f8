//! Which UART to print on: the one `/chosen/stdout-path` names, else the
//! first enabled PL011.

use super::Uart;
use super::address::physical_region;
use super::devicetree::{DeviceTree, Located, NodeRef};
use super::error::PlatformError;
use super::interrupts::DeviceInterrupts;

pub(super) fn console(tree: &DeviceTree<'_>) -> Result<Option<Uart>, PlatformError> {
    let node = match stdout_node(tree)? {
        Some(node) => Some(node),
        None => tree.find_compatible("arm,pl011")?,
    };
    node.map(|node| uart(tree, node.as_ref())).transpose()
}

/// The node `/chosen/stdout-path` (or the legacy `linux,stdout-path`)
/// names. The value is an absolute path or an alias, optionally followed by
/// `:options` such as `:115200n8`, which we drop: firmware already set the
/// UART up. `alias/sub/path` forms are not supported (nobody uses them for
/// a UART); an unresolvable value falls back to the PL011 search.
fn stdout_node<'a>(tree: &DeviceTree<'a>) -> Result<Option<Located<'a>>, PlatformError> {
    let Some(chosen) = tree.find_path("/chosen")? else {
        return Ok(None);
    };
    let Some(stdout_path) =
        chosen.node.str_property("stdout-path").or_else(|| chosen.node.str_property("linux,stdout-path"))
    else {
        return Ok(None);
    };
    let target = stdout_path.split(':').next().unwrap_or(stdout_path);
    if target.starts_with('/') { tree.find_path(target) } else { tree.find_alias(target) }
}

fn uart<'a>(tree: &DeviceTree<'a>, node: NodeRef<'_, 'a>) -> Result<Uart, PlatformError> {
    let registers = physical_region(node, 0)?.ok_or(PlatformError::MalformedProperty {
        node: node.node.error_name(),
        property: "reg",
        problem: "the console UART has no register frame",
    })?;
    Ok(Uart {
        base: registers.base,
        size: registers.size,
        intid: spi_intid(tree, node),
        compatible_pl011: node.node.is_compatible("arm,pl011"),
    })
}

/// The UART's first interrupt as a GIC SPI INTID. Any problem following it
/// yields `None` rather than an error: the console works polled, and a
/// broken interrupt description must not cost us the boot log.
fn spi_intid<'a>(tree: &DeviceTree<'a>, node: NodeRef<'_, 'a>) -> Option<u32> {
    let interrupts = DeviceInterrupts::of(tree, node).ok()??;
    let resolved = interrupts.resolve(0).ok()??;
    resolved.on_gic_v3()?.spi_intid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::test_support::FdtBuilder;

    /// Root with a GIC (phandle 1), two PL011s and an ns16550, plus `chosen`.
    fn tree(stdout_path: Option<&str>) -> std::vec::Vec<u8> {
        let mut builder = FdtBuilder::new();
        builder.begin_node("");
        builder.property_u32s("#address-cells", &[1]);
        builder.property_u32s("#size-cells", &[1]);
        builder.property_u32s("interrupt-parent", &[1]);
        builder.begin_node("intc@1000");
        builder.property_strings("compatible", &["arm,gic-v3"]);
        builder.property_u32s("phandle", &[1]);
        builder.property_u32s("#interrupt-cells", &[3]);
        builder.property("interrupt-controller", &[]);
        builder.end_node();
        builder.begin_node("serial@2000");
        builder.property_strings("compatible", &["arm,pl011", "arm,primecell"]);
        builder.property_strings("status", &["disabled"]);
        builder.property_u32s("reg", &[0x2000, 0x1000]);
        builder.end_node();
        builder.begin_node("serial@3000");
        builder.property_strings("compatible", &["arm,pl011", "arm,primecell"]);
        builder.property_u32s("reg", &[0x3000, 0x1000]);
        builder.property_u32s("interrupts", &[0, 2, 4]);
        builder.end_node();
        builder.begin_node("serial@4000");
        builder.property_strings("compatible", &["ns16550a"]);
        builder.property_u32s("reg", &[0x4000, 0x100]);
        builder.property_u32s("interrupts", &[1, 2]); // wrong length: no INTID
        builder.end_node();
        builder.begin_node("aliases");
        builder.property_strings("serial1", &["/serial@4000"]);
        builder.end_node();
        builder.begin_node("chosen");
        if let Some(path) = stdout_path {
            builder.property_strings("stdout-path", &[path]);
        }
        builder.end_node();
        builder.end_node();
        builder.finish()
    }

    fn console_of(stdout_path: Option<&str>) -> Option<Uart> {
        let blob = tree(stdout_path);
        console(&DeviceTree::parse(&blob).unwrap()).unwrap()
    }

    #[test]
    fn without_stdout_path_the_first_enabled_pl011_wins() {
        let expected = Uart { base: 0x3000, size: 0x1000, intid: Some(34), compatible_pl011: true };
        assert_eq!(console_of(None), Some(expected));
    }

    #[test]
    fn stdout_path_alias_with_options_is_followed() {
        let uart = console_of(Some("serial1:115200n8")).unwrap();
        assert_eq!(uart, Uart { base: 0x4000, size: 0x100, intid: None, compatible_pl011: false });
    }

    #[test]
    fn stdout_path_absolute_path_is_followed() {
        assert_eq!(console_of(Some("/serial@4000")).unwrap().base, 0x4000);
    }

    #[test]
    fn unresolvable_stdout_path_falls_back_to_pl011() {
        assert_eq!(console_of(Some("serial7")).unwrap().base, 0x3000);
        assert_eq!(console_of(Some("/nowhere:9600")).unwrap().base, 0x3000);
    }
}
