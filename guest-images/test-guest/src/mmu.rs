//! EL1 stage-1 translation: 4 KiB granule, 39-bit VAs in both halves (walks start
//! at level 1), tables in BSS.
//!
//! At boot [`enable`] identity-maps the regions it is given with 2 MiB blocks
//! through TTBR0 and turns the MMU on; TTBR1 (VAs from `0xFFFF_FF80_0000_0000`)
//! starts empty. Scenarios can then change the map at run time on vCPU 0 ([`map`],
//! [`window`], [`set_l1_raw`]): other vCPUs share the same tables (see
//! `smp.rs`), and every change is followed by a broadcast TLB invalidation.
//!
//! MAIR_EL1: Attr0 = 0xFF (Normal, write-back), Attr1 = 0xF0 (Tagged Normal,
//! write-back), Attr2 = 0x04 (Device-nGnRE). TCR_EL1.TBI0 = 1 so pointer tags are
//! ignored by translation (TBI1 = 0).

use core::arch::asm;
use core::cell::UnsafeCell;

use crate::boot::layout;
use crate::sysreg;

const PAGE: u64 = 4096;
const BLOCK_2M: u64 = 2 << 20;
const BLOCK_1G: u64 = 1 << 30;
/// T0SZ = T1SZ = 25: 39-bit (512 GiB) VA spaces, walks start at level 1.
const TXSZ: u64 = 25;
/// TTBR0 VAs lie below this.
pub const VA_LIMIT: u64 = 1 << (64 - TXSZ);
/// TTBR1 VAs start here.
pub const TTBR1_BASE: u64 = !(VA_LIMIT - 1);
/// Tables available to [`map`] beyond the two level-1 roots.
const POOL_TABLES: usize = 24;
/// First level-1 slot of TTBR0 used by [`window`], and how many there are.
const WINDOW_FIRST_SLOT: usize = 384;
const WINDOW_SLOTS: usize = 32;

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

    /// Block/page descriptor attribute bits (lower and upper attributes).
    fn bits(self) -> u64 {
        let mut bits = ((self.mem as u64) << ATTR_INDEX_SHIFT) | AF;
        bits |= if self.mem == MemType::Device { SH_OUTER } else { SH_INNER };
        match self.el0 {
            El0::None => bits |= UXN,
            El0::ReadWrite => bits |= AP_EL0_RW | UXN,
            El0::ReadWriteExecute => bits |= AP_EL0_RW,
        }
        if !self.el1_exec || self.el0 != El0::None {
            bits |= PXN;
        }
        bits
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
#[derive(Debug, Clone, Copy)]
pub enum MapError {
    /// The range is in neither 39-bit VA half, or not page aligned.
    OutOfRange { base: u64, size: u64 },
    /// The table pool is exhausted.
    OutOfTables,
    /// A block is in the way of a table the mapping needs.
    Conflict { va: u64 },
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfRange { base, size } => {
                write!(f, "[0x{base:x}, +0x{size:x}) is outside the 39-bit VA halves or unaligned")
            }
            Self::OutOfTables => write!(f, "more than {POOL_TABLES} translation tables needed"),
            Self::Conflict { va } => write!(f, "a block mapping covers 0x{va:x} where a table is needed"),
        }
    }
}

// Descriptor bits.
const VALID: u64 = 1 << 0;
/// Table descriptor (levels 1-2) or page descriptor (level 3), with VALID.
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_INDEX_SHIFT: u64 = 2;
const AP_EL0_RW: u64 = 0b01 << 6;
const SH_OUTER: u64 = 0b10 << 8;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const OUTPUT_MASK: u64 = 0x0000_ffff_ffff_f000;

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

#[repr(C, align(4096))]
struct Table([u64; 512]);

struct Tables {
    l1: Table,
    l1_high: Table,
    pool: [Table; POOL_TABLES],
    used: usize,
    next_window: usize,
}

struct TablesCell(UnsafeCell<Tables>);

// SAFETY: the tables are only modified by vCPU 0 (at boot, then by scenarios on
// vCPU 0 only); other vCPUs only walk them in hardware.
unsafe impl Sync for TablesCell {}

static TABLES: TablesCell = TablesCell(UnsafeCell::new(Tables {
    l1: Table([0; 512]),
    l1_high: Table([0; 512]),
    pool: [const { Table([0; 512]) }; POOL_TABLES],
    used: 0,
    next_window: 0,
}));

/// The tables. Callers run on vCPU 0 and do not keep the reference across calls.
#[allow(clippy::mut_from_ref)]
fn tables() -> &'static mut Tables {
    // SAFETY: only vCPU 0 calls this, and never re-entrantly (no exception
    // handler touches the tables), so there is one live reference at a time.
    unsafe { &mut *TABLES.0.get() }
}

/// Level-1 index, level-2 index, level-3 index of `va`.
fn index(va: u64, level: u32) -> usize {
    ((va >> (39 - 9 * level)) & 511) as usize
}

impl Tables {
    /// The level-`level` descriptor slot for `va`, creating intermediate tables.
    fn slot(&mut self, va: u64, level: u32) -> Result<&mut u64, MapError> {
        let mut table: *mut Table = if va >= TTBR1_BASE { &raw mut self.l1_high } else { &raw mut self.l1 };
        for current in 1..level {
            // SAFETY: `table` is one of this struct's tables (identity-mapped BSS).
            let entry = unsafe { &mut (*table).0[index(va, current)] };
            if *entry & VALID == 0 {
                if self.used == POOL_TABLES {
                    return Err(MapError::OutOfTables);
                }
                let new = &raw mut self.pool[self.used];
                self.used += 1;
                // SAFETY: a pool table not referenced by any descriptor yet.
                unsafe { (*new).0 = [0; 512] };
                *entry = new as u64 | TABLE_OR_PAGE | VALID;
            } else if *entry & TABLE_OR_PAGE == 0 {
                return Err(MapError::Conflict { va });
            }
            table = (*entry & OUTPUT_MASK) as *mut Table;
        }
        // SAFETY: as above; the table address came from a descriptor we wrote.
        Ok(unsafe { &mut (*table).0[index(va, level)] })
    }

    fn map(&mut self, va: u64, pa: u64, size: u64, attrs: Attrs) -> Result<(), MapError> {
        let in_range = |va: u64| !(VA_LIMIT..TTBR1_BASE).contains(&va);
        let last = size.checked_sub(1).and_then(|s| va.checked_add(s));
        let aligned = va.is_multiple_of(PAGE) && pa.is_multiple_of(PAGE) && size.is_multiple_of(PAGE);
        if !aligned || !last.is_some_and(|last| in_range(va) && in_range(last) && (va < VA_LIMIT) == (last < VA_LIMIT))
        {
            return Err(MapError::OutOfRange { base: va, size });
        }
        let bits = attrs.bits();
        let (mut va, mut pa, mut left) = (va, pa, size);
        while left != 0 {
            if va % BLOCK_2M == 0 && pa % BLOCK_2M == 0 && left >= BLOCK_2M {
                *self.slot(va, 2)? = (pa & OUTPUT_MASK) | bits | VALID;
                (va, pa, left) = (va.wrapping_add(BLOCK_2M), pa + BLOCK_2M, left - BLOCK_2M);
            } else {
                *self.slot(va, 3)? = (pa & OUTPUT_MASK) | bits | TABLE_OR_PAGE | VALID;
                (va, pa, left) = (va.wrapping_add(PAGE), pa + PAGE, left - PAGE);
            }
        }
        Ok(())
    }
}

/// Builds the identity map of `regions` and turns the MMU and caches on. With
/// `mte`, also sets SCTLR_EL1.ATA (tag access at EL1) and TCF = sync tag check
/// faults; without, both are cleared. EL0 WFI/WFE are not trapped to EL1.
///
/// Must be called once, with the MMU off, before anything else uses the caches.
pub fn enable(regions: &[Region], mte: bool) -> Result<(), MapError> {
    let tables = tables();
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

    let ttbr0 = (&raw const tables.l1) as u64;
    let ttbr1 = (&raw const tables.l1_high) as u64;
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

/// Maps `[va, va + size)` to `[pa, ...)` with `attrs` (2 MiB blocks where aligned,
/// else 4 KiB pages), replacing what was there, and invalidates the TLBs. vCPU 0
/// only, MMU on.
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
    let tables = tables();
    let slot = WINDOW_FIRST_SLOT + tables.next_window;
    tables.next_window = (tables.next_window + 1) % WINDOW_SLOTS;
    tables.l1.0[slot] = ((ipa & !(BLOCK_1G - 1)) & OUTPUT_MASK) | attrs.bits() | VALID; // 1 GiB block
    flush_tlb();
    ((slot as u64) << 30) | (ipa & (BLOCK_1G - 1))
}

/// Writes `descriptor` into a free TTBR0 level-1 window slot and returns the VA
/// that slot translates (for example, a table descriptor pointing at an IPA
/// that is not RAM). vCPU 0 only.
pub fn set_l1_raw(descriptor: u64) -> u64 {
    let tables = tables();
    let slot = WINDOW_FIRST_SLOT + tables.next_window;
    tables.next_window = (tables.next_window + 1) % WINDOW_SLOTS;
    tables.l1.0[slot] = descriptor;
    flush_tlb();
    (slot as u64) << 30
}

/// A level-1 table descriptor for a level-2 table at `ipa`.
pub const fn table_descriptor(ipa: u64) -> u64 {
    (ipa & OUTPUT_MASK) | TABLE_OR_PAGE | VALID
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
