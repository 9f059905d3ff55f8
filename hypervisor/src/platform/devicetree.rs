//! A minimal reader for flattened device trees (FDT / DTB) that neither
//! allocates nor panics.
//!
//! Why not the `fdt` crate: version 0.1.5 panics (`expect`, `assert_eq!`,
//! unchecked slicing) on malformed blobs, and its nodes cannot reach their
//! parents, which address translation and interrupt-parent lookup need. This
//! reader validates the whole structure block once up front, then hands out
//! nodes together with their chain of ancestors.

use core::ops::ControlFlow;

use arrayvec::ArrayVec;

use super::error::{NodeName, PlatformError};

/// The big-endian word every FDT starts with.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of a version-17 FDT header.
pub const HEADER_LEN: usize = 40;
/// Deepest nesting the walker tracks. Real trees stay below 8 levels; every
/// level costs one [`Node`] of stack in each [`Located`].
pub const MAX_DEPTH: usize = 16;

const TOKEN_BEGIN_NODE: u32 = 0x1;
const TOKEN_END_NODE: u32 = 0x2;
const TOKEN_PROP: u32 = 0x3;
const TOKEN_NOP: u32 = 0x4;
const TOKEN_END: u32 = 0x9;

/// Reads the big-endian `u32` at `offset`, if it is entirely inside `bytes`.
pub fn be_u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    let word: [u8; 4] = bytes.get(offset..end)?.try_into().ok()?;
    Some(u32::from_be_bytes(word))
}

/// Reads the big-endian `u64` at `offset`, if it is entirely inside `bytes`.
pub fn be_u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    let end = offset.checked_add(8)?;
    let word: [u8; 8] = bytes.get(offset..end)?.try_into().ok()?;
    Some(u64::from_be_bytes(word))
}

/// Combines `count` (at most 4) big-endian cells starting at byte `offset`
/// into one number, the way `#address-cells`/`#size-cells` values are encoded.
pub fn read_cells(bytes: &[u8], offset: usize, count: usize) -> Option<u128> {
    if count > 4 {
        return None;
    }
    (0..count).try_fold(0u128, |value, index| {
        let cell = be_u32_at(bytes, offset.checked_add(index * 4)?)?;
        Some((value << 32) | u128::from(cell))
    })
}

/// The blob's total size from its header, or `None` if `header` does not
/// start with the FDT magic (or is shorter than 8 bytes).
///
/// Boot code uses this to decide whether x0/x1 point at a device tree and how
/// much memory to map for it.
pub fn fdt_total_size(header: &[u8]) -> Option<usize> {
    if be_u32_at(header, 0)? != FDT_MAGIC {
        return None;
    }
    let total_size = usize::try_from(be_u32_at(header, 4)?).ok()?;
    (total_size >= HEADER_LEN).then_some(total_size)
}

/// Whether `header` (at least its first 8 bytes) looks like the start of a
/// flattened device tree: the magic plus a plausible total size.
pub fn looks_like_fdt(header: &[u8]) -> bool {
    fdt_total_size(header).is_some()
}

/// A validated device tree blob, split into its three blocks.
#[derive(Debug, Clone, Copy)]
pub struct DeviceTree<'a> {
    structure: &'a [u8],
    strings: &'a [u8],
    reservations: &'a [u8],
    total_size: usize,
}

impl<'a> DeviceTree<'a> {
    /// Checks the header and walks the entire structure block once, so every
    /// later walk works on a well-formed token stream.
    pub fn parse(blob: &'a [u8]) -> Result<Self, PlatformError> {
        let header = blob.get(..HEADER_LEN).ok_or(PlatformError::HeaderTruncated { available: blob.len() })?;
        let field = |index: usize| be_u32_at(header, index * 4).unwrap_or(0);
        let field_usize = |index: usize| usize::try_from(field(index)).unwrap_or(usize::MAX);

        if field(0) != FDT_MAGIC {
            return Err(PlatformError::BadMagic { found: field(0) });
        }
        let total_size = field_usize(1);
        if total_size < HEADER_LEN {
            return Err(PlatformError::TotalSizeTooSmall { total_size });
        }
        let blob = blob.get(..total_size).ok_or(PlatformError::BlobTruncated { total_size, available: blob.len() })?;
        let (version, last_compatible) = (field(5), field(6));
        if version < 17 || last_compatible > 17 {
            return Err(PlatformError::UnsupportedVersion { version, last_compatible });
        }

        let tree = Self {
            structure: block(blob, field_usize(2), field_usize(9), "structure")?,
            strings: block(blob, field_usize(3), field_usize(8), "strings")?,
            reservations: blob
                .get(field_usize(4)..)
                .ok_or(PlatformError::BlockOutOfBounds { block: "memory reservation" })?,
            total_size,
        };
        tree.walk(|_| Ok(ControlFlow::Continue(())))?;
        Ok(tree)
    }

    /// The header's `totalsize`: how many bytes the blob occupies in memory.
    pub fn total_size(&self) -> usize {
        self.total_size
    }

    /// The `/memreserve/` entries as `(address, size)`, stopping at the
    /// all-zero terminator.
    pub fn memory_reservations(&self) -> MemoryReservations<'a> {
        MemoryReservations { block: self.reservations, offset: 0, finished: false }
    }

    /// Calls `visit` for every node, depth first in blob order.
    pub fn for_each_node<F>(&self, mut visit: F) -> Result<(), PlatformError>
    where
        F: FnMut(NodeRef<'_, 'a>) -> Result<(), PlatformError>,
    {
        self.walk(|node| visit(node).map(ControlFlow::Continue))?;
        Ok(())
    }

    /// The first node (in blob order) for which `matches` holds.
    pub fn find_node<F>(&self, mut matches: F) -> Result<Option<Located<'a>>, PlatformError>
    where
        F: FnMut(NodeRef<'_, 'a>) -> bool,
    {
        self.walk(|node| Ok(if matches(node) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }))
    }

    /// The first enabled node listing `compatible` in its `compatible` property.
    pub fn find_compatible(&self, compatible: &str) -> Result<Option<Located<'a>>, PlatformError> {
        self.find_node(|found| found.node.is_enabled() && found.node.is_compatible(compatible))
    }

    /// The node whose `phandle` (or legacy `linux,phandle`) is `phandle`.
    pub fn find_phandle(&self, phandle: u32) -> Result<Option<Located<'a>>, PlatformError> {
        self.find_node(|found| found.node.phandle() == Some(phandle))
    }

    /// The node at an absolute `path` such as `/cpus` or
    /// `/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000/serial@90000`.
    ///
    /// A path component without a unit address (`memory`) also matches a
    /// node that has one (`memory@40000000`), as in Linux.
    pub fn find_path(&self, path: &str) -> Result<Option<Located<'a>>, PlatformError> {
        if !path.starts_with('/') {
            return Ok(None);
        }
        let components = || path.split('/').filter(|component| !component.is_empty());
        let depth = components().count();
        self.find_node(|found| {
            found.depth() == depth
                && found
                    .ancestors
                    .iter()
                    .skip(1)
                    .chain(core::iter::once(found.node))
                    .zip(components())
                    .all(|(node, component)| node.matches_path_component(component))
        })
    }

    /// Resolves `/aliases/<alias>` to the node it names.
    pub fn find_alias(&self, alias: &str) -> Result<Option<Located<'a>>, PlatformError> {
        let Some(aliases) = self.find_path("/aliases")? else {
            return Ok(None);
        };
        match aliases.node.str_property(alias) {
            Some(path) => self.find_path(path),
            None => Ok(None),
        }
    }

    /// The walk everything else is built on: visits nodes depth first,
    /// validating tokens as it goes, and stops at the first `Break`.
    fn walk<F>(&self, mut visit: F) -> Result<Option<Located<'a>>, PlatformError>
    where
        F: FnMut(NodeRef<'_, 'a>) -> Result<ControlFlow<()>, PlatformError>,
    {
        let mut cursor = Cursor { block: self.structure, offset: 0 };
        let mut ancestors: ArrayVec<Node<'a>, MAX_DEPTH> = ArrayVec::new();
        cursor.skip_nops();
        cursor.expect_token(TOKEN_BEGIN_NODE, "structure block does not start with a node")?;
        loop {
            let node = cursor.node_after_begin_token(self.strings)?;
            if visit(NodeRef { node: &node, ancestors: &ancestors })?.is_break() {
                return Ok(Some(Located { node, ancestors }));
            }
            ancestors.try_push(node).map_err(|_| PlatformError::TreeTooDeep { limit: MAX_DEPTH })?;
            if cursor.close_nodes_until_next_begin(&mut ancestors)? {
                return Ok(None);
            }
        }
    }
}

/// The sub-slice `offset..offset + len` of `blob`, or an error naming `name`.
fn block<'a>(blob: &'a [u8], offset: usize, len: usize, name: &'static str) -> Result<&'a [u8], PlatformError> {
    offset.checked_add(len).and_then(|end| blob.get(offset..end)).ok_or(PlatformError::BlockOutOfBounds { block: name })
}

/// Iterator over the memory reservation block; see
/// [`DeviceTree::memory_reservations`].
pub struct MemoryReservations<'a> {
    block: &'a [u8],
    offset: usize,
    finished: bool,
}

impl Iterator for MemoryReservations<'_> {
    type Item = Result<(u64, u64), PlatformError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let entry =
            be_u64_at(self.block, self.offset).zip(self.offset.checked_add(8).and_then(|at| be_u64_at(self.block, at)));
        self.offset = self.offset.saturating_add(16);
        match entry {
            None => {
                self.finished = true;
                Some(Err(PlatformError::MalformedReservationBlock))
            }
            Some((0, 0)) => {
                self.finished = true;
                None
            }
            Some(entry) => Some(Ok(entry)),
        }
    }
}

/// Position in the structure block during a walk.
struct Cursor<'a> {
    block: &'a [u8],
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn malformed(&self, problem: &'static str) -> PlatformError {
        PlatformError::MalformedStructure { offset: self.offset, problem }
    }

    fn peek_token(&self) -> Option<u32> {
        be_u32_at(self.block, self.offset)
    }

    fn next_token(&mut self) -> Result<u32, PlatformError> {
        let token = self.peek_token().ok_or(self.malformed("structure block ends inside a node"))?;
        self.offset += 4;
        Ok(token)
    }

    fn expect_token(&mut self, expected: u32, problem: &'static str) -> Result<(), PlatformError> {
        let at = self.offset;
        if self.next_token()? == expected {
            Ok(())
        } else {
            Err(PlatformError::MalformedStructure { offset: at, problem })
        }
    }

    fn skip_nops(&mut self) {
        while self.peek_token() == Some(TOKEN_NOP) {
            self.offset += 4;
        }
    }

    /// Moves past `len` bytes of payload plus padding to the next 4-byte boundary.
    fn skip_padded(&mut self, len: usize) -> Result<(), PlatformError> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|&end| end <= self.block.len())
            .ok_or(self.malformed("payload runs past the end of the structure block"))?;
        self.offset = end.checked_add(3).ok_or(self.malformed("offset overflow"))? & !3;
        Ok(())
    }

    /// Parses a node's name and properties; the `FDT_BEGIN_NODE` token has
    /// already been consumed. Stops in front of the first child or `FDT_END_NODE`.
    fn node_after_begin_token(&mut self, strings: &'a [u8]) -> Result<Node<'a>, PlatformError> {
        let name_bytes = self.block.get(self.offset..).unwrap_or_default();
        let name_len =
            name_bytes.iter().position(|&byte| byte == 0).ok_or(self.malformed("node name is not NUL-terminated"))?;
        let name =
            core::str::from_utf8(&name_bytes[..name_len]).map_err(|_| self.malformed("node name is not UTF-8"))?;
        self.skip_padded(name_len + 1)?;

        let properties_start = self.offset;
        loop {
            match self.peek_token() {
                Some(TOKEN_NOP) => self.offset += 4,
                Some(TOKEN_PROP) => {
                    self.offset += 4;
                    self.skip_property(strings)?;
                }
                _ => break,
            }
        }
        let properties = self.block.get(properties_start..self.offset).unwrap_or_default();
        Ok(Node { name, properties, strings })
    }

    /// Validates one property (after its `FDT_PROP` token) and moves past it.
    fn skip_property(&mut self, strings: &[u8]) -> Result<(), PlatformError> {
        let header = self.block.get(self.offset..).unwrap_or_default();
        let (len, name_offset) = be_u32_at(header, 0)
            .zip(be_u32_at(header, 4))
            .ok_or(self.malformed("property header runs past the end of the structure block"))?;
        if property_name(strings, name_offset).is_none() {
            return Err(self.malformed("property name offset is not a valid string"));
        }
        self.offset += 8;
        self.skip_padded(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// After a node's properties: consumes children's closing tokens and NOPs
    /// until the next `FDT_BEGIN_NODE` (returns `false`) or until the root
    /// node closes and `FDT_END` follows (returns `true`).
    fn close_nodes_until_next_begin(
        &mut self,
        ancestors: &mut ArrayVec<Node<'a>, MAX_DEPTH>,
    ) -> Result<bool, PlatformError> {
        loop {
            let at = self.offset;
            match self.next_token()? {
                TOKEN_BEGIN_NODE => return Ok(false),
                TOKEN_NOP => {}
                TOKEN_END_NODE => {
                    ancestors.pop();
                    if ancestors.is_empty() {
                        self.skip_nops();
                        self.expect_token(TOKEN_END, "root node is not followed by FDT_END")?;
                        return Ok(true);
                    }
                }
                TOKEN_PROP => {
                    return Err(PlatformError::MalformedStructure {
                        offset: at,
                        problem: "property after a child node",
                    });
                }
                TOKEN_END => {
                    return Err(PlatformError::MalformedStructure {
                        offset: at,
                        problem: "FDT_END while nodes are still open",
                    });
                }
                _ => {
                    return Err(PlatformError::MalformedStructure { offset: at, problem: "unknown token" });
                }
            }
        }
    }
}

/// The NUL-terminated UTF-8 string at `offset` in the strings block.
fn property_name(strings: &[u8], offset: u32) -> Option<&str> {
    let tail = strings.get(usize::try_from(offset).ok()?..)?;
    let len = tail.iter().position(|&byte| byte == 0)?;
    core::str::from_utf8(&tail[..len]).ok()
}

/// One device tree node: its name and its (already validated) properties.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The full node name including the unit address (`serial@90000`); empty
    /// for the root.
    pub name: &'a str,
    properties: &'a [u8],
    strings: &'a [u8],
}

/// One property: name and raw big-endian value.
#[derive(Debug, Clone, Copy)]
pub struct Property<'a> {
    pub name: &'a str,
    pub value: &'a [u8],
}

impl<'a> Node<'a> {
    /// The node name without its unit address (`serial` for `serial@90000`).
    pub fn base_name(&self) -> &'a str {
        self.name.split('@').next().unwrap_or(self.name)
    }

    /// A copy of the name for error messages.
    pub fn error_name(&self) -> NodeName {
        NodeName::new(self.name)
    }

    /// Iterates over the node's properties in blob order.
    pub fn properties(&self) -> Properties<'a> {
        Properties { block: self.properties, offset: 0, strings: self.strings }
    }

    /// The raw value of property `name`.
    pub fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.properties().find(|property| property.name == name).map(|property| property.value)
    }

    pub fn has_property(&self, name: &str) -> bool {
        self.property(name).is_some()
    }

    /// A one-cell property such as `#address-cells` or `phandle`; `None` if
    /// absent or not exactly 4 bytes long.
    pub fn u32_property(&self, name: &str) -> Option<u32> {
        self.property(name).filter(|value| value.len() == 4).and_then(|value| be_u32_at(value, 0))
    }

    /// The first string of a string (list) property.
    pub fn str_property(&self, name: &str) -> Option<&'a str> {
        self.string_list_property(name)?.next()
    }

    /// The strings of a NUL-separated string list property such as
    /// `compatible`; `None` if absent or not valid NUL-terminated UTF-8.
    pub fn string_list_property(&self, name: &str) -> Option<impl Iterator<Item = &'a str>> {
        let value = self.property(name)?;
        let text = core::str::from_utf8(value.strip_suffix(&[0])?).ok()?;
        Some(text.split('\0'))
    }

    pub fn is_compatible(&self, compatible: &str) -> bool {
        self.string_list_property("compatible").is_some_and(|mut list| list.any(|entry| entry == compatible))
    }

    /// Absent `status`, `"okay"` and the legacy `"ok"` all mean enabled.
    pub fn is_enabled(&self) -> bool {
        matches!(self.str_property("status"), None | Some("okay") | Some("ok"))
    }

    pub fn phandle(&self) -> Option<u32> {
        self.u32_property("phandle").or_else(|| self.u32_property("linux,phandle"))
    }

    /// Whether this node is named by one `/`-separated component of a path.
    fn matches_path_component(&self, component: &str) -> bool {
        self.name == component || (!component.contains('@') && self.base_name() == component)
    }
}

/// Iterator over a node's properties; see [`Node::properties`].
pub struct Properties<'a> {
    block: &'a [u8],
    offset: usize,
    strings: &'a [u8],
}

impl<'a> Iterator for Properties<'a> {
    type Item = Property<'a>;

    /// The block was validated by [`DeviceTree::parse`]; should it still be
    /// inconsistent the iteration simply ends.
    fn next(&mut self) -> Option<Property<'a>> {
        loop {
            match be_u32_at(self.block, self.offset)? {
                TOKEN_NOP => self.offset += 4,
                TOKEN_PROP => break,
                _ => return None,
            }
        }
        let len = usize::try_from(be_u32_at(self.block, self.offset + 4)?).ok()?;
        let name = property_name(self.strings, be_u32_at(self.block, self.offset + 8)?)?;
        let value_start = self.offset + 12;
        let value = self.block.get(value_start..value_start.checked_add(len)?)?;
        self.offset = (value_start + len + 3) & !3;
        Some(Property { name, value })
    }
}

/// A node seen during a walk, with its ancestors from the root down to its
/// parent. Borrowed from the walker's stack, so it is free to pass around.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'r, 'a> {
    pub node: &'r Node<'a>,
    /// `[root, …, parent]`; empty for the root itself.
    pub ancestors: &'r [Node<'a>],
}

impl<'r, 'a> NodeRef<'r, 'a> {
    /// 0 for the root, 1 for its children, …
    pub fn depth(&self) -> usize {
        self.ancestors.len()
    }

    /// The parent node with its own ancestors, or `None` for the root.
    pub fn parent(&self) -> Option<NodeRef<'r, 'a>> {
        let (node, ancestors) = self.ancestors.split_last()?;
        Some(NodeRef { node, ancestors })
    }

    /// Whether this node is a direct child of the root node named `parent`
    /// (for example `/cpus/cpu@0` for `"cpus"`).
    pub fn is_grandchild_of_root_under(&self, parent: &str) -> bool {
        self.depth() == 2 && self.ancestors[1].matches_path_component(parent)
    }

    /// Copies the node and its ancestors so they outlive the walk.
    pub fn to_located(self) -> Located<'a> {
        let mut ancestors = ArrayVec::new();
        for ancestor in self.ancestors.iter().take(MAX_DEPTH) {
            ancestors.push(*ancestor);
        }
        Located { node: *self.node, ancestors }
    }
}

/// A node found by a search, owning a copy of its ancestor chain.
#[derive(Debug, Clone)]
pub struct Located<'a> {
    pub node: Node<'a>,
    pub ancestors: ArrayVec<Node<'a>, MAX_DEPTH>,
}

impl<'a> Located<'a> {
    pub fn as_ref(&self) -> NodeRef<'_, 'a> {
        NodeRef { node: &self.node, ancestors: &self.ancestors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::test_support::{FdtBuilder, fixture};

    fn sample_tree() -> std::vec::Vec<u8> {
        let mut builder = FdtBuilder::new();
        builder.reserve(0x8000_0000, 0x1_0000);
        builder.begin_node("");
        builder.property_u32s("#address-cells", &[2]);
        builder.begin_node("soc");
        builder.property_strings("compatible", &["vendor,soc", "simple-bus"]);
        builder.begin_node("serial@1000");
        builder.property_strings("compatible", &["arm,pl011", "arm,primecell"]);
        builder.property_u32s("phandle", &[7]);
        builder.end_node();
        builder.begin_node("serial@2000");
        builder.property_strings("status", &["disabled"]);
        builder.property_strings("compatible", &["arm,pl011"]);
        builder.end_node();
        builder.end_node();
        builder.begin_node("aliases");
        builder.property_strings("serial0", &["/soc/serial@1000"]);
        builder.end_node();
        builder.end_node();
        builder.finish()
    }

    #[test]
    fn header_helpers_recognise_real_blobs_and_reject_garbage() {
        let blob = fixture("fvp-base-revc.dtb");
        assert!(looks_like_fdt(&blob[..8]));
        assert_eq!(fdt_total_size(&blob), Some(blob.len()));
        assert!(!looks_like_fdt(&[0u8; 8]));
        assert!(!looks_like_fdt(&[0xd0, 0x0d, 0xfe]));
        assert_eq!(fdt_total_size(&[0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 8]), None);
    }

    #[test]
    fn finds_nodes_by_path_alias_compatible_and_phandle() {
        let blob = sample_tree();
        let tree = DeviceTree::parse(&blob).unwrap();

        let serial = tree.find_path("/soc/serial@1000").unwrap().unwrap();
        assert_eq!(serial.node.name, "serial@1000");
        assert_eq!(serial.ancestors.len(), 2);
        assert_eq!(serial.ancestors[1].name, "soc");

        assert_eq!(tree.find_path("/soc/serial").unwrap().unwrap().node.name, "serial@1000");
        assert_eq!(tree.find_path("/").unwrap().unwrap().node.name, "");
        assert!(tree.find_path("/soc/serial@3000").unwrap().is_none());
        assert!(tree.find_path("soc").unwrap().is_none());

        assert_eq!(tree.find_alias("serial0").unwrap().unwrap().node.name, "serial@1000");
        assert!(tree.find_alias("serial1").unwrap().is_none());
        assert_eq!(tree.find_phandle(7).unwrap().unwrap().node.name, "serial@1000");
        assert!(tree.find_phandle(8).unwrap().is_none());
    }

    #[test]
    fn find_compatible_skips_disabled_nodes() {
        let blob = sample_tree();
        let tree = DeviceTree::parse(&blob).unwrap();
        let mut enabled = 0;
        tree.for_each_node(|found| {
            if found.node.is_compatible("arm,pl011") && found.node.is_enabled() {
                enabled += 1;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(enabled, 1);
        let soc = tree.find_compatible("simple-bus").unwrap().unwrap();
        assert_eq!(soc.node.string_list_property("compatible").unwrap().count(), 2);
    }

    #[test]
    fn reads_memory_reservations() {
        let blob = sample_tree();
        let tree = DeviceTree::parse(&blob).unwrap();
        let reservations: std::vec::Vec<_> = tree.memory_reservations().collect();
        assert_eq!(reservations, [Ok((0x8000_0000, 0x1_0000))]);
    }

    #[test]
    fn rejects_structural_damage_without_panicking() {
        let blob = sample_tree();
        let structure_offset = be_u32_at(&blob, 8).unwrap() as usize;

        let mut wrong_first_token = blob.clone();
        wrong_first_token[structure_offset + 3] = 2;
        assert!(matches!(
            DeviceTree::parse(&wrong_first_token),
            Err(PlatformError::MalformedStructure { offset: 0, .. })
        ));

        // Point the reservation block at the last 8 bytes: no room for a terminator.
        let mut unterminated_reservations = blob.clone();
        let near_end = (blob.len() as u32 - 8).to_be_bytes();
        unterminated_reservations[16..20].copy_from_slice(&near_end);
        let tree = DeviceTree::parse(&unterminated_reservations).unwrap();
        assert_eq!(tree.memory_reservations().last(), Some(Err(PlatformError::MalformedReservationBlock)));
    }

    #[test]
    fn rejects_trees_nested_too_deeply() {
        let mut builder = FdtBuilder::new();
        for _ in 0..=MAX_DEPTH {
            builder.begin_node("n");
        }
        for _ in 0..=MAX_DEPTH {
            builder.end_node();
        }
        let blob = builder.finish();
        assert_eq!(DeviceTree::parse(&blob).unwrap_err(), PlatformError::TreeTooDeep { limit: MAX_DEPTH });
    }

    #[test]
    fn read_cells_combines_big_endian_words() {
        let bytes = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        assert_eq!(read_cells(&bytes, 0, 2), Some(0x1_0000_0002));
        assert_eq!(read_cells(&bytes, 4, 2), Some(0x2_0000_0003));
        assert_eq!(read_cells(&bytes, 0, 0), Some(0));
        assert_eq!(read_cells(&bytes, 8, 2), None);
        assert_eq!(read_cells(&bytes, 0, 5), None);
    }
}
