//! EL1 stage 1: an identity map of the first 2 GiB in two 1 GiB blocks, built with
//! `aarch64-paging` at boot, 4 KiB granule, 39-bit VAs (walks start at level 1).
//!
//! | VA = PA | memory type | holds |
//! | --- | --- | --- |
//! | `0x0000_0000..0x4000_0000` | Device-nGnRE | GIC, PL011, virtio-mmio, unassigned holes |
//! | `0x4000_0000..0x8000_0000` | Normal write-back | RAM: the image, stacks, the device tree |
//!
//! Both machines put RAM at `0x4000_0000` and both loaders keep the image and the
//! device tree in its first GiB, so the map does not depend on the RAM size.
//! TTBR1 (the top of the VA space) has a root table of its own, written by hand
//! and empty but for what the `walk-abort` case points into the void.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::ptr::NonNull;

use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, Readable};
use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{El1Attributes, PhysicalAddress};
use aarch64_paging::paging::{Constraints, El1And0, MemoryRegion, PageTable, Translation, VaRange};
use hv_abi::machine::RAM_BASE;

use crate::entry::layout;

const GIB: u64 = 1 << 30;
/// T0SZ = T1SZ = 25: 39-bit VA spaces, walks start at level 1.
const TXSZ: u64 = 25;
const ROOT_LEVEL: usize = 1;
/// The lowest VA TTBR1 translates.
pub const TTBR1_BASE: u64 = !((1u64 << (64 - TXSZ)) - 1);
/// Tables `aarch64-paging` may take (the root; 1 GiB blocks need no more).
const POOL_TABLES: usize = 4;

/// MAIR_EL1: Attr0 Normal write-back (0xFF), Attr1 Device-nGnRE (0x04).
const MAIR: u64 = 0xFF | (0x04 << 8);

// TCR_EL1 fields.
const TCR_IRGN_WBWA: u64 = 0b01;
const TCR_ORGN_WBWA: u64 = 0b01;
const TCR_SH_INNER: u64 = 0b11;
const TCR_TG0_4K: u64 = 0b00;
const TCR_TG1_4K: u64 = 0b10;

/// SCTLR_EL1: the bits that are RES1 in Armv8.0 (LSMAOE, nTLSMD, SPAN, EIS, TSCXT,
/// EOS), plus M, C, SA, SA0 and I. Everything else (alignment checks, WXN, MTE
/// tag checks, SSBS defaults, pointer authentication) off.
pub const SCTLR: u64 = 0x30D0_0800 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 12);

/// The MMU controls every vCPU loads (vCPU 0 at boot, the others from their start
/// block).
#[derive(Clone, Copy)]
pub struct Controls {
    pub mair: u64,
    pub tcr: u64,
    pub ttbr0: u64,
    pub ttbr1: u64,
    pub sctlr: u64,
}

/// A translation table written by hand.
#[repr(C, align(4096))]
pub struct Table(pub [u64; 512]);

/// State only vCPU 0 touches, at boot and in the cases that change the map.
struct Vcpu0<T>(UnsafeCell<T>);

// SAFETY: only vCPU 0 writes the contents (see each accessor); the other vCPUs
// only walk the tables in hardware.
unsafe impl<T> Sync for Vcpu0<T> {}

struct Pool {
    tables: [PageTable<El1Attributes>; POOL_TABLES],
    used: usize,
}

static POOL: Vcpu0<Pool> = Vcpu0(UnsafeCell::new(Pool { tables: [const { PageTable::EMPTY }; POOL_TABLES], used: 0 }));
static LOW: Vcpu0<Option<Mapping<TablePool, El1And0>>> = Vcpu0(UnsafeCell::new(None));
static HIGH_ROOT: Vcpu0<Table> = Vcpu0(UnsafeCell::new(Table([0; 512])));
static CONTROLS: Vcpu0<Option<Controls>> = Vcpu0(UnsafeCell::new(None));

/// Hands out the pool's tables (identity-mapped: VA = PA), never reused.
struct TablePool;

impl Translation<El1Attributes> for TablePool {
    fn allocate_table(&mut self) -> (NonNull<PageTable<El1Attributes>>, PhysicalAddress) {
        let pool = POOL.0.get();
        // SAFETY: only vCPU 0 builds the map, once, at boot; no reference to the
        // pool exists (handed-out tables are only reached through raw pointers).
        let table = unsafe {
            let index = (*pool).used;
            assert!(index < POOL_TABLES, "the stage-1 map needs more than {POOL_TABLES} tables");
            (*pool).used = index + 1;
            &raw mut (*pool).tables[index]
        };
        (NonNull::new(table).expect("BSS is not at address 0"), PhysicalAddress(table as usize))
    }

    unsafe fn deallocate_table(&mut self, _table: NonNull<PageTable<El1Attributes>>) {}

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<El1Attributes>> {
        NonNull::new(pa.0 as *mut PageTable<El1Attributes>).expect("no table at address 0")
    }
}

fn block_flags(device: bool) -> El1Attributes {
    let base = El1Attributes::VALID | El1Attributes::ACCESSED;
    match device {
        true => {
            base | El1Attributes::ATTRIBUTE_INDEX_1
                | El1Attributes::OUTER_SHAREABLE
                | El1Attributes::UXN
                | El1Attributes::PXN
        }
        false => base | El1Attributes::ATTRIBUTE_INDEX_0 | El1Attributes::INNER_SHAREABLE | El1Attributes::UXN,
    }
}

/// Builds the map and turns the MMU and caches on. vCPU 0, once, MMU off.
pub fn enable() {
    // SAFETY: vCPU 0 at boot, before any other vCPU runs: the only reference.
    let low = unsafe { &mut *LOW.0.get() };
    let map = low.insert(Mapping::with_asid_and_va_range(TablePool, 0, ROOT_LEVEL, El1And0, VaRange::Lower));
    for (base, device) in [(0, true), (RAM_BASE, false)] {
        let region = MemoryRegion::new(base as usize, (base + GIB) as usize);
        map.map_range(&region, PhysicalAddress(base as usize), block_flags(device), Constraints::empty())
            .expect("two 1 GiB blocks fit the root table");
    }
    let parange = ID_AA64MMFR0_EL1.get() & 0xf;
    let ips = parange.min(5); // 48-bit output addresses at most (no LPA2 descriptors)
    let tcr = TXSZ
        | (TCR_IRGN_WBWA << 8)
        | (TCR_ORGN_WBWA << 10)
        | (TCR_SH_INNER << 12)
        | (TCR_TG0_4K << 14)
        | (TXSZ << 16)
        | (TCR_IRGN_WBWA << 24)
        | (TCR_ORGN_WBWA << 26)
        | (TCR_SH_INNER << 28)
        | (TCR_TG1_4K << 30)
        | (ips << 32);
    let controls =
        Controls { mair: MAIR, tcr, ttbr0: map.root_address().0 as u64, ttbr1: HIGH_ROOT.0.get() as u64, sctlr: SCTLR };
    // SAFETY: as above.
    unsafe { *CONTROLS.0.get() = Some(controls) };

    // Relocations, BSS and the tables were written with the MMU off: drop any
    // stale cache lines for the image before the caches come on.
    invalidate_dcache(layout::image_start(), layout::image_end());
    // SAFETY: the map is an identity map of the image (executable), the stack and
    // the devices, so execution continues unchanged with the MMU on.
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
            mair = in(reg) controls.mair,
            tcr = in(reg) controls.tcr,
            ttbr0 = in(reg) controls.ttbr0,
            ttbr1 = in(reg) controls.ttbr1,
            sctlr = in(reg) controls.sctlr,
            options(nostack),
        );
    }
}

/// What [`enable`] loaded, for the other vCPUs.
pub fn controls() -> Controls {
    // SAFETY: written once by `enable` before any reader exists.
    unsafe { (*CONTROLS.0.get()).expect("the MMU is on") }
}

/// Writes entry `index` of TTBR1's root table and invalidates the TLBs. vCPU 0.
pub fn set_high_root_entry(index: usize, descriptor: u64) {
    // SAFETY: only vCPU 0 calls this (the `walk-abort` case), and no reference to
    // the table exists; the hardware walker reads it, which the barriers order.
    unsafe { (*HIGH_ROOT.0.get()).0[index] = descriptor };
    // SAFETY: TLB maintenance only.
    unsafe { asm!("dsb ishst", "tlbi vmalle1is", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// The smallest data cache line (CTR_EL0.DminLine).
fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    4 << ((ctr >> 16) & 0xf)
}

fn invalidate_dcache(start: u64, end: u64) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    while addr < end {
        // SAFETY: invalidating lines of the image, which was only written with
        // the caches off, loses nothing.
        unsafe { asm!("dc ivac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Cleans `[start, end)` to the point of coherency, for a vCPU that reads it with
/// its MMU off.
pub fn clean_to_poc(start: u64, end: u64) {
    let line = dcache_line();
    let mut addr = start & !(line - 1);
    while addr < end {
        // SAFETY: cleaning writes dirty lines back; data is unchanged.
        unsafe { asm!("dc cvac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}
