//! The boot device tree, read through the `fdt` crate (its 0.2 line, renamed
//! `fdt_reader` because host tests use 0.1.5 as an independent oracle).
//!
//! `fdt` decodes the blob: tokens, node names, properties. This module adds
//! what the platform model needs and `fdt` 0.2.0-alpha3 does not give (each
//! gap is shown by a test in `fdt_gaps` below):
//!
//! - the header is checked before `fdt` sees it: `fdt` adds header offsets and
//!   sizes unchecked (a panic near 4 GiB), and its root parse panics when the
//!   structure block ends right after the root's `FDT_BEGIN_NODE`;
//! - [`DeviceTree::parse`] walks the whole tree once and checks where `fdt`'s
//!   walk went: it stops without an error at an early `FDT_END` or below 16
//!   levels, and reads a lost `FDT_END_NODE` as nesting, any of which would
//!   hide nodes (a reserved region, say). Later walks cannot meet damage
//!   half-way;
//! - nodes come with their chain of ancestors: `fdt`'s `Node::parent()` is one
//!   level deep, and address translation and interrupt routing climb further;
//! - paths are matched level by level (`fdt`'s `find_node` matches a component
//!   at any depth), and the `/memreserve/` block is read here (`fdt` 0.2 has no
//!   reader for it).
//!
//! `reg`, `ranges` and interrupts are decoded by the platform model
//! (`address.rs`, `interrupts.rs`) from raw property values: `fdt`'s `Reg`
//! divides by zero under `#address-cells = #size-cells = 0`, its `ranges()`
//! needs the bus's own parent, and its interrupt parent is not inherited.
//!
//! Nothing here allocates or panics.

use core::ops::ControlFlow;

use arrayvec::ArrayVec;
use fdt_reader::FdtError;
use fdt_reader::helpers::UnalignedFallibleNode;
use fdt_reader::nodes::{AsNode, NodeName as FdtNodeName};
use fdt_reader::parsing::unaligned::UnalignedParser;
use fdt_reader::parsing::{NoPanic, ParseError};

use super::error::{NodeName, PlatformError};

/// `fdt`'s byte-granular parser in its mode that returns errors instead of
/// panicking (the word-granular one wants a `&[u32]`; the boot DTB comes as
/// bytes, the fuzzer's input not even aligned).
type Fdt<'a> = fdt_reader::Fdt<'a, (UnalignedParser<'a>, NoPanic)>;
type FdtNode<'a> = UnalignedFallibleNode<'a>;

/// The big-endian word every FDT starts with.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of a version-17 FDT header.
pub const HEADER_LEN: usize = 40;
/// Levels of nesting, the root's included: `fdt`'s walk tracks 16 (and drops
/// deeper nodes without a word), and every level costs one [`Node`] of stack
/// in each [`Located`]. Real trees stay below 8.
pub const MAX_DEPTH: usize = 16;

/// The structure tokens the walk accounts for between the items `fdt` reads.
const TOKEN_BEGIN_NODE: u32 = 0x1;
const TOKEN_END_NODE: u32 = 0x2;
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

/// A checked device tree: `fdt`'s view of it, and the blocks the walk and the
/// reservation reader look at directly.
#[derive(Debug, Clone)]
pub struct DeviceTree<'a> {
    fdt: Fdt<'a>,
    structure: &'a [u8],
    reservations: &'a [u8],
    total_size: usize,
    /// Where the root's properties start: past its `FDT_BEGIN_NODE` and name.
    root_properties: usize,
}

impl<'a> DeviceTree<'a> {
    /// Checks the header, hands the blob to `fdt` and walks the whole tree
    /// once, so every later walk works on a structure `fdt` reads to the end.
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
        let structure = block(blob, field_usize(2), field_usize(9), "structure")?;
        block(blob, field_usize(3), field_usize(8), "strings")?;
        let reservations =
            blob.get(field_usize(4)..).ok_or(PlatformError::BlockOutOfBounds { block: "memory reservation" })?;
        let root_properties = root_properties_offset(structure)?;

        // Every offset and size `fdt` adds up lies inside `blob` now, and the
        // structure block holds a root node and ends with `FDT_END`.
        let fdt = Fdt::new_unaligned_fallible(blob).map_err(|error| malformed(0, error))?;
        let tree = Self { fdt, structure, reservations, total_size, root_properties };
        tree.walk(StructureCheck::Check, |_| Ok(ControlFlow::Continue(())))?;
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
        self.walk(StructureCheck::Trust, |node| visit(node).map(ControlFlow::Continue))?;
        Ok(())
    }

    /// The first node (in blob order) for which `matches` holds.
    pub fn find_node<F>(&self, mut matches: F) -> Result<Option<Located<'a>>, PlatformError>
    where
        F: FnMut(NodeRef<'_, 'a>) -> bool,
    {
        self.walk(StructureCheck::Trust, |node| {
            Ok(if matches(node) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
        })
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

    /// The walk everything else is built on: visits the root, then `fdt`'s
    /// nodes depth first with their ancestors, and stops at the first `Break`.
    ///
    /// With [`StructureCheck::Check`] it keeps `read_to`, the end of the last
    /// name or property `fdt` handed out (every property name resolved), and
    /// checks that only closing tokens lie between one item and the next: as
    /// many `FDT_END_NODE`s as the depths say, the root closed only after its
    /// last child, `FDT_END` right after it. A failure is reported at
    /// `read_to`, where the readable part of the block ends.
    fn walk<F>(&self, check: StructureCheck, mut visit: F) -> Result<Option<Located<'a>>, PlatformError>
    where
        F: FnMut(NodeRef<'_, 'a>) -> Result<ControlFlow<()>, PlatformError>,
    {
        let mut read_to = self.root_properties;
        let root = self.fdt.root().map_err(|error| malformed(read_to, error))?.as_node();
        if check == StructureCheck::Check {
            read_to = self.read_properties(root, read_to)?;
        }
        let root = Node { name: "", inner: root };
        let mut ancestors: ArrayVec<Node<'a>, MAX_DEPTH> = ArrayVec::new();
        if visit(NodeRef { node: &root, ancestors: &ancestors })?.is_break() {
            return Ok(Some(Located { node: root, ancestors }));
        }
        ancestors.push(root);

        for item in self.fdt.all_nodes().map_err(|error| malformed(read_to, error))? {
            let (depth, inner) = item.map_err(|error| malformed(read_to, error))?;
            let (name, name_offset) = self.whole_name(inner).ok_or(PlatformError::MalformedStructure {
                offset: read_to,
                problem: "node name is empty or not NUL-terminated UTF-8",
            })?;
            if check == StructureCheck::Check {
                self.check_nesting(read_to, name_offset, depth, ancestors.len())?;
                read_to = self.read_properties(inner, padded(name_offset + name.len() + 1))?;
            }

            ancestors.truncate(depth);
            let node = Node { name, inner };
            if visit(NodeRef { node: &node, ancestors: &ancestors })?.is_break() {
                return Ok(Some(Located { node, ancestors }));
            }
            ancestors.try_push(node).map_err(|_| PlatformError::TreeTooDeep { limit: MAX_DEPTH })?;
        }
        if check == StructureCheck::Check {
            self.check_end(read_to, ancestors.len())?;
        }
        Ok(None)
    }

    /// Between the previous item (ending at `read_to`) and the
    /// `FDT_BEGIN_NODE` of the node named at `name_offset`: only the
    /// `FDT_END_NODE`s that take the walk from the `open_nodes` it had open
    /// back to the new node's parent at `depth - 1`, and never the root's.
    fn check_nesting(
        &self,
        read_to: usize,
        name_offset: usize,
        depth: usize,
        open_nodes: usize,
    ) -> Result<(), PlatformError> {
        let begin_token = name_offset.checked_sub(4).filter(|&begin| begin >= read_to);
        let between = begin_token.and_then(|begin| closing_tokens(self.structure.get(read_to..begin)?));
        match between {
            Some(ClosingTokens { count, rest: 0 }) if count < open_nodes && depth + count == open_nodes => Ok(()),
            _ => Err(PlatformError::MalformedStructure {
                offset: read_to,
                problem: "FDT_END_NODE tokens close the root or do not match the nesting",
            }),
        }
    }

    /// After the last node `fdt` handed out: one `FDT_END_NODE` per open
    /// node, then the block's closing `FDT_END`. A node left over means `fdt`
    /// stopped early, at its depth limit or at a stray `FDT_END`.
    fn check_end(&self, read_to: usize, open_nodes: usize) -> Result<(), PlatformError> {
        let end_token = self.structure.len().saturating_sub(4);
        let tail = self.structure.get(read_to..end_token);
        match tail.and_then(closing_tokens) {
            Some(ClosingTokens { count, rest: 0 }) if count == open_nodes => Ok(()),
            Some(ClosingTokens { rest, .. })
                if open_nodes == MAX_DEPTH
                    && be_u32_at(self.structure, end_token.saturating_sub(rest)) == Some(TOKEN_BEGIN_NODE) =>
            {
                Err(PlatformError::TreeTooDeep { limit: MAX_DEPTH })
            }
            _ => Err(PlatformError::MalformedStructure {
                offset: read_to,
                problem: "the nodes do not end with their FDT_END_NODEs and a single FDT_END",
            }),
        }
    }

    /// Resolves every property name of `node` (which `fdt`'s walk does not)
    /// and returns the end of its last property, or `read_to` if it has none.
    fn read_properties(&self, node: FdtNode<'a>, mut read_to: usize) -> Result<usize, PlatformError> {
        for property in node.properties().map_err(|error| malformed(read_to, error))? {
            let value = property.map_err(|error| malformed(read_to, error))?.value;
            let start = offset_in(self.structure, value.as_ptr()).ok_or(PlatformError::MalformedStructure {
                offset: read_to,
                problem: "property value lies outside the structure block",
            })?;
            read_to = padded(start + value.len());
        }
        Ok(read_to)
    }

    /// The node's whole name (`fdt` splits it at the `@`, whose two sides lie
    /// next to each other in the block) and its offset in the block. `None`
    /// for an empty name, which `fdt` replaces with a `/` of its own.
    fn whole_name(&self, node: FdtNode<'a>) -> Option<(&'a str, usize)> {
        let FdtNodeName { name, unit_address } = node.name().ok()?;
        let start = offset_in(self.structure, name.as_ptr())?;
        let len = name.len() + unit_address.map_or(0, |unit| unit.len() + 1);
        let whole = core::str::from_utf8(self.structure.get(start..start.checked_add(len)?)?).ok()?;
        Some((whole, start))
    }
}

/// Whether a walk accounts for what lies between the items `fdt` reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StructureCheck {
    /// The walk in [`DeviceTree::parse`], over the whole tree.
    Check,
    /// Every later walk: the same blob, already checked, read the same way.
    Trust,
}

/// The sub-slice `offset..offset + len` of `blob`, or an error naming `name`.
fn block<'a>(blob: &'a [u8], offset: usize, len: usize, name: &'static str) -> Result<&'a [u8], PlatformError> {
    offset.checked_add(len).and_then(|end| blob.get(offset..end)).ok_or(PlatformError::BlockOutOfBounds { block: name })
}

/// Where the root's properties start: past the leading `FDT_NOP`s, the
/// root's `FDT_BEGIN_NODE` and its name. Also the guard `fdt` needs: the
/// block must hold that much and still end with `FDT_END`.
fn root_properties_offset(structure: &[u8]) -> Result<usize, PlatformError> {
    let malformed = |offset, problem| PlatformError::MalformedStructure { offset, problem };
    let begin = (0..structure.len()).step_by(4).find(|&at| be_u32_at(structure, at) != Some(TOKEN_NOP)).unwrap_or(0);
    if be_u32_at(structure, begin) != Some(TOKEN_BEGIN_NODE) {
        return Err(malformed(begin, "structure block does not start with a node"));
    }
    let name = structure.get(begin + 4..).unwrap_or_default();
    let name_len =
        name.iter().position(|&byte| byte == 0).ok_or(malformed(begin, "root name is not NUL-terminated"))?;
    core::str::from_utf8(&name[..name_len]).map_err(|_| malformed(begin + 4, "root name is not UTF-8"))?;
    let properties = padded(begin + 4 + name_len + 1);
    let end_token = structure.len().saturating_sub(4);
    if properties > end_token || be_u32_at(structure, end_token) != Some(TOKEN_END) {
        return Err(malformed(end_token, "structure block does not end with FDT_END after the root"));
    }
    Ok(properties)
}

/// What lies in a stretch between two items `fdt` reads.
struct ClosingTokens {
    /// `FDT_END_NODE` tokens; `FDT_NOP`s are skipped.
    count: usize,
    /// Bytes left from the first other word on (0: only closing tokens).
    rest: usize,
}

/// Counts the `FDT_END_NODE`s at the start of `stretch` (a whole number of
/// words, else `None`).
fn closing_tokens(stretch: &[u8]) -> Option<ClosingTokens> {
    if !stretch.len().is_multiple_of(4) {
        return None;
    }
    let mut count = 0;
    for (index, word) in stretch.chunks_exact(4).enumerate() {
        match be_u32_at(word, 0) {
            Some(TOKEN_END_NODE) => count += 1,
            Some(TOKEN_NOP) => {}
            _ => return Some(ClosingTokens { count, rest: stretch.len() - index * 4 }),
        }
    }
    Some(ClosingTokens { count, rest: 0 })
}

/// `offset` rounded up to the next token boundary.
fn padded(offset: usize) -> usize {
    offset.saturating_add(3) & !3
}

/// The offset of `inner` in `block`, if it points inside (or just past) it.
fn offset_in(block: &[u8], inner: *const u8) -> Option<usize> {
    let offset = inner.addr().checked_sub(block.as_ptr().addr())?;
    (offset <= block.len()).then_some(offset)
}

/// An `fdt` error as a structure error at `offset`.
fn malformed(offset: usize, error: FdtError) -> PlatformError {
    let problem = match error {
        FdtError::ParseError(ParseError::InvalidTokenValue) => "unknown token",
        FdtError::ParseError(ParseError::UnexpectedToken) => "token out of place",
        FdtError::ParseError(ParseError::UnexpectedEndOfData) => "runs past the end of the structure block",
        FdtError::ParseError(ParseError::InvalidCStrValue) => "a name is not NUL-terminated UTF-8",
        _ => "unreadable",
    };
    PlatformError::MalformedStructure { offset, problem }
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

/// One device tree node: its whole name and `fdt`'s handle on its properties.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    /// The full node name including the unit address (`serial@90000`); empty
    /// for the root.
    pub name: &'a str,
    inner: FdtNode<'a>,
}

impl core::fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node").field("name", &self.name).finish_non_exhaustive()
    }
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

    /// The raw value of property `name`. The walk in [`DeviceTree::parse`]
    /// has read every property, so `fdt` cannot fail here; should it, the
    /// property reads as absent.
    pub fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.inner.raw_property(name).ok().flatten().map(|property| property.value)
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

    /// The structure block of `blob`, for patching tokens in place.
    fn structure_range(blob: &[u8]) -> core::ops::Range<usize> {
        let offset = be_u32_at(blob, 8).unwrap() as usize;
        offset..offset + be_u32_at(blob, 36).unwrap() as usize
    }

    /// The offset (in the structure block) of the FDT_BEGIN_NODE token of the
    /// node named `name`: a token, not a data word that happens to be 1.
    fn begin_token_of(blob: &[u8], name: &str) -> usize {
        let structure = &blob[structure_range(blob)];
        let name = [name.as_bytes(), &[0]].concat();
        let at = structure.windows(name.len()).position(|window| window == name).expect("node name in the block");
        assert_eq!(be_u32_at(structure, at - 4), Some(TOKEN_BEGIN_NODE));
        at - 4
    }

    fn with_token(blob: &[u8], offset: usize, token: u32) -> std::vec::Vec<u8> {
        let mut patched = blob.to_vec();
        let at = structure_range(blob).start + offset;
        patched[at..at + 4].copy_from_slice(&token.to_be_bytes());
        patched
    }

    fn node_count(tree: &DeviceTree<'_>) -> usize {
        let mut count = 0;
        tree.for_each_node(|_| {
            count += 1;
            Ok(())
        })
        .unwrap();
        count
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
        assert!(tree.find_path("/serial").unwrap().is_none());
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
    fn walks_every_node_of_the_real_trees_with_its_ancestors() {
        for name in ["fvp-base-revc.dtb", "qemu-virt-mte-smp4.dtb"] {
            let blob = fixture(name);
            let tree = DeviceTree::parse(&blob).unwrap();
            let oracle = fdt::Fdt::new(&blob).unwrap().all_nodes().count();
            assert_eq!(node_count(&tree), oracle, "{name}");
        }
        let blob = fixture("fvp-base-revc.dtb");
        let tree = DeviceTree::parse(&blob).unwrap();
        let uart = tree.find_path("/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000/serial@90000");
        let names: std::vec::Vec<&str> = uart.unwrap().unwrap().ancestors.iter().map(|node| node.name).collect();
        assert_eq!(names, ["", "bus@8000000", "motherboard-bus@8000000", "iofpga-bus@300000000"]);
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

        let wrong_first_token = with_token(&blob, 0, TOKEN_END_NODE);
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

    /// What `fdt` 0.2.0-alpha3 gets wrong or leaves out, each the reason for
    /// a part of this module. A test that starts failing after an `fdt`
    /// upgrade marks a workaround that may go.
    mod fdt_gaps {
        use super::*;
        use fdt_reader::properties::interrupts::Interrupts;

        type Fdt<'a> = super::Fdt<'a>;

        fn panics(run: impl FnOnce() + std::panic::UnwindSafe) -> bool {
            std::panic::catch_unwind(run).is_err()
        }

        #[test]
        fn header_offsets_near_4_gib_panic() {
            let mut blob = sample_tree();
            blob[8..12].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
            assert!(panics(|| {
                let _ = Fdt::new_unaligned_fallible(&blob);
            }));
            assert_eq!(DeviceTree::parse(&blob).unwrap_err(), PlatformError::BlockOutOfBounds { block: "structure" });
        }

        #[test]
        fn root_parse_panics_when_the_block_ends_after_the_root_begin_token() {
            let mut blob = sample_tree();
            blob[36..40].copy_from_slice(&4u32.to_be_bytes()); // size_dt_struct: the token alone
            let fdt = Fdt::new_unaligned_fallible(&blob).unwrap();
            // An integer underflow, caught where overflow checks are on.
            assert_eq!(
                panics(|| {
                    let _ = fdt.root();
                }),
                cfg!(debug_assertions)
            );
            assert!(matches!(DeviceTree::parse(&blob), Err(PlatformError::MalformedStructure { .. })));
        }

        #[test]
        fn the_walk_stops_quietly_at_an_early_end_token() {
            let blob = fixture("fvp-base-revc.dtb");
            let cut_short = with_token(&blob, begin_token_of(&blob, "bus@8000000"), TOKEN_END);
            let fdt = Fdt::new_unaligned_fallible(&cut_short).unwrap();
            let walked: std::vec::Vec<_> = fdt.all_nodes().unwrap().collect();
            assert!(walked.len() < 15 && walked.iter().all(Result::is_ok), "{} nodes", walked.len());
            assert!(matches!(DeviceTree::parse(&cut_short), Err(PlatformError::MalformedStructure { .. })));
        }

        #[test]
        fn the_walk_reads_a_lost_end_node_as_nesting() {
            let blob = fixture("fvp-base-revc.dtb");
            // clk24mhz is a leaf, so its FDT_END_NODE comes right before its sibling's node.
            let first_close = begin_token_of(&blob, "refclk1mhz") - 4;
            assert_eq!(be_u32_at(&blob[structure_range(&blob)], first_close), Some(TOKEN_END_NODE));
            let unclosed = with_token(&blob, first_close, TOKEN_NOP);
            let fdt = Fdt::new_unaligned_fallible(&unclosed).unwrap();
            assert!(fdt.all_nodes().unwrap().all(|node| node.is_ok()));
            assert!(matches!(DeviceTree::parse(&unclosed), Err(PlatformError::MalformedStructure { .. })));
        }

        #[test]
        fn parent_is_one_level_deep() {
            let blob = fixture("fvp-base-revc.dtb");
            let fdt = Fdt::new_unaligned_fallible(&blob).unwrap();
            let mut nodes = fdt.all_nodes().unwrap().map(|node| node.unwrap().1);
            let uart = nodes.find(|node| node.name().unwrap().to_string() == "serial@90000").unwrap();
            let bus = uart.parent().unwrap();
            assert_eq!(bus.name().unwrap().to_string(), "iofpga-bus@300000000");
            assert!(bus.parent().is_none(), "the bus has two more ancestors");
        }

        #[test]
        fn find_node_matches_a_component_at_any_depth() {
            let blob = fixture("fvp-base-revc.dtb");
            let fdt = Fdt::new_unaligned_fallible(&blob).unwrap();
            assert!(fdt.find_node("/serial").unwrap().is_some(), "there is no /serial");
            assert!(DeviceTree::parse(&blob).unwrap().find_path("/serial").unwrap().is_none());
        }

        #[test]
        fn interrupt_parent_is_not_inherited() {
            // QEMU's UART names no interrupt-parent: it inherits the root's.
            let blob = fixture("qemu-virt-mte-smp4.dtb");
            let fdt = Fdt::new_unaligned_fallible(&blob).unwrap();
            let mut nodes = fdt.all_nodes().unwrap().map(|node| node.unwrap().1);
            let uart = nodes.find(|node| node.name().unwrap().name == "pl011").unwrap();
            assert!(uart.property::<Interrupts<_>>().is_err());
        }

        #[test]
        fn reg_divides_by_zero_under_zero_cells() {
            let mut builder = FdtBuilder::new();
            builder.begin_node("");
            builder.property_u32s("#address-cells", &[0]);
            builder.property_u32s("#size-cells", &[0]);
            builder.begin_node("device");
            builder.property_u32s("reg", &[1]);
            builder.end_node();
            builder.end_node();
            let blob = builder.finish();
            let fdt = Fdt::new_unaligned_fallible(&blob).unwrap();
            let device = fdt.all_nodes().unwrap().next().unwrap().unwrap().1;
            assert!(panics(|| {
                let _ = device.reg();
            }));
        }
    }
}
