//! EL1 stage-1 identity map: 4 KiB granule, 39-bit VA (starting at level 1),
//! 2 MiB blocks, tables in BSS.
//!
//! MAIR_EL1: Attr0 = 0xFF (Normal, write-back), Attr1 = 0xF0 (Tagged Normal,
//! write-back). TCR_EL1.TBI0 = 1 so pointer tags are ignored by translation.

use core::arch::asm;
use core::cell::UnsafeCell;

use crate::boot::layout;
use crate::sysreg;

const BLOCK_SIZE: u64 = 2 << 20;
const L1_SPAN: u64 = 1 << 30;
/// T0SZ = 25: a 39-bit (512 GiB) VA space, walks start at level 1.
const T0SZ: u64 = 25;
/// Everything mapped must lie below this (the VA size; identity map).
pub const VA_LIMIT: u64 = 1 << (64 - T0SZ);
/// Level-2 tables available (each maps 1 GiB).
const L2_TABLES: usize = 8;

/// Memory types, by MAIR_EL1 index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemType {
    /// Normal, inner/outer write-back, non-transient, read/write-allocate (0xFF).
    Normal = 0,
    /// Tagged Normal, inner/outer write-back (0xF0).
    Tagged = 1,
}

const MAIR: u64 = 0xFF | (0xF0 << 8);

/// A range to identity-map (rounded out to 2 MiB blocks).
#[derive(Debug, Clone, Copy)]
pub struct Region {
    pub base: u64,
    pub size: u64,
    pub mem: MemType,
    pub executable: bool,
}

/// Why the map could not be built.
#[derive(Debug, Clone, Copy)]
pub enum MapError {
    /// The region reaches beyond the 39-bit VA space.
    OutOfRange { base: u64, size: u64 },
    /// More 1 GiB spans touched than there are level-2 tables.
    OutOfTables,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfRange { base, size } => {
                write!(f, "[0x{base:x}, +0x{size:x}) is beyond the 39-bit address space")
            }
            Self::OutOfTables => write!(f, "more than {L2_TABLES} GiB-sized spans to map"),
        }
    }
}

// Descriptor bits.
const VALID: u64 = 1 << 0;
const TABLE: u64 = 1 << 1; // level 1 table descriptor (with VALID)
const ATTR_INDEX_SHIFT: u64 = 2;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

// TCR_EL1 fields.
const TCR_IRGN0_WBWA: u64 = 0b01 << 8;
const TCR_ORGN0_WBWA: u64 = 0b01 << 10;
const TCR_SH0_INNER: u64 = 0b11 << 12;
const TCR_TG0_4K: u64 = 0b00 << 14;
const TCR_EPD1: u64 = 1 << 23;
const TCR_IPS_SHIFT: u64 = 32;
const TCR_TBI0: u64 = 1 << 37;

// SCTLR_EL1 bits.
const SCTLR_M: u64 = 1 << 0;
const SCTLR_A: u64 = 1 << 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;
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
    l2: [Table; L2_TABLES],
    l2_used: usize,
}

struct TablesCell(UnsafeCell<Tables>);

// SAFETY: the tables are only touched by `enable`, once, on the guest's only CPU.
unsafe impl Sync for TablesCell {}

static TABLES: TablesCell =
    TablesCell(UnsafeCell::new(Tables { l1: Table([0; 512]), l2: [const { Table([0; 512]) }; L2_TABLES], l2_used: 0 }));

impl Tables {
    fn map(&mut self, region: &Region) -> Result<(), MapError> {
        let start = region.base & !(BLOCK_SIZE - 1);
        let end = region
            .base
            .checked_add(region.size)
            .and_then(|end| end.checked_add(BLOCK_SIZE - 1))
            .map(|end| end & !(BLOCK_SIZE - 1))
            .filter(|&end| end <= VA_LIMIT)
            .ok_or(MapError::OutOfRange { base: region.base, size: region.size })?;
        let mut attrs = VALID | ((region.mem as u64) << ATTR_INDEX_SHIFT) | SH_INNER | AF | UXN;
        if !region.executable {
            attrs |= PXN;
        }
        let mut addr = start;
        while addr < end {
            let l2 = self.l2_for(addr)?;
            self.l2[l2].0[((addr >> 21) & 511) as usize] = addr | attrs; // block descriptor
            addr += BLOCK_SIZE;
        }
        Ok(())
    }

    /// Index of the level-2 table for the 1 GiB span holding `addr`.
    fn l2_for(&mut self, addr: u64) -> Result<usize, MapError> {
        let slot = (addr / L1_SPAN) as usize;
        let entry = self.l1.0[slot];
        if entry & VALID != 0 {
            let table = entry & 0x0000_ffff_ffff_f000;
            let first = (&raw const self.l2[0]) as u64;
            return Ok(((table - first) / 4096) as usize);
        }
        if self.l2_used == L2_TABLES {
            return Err(MapError::OutOfTables);
        }
        let index = self.l2_used;
        self.l2_used += 1;
        self.l1.0[slot] = (&raw const self.l2[index]) as u64 | TABLE | VALID;
        Ok(index)
    }
}

/// Builds the identity map of `regions` and turns the MMU and caches on. With
/// `mte`, also sets SCTLR_EL1.ATA (tag access at EL1) and TCF = sync tag check
/// faults; without, both are cleared.
///
/// Must be called once, with the MMU off, before anything else uses the caches.
pub fn enable(regions: &[Region], mte: bool) -> Result<(), MapError> {
    // SAFETY: called once at boot on the only CPU, before the MMU is on; nothing
    // else refers to the tables.
    let tables = unsafe { &mut *TABLES.0.get() };
    for region in regions {
        tables.map(region)?;
    }

    let parange = sysreg::id_aa64mmfr0_el1() & 0xf;
    let ips = parange.min(5); // 48 bits at most without 52-bit (LPA2) descriptors
    let tcr = T0SZ
        | TCR_IRGN0_WBWA
        | TCR_ORGN0_WBWA
        | TCR_SH0_INNER
        | TCR_TG0_4K
        | TCR_EPD1
        | (ips << TCR_IPS_SHIFT)
        | TCR_TBI0;

    let mut sctlr = sysreg::sctlr_el1();
    sctlr |= SCTLR_M | SCTLR_C | SCTLR_I;
    sctlr &= !(SCTLR_A | SCTLR_WXN | SCTLR_TCF_MASK | SCTLR_TCF0_MASK | SCTLR_ATA | SCTLR_ATA0);
    if mte {
        sctlr |= SCTLR_ATA | SCTLR_TCF_SYNC;
    }

    // Everything written so far (BSS, tables, stack) went to memory with the MMU
    // off. Drop any stale cache lines for it before the caches are turned on.
    invalidate_dcache(layout::bss_start(), layout::image_end());

    let ttbr0 = (&raw const tables.l1) as u64;
    // SAFETY: the tables identity-map the image (executable, so the PC stays
    // valid) and the stack, so execution continues unchanged with the MMU on.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr0}",
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
            sctlr = in(reg) sctlr,
            options(nostack),
        );
    }
    Ok(())
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
