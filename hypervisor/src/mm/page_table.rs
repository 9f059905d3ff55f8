//! VMSAv8-64 translation tables with the 4 KiB granule: the hypervisor's own EL2
//! stage-1 regime (48-bit input, starting at level 0) and each VM's stage-2 regime
//! (input size from the CPU's physical address range, starting at level 0 or 1).
//!
//! The walker is independent of where tables live: [`TableMemory`] hands out and
//! resolves table pages, so host tests run it on fake memory and the arch layer on
//! physical memory (identity-mapped, or with the MMU still off).
//!
//! The input address type says which regime a table is: stage-2 tables translate
//! an [`Ipa`] ([`Stage2Table`]); the EL2 stage-1 tables translate a [`PhysAddr`]
//! ([`El2Table`]), because the hypervisor's own map is an identity map by design
//! (EL2 reaches memory at its physical address everywhere, see
//! [`PhysAddr::el2_pointer`]). Output addresses are always [`PhysAddr`]. The
//! walker works on the raw values; the types are checked at its public edge.

use core::marker::PhantomData;

use super::{BLOCK_SIZE, Ipa, PAGE_SIZE, PhysAddr};

/// Entries per table (4 KiB / 8 bytes).
pub const ENTRIES: usize = 512;
/// Number of input-address bits the EL2 stage-1 tables translate (T0SZ = 16).
pub const INPUT_BITS: u32 = 48;
const LEAF_LEVEL: usize = 3;

const DESC_VALID: u64 = 1 << 0;
/// At levels 0-2 this bit makes a table descriptor; at level 3 it is required for a page.
const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
const OUTPUT_ADDRESS_MASK: u64 = 0x0000_FFFF_FFFF_F000;

/// MAIR_EL2 attribute index of each memory kind, see [`MAIR_EL2_VALUE`].
const ATTR_INDEX_DEVICE: u64 = 0;
const ATTR_INDEX_NORMAL: u64 = 1;
const ATTR_INDEX_NORMAL_TAGGED: u64 = 2;
/// MAIR_EL2: index 0 Device-nGnRE (0x04), index 1 Normal write-back RW-allocate
/// (0xFF), index 2 Tagged Normal write-back (0xF0). 0xF0 is only meaningful with
/// FEAT_MTE2; [`MemoryKind::NormalTagged`] must not be used without it.
pub const MAIR_EL2_VALUE: u64 = 0x04 | (0xFF << 8) | (0xF0 << 16);

const ATTR_INDEX_SHIFT: u32 = 2;
/// AP[1] is RES1 in the (non-VHE) EL2 regime; AP[2] = 1 makes the mapping read-only.
const AP_RES1: u64 = 1 << 6;
const AP_READ_ONLY: u64 = 1 << 7;
const SH_INNER: u64 = 0b11 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
/// XN: never executable at EL2.
const EXECUTE_NEVER: u64 = 1 << 54;

/// What kind of memory a mapping is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// MMIO: Device-nGnRE, never executable.
    Device,
    /// Normal write-back cacheable memory whose allocation tags EL2 cannot access.
    Normal,
    /// Normal write-back cacheable memory, Tagged: EL2 can read and write its
    /// allocation tags (needed to sanitise tags before a frame reaches a guest).
    NormalTagged,
}

/// Access rights of a mapping at EL2. There is deliberately no writable and
/// executable combination (W^X).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadExecute,
    ReadOnly,
    ReadWrite,
}

/// The attribute bits of an EL2 stage-1 leaf descriptor.
pub const fn el2_leaf_attributes(kind: MemoryKind, access: Access) -> u64 {
    let index = match kind {
        MemoryKind::Device => ATTR_INDEX_DEVICE,
        MemoryKind::Normal => ATTR_INDEX_NORMAL,
        MemoryKind::NormalTagged => ATTR_INDEX_NORMAL_TAGGED,
    };
    let shareability = match kind {
        MemoryKind::Device => 0,
        _ => SH_INNER,
    };
    let permissions = match access {
        Access::ReadExecute => AP_RES1 | AP_READ_ONLY,
        Access::ReadOnly => AP_RES1 | AP_READ_ONLY | EXECUTE_NEVER,
        Access::ReadWrite => AP_RES1 | EXECUTE_NEVER,
    };
    let device_xn = match kind {
        MemoryKind::Device => EXECUTE_NEVER,
        _ => 0,
    };
    (index << ATTR_INDEX_SHIFT) | shareability | permissions | device_xn | ACCESS_FLAG
}

/// Stage-2 MemAttr[5:2] for Normal, Inner and Outer Write-Back: the only attribute
/// under which a guest's allocation tags are accessible (with `HCR_EL2.ATA`).
const S2_MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
/// Stage-2 MemAttr[5:2] for Device-nGnRE.
const S2_MEMATTR_DEVICE_NGNRE: u64 = 0b0001 << 2;
const S2AP_READ: u64 = 1 << 6;
const S2AP_WRITE: u64 = 1 << 7;
/// Stage-2 XN[1:0] (bits 54:53) = 0b10: not executable at EL1 or EL0.
const S2_EXECUTE_NEVER: u64 = 0b10 << 53;

/// What a guest-physical mapping is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage2Kind {
    /// Guest RAM: Normal write-back, read/write/execute, tags accessible to MTE guests.
    Ram,
    /// A device passed through to the guest: Device-nGnRE, read/write, never executable.
    Device,
}

/// The attribute bits of a stage-2 leaf descriptor (with `HCR_EL2.FWB` = 0).
pub const fn stage2_leaf_attributes(kind: Stage2Kind) -> u64 {
    match kind {
        Stage2Kind::Ram => S2_MEMATTR_NORMAL_WB | S2AP_READ | S2AP_WRITE | SH_INNER | ACCESS_FLAG,
        Stage2Kind::Device => S2_MEMATTR_DEVICE_NGNRE | S2AP_READ | S2AP_WRITE | ACCESS_FLAG | S2_EXECUTE_NEVER,
    }
}

/// The shape of a stage-2 regime the CPU supports, from `ID_AA64MMFR0_EL1.PARange`:
/// the IPA size (capped at 48 bits: no FEAT_LPA2) and the level the walk starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage2Shape {
    pub ipa_bits: u32,
    pub start_level: usize,
    /// `VTCR_EL2.PS`, the physical address size field.
    pub ps: u64,
}

impl Stage2Shape {
    pub fn from_pa_range(pa_range: u64) -> Self {
        let pa_bits = match pa_range {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            _ => 48,
        };
        // With the 4 KiB granule a stage-2 walk may start at level 0 only when the
        // PA range is at least 44 bits (the Arm ARM's S2InvalidSL rules). Smaller
        // machines get a 39-bit IPA (or their PA size) starting at level 1, which
        // needs no concatenated root tables and still holds the guest layout.
        let (ipa_bits, start_level) = if pa_bits >= 44 { (pa_bits, 0) } else { (pa_bits.min(39), 1) };
        Self { ipa_bits, start_level, ps: pa_range.min(5) }
    }

    /// `VTCR_EL2` for this shape: 4 KiB granule, write-back inner-shareable walks,
    /// 8-bit VMID; RES1 bit 31.
    pub fn vtcr(&self) -> u64 {
        let t0sz = 64 - self.ipa_bits as u64;
        // SL0 with the 4 KiB granule: 0b10 = level 0, 0b01 = level 1.
        let sl0 = match self.start_level {
            0 => 0b10,
            _ => 0b01,
        };
        t0sz | (sl0 << 6) | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (self.ps << 16) | (1 << 31)
    }
}

/// Why a mapping could not be made. Addresses are raw: `input` is the table's input
/// address (a physical address at EL2 stage 1, an IPA at stage 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No memory left for another table.
    OutOfTables,
    /// Address or size not a multiple of 4 KiB, or beyond the input or output range.
    Misaligned { input: u64, output: u64, size: u64 },
    /// Part of the range is already mapped; remapping live entries would need
    /// break-before-make, which this builder does not do.
    AlreadyMapped { input: u64 },
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::OutOfTables => write!(f, "out of memory for translation tables"),
            Self::Misaligned { input, output, size } => {
                write!(f, "cannot map {size:#x} bytes {input:#x} -> {output:#x}: not 4 KiB aligned or out of range")
            }
            Self::AlreadyMapped { input } => write!(f, "{input:#x} is already mapped"),
        }
    }
}

/// Where translation tables live.
pub trait TableMemory {
    /// Allocates a zero-filled, 4 KiB-aligned table and returns its physical address.
    fn allocate_table(&mut self) -> Result<PhysAddr, MapError>;
    /// The table at physical address `pa`, previously returned by `allocate_table`.
    fn table_mut(&mut self, pa: PhysAddr) -> &mut [u64; ENTRIES];
}

/// The input address of a translation regime the hypervisor builds tables for:
/// [`PhysAddr`] for its own identity-mapped EL2 stage 1, [`Ipa`] for stage 2.
/// (A guest's stage 1, with [`super::GuestVa`] input, is the guest's business.)
pub trait InputAddress: Copy {
    fn as_u64(self) -> u64;
}

impl InputAddress for PhysAddr {
    fn as_u64(self) -> u64 {
        PhysAddr::as_u64(self)
    }
}

impl InputAddress for Ipa {
    fn as_u64(self) -> u64 {
        Ipa::as_u64(self)
    }
}

/// A successful lookup: the output address and leaf descriptor for an input address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub output_address: PhysAddr,
    pub descriptor: u64,
    pub level: usize,
}

/// A translation table tree of the 4 KiB granule, rooted at `start_level`,
/// translating input addresses of type `A`.
pub struct PageTable<M: TableMemory, A: InputAddress> {
    root: PhysAddr,
    memory: M,
    start_level: usize,
    input_bits: u32,
    input: PhantomData<A>,
}

/// The hypervisor's EL2 stage-1 tables (an identity map: input addresses are physical).
pub type El2Table<M> = PageTable<M, PhysAddr>;
/// A VM's stage-2 tables.
pub type Stage2Table<M> = PageTable<M, Ipa>;

/// Bytes covered by one entry at `level`.
pub const fn entry_size(level: usize) -> u64 {
    1 << (12 + 9 * (3 - level as u32))
}

// The 2 MiB block guest memory is built from is what a level-2 entry maps.
const _: () = assert!(entry_size(2) == BLOCK_SIZE && entry_size(LEAF_LEVEL) == PAGE_SIZE);

fn index_at(va: u64, level: usize) -> usize {
    ((va >> (12 + 9 * (3 - level as u32))) & (ENTRIES as u64 - 1)) as usize
}

impl<M: TableMemory> El2Table<M> {
    /// Creates an empty EL2 stage-1 table (48-bit input, level 0 root).
    pub fn new(memory: M) -> Result<Self, MapError> {
        Self::with_shape(memory, 0, INPUT_BITS)
    }
}

impl<M: TableMemory> Stage2Table<M> {
    /// Creates an empty stage-2 table of the given shape.
    pub fn new_stage2(memory: M, shape: Stage2Shape) -> Result<Self, MapError> {
        Self::with_shape(memory, shape.start_level, shape.ipa_bits)
    }
}

/// The table a valid table descriptor points at.
fn next_table(descriptor: u64) -> PhysAddr {
    PhysAddr::new(descriptor & OUTPUT_ADDRESS_MASK)
}

impl<M: TableMemory, A: InputAddress> PageTable<M, A> {
    fn with_shape(mut memory: M, start_level: usize, input_bits: u32) -> Result<Self, MapError> {
        let root = memory.allocate_table()?;
        Ok(Self { root, memory, start_level, input_bits, input: PhantomData })
    }

    /// Calls `free` with the address of every table in the tree (the root last) and
    /// forgets them. The mapped memory itself is the caller's; the caller must have
    /// made the tables unreachable by hardware (and invalidated TLBs) first.
    pub fn destroy(mut self, mut free: impl FnMut(&mut M, PhysAddr)) -> M {
        let root = self.root;
        self.free_subtree(root, self.start_level, &mut free);
        self.memory
    }

    fn free_subtree(&mut self, table: PhysAddr, level: usize, free: &mut impl FnMut(&mut M, PhysAddr)) {
        if level < LEAF_LEVEL {
            for index in 0..ENTRIES {
                let entry = self.memory.table_mut(table)[index];
                if entry & DESC_VALID != 0 && entry & DESC_TABLE_OR_PAGE != 0 {
                    self.free_subtree(next_table(entry), level + 1, free);
                }
            }
        }
        free(&mut self.memory, table);
    }

    /// The table memory, e.g. to ask a fake how many tables exist.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Physical address of the root table, for TTBR0_EL2 or VTTBR_EL2.
    pub fn root_address(&self) -> PhysAddr {
        self.root
    }

    /// Maps `[input, input + size)` to `[output, output + size)` with the leaf
    /// attribute bits `attributes`, using 1 GiB and 2 MiB blocks wherever both
    /// addresses and the remaining size allow, 4 KiB pages elsewhere.
    pub fn map(&mut self, input: A, output: PhysAddr, size: u64, attributes: u64) -> Result<(), MapError> {
        let (va, pa) = (input.as_u64(), output.as_u64());
        let misaligned = MapError::Misaligned { input: va, output: pa, size };
        if !(va | pa | size).is_multiple_of(PAGE_SIZE) {
            return Err(misaligned);
        }
        let end = va.checked_add(size).ok_or(misaligned)?;
        if end > 1 << self.input_bits || pa.checked_add(size).is_none_or(|e| e > OUTPUT_ADDRESS_MASK + PAGE_SIZE) {
            return Err(misaligned);
        }
        let mut offset = 0;
        while offset < size {
            let mapped = self.map_one(va + offset, pa + offset, size - offset, attributes)?;
            offset += mapped;
        }
        Ok(())
    }

    /// Maps the largest block or page possible at `va`; returns how many bytes it covered.
    fn map_one(&mut self, va: u64, pa: u64, remaining: u64, attributes: u64) -> Result<u64, MapError> {
        let mut table = self.root;
        for level in self.start_level..=LEAF_LEVEL {
            let block = entry_size(level);
            let index = index_at(va, level);
            let entry = self.memory.table_mut(table)[index];
            let can_use_block =
                level >= 1 && va.is_multiple_of(block) && pa.is_multiple_of(block) && remaining >= block;
            if can_use_block {
                if entry & DESC_VALID != 0 {
                    return Err(MapError::AlreadyMapped { input: va });
                }
                let type_bits = if level == LEAF_LEVEL { DESC_VALID | DESC_TABLE_OR_PAGE } else { DESC_VALID };
                self.memory.table_mut(table)[index] = (pa & OUTPUT_ADDRESS_MASK) | attributes | type_bits;
                return Ok(block);
            }
            table = if entry & DESC_VALID == 0 {
                let next = self.memory.allocate_table()?;
                self.memory.table_mut(table)[index] = next.as_u64() | DESC_VALID | DESC_TABLE_OR_PAGE;
                next
            } else if entry & DESC_TABLE_OR_PAGE != 0 {
                next_table(entry)
            } else {
                return Err(MapError::AlreadyMapped { input: va });
            };
        }
        unreachable!("level 3 always maps a page");
    }

    /// Looks up `input` the way the MMU would (addresses beyond the input range
    /// translate to nothing).
    pub fn translate(&mut self, input: A) -> Option<Translation> {
        let va = input.as_u64();
        if va >> self.input_bits != 0 {
            return None;
        }
        let mut table = self.root;
        for level in self.start_level..=LEAF_LEVEL {
            let entry = self.memory.table_mut(table)[index_at(va, level)];
            if entry & DESC_VALID == 0 {
                return None;
            }
            let is_table = entry & DESC_TABLE_OR_PAGE != 0 && level < LEAF_LEVEL;
            if !is_table {
                let size = entry_size(level);
                let output_address = (entry & OUTPUT_ADDRESS_MASK & !(size - 1)) | (va & (size - 1));
                return Some(Translation { output_address: PhysAddr::new(output_address), descriptor: entry, level });
            }
            table = next_table(entry);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Tables in host memory with made-up physical addresses, and a budget.
    struct FakeMemory {
        tables: HashMap<PhysAddr, Box<[u64; ENTRIES]>>,
        next: PhysAddr,
        budget: usize,
    }

    impl FakeMemory {
        fn new(budget: usize) -> Self {
            Self { tables: HashMap::new(), next: PhysAddr::new(0x7000_0000), budget }
        }
    }

    impl TableMemory for FakeMemory {
        fn allocate_table(&mut self) -> Result<PhysAddr, MapError> {
            if self.tables.len() == self.budget {
                return Err(MapError::OutOfTables);
            }
            let pa = self.next;
            self.next = pa + PAGE_SIZE;
            self.tables.insert(pa, Box::new([0; ENTRIES]));
            Ok(pa)
        }
        fn table_mut(&mut self, pa: PhysAddr) -> &mut [u64; ENTRIES] {
            self.tables.get_mut(&pa).expect("walker followed a bogus table address")
        }
    }

    fn pa(raw: u64) -> PhysAddr {
        PhysAddr::new(raw)
    }

    fn ipa(raw: u64) -> Ipa {
        Ipa::new(raw)
    }

    const RW_TAGGED: u64 = el2_leaf_attributes(MemoryKind::NormalTagged, Access::ReadWrite);

    /// Decodes the memory kind and access of a leaf descriptor written by this module.
    fn decode_leaf_attributes(descriptor: u64) -> Option<(MemoryKind, Access)> {
        let kind = match (descriptor >> ATTR_INDEX_SHIFT) & 0b111 {
            ATTR_INDEX_DEVICE => MemoryKind::Device,
            ATTR_INDEX_NORMAL => MemoryKind::Normal,
            ATTR_INDEX_NORMAL_TAGGED => MemoryKind::NormalTagged,
            _ => return None,
        };
        let read_only = descriptor & AP_READ_ONLY != 0;
        let executable = descriptor & EXECUTE_NEVER == 0;
        let access = match (read_only, executable) {
            (true, true) => Access::ReadExecute,
            (true, false) => Access::ReadOnly,
            (false, false) => Access::ReadWrite,
            (false, true) => return None,
        };
        Some((kind, access))
    }

    #[test]
    fn descriptor_bits_match_the_architecture() {
        // Tagged RAM: AttrIndx=2, AP=01 (RW, AP[1] RES1), SH=11, AF, XN.
        assert_eq!(RW_TAGGED, (2 << 2) | (1 << 6) | (0b11 << 8) | (1 << 10) | (1 << 54));
        // Code: AttrIndx=1, AP=11 (RO), executable.
        assert_eq!(
            el2_leaf_attributes(MemoryKind::Normal, Access::ReadExecute),
            (1 << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10)
        );
        // Device: AttrIndx=0, non-shareable field ignored, always XN.
        assert_eq!(el2_leaf_attributes(MemoryKind::Device, Access::ReadWrite), (1 << 6) | (1 << 10) | (1 << 54));
        assert_eq!(MAIR_EL2_VALUE, 0x00F0_FF04);
    }

    #[test]
    fn large_aligned_ranges_use_blocks() {
        let mut table = PageTable::new(FakeMemory::new(16)).unwrap();
        table.map(pa(0x4000_0000), pa(0x4000_0000), 0x8000_0000, RW_TAGGED).unwrap();
        let t = table.translate(pa(0x7fff_f123)).unwrap();
        assert_eq!((t.output_address, t.level), (pa(0x7fff_f123), 1));
        assert_eq!(decode_leaf_attributes(t.descriptor), Some((MemoryKind::NormalTagged, Access::ReadWrite)));
        // Root + one level-1 table only.
        assert_eq!(table.memory.tables.len(), 2);
        assert!(table.translate(pa(0x3fff_ffff)).is_none());
        assert!(table.translate(pa(0xC000_0000)).is_none());
    }

    #[test]
    fn unaligned_edges_fall_back_to_smaller_entries() {
        let mut table = PageTable::new(FakeMemory::new(16)).unwrap();
        // 4 KiB pages up to 2 MiB, 2 MiB blocks up to 1 GiB, a 1 GiB block, then pages.
        table.map(pa(0x3FF0_0000), pa(0x3FF0_0000), 0x4020_3000 - 0x3FF0_0000 + 0x4000_0000, RW_TAGGED).unwrap();
        assert_eq!(table.translate(pa(0x3FF0_0000)).unwrap().level, 3);
        assert_eq!(table.translate(pa(0x4000_0000)).unwrap().level, 1);
        assert_eq!(table.translate(pa(0x8000_0000)).unwrap().level, 2);
        assert_eq!(table.translate(pa(0x8020_2fff)).unwrap().level, 3);
        assert!(table.translate(pa(0x8020_3000)).is_none());
    }

    #[test]
    fn identity_and_offset_mappings_translate() {
        let mut table = PageTable::new(FakeMemory::new(16)).unwrap();
        let device = el2_leaf_attributes(MemoryKind::Device, Access::ReadWrite);
        table.map(pa(0x0900_0000), pa(0x1c09_0000), 0x1000, device).unwrap();
        let t = table.translate(pa(0x0900_0018)).unwrap();
        assert_eq!(t.output_address, pa(0x1c09_0018));
        assert_eq!(decode_leaf_attributes(t.descriptor), Some((MemoryKind::Device, Access::ReadWrite)));
    }

    #[test]
    fn overlapping_mappings_are_refused() {
        let mut table = PageTable::new(FakeMemory::new(16)).unwrap();
        table.map(pa(0x4000_0000), pa(0x4000_0000), 0x20_0000, RW_TAGGED).unwrap();
        assert_eq!(
            table.map(pa(0x401F_F000), pa(0x401F_F000), 0x1000, RW_TAGGED),
            Err(MapError::AlreadyMapped { input: 0x401F_F000 })
        );
    }

    #[test]
    fn bad_input_and_exhaustion_are_errors() {
        let mut table = PageTable::new(FakeMemory::new(3)).unwrap();
        assert!(matches!(table.map(pa(0x1000), pa(0x1001), 0x1000, RW_TAGGED), Err(MapError::Misaligned { .. })));
        assert!(matches!(table.map(pa(0xFFFF_FFFF_F000), pa(0), 0x2000, RW_TAGGED), Err(MapError::Misaligned { .. })));
        // Needs root + L1 + L2 + L3: the fourth table is over budget.
        assert_eq!(table.map(pa(0x1000), pa(0x1000), 0x1000, RW_TAGGED), Err(MapError::OutOfTables));
    }

    #[test]
    fn stage2_descriptors_and_vtcr() {
        // Normal WB (MemAttr 0b1111), S2AP RW, inner shareable, AF, executable.
        assert_eq!(stage2_leaf_attributes(Stage2Kind::Ram), (0b1111 << 2) | (0b11 << 6) | (0b11 << 8) | (1 << 10));
        assert_eq!(stage2_leaf_attributes(Stage2Kind::Device), (0b0001 << 2) | (0b11 << 6) | (1 << 10) | (0b10 << 53));
        // QEMU max: PARange 5 (48 bits): T0SZ 16, SL0 level 0, PS 5.
        let qemu = Stage2Shape::from_pa_range(5);
        assert_eq!((qemu.ipa_bits, qemu.start_level), (48, 0));
        assert_eq!(qemu.vtcr(), 16 | (0b10 << 6) | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (5 << 16) | (1 << 31));
        // A 36-bit machine starts at level 1 with T0SZ 28.
        let small = Stage2Shape::from_pa_range(1);
        assert_eq!((small.ipa_bits, small.start_level), (36, 1));
        assert_eq!(small.vtcr() & 0xff, 28 | (0b01 << 6));
        // 52-bit PA is capped to a 48-bit IPA.
        assert_eq!(Stage2Shape::from_pa_range(6).ps, 5);
        // 40- and 42-bit machines (Cortex-A53/A55/A76) must not start at level 0.
        for pa_range in [2, 3] {
            let shape = Stage2Shape::from_pa_range(pa_range);
            assert_eq!((shape.ipa_bits, shape.start_level), (39, 1), "PARange {pa_range}");
            assert_eq!(shape.vtcr() & 0xff, 25 | (0b01 << 6));
        }
        assert_eq!(Stage2Shape::from_pa_range(4).start_level, 0);
    }

    #[test]
    fn stage2_level1_root_maps_blocks_and_pages_and_frees_every_table() {
        let shape = Stage2Shape::from_pa_range(1);
        let mut table = PageTable::new_stage2(FakeMemory::new(8), shape).unwrap();
        let ram = stage2_leaf_attributes(Stage2Kind::Ram);
        table.map(ipa(0x4000_0000), pa(0x8_0020_0000), 0x20_0000, ram).unwrap();
        table.map(ipa(0x4020_1000), pa(0x8_1234_5000), 0x1000, ram).unwrap();
        assert_eq!(table.translate(ipa(0x4000_1234)).unwrap().output_address, pa(0x8_0020_1234));
        assert_eq!(table.translate(ipa(0x4000_1234)).unwrap().level, 2);
        assert_eq!(table.translate(ipa(0x4020_1008)).unwrap().output_address, pa(0x8_1234_5008));
        assert!(table.translate(ipa(0x4020_0000)).is_none());
        // A block over a chunk that already has pages is refused (the caller falls back to pages).
        assert!(matches!(
            table.map(ipa(0x4020_0000), pa(0x8_0040_0000), 0x20_0000, ram),
            Err(MapError::AlreadyMapped { .. })
        ));
        // Beyond the 36-bit input range.
        assert!(matches!(table.map(ipa(1 << 36), pa(0), 0x1000, ram), Err(MapError::Misaligned { .. })));
        let created = table.memory().tables.len();
        let mut freed = Vec::new();
        let memory = table.destroy(|_, pa| freed.push(pa));
        assert_eq!(freed.len(), created);
        assert_eq!(memory.tables.len(), created);
    }
}
