//! A VM's stage-2 tables in frames from the frame allocator, and the fault path
//! that backs, sanitises and maps guest memory.

use crate::arch::aarch64::{cache, guest, sanitise};
use crate::memory;
use crate::mm::frame_alloc::OutOfMemory;
use crate::mm::page_table::{ENTRIES, MapError, Stage2Kind, Stage2Table, TableMemory, stage2_leaf_attributes};
use crate::mm::tag_state::TagStateMap;
use crate::mm::{BLOCK_SIZE, Ipa, PAGE_SIZE, PhysAddr};
use crate::mte::MteInfo;
use crate::vm::memory::{Backing, FaultError, FrameSource, GuestMemory, Preparation};
use crate::vm::stats::{VmStats, add};

/// Stage-2 tables live in frames from the global allocator (identity-mapped).
pub struct FrameTables;

impl TableMemory for FrameTables {
    fn allocate_table(&mut self) -> Result<PhysAddr, MapError> {
        let pa = memory::frames().allocate(PAGE_SIZE).map_err(|_| MapError::OutOfTables)?;
        // SAFETY: a fresh frame we own, identity-mapped read-write at EL2.
        unsafe { core::ptr::write_bytes(pa.el2_pointer::<u8>(), 0, PAGE_SIZE as usize) };
        Ok(pa)
    }

    fn table_mut(&mut self, pa: PhysAddr) -> &mut [u64; ENTRIES] {
        // SAFETY: `pa` is a table this allocator handed out to the one page table
        // that owns it, which is only walked under its VM's memory lock.
        unsafe { &mut *pa.el2_pointer::<[u64; ENTRIES]>() }
    }
}

/// Frames for guest memory, from the global allocator.
pub struct GlobalFrames;

impl FrameSource for GlobalFrames {
    fn allocate(&mut self, bytes: u64) -> Result<PhysAddr, OutOfMemory> {
        memory::frames().allocate(bytes)
    }

    fn free(&mut self, pa: PhysAddr, bytes: u64) {
        memory::frames().free(pa, bytes)
    }
}

/// Everything about a VM's memory that changes, behind the VM's memory lock.
pub struct VmMemory {
    pub guest: GuestMemory,
    pub stage2: Stage2Table<FrameTables>,
}

/// What resolving a fault did.
pub enum FaultResolution {
    Mapped {
        size: u64,
    },
    /// Another vCPU mapped it between the fault and our lock.
    AlreadyMapped,
}

/// Why a fault in guest memory could not be resolved (the VM cannot go on).
#[derive(Debug)]
pub enum MappingError {
    Fault(FaultError),
    Tables(MapError),
    TagState(crate::mm::tag_state::TagStateError),
}

impl core::fmt::Display for MappingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Fault(e) => write!(f, "{e}"),
            Self::Tables(e) => write!(f, "stage-2 tables: {e}"),
            Self::TagState(e) => write!(f, "tag state: {e:?}"),
        }
    }
}

/// The environment of the fault path: the machine's MTE details and the
/// per-frame sanitised state shared by every VM.
pub struct Sanitiser<'a> {
    pub mte: &'a MteInfo,
    pub tag_state: &'a TagStateMap,
    /// Whether the VM has MTE: only then are tags sanitised (and `HCR_EL2.ATA` set).
    pub vm_has_mte: bool,
}

impl Sanitiser<'_> {
    /// Makes `backing` safe to show the guest: for MTE VMs, the tags are zeroed
    /// exactly once per allocation (data too for fresh memory), under the tag-state
    /// protocol; then the data is cleaned to the point of coherency, because the
    /// guest may read it with its MMU (and so its caches) off.
    fn prepare(&self, backing: &Backing, stats: &VmStats) -> Result<(), MappingError> {
        if self.vm_has_mte {
            let mte = self.mte;
            let outcome = self
                .tag_state
                .sanitise_once(backing.pa, backing.size, |pa, len| {
                    let pa = pa.as_u64();
                    match backing.preparation {
                        Preparation::ZeroDataAndTags => sanitise::zero_data_and_tags(pa, len, mte),
                        Preparation::ZeroTagsOnly => sanitise::zero_tags(pa, len, mte),
                    }
                    // Before the bits are set: a VM on the fast path may map it at once.
                    cache::clean_to_poc(pa, len);
                })
                .map_err(MappingError::TagState)?;
            add(&stats.frames_sanitised, u64::from(outcome.frames_zeroed));
            add(&stats.frames_already_sanitised, u64::from(outcome.frames_already_sanitised));
            add(&stats.frames_recycled, u64::from(outcome.frames_recycled));
            if outcome.took_lock {
                add(&stats.lock_acquisitions, 1);
            }
            if outcome.contended {
                add(&stats.lock_contended, 1);
            }
        }
        Ok(())
    }
}

impl VmMemory {
    /// Resolves a stage-2 translation fault at `ipa`: finds or allocates the frames,
    /// sanitises them, and maps them. Nothing is mapped before it is sanitised.
    pub fn handle_translation_fault(
        &mut self,
        ipa: Ipa,
        sanitiser: &Sanitiser,
        stats: &VmStats,
    ) -> Result<FaultResolution, MappingError> {
        if self.stage2.translate(ipa).is_some() {
            return Ok(FaultResolution::AlreadyMapped);
        }
        let mte = sanitiser.mte;
        let zero_data_now = !sanitiser.vm_has_mte;
        let backing = self
            .guest
            .resolve_fault(ipa, &mut GlobalFrames, |pa, len| {
                // Without MTE there is no sanitised state to make a later zeroing
                // safe, so fresh memory is zeroed (and cleaned) as it is allocated.
                if zero_data_now {
                    sanitise::zero_data(pa.as_u64(), len, mte);
                    cache::clean_to_poc(pa.as_u64(), len);
                }
            })
            .map_err(MappingError::Fault)?;
        sanitiser.prepare(&backing, stats)?;
        let attributes = stage2_leaf_attributes(Stage2Kind::Ram);
        match self.stage2.map(backing.ipa, backing.pa, backing.size, attributes) {
            Ok(()) => {}
            // The 2 MiB chunk already has 4 KiB pages (or vice versa): map one page.
            Err(MapError::AlreadyMapped { .. }) if backing.size == BLOCK_SIZE => {
                let page_ipa = ipa.align_down(PAGE_SIZE);
                let page_pa = backing.pa + (page_ipa - backing.ipa);
                self.stage2.map(page_ipa, page_pa, PAGE_SIZE, attributes).map_err(MappingError::Tables)?;
                guest::publish_stage2_updates();
                add(&stats.faults_4k, 1);
                return Ok(FaultResolution::Mapped { size: PAGE_SIZE });
            }
            Err(e) => return Err(MappingError::Tables(e)),
        }
        guest::publish_stage2_updates();
        match backing.size {
            BLOCK_SIZE => add(&stats.faults_2m, 1),
            _ => add(&stats.faults_4k, 1),
        }
        Ok(FaultResolution::Mapped { size: backing.size })
    }

    /// Copies guest memory at `ipa` into `out`, through the stage-2 tables.
    /// Fails on any unmapped byte, returning the first IPA that is not mapped.
    pub fn read_guest(&mut self, ipa: Ipa, out: &mut [u8]) -> Result<(), Ipa> {
        let mut done = 0usize;
        while done < out.len() {
            // A guest-chosen IPA: the range may run off the top of the address space.
            let at = ipa.checked_add(done as u64).ok_or(ipa)?;
            let translation = self.stage2.translate(at).ok_or(at)?;
            let in_page = (PAGE_SIZE - at.offset_within(PAGE_SIZE)) as usize;
            let len = in_page.min(out.len() - done);
            // SAFETY: the stage-2 tables only map guest RAM (identity-mapped at EL2),
            // and `len` stays within the page. Guests (of this VM, or another sharing
            // the frame) may write it concurrently, so it is copied byte by byte
            // through a raw pointer rather than borrowed as a slice.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    translation.output_address.el2_pointer::<u8>(),
                    out[done..].as_mut_ptr(),
                    len,
                )
            };
            done += len;
        }
        Ok(())
    }
}
