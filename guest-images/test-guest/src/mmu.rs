//! EL1 stage-1 translation: 4 KiB granule, 39-bit VAs in both halves (walks start
//! at level 1), tables in BSS.
//!
//! The TTBR0 tables are built by `aarch64-paging` over a fixed pool of tables
//! ([`TablePool`]): at boot [`enable`] identity-maps the regions it is given and
//! turns the MMU on; scenarios can then change the map at run time on vCPU 0
//! ([`map`]). Two things are written by hand because they are deliberately outside
//! what a page-table library builds: the level-1 window slots ([`window`],
//! [`set_l1_raw`], a 1 GiB block onto any IPA or an arbitrary descriptor), which
//! `aarch64-paging` never walks because [`map`] refuses their VA range; and TTBR1,
//! which holds one page, the last of the VA space ([`map_top_page`]), whose
//! exclusive end (2^64) an `aarch64-paging` `MemoryRegion` cannot express. Other
//! vCPUs share the same tables (see `smp.rs`), and every change is followed by a
//! broadcast TLB invalidation.
//!
//! MAIR_EL1: Attr0 = 0xFF (Normal, write-back), Attr1 = 0xF0 (Tagged Normal,
//! write-back), Attr2 = 0x04 (Device-nGnRE). TCR_EL1.TBI0 = 1 so pointer tags are
//! ignored by translation (TBI1 = 0).

use core::arch::asm;
use core::cell::UnsafeCell;
use core::ptr::NonNull;

use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{El1Attributes, PhysicalAddress};
use aarch64_paging::paging::{Constraints, El1And0, MemoryRegion, PageTable, Translation, VaRange};

use crate::boot::layout;
use crate::sysreg;

const PAGE: u64 = 4096;
const BLOCK_2M: u64 = 2 << 20;
const BLOCK_1G: u64 = 1 << 30;
/// T0SZ = T1SZ = 25: 39-bit (512 GiB) VA spaces, walks start at level 1.
const TXSZ: u64 = 25;
const ROOT_LEVEL: usize = 1;
/// TTBR0 VAs lie below this.
pub const VA_LIMIT: u64 = 1 << (64 - TXSZ);
/// The one page TTBR1 maps: the last of the VA space.
pub const TOP_PAGE_VA: u64 = 0u64.wrapping_sub(PAGE);
/// TTBR0 tables: the root and what [`enable`] and [`map`] need beyond it.
const POOL_TABLES: usize = 25;
/// First level-1 slot of TTBR0 used by [`window`], and how many there are.
const WINDOW_FIRST_SLOT: usize = 384;
const WINDOW_SLOTS: usize = 32;
/// The TTBR0 VAs the window slots translate; [`map`] leaves them alone.
const WINDOW_VAS: core::ops::Range<u64> =
    (WINDOW_FIRST_SLOT as u64) << 30..((WINDOW_FIRST_SLOT + WINDOW_SLOTS) as u64) << 30;

/// Memory types, by MAIR_EL1 index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemType {
    /// Normal, inner/outer write-back, non-transient, read/write-allocate (0xFF).
    Normal = 0,
    /// Tagged Normal, inner/outer write-back (0xF0).
    Tagged = 1,
    /// Device-nGnRE (0x04).
    Device = 2,
}

const MAIR: u64 = 0xFF | (0xF0 << 8) | (0x04 << 16);

/// What EL0 may do with a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum El0 {
    /// No EL0 access.
    None,
    /// EL0 read/write, not executable at EL0.
    ReadWrite,
    /// EL0 read/write/execute (never executable at EL1: EL0-writable).
    ReadWriteExecute,
}

/// Attributes of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub mem: MemType,
    /// Executable at EL1 (ignored when EL0 may write: the architecture forbids it).
    pub el1_exec: bool,
    pub el0: El0,
}

impl Attrs {
    /// EL1-only data.
    pub const fn data(mem: MemType) -> Self {
        Self { mem, el1_exec: false, el0: El0::None }
    }

    /// EL1-only, executable.
    pub const fn code(mem: MemType) -> Self {
        Self { mem, el1_exec: true, el0: El0::None }
    }

    /// EL0 code and data (read/write/execute at EL0).
    pub const fn el0_code(mem: MemType) -> Self {
        Self { mem, el1_exec: false, el0: El0::ReadWriteExecute }
    }

    /// The attributes of a valid block or page descriptor.
    fn flags(self) -> El1Attributes {
        let mut flags = El1Attributes::VALID | El1Attributes::ACCESSED;
        flags |= match self.mem {
            MemType::Normal => El1Attributes::ATTRIBUTE_INDEX_0 | El1Attributes::INNER_SHAREABLE,
            MemType::Tagged => El1Attributes::ATTRIBUTE_INDEX_1 | El1Attributes::INNER_SHAREABLE,
            MemType::Device => El1Attributes::ATTRIBUTE_INDEX_2 | El1Attributes::OUTER_SHAREABLE,
        };
        flags |= match self.el0 {
            El0::None => El1Attributes::UXN,
            El0::ReadWrite => El1Attributes::USER | El1Attributes::UXN,
            El0::ReadWriteExecute => El1Attributes::USER,
        };
        if !self.el1_exec || self.el0 != El0::None {
            flags |= El1Attributes::PXN;
        }
        flags
    }

    /// A block descriptor (levels 1 and 2) for `output`, written by hand.
    fn block_descriptor(self, output: u64) -> u64 {
        (output & OUTPUT_MASK) | self.flags().bits() as u64
    }

    /// A level-3 page descriptor for `output`, written by hand.
    fn page_descriptor(self, output: u64) -> u64 {
        self.block_descriptor(output) | El1Attributes::TABLE_OR_PAGE.bits() as u64
    }
}

/// A range to identity-map at boot (rounded out to 2 MiB blocks).
#[derive(Debug, Clone, Copy)]
pub struct Region {
    pub base: u64,
    pub size: u64,
    pub mem: MemType,
    pub executable: bool,
    /// EL0 may read and write it (never executable then).
    pub el0: bool,
}

/// Why a mapping could not be made.
#[derive(Debug, Clone)]
pub enum MapError {
    /// The range is outside the TTBR0 half, overlaps the window slots, or is not
    /// page aligned.
    OutOfRange { base: u64, size: u64 },
    /// `aarch64-paging` refused it.
    Paging(aarch64_paging::MapError),
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfRange { base, size } => write!(
                f,
                "[0x{base:x}, +0x{size:x}) is outside the 39-bit TTBR0 half (less the window slots) or unaligned"
            ),
            Self::Paging(error) => write!(f, "{error}"),
        }
    }
}

/// The output-address field of a descriptor written by hand.
const OUTPUT_MASK: u64 = 0x0000_ffff_ffff_f000;
/// A valid table descriptor's type bits.
const TABLE: u64 = El1Attributes::VALID.bits() as u64 | El1Attributes::TABLE_OR_PAGE.bits() as u64;

// TCR_EL1 fields.
const TCR_IRGN0_WBWA: u64 = 0b01 << 8;
const TCR_ORGN0_WBWA: u64 = 0b01 << 10;
const TCR_SH0_INNER: u64 = 0b11 << 12;
const TCR_TG0_4K: u64 = 0b00 << 14;
const TCR_T1SZ_SHIFT: u64 = 16;
const TCR_IRGN1_WBWA: u64 = 0b01 << 24;
const TCR_ORGN1_WBWA: u64 = 0b01 << 26;
const TCR_SH1_INNER: u64 = 0b11 << 28;
const TCR_TG1_4K: u64 = 0b10 << 30;
const TCR_IPS_SHIFT: u64 = 32;
const TCR_TBI0: u64 = 1 << 37;

// SCTLR_EL1 bits.
const SCTLR_M: u64 = 1 << 0;
const SCTLR_A: u64 = 1 << 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;
/// EL0 WFI is not trapped to EL1 (so it reaches the hypervisor's WFI trap).
const SCTLR_NTWI: u64 = 1 << 16;
/// EL0 WFE is not trapped to EL1.
const SCTLR_NTWE: u64 = 1 << 18;
const SCTLR_WXN: u64 = 1 << 19;
const SCTLR_TCF0_MASK: u64 = 0b11 << 38;
const SCTLR_TCF_MASK: u64 = 0b11 << 40;
const SCTLR_TCF_SYNC: u64 = 0b01 << 40;
const SCTLR_ATA0: u64 = 1 << 42;
const SCTLR_ATA: u64 = 1 << 43;

/// A translation table written by hand.
#[repr(C, align(4096))]
struct Table([u64; 512]);

/// The TTBR0 map.
struct Tables {
    /// TTBR0, once [`enable`] has made it.
    low: Option<Mapping<TablePool, El1And0>>,
    next_window: usize,
}

/// vCPU 0's tables: only it modifies them (at boot, then in scenarios); other
/// vCPUs only walk them in hardware.
struct Vcpu0<T>(UnsafeCell<T>);

// SAFETY: see the type: one CPU writes, the others only walk the tables.
unsafe impl<T> Sync for Vcpu0<T> {}

static TABLES: Vcpu0<Tables> = Vcpu0(UnsafeCell::new(Tables { low: None, next_window: 0 }));

/// TTBR1: levels 1, 2 and 3 down to [`TOP_PAGE_VA`] (all zero at first, so in BSS).
static HIGH: Vcpu0<[Table; 3]> = Vcpu0(UnsafeCell::new([const { Table([0; 512]) }; 3]));

/// The tables `aarch64-paging` builds TTBR0 from, handed out in order.
struct Pool {
    tables: [PageTable<El1Attributes>; POOL_TABLES],
    used: usize,
}

static POOL: Vcpu0<Pool> = Vcpu0(UnsafeCell::new(Pool { tables: [const { PageTable::EMPTY }; POOL_TABLES], used: 0 }));

/// The TTBR0 map. Callers run on vCPU 0 and do not keep the reference across calls.
fn tables() -> &'static mut Tables {
    // SAFETY: only vCPU 0 calls this, and never re-entrantly (no exception
    // handler touches the tables), so there is one live reference at a time.
    unsafe { &mut *TABLES.0.get() }
}

/// TTBR1's tables, as for [`tables`].
fn high_tables() -> &'static mut [Table; 3] {
    // SAFETY: as for `tables`.
    unsafe { &mut *HIGH.0.get() }
}

/// Hands `aarch64-paging` the pool's tables, identity-mapped (their VA is their
/// PA). Tables it frees are not reused: one boot's map and a scenario's few
/// extra mappings fit in the pool.
struct TablePool;

impl Translation<El1Attributes> for TablePool {
    fn allocate_table(&mut self) -> (NonNull<PageTable<El1Attributes>>, PhysicalAddress) {
        let pool = POOL.0.get();
        // SAFETY: only vCPU 0 allocates, one table at a time, and no reference to
        // the pool exists: handed-out tables are reached through raw pointers.
        let index = unsafe { (*pool).used };
        assert!(index < POOL_TABLES, "more than {POOL_TABLES} stage-1 tables needed");
        // SAFETY: as above; `index` is in bounds, and the table is zero (BSS) and
        // not handed out before.
        let table = unsafe {
            (*pool).used = index + 1;
            &raw mut (*pool).tables[index]
        };
        (NonNull::new(table).expect("BSS is not at address 0"), PhysicalAddress(table as usize))
    }

    unsafe fn deallocate_table(&mut self, _table: NonNull<PageTable<El1Attributes>>) {}

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<El1Attributes>> {
        NonNull::new(pa.0 as *mut PageTable<El1Attributes>).expect("a table at PA 0")
    }
}

/// Level-1 index, level-2 index, level-3 index of `va`.
fn index(va: u64, level: u32) -> usize {
    ((va >> (39 - 9 * level)) & 511) as usize
}

impl Tables {
    fn low(&mut self) -> &mut Mapping<TablePool, El1And0> {
        self.low.as_mut().expect("the MMU map is built by enable first")
    }

    /// The TTBR0 root as the MMU sees it, for the slots written by hand.
    fn low_root(&mut self) -> *mut [u64; 512] {
        self.low().root_address().0 as *mut [u64; 512]
    }

    fn map(&mut self, va: u64, pa: u64, size: u64, attrs: Attrs) -> Result<(), MapError> {
        let out_of_range = MapError::OutOfRange { base: va, size };
        let end = va.checked_add(size).ok_or(out_of_range.clone())?;
        let aligned = va.is_multiple_of(PAGE) && pa.is_multiple_of(PAGE) && size.is_multiple_of(PAGE);
        if !aligned || size == 0 || end > VA_LIMIT || (va < WINDOW_VAS.end && WINDOW_VAS.start < end) {
            return Err(out_of_range);
        }
        let region = MemoryRegion::new(va as usize, end as usize);
        self.low()
            .map_range(&region, PhysicalAddress(pa as usize), attrs.flags(), Constraints::empty())
            .map_err(MapError::Paging)
    }

    /// Claims the next window slot (round-robin), writes `descriptor` there and
    /// returns the slot.
    fn set_window_slot(&mut self, descriptor: u64) -> usize {
        let slot = WINDOW_FIRST_SLOT + self.next_window;
        self.next_window = (self.next_window + 1) % WINDOW_SLOTS;
        let root = self.low_root();
        // SAFETY: the root is a pool table the MMU walks; window slots are never
        // mapped through `aarch64-paging` (`map` refuses their VAs), so nothing
        // else reads or writes this entry.
        unsafe { (*root)[slot] = descriptor };
        slot
    }
}

/// Builds the identity map of `regions` and turns the MMU and caches on. With
/// `mte`, also sets SCTLR_EL1.ATA (tag access at EL1) and TCF = sync tag check
/// faults; without, both are cleared. EL0 WFI/WFE are not trapped to EL1.
///
/// Must be called once, with the MMU off, before anything else uses the caches.
pub fn enable(regions: &[Region], mte: bool) -> Result<(), MapError> {
    let tables = tables();
    tables.low = Some(Mapping::with_asid_and_va_range(TablePool, 0, ROOT_LEVEL, El1And0, VaRange::Lower));
    let [l1, l2, l3] = high_tables();
    l1.0[index(TOP_PAGE_VA, 1)] = (&raw const *l2) as u64 | TABLE;
    l2.0[index(TOP_PAGE_VA, 2)] = (&raw const *l3) as u64 | TABLE;
    for region in regions {
        let start = region.base & !(BLOCK_2M - 1);
        let end = region
            .base
            .checked_add(region.size)
            .and_then(|end| end.checked_add(BLOCK_2M - 1))
            .map(|end| end & !(BLOCK_2M - 1))
            .filter(|&end| end <= VA_LIMIT)
            .ok_or(MapError::OutOfRange { base: region.base, size: region.size })?;
        let el0 = if region.el0 { El0::ReadWrite } else { El0::None };
        tables.map(start, start, end - start, Attrs { mem: region.mem, el1_exec: region.executable, el0 })?;
    }

    let parange = sysreg::id_aa64mmfr0_el1() & 0xf;
    let ips = parange.min(5); // 48 bits at most without 52-bit (LPA2) descriptors
    let tcr = TXSZ
        | TCR_IRGN0_WBWA
        | TCR_ORGN0_WBWA
        | TCR_SH0_INNER
        | TCR_TG0_4K
        | (TXSZ << TCR_T1SZ_SHIFT)
        | TCR_IRGN1_WBWA
        | TCR_ORGN1_WBWA
        | TCR_SH1_INNER
        | TCR_TG1_4K
        | (ips << TCR_IPS_SHIFT)
        | TCR_TBI0;

    let mut sctlr = sysreg::sctlr_el1();
    sctlr |= SCTLR_M | SCTLR_C | SCTLR_I | SCTLR_NTWI | SCTLR_NTWE;
    sctlr &= !(SCTLR_A | SCTLR_WXN | SCTLR_TCF_MASK | SCTLR_TCF0_MASK | SCTLR_ATA | SCTLR_ATA0);
    if mte {
        sctlr |= SCTLR_ATA | SCTLR_TCF_SYNC;
    }

    // Everything written so far (BSS, tables, stack) went to memory with the MMU
    // off. Drop any stale cache lines for it before the caches are turned on.
    invalidate_dcache(layout::bss_start(), layout::image_end());

    let ttbr0 = tables.low().root_address().0 as u64;
    let ttbr1 = (&raw const high_tables()[0]) as u64;
    // SAFETY: the tables identity-map the image (executable, so the PC stays
    // valid) and the stack, so execution continues unchanged with the MMU on.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr0}",
            "msr ttbr1_el1, {ttbr1}",
            "isb",
            "tlbi vmalle1",
            "ic iallu",
            "dsb nsh",
            "isb",
            "msr sctlr_el1, {sctlr}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) tcr,
            ttbr0 = in(reg) ttbr0,
            ttbr1 = in(reg) ttbr1,
            sctlr = in(reg) sctlr,
            options(nostack),
        );
    }
    Ok(())
}

/// Maps `[va, va + size)` of the TTBR0 half (outside the window slots) to
/// `[pa, ...)` with `attrs` (blocks where aligned, else 4 KiB pages), replacing what
/// was there, and invalidates the TLBs. vCPU 0 only, MMU on.
pub fn map(va: u64, pa: u64, size: u64, attrs: Attrs) -> Result<(), MapError> {
    let result = tables().map(va, pa, size, attrs);
    flush_tlb();
    result
}

/// Maps the 1 GiB of IPA space holding `ipa` at a free level-1 window slot of
/// TTBR0 (slots are reused round-robin) and returns the VA of `ipa` there. Lets
/// the guest reach any IPA the stage-1 output size allows (TCR_EL1.IPS), beyond
/// its 39-bit identity map. vCPU 0 only.
pub fn window(ipa: u64, attrs: Attrs) -> u64 {
    let slot = tables().set_window_slot(attrs.block_descriptor(ipa & !(BLOCK_1G - 1))); // 1 GiB block
    flush_tlb();
    ((slot as u64) << 30) | (ipa & (BLOCK_1G - 1))
}

/// Writes `descriptor` into a free TTBR0 level-1 window slot and returns the VA
/// that slot translates (for example, a table descriptor pointing at an IPA
/// that is not RAM). vCPU 0 only.
pub fn set_l1_raw(descriptor: u64) -> u64 {
    let slot = tables().set_window_slot(descriptor);
    flush_tlb();
    (slot as u64) << 30
}

/// A level-1 table descriptor for a level-2 table at `ipa`.
pub const fn table_descriptor(ipa: u64) -> u64 {
    (ipa & OUTPUT_MASK) | TABLE
}

/// Maps the last page of the VA space ([`TOP_PAGE_VA`], through TTBR1) to `pa`
/// with `attrs`, replacing what was there, and invalidates the TLBs. vCPU 0
/// only, MMU on.
pub fn map_top_page(pa: u64, attrs: Attrs) {
    high_tables()[2].0[index(TOP_PAGE_VA, 3)] = attrs.page_descriptor(pa);
    flush_tlb();
}

/// Invalidates all stage-1 TLB entries of this VM on every vCPU (after a table write).
pub fn flush_tlb() {
    // SAFETY: barriers and TLB invalidation only.
    unsafe { asm!("dsb ishst", "tlbi vmalle1is", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Makes instructions written through the data side at `[start, end)` visible
/// to instruction fetches from any alias (clean to PoU, invalidate the I-cache).
pub fn sync_icache(start: u64, end: u64) {
    let line = 4u64 << ((sysreg::ctr_el0() >> 16) & 0xf);
    let mut addr = start & !(line - 1);
    while addr < end {
        // SAFETY: cleaning cache lines of mapped memory has no architectural effect on data.
        unsafe { asm!("dc cvau, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: barriers and a full I-cache invalidation (inner shareable).
    unsafe { asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// DC CIVAC over `[start, end)`: writes the data to the point of coherency, for
/// a reader with its MMU (and so its caches) off.
pub fn clean_to_poc(start: u64, end: u64) {
    let line = 4u64 << ((sysreg::ctr_el0() >> 16) & 0xf);
    let mut addr = start & !(line - 1);
    while addr < end {
        // SAFETY: clean and invalidate keeps the data (written back first).
        unsafe { asm!("dc civac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier only.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// DC IVAC over `[start, end)`, by the smallest data cache line size.
fn invalidate_dcache(start: u64, end: u64) {
    let line = 4u64 << ((sysreg::ctr_el0() >> 16) & 0xf);
    let mut addr = start & !(line - 1);
    // SAFETY: the data in this range is in memory (written with the MMU off);
    // invalidating cache lines only drops stale copies.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
    while addr < end {
        // SAFETY: as above.
        unsafe { asm!("dc ivac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier only.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}
