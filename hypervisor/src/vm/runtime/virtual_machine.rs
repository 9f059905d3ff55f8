//! A VM: its identity, memory, EL2 controls and statistics, created from a
//! `vms.conf` section and destroyed when its last vCPU stops.

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use hv_abi::{RAM_BASE, SHARED_BASE};
use spin::Mutex;

use super::stage2::{FrameTables, GlobalFrames, MappingError, Sanitiser, VmMemory};
use crate::arch::aarch64::guest::{self, VmControls};
use crate::arch::aarch64::{cache, sanitise};
use crate::config::VmConfig;
use crate::mm::page_table::{MapError, PageTable, Stage2Shape};
use crate::mm::tag_state::TagStateMap;
use crate::memory;
use crate::mte::MteInfo;
use crate::vm::memory::{GuestMemory, SharedMemory};
use crate::vm::stats::VmStats;

/// Spacing of shared regions in the guest-physical map.
const SHARED_STRIDE: u64 = 1 << 30;

/// A running VM.
pub struct Vm {
    /// Index of the VM in `vms.conf`.
    pub index: usize,
    pub name: String,
    pub vmid: u16,
    pub mte: bool,
    pub ram_bytes: u64,
    pub controls: VmControls,
    pub memory: Mutex<VmMemory>,
    pub stats: VmStats,
    /// Set when any vCPU stops the VM; the others stop at their next exit.
    pub stopping: AtomicBool,
    pub exit_status: AtomicI64,
    pub live_vcpus: AtomicUsize,
    /// IPA and size of the first shared region (passed to the guest), if any.
    pub first_shared: Option<(u64, u64)>,
}

/// Why a VM could not be created.
#[derive(Debug)]
pub enum CreateError {
    NoImage(String),
    Tables(MapError),
    Load(MappingError),
}

impl core::fmt::Display for CreateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoImage(name) => write!(f, "image {name:?} is not in the bundle"),
            Self::Tables(e) => write!(f, "stage-2 tables: {e}"),
            Self::Load(e) => write!(f, "loading the image: {e}"),
        }
    }
}

impl Vm {
    /// Builds a VM: empty stage-2 tables, lazily backed RAM at [`RAM_BASE`] with
    /// `image` preloaded at its start, and the shared regions it names mapped from
    /// [`SHARED_BASE`] on.
    pub fn create(
        index: usize,
        config: &VmConfig,
        image: &[u8],
        shared: &[Arc<SharedMemory>],
        vmid: u16,
        shape: Stage2Shape,
        mte_info: &MteInfo,
    ) -> Result<Arc<Vm>, CreateError> {
        let mte = config.mte && mte_info.level.has_tag_storage();
        let stage2 = PageTable::new_stage2(FrameTables, shape).map_err(CreateError::Tables)?;
        let mut guest_memory = GuestMemory::new();
        guest_memory.add_private(RAM_BASE, config.memory_bytes);
        let mut first_shared = None;
        for (n, region) in config.shared.iter().map(|&i| &shared[i]).enumerate() {
            let ipa = SHARED_BASE + n as u64 * SHARED_STRIDE;
            first_shared.get_or_insert((ipa, region.size));
            guest_memory.add_shared(ipa, region.clone());
        }
        guest_memory
            .preload(
                RAM_BASE,
                image,
                &mut GlobalFrames,
                |pa, len| sanitise::zero_data(pa, len, mte_info),
                |pa, bytes| {
                    // SAFETY: `pa` is in a frame just allocated for this VM, not yet
                    // mapped in any guest; `bytes` fits in it (preload splits per run).
                    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), pa as *mut u8, bytes.len()) };
                    // The guest starts with its MMU off and reads its image uncached.
                    cache::clean_to_poc(pa, bytes.len() as u64);
                },
            )
            .map_err(|e| CreateError::Load(MappingError::Fault(e)))?;
        let vttbr = stage2.root_address() | (u64::from(vmid) << 48);
        Ok(Arc::new(Vm {
            index,
            name: config.name.clone(),
            vmid,
            mte,
            ram_bytes: config.memory_bytes,
            controls: VmControls { hcr: VmControls::hcr_for(mte), vttbr, vtcr: shape.vtcr() },
            memory: Mutex::new(VmMemory { guest: guest_memory, stage2 }),
            stats: VmStats::default(),
            stopping: AtomicBool::new(false),
            exit_status: AtomicI64::new(0),
            live_vcpus: AtomicUsize::new(config.cpus.len()),
            first_shared,
        }))
    }

    /// The fault path's environment for this VM.
    pub fn sanitiser<'a>(&self, mte: &'a MteInfo, tag_state: &'a TagStateMap) -> Sanitiser<'a> {
        Sanitiser { mte, tag_state, vm_has_mte: self.mte }
    }

    /// Asks every vCPU of the VM to stop with `status` (the first request wins).
    pub fn request_stop(&self, status: i64) {
        if !self.stopping.swap(true, Ordering::AcqRel) {
            self.exit_status.store(status, Ordering::Release);
        }
    }

    /// Frees everything the VM owns: TLB entries of its VMID, its private frames
    /// (their sanitised state cleared first, so the next owner re-zeroes them) and
    /// its stage-2 tables. Runs on the CPU that ran its last vCPU, which holds the
    /// last reference. Shared regions are the caller's to free once no VM needs them.
    pub fn destroy(self: Arc<Self>, tag_state: &TagStateMap) {
        // SAFETY: this VM's own tables are still valid; loading them makes the TLB
        // invalidation below apply to its VMID.
        unsafe { self.controls.load() };
        guest::invalidate_vm_tlbs();
        let vm = match Arc::try_unwrap(self) {
            Ok(vm) => vm,
            Err(vm) => panic!("VM {} destroyed while {} references remain", vm.name, Arc::strong_count(&vm)),
        };
        let VmMemory { guest: guest_memory, stage2 } = vm.memory.into_inner();
        for (pa, size) in guest_memory.private_runs() {
            // Every run was handed out by the frame allocator within RAM.
            let _ = tag_state.clear(pa, size);
            memory::frames().free(pa, size);
        }
        stage2.destroy(|_, table| memory::frames().free(table, crate::mm::PAGE_SIZE));
    }
}
