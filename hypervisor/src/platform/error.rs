//! Why a device tree could not be turned into a [`super::Platform`].
//!
//! Errors own everything they mention (node names are copied into a small
//! fixed-size string) so they can outlive the blob and be printed after the
//! parse failed, without allocating.

use core::fmt;

use arrayvec::ArrayString;

/// Longest node name kept in an error message; longer names are cut short.
const NODE_NAME_CAPACITY: usize = 48;

/// A copy of a node's name (`serial@90000`, or `/` for the root) for error
/// messages, truncated to 48 bytes on a character boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeName(ArrayString<NODE_NAME_CAPACITY>);

impl NodeName {
    /// Copies as much of `name` as fits; the root's empty name becomes `/`.
    pub fn new(name: &str) -> Self {
        let name = if name.is_empty() { "/" } else { name };
        let mut copy = ArrayString::new();
        for character in name.chars() {
            if copy.try_push(character).is_err() {
                break;
            }
        }
        Self(copy)
    }

    /// The (possibly truncated) name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong while reading the platform description.
///
/// The parse never panics: a blob that is not a device tree, is cut short,
/// is internally inconsistent or describes a machine this hypervisor cannot
/// run on all end up here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformError {
    /// Fewer bytes than the 40-byte FDT header.
    HeaderTruncated { available: usize },
    /// The first word is not the FDT magic `0xd00dfeed`.
    BadMagic { found: u32 },
    /// The header's `totalsize` is larger than the bytes we were given.
    BlobTruncated { total_size: usize, available: usize },
    /// The header's `totalsize` is smaller than the header itself.
    TotalSizeTooSmall { total_size: usize },
    /// FDT versions before 17 lack `size_dt_struct`; later incompatible
    /// versions may change the layout.
    UnsupportedVersion { version: u32, last_compatible: u32 },
    /// A block the header points at (`structure`, `strings`, `memory
    /// reservation`) does not lie inside `totalsize`.
    BlockOutOfBounds { block: &'static str },
    /// The structure block's token stream is inconsistent: it reads well up
    /// to `offset` (relative to the structure block), the damage lies there
    /// or just after.
    MalformedStructure { offset: usize, problem: &'static str },
    /// Nodes nested deeper than the parser's fixed ancestor stack.
    TreeTooDeep { limit: usize },
    /// The memory reservation block runs past the end of the blob before its
    /// terminating all-zero entry.
    MalformedReservationBlock,
    /// A property has the wrong size or an unusable value.
    MalformedProperty { node: NodeName, property: &'static str, problem: &'static str },
    /// An address in `reg` cannot be mapped to a CPU physical address because
    /// `bus` has no `ranges` property or no `ranges` entry covers it.
    Untranslatable { node: NodeName, bus: NodeName, address: u128 },
    /// A translated address or range does not fit in 64 bits.
    AddressOverflow { node: NodeName },
    /// More entries of one kind than the fixed-capacity table holds.
    CapacityExceeded { what: &'static str, capacity: usize },
    /// An interrupt of `node` could not be followed to its controller.
    UnresolvedInterrupt { node: NodeName, problem: &'static str },
    /// No `/memory` node with a non-empty `reg`.
    NoMemory,
    /// No `/cpus/cpu@*` node with `device_type = "cpu"`.
    NoCpus,
    /// No enabled node compatible with `arm,gic-v3`.
    MissingGicV3,
    /// No enabled node compatible with `arm,armv8-timer` or `arm,armv7-timer`.
    MissingTimer,
    /// A timer interrupt is not a GICv3 PPI. `index` counts from 0 in the
    /// binding's order: secure physical, non-secure physical, virtual,
    /// hypervisor physical, hypervisor virtual.
    TimerInterruptNotPpi { index: usize },
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderTruncated { available } => {
                write!(f, "device tree header truncated: {available} bytes available, 40 needed")
            }
            Self::BadMagic { found } => {
                write!(f, "not a flattened device tree: magic is {found:#010x}, expected 0xd00dfeed")
            }
            Self::BlobTruncated { total_size, available } => {
                write!(f, "device tree truncated: header says {total_size} bytes, only {available} available")
            }
            Self::TotalSizeTooSmall { total_size } => {
                write!(f, "device tree header claims a total size of {total_size} bytes, smaller than the header")
            }
            Self::UnsupportedVersion { version, last_compatible } => write!(
                f,
                "unsupported device tree version {version} (last compatible {last_compatible}); \
                 version 17 is required"
            ),
            Self::BlockOutOfBounds { block } => {
                write!(f, "device tree {block} block lies outside the blob")
            }
            Self::MalformedStructure { offset, problem } => {
                write!(f, "malformed device tree structure block at offset {offset:#x}: {problem}")
            }
            Self::TreeTooDeep { limit } => {
                write!(f, "device tree nodes are nested deeper than {limit} levels")
            }
            Self::MalformedReservationBlock => {
                write!(f, "device tree memory reservation block is not terminated by an empty entry")
            }
            Self::MalformedProperty { node, property, problem } => {
                write!(f, "malformed `{property}` property in device tree node {node}: {problem}")
            }
            Self::Untranslatable { node, bus, address } => write!(
                f,
                "cannot translate address {address:#x} of device tree node {node}: \
                 bus {bus} has no `ranges` entry covering it"
            ),
            Self::AddressOverflow { node } => {
                write!(f, "an address range of device tree node {node} does not fit in 64 bits")
            }
            Self::CapacityExceeded { what, capacity } => {
                write!(f, "device tree describes more {what} than the {capacity} this hypervisor supports")
            }
            Self::UnresolvedInterrupt { node, problem } => {
                write!(f, "cannot resolve an interrupt of device tree node {node}: {problem}")
            }
            Self::NoMemory => write!(f, "device tree has no /memory node with a usable `reg`"),
            Self::NoCpus => {
                write!(f, "device tree has no /cpus/cpu@* node with device_type \"cpu\"")
            }
            Self::MissingGicV3 => write!(
                f,
                "device tree has no enabled GICv3 (compatible \"arm,gic-v3\"); \
                 this hypervisor requires a GICv3"
            ),
            Self::MissingTimer => write!(
                f,
                "device tree has no enabled architected timer \
                 (compatible \"arm,armv8-timer\" or \"arm,armv7-timer\")"
            ),
            Self::TimerInterruptNotPpi { index } => {
                write!(f, "architected timer interrupt #{index} is not a GICv3 PPI")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_name_truncates_on_a_character_boundary() {
        let long = "é".repeat(40); // 80 bytes, 2 per character
        let name = NodeName::new(&long);
        assert_eq!(name.as_str().len(), 48);
        assert!(name.as_str().chars().all(|c| c == 'é'));
    }

    #[test]
    fn root_name_prints_as_slash() {
        assert_eq!(NodeName::new("").as_str(), "/");
    }

    #[test]
    fn messages_name_the_problem() {
        let error = PlatformError::MalformedProperty {
            node: NodeName::new("serial@90000"),
            property: "reg",
            problem: "length is not a multiple of the entry size",
        };
        let text = error.to_string();
        assert!(text.contains("serial@90000"), "{text}");
        assert!(text.contains("`reg`"), "{text}");
        assert!(PlatformError::MissingGicV3.to_string().contains("arm,gic-v3"));
    }
}
