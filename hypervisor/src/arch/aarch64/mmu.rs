//! The hypervisor's own EL2 stage-1 translation: an identity map of RAM (Tagged
//! when MTE is present, so EL2 can sanitise tags), the image W^X, and the devices
//! the platform describes as Device-nGnRE. Everything else is unmapped.

use core::cell::UnsafeCell;

use arrayvec::ArrayVec;

use aarch64_cpu::registers::*;

use super::registers::{sctlr_el2, tcr_el2};
use super::{cache, cpu};
use crate::mm::page_table::{
    Access, ENTRIES, INPUT_BITS, MAIR_EL2_VALUE, MapError, MemoryKind, PageTable, TableMemory, el2_leaf_attributes,
};
use crate::mm::ranges::free_ranges;
use crate::mm::{PAGE_SIZE, PhysAddr, align_down, align_up};
use crate::platform::{PhysRange, Platform};

/// Tables for the EL2 map. Plenty for several RAM banks and devices: the map uses
/// 1 GiB / 2 MiB blocks except around the image and small devices.
const POOL_TABLES: usize = 96;

#[repr(C, align(4096))]
struct TablePool(UnsafeCell<[[u64; ENTRIES]; POOL_TABLES]>);

// SAFETY: the pool is only written by the primary CPU while building the map,
// before any other CPU runs; afterwards only the MMU reads it.
unsafe impl Sync for TablePool {}

static POOL: TablePool = TablePool(UnsafeCell::new([[0; ENTRIES]; POOL_TABLES]));

/// Hands out tables from [`POOL`]; identity-mapped, so a table's address is its
/// physical address.
struct PoolMemory {
    used: usize,
}

impl TableMemory for PoolMemory {
    fn allocate_table(&mut self) -> Result<PhysAddr, MapError> {
        if self.used == POOL_TABLES {
            return Err(MapError::OutOfTables);
        }
        let base = POOL.0.get() as u64;
        let pa = base + (self.used as u64) * PAGE_SIZE;
        self.used += 1;
        Ok(PhysAddr::new(pa))
    }

    fn table_mut(&mut self, pa: PhysAddr) -> &mut [u64; ENTRIES] {
        let pa = pa.as_u64();
        let base = POOL.0.get() as u64;
        assert!(pa >= base && pa < base + (self.used as u64) * PAGE_SIZE && pa.is_multiple_of(PAGE_SIZE));
        // SAFETY: `pa` is a table this pool handed out (checked above); the pool is
        // only touched by the one CPU building the map, one table reference at a time.
        unsafe { &mut *(pa as *mut [u64; ENTRIES]) }
    }
}

/// The register values that turn on this translation regime; secondary CPUs load
/// the same ones.
#[derive(Debug, Clone, Copy)]
pub struct El2Translation {
    pub ttbr0: u64,
    pub tcr: u64,
    pub mair: u64,
    pub sctlr: u64,
}

/// The hypervisor image's sections, for W^X.
pub struct ImageLayout {
    pub text: PhysRange,
    pub rodata: PhysRange,
    pub data: PhysRange,
}

impl ImageLayout {
    pub fn current() -> Self {
        use boot::layout::*;
        let range = |start: u64, end: u64| PhysRange { base: start, size: end - start };
        Self {
            text: range(image_start(), text_end()),
            rodata: range(text_end(), rodata_end()),
            data: range(data_start(), image_end()),
        }
    }

    pub fn whole(&self) -> PhysRange {
        PhysRange { base: self.text.base, size: self.data.base + self.data.size - self.text.base }
    }
}

/// Why the EL2 map could not be built.
#[derive(Debug)]
pub enum MmuError {
    Map(MapError),
    Ranges(crate::mm::ranges::RangeError),
}

impl core::fmt::Display for MmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Map(e) => write!(f, "building the EL2 page tables: {e}"),
            Self::Ranges(e) => write!(f, "building the EL2 page tables: {e}"),
        }
    }
}

impl From<MapError> for MmuError {
    fn from(e: MapError) -> Self {
        Self::Map(e)
    }
}

/// The MMIO ranges EL2 needs, page-rounded.
fn device_ranges(platform: &Platform) -> ArrayVec<PhysRange, 16> {
    let mut devices = ArrayVec::new();
    if let Some(uart) = &platform.console {
        devices.push(PhysRange { base: uart.base, size: uart.size.max(PAGE_SIZE) });
    }
    devices.push(platform.gic.distributor);
    for region in &platform.gic.redistributor_regions {
        let _ = devices.try_push(*region);
    }
    for d in devices.iter_mut() {
        let base = align_down(d.base, PAGE_SIZE);
        *d = PhysRange { base, size: align_up(d.base + d.size, PAGE_SIZE) - base };
    }
    devices
}

/// Builds the EL2 identity map. Runs with the MMU off, on the primary CPU only.
pub fn build(platform: &Platform, tagged_ram: bool) -> Result<El2Translation, MmuError> {
    let image = ImageLayout::current();
    let mut table = PageTable::new(PoolMemory { used: 0 })?;

    let ram_kind = if tagged_ram { MemoryKind::NormalTagged } else { MemoryKind::Normal };
    let ram_attributes = el2_leaf_attributes(ram_kind, Access::ReadWrite);
    let ram_outside_image = free_ranges(&platform.ram, &[image.whole()]).map_err(MmuError::Ranges)?;
    for range in &ram_outside_image {
        table.map(PhysAddr::new(range.base), PhysAddr::new(range.base), range.size, ram_attributes)?;
    }
    let sections =
        [(image.text, Access::ReadExecute), (image.rodata, Access::ReadOnly), (image.data, Access::ReadWrite)];
    for (section, access) in sections {
        let base = PhysAddr::new(section.base);
        table.map(base, base, section.size, el2_leaf_attributes(MemoryKind::Normal, access))?;
    }
    let device_attributes = el2_leaf_attributes(MemoryKind::Device, Access::ReadWrite);
    for device in device_ranges(platform) {
        // Devices inside RAM would be a broken DTB; skip rather than double-map
        // (the boot sequence warns about them: [`devices_overlapping_ram`]).
        if overlaps_ram(platform, &device) {
            continue;
        }
        match table.map(PhysAddr::new(device.base), PhysAddr::new(device.base), device.size, device_attributes) {
            Ok(()) | Err(MapError::AlreadyMapped { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }

    // 48-bit VA, 4 KiB granule, write-back walks, inner shareable; PS up to 48 bits.
    let pa_size = cpu::pa_range().min(5);
    let tcr = TCR_EL2::T0SZ.val(64 - INPUT_BITS as u64)
        + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
        + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
        + TCR_EL2::SH0::Inner
        + TCR_EL2::TG0::KiB_4
        + TCR_EL2::PS.val(pa_size)
        + tcr_el2::RES1;
    let mut sctlr = sctlr_el2::RES1
        + SCTLR_EL2::M::Enable
        + SCTLR_EL2::C::Cacheable
        + SCTLR_EL2::I::Cacheable
        + SCTLR_EL2::SA::Enable
        + SCTLR_EL2::WXN::Enable;
    if tagged_ram {
        sctlr += sctlr_el2::ATA::SET;
    }
    Ok(El2Translation {
        ttbr0: table.root_address().as_u64(),
        tcr: tcr.value,
        mair: MAIR_EL2_VALUE,
        sctlr: sctlr.value,
    })
}

fn overlaps_ram(platform: &Platform, device: &PhysRange) -> bool {
    platform.ram.iter().any(|r| r.overlaps(device))
}

/// The device ranges (page-rounded) that [`build`] leaves out of the map because
/// they overlap RAM: a broken device tree, worth a warning.
pub fn devices_overlapping_ram(platform: &Platform) -> ArrayVec<PhysRange, 16> {
    device_ranges(platform).into_iter().filter(|device| overlaps_ram(platform, device)).collect()
}

/// Turns on the MMU and caches on this CPU with `translation`.
///
/// # Safety
/// `translation` must come from [`build`], whose identity map covers the code,
/// stack and data in use, and must not change while it is live.
pub unsafe fn enable(translation: &El2Translation) {
    let image = ImageLayout::current().whole();
    // SAFETY: everything in the image (tables, stack, data) was written with the
    // caches off, so memory holds it; dropping stale lines loses nothing.
    unsafe { cache::invalidate_to_poc(image.base, image.size) };
    // SAFETY: the caller guarantees the tables identity-map everything in use, so
    // execution continues at the same addresses once translation is on.
    unsafe {
        MAIR_EL2.set(translation.mair);
        TCR_EL2.set(translation.tcr);
        TTBR0_EL2.set(translation.ttbr0);
        core::arch::asm!("isb", "tlbi alle2", "dsb nsh", "isb", options(nostack, preserves_flags));
        SCTLR_EL2.set(translation.sctlr);
        core::arch::asm!("isb", options(nostack, preserves_flags));
    }
}
