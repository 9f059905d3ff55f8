//! A VM: its identity, memory, devices (vGIC, PL011, PSCI), EL2 controls and
//! statistics, created from a `vms.conf` section and destroyed when its last
//! vCPU stops.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::AtomicUsize;

use hv_abi::machine::{RAM_BASE, SHARED_BASE, SHARED_STRIDE};
use spin::Mutex;

use super::stage2::{FrameTables, GlobalFrames, MappingError, Sanitiser, VmMemory};
use crate::arch::aarch64::guest::{self, VmControls};
use crate::arch::aarch64::{cache, sanitise};
use crate::config::{BootProtocol, VmConfig};
use crate::memory;
use crate::mm::Ipa;
use crate::mm::page_table::{MapError, PageTable, Stage2Shape};
use crate::mm::tag_state::TagStateMap;
use crate::mte::MteInfo;
use crate::vm::boot_layout::{self, LayoutError};
use crate::vm::guest_dtb::{self, GuestBoot, GuestDtbError, GuestLayout};
use crate::vm::memory::{GuestMemory, SharedMemory};
use crate::vm::mmio::BusError;
use crate::vm::model::{VmIdentity, VmModel};

/// Where and how vCPU 0 starts.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub pc: u64,
    /// x0..x4 at entry.
    pub args: [u64; 5],
}

/// A running VM: its portable model (devices, vCPU power state, statistics:
/// reached through `Deref`) and what the hardware needs to run it.
pub struct Vm {
    pub model: VmModel,
    pub vmid: u16,
    pub boot: BootProtocol,
    pub controls: VmControls,
    pub memory: Mutex<VmMemory>,
    pub entry: Entry,
    pub live_vcpus: AtomicUsize,
}

impl core::ops::Deref for Vm {
    type Target = VmModel;

    fn deref(&self) -> &VmModel {
        &self.model
    }
}

/// Why a VM could not be created.
#[derive(Debug)]
pub enum CreateError {
    Tables(MapError),
    Load(MappingError),
    Layout(LayoutError),
    DeviceTree(GuestDtbError),
    Devices(BusError),
}

impl core::fmt::Display for CreateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Tables(e) => write!(f, "stage-2 tables: {e}"),
            Self::Load(e) => write!(f, "loading the images: {e}"),
            Self::Layout(e) => write!(f, "{e}"),
            Self::DeviceTree(e) => write!(f, "generating the device tree: {e}"),
            Self::Devices(e) => write!(f, "placing the devices: {e}"),
        }
    }
}

/// Which run of a configured VM this is.
#[derive(Debug, Clone, Copy)]
pub struct Incarnation {
    pub vmid: u16,
    /// How many `SYSTEM_RESET`s came before it.
    pub boot_count: u64,
}

/// The files a VM boots from.
pub struct Images<'a> {
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
}

impl Vm {
    /// Builds a VM: empty stage-2 tables, lazily backed RAM at [`RAM_BASE`], the
    /// boot images placed in it (Linux: kernel, initrd and a generated device tree;
    /// bare: the image at the start of RAM), and `shared` (the regions it names, in
    /// its order) mapped from [`SHARED_BASE`] on.
    pub fn create(
        index: usize,
        config: &VmConfig,
        images: &Images,
        shared: &[Arc<SharedMemory>],
        incarnation: Incarnation,
        shape: Stage2Shape,
        mte_info: &MteInfo,
    ) -> Result<Arc<Vm>, CreateError> {
        let Incarnation { vmid, boot_count } = incarnation;
        let mte = config.mte && mte_info.level.has_tag_storage();
        let stage2 = PageTable::new_stage2(FrameTables, shape).map_err(CreateError::Tables)?;
        let mut guest_memory = GuestMemory::new();
        guest_memory.add_private(Ipa::new(RAM_BASE), config.memory_bytes);
        let mut first_shared = None;
        for (n, region) in shared.iter().enumerate() {
            let ipa = SHARED_BASE + n as u64 * SHARED_STRIDE;
            first_shared.get_or_insert((ipa, region.size));
            guest_memory.add_shared(Ipa::new(ipa), region.clone());
        }
        let vcpus = config.cpus.len();
        let (shared_ipa, shared_size) = first_shared.unwrap_or((0, 0));
        let entry = match config.boot {
            BootProtocol::Bare => {
                preload(&mut guest_memory, RAM_BASE, images.kernel, mte_info)?;
                Entry { pc: RAM_BASE, args: [config.arg, RAM_BASE, config.memory_bytes, shared_ipa, shared_size] }
            }
            BootProtocol::Linux => {
                let header = boot_layout::kernel_header(images.kernel);
                let placed =
                    boot_layout::layout(RAM_BASE, config.memory_bytes, &header, images.initrd.map(|i| i.len() as u64))
                        .map_err(CreateError::Layout)?;
                let layout = GuestLayout::qemu_virt(config.memory_bytes, vcpus);
                let dtb = guest_dtb::generate(
                    &layout,
                    &GuestBoot {
                        bootargs: &config.bootargs,
                        initrd: placed.initrd,
                        boot_count: Some(boot_count),
                        ..Default::default()
                    },
                )
                .map_err(CreateError::DeviceTree)?;
                preload(&mut guest_memory, placed.kernel, images.kernel, mte_info)?;
                if let (Some(initrd), Some((start, _))) = (images.initrd, placed.initrd) {
                    preload(&mut guest_memory, start, initrd, mte_info)?;
                }
                preload(&mut guest_memory, placed.dtb, &dtb, mte_info)?;
                Entry { pc: placed.kernel, args: [placed.dtb, 0, 0, 0, 0] }
            }
        };
        // The frames may have held another VM's code.
        cache::invalidate_instruction_caches();
        let vttbr = stage2.root_address().as_u64() | (u64::from(vmid) << 48);
        // Whatever the boot protocol, only vCPU 0 starts; the others wait for CPU_ON.
        let model = VmModel::new(VmIdentity {
            index,
            name: config.name.clone(),
            mte,
            ram_bytes: config.memory_bytes,
            hosts: config.cpus.clone(),
            boot_count,
        })
        .map_err(CreateError::Devices)?;
        Ok(Arc::new(Vm {
            model,
            vmid,
            boot: config.boot,
            controls: VmControls { hcr: VmControls::hcr_for(mte), vttbr, vtcr: shape.vtcr() },
            memory: Mutex::new(VmMemory { guest: guest_memory, stage2 }),
            entry,
            live_vcpus: AtomicUsize::new(vcpus),
        }))
    }

    /// The fault path's environment for this VM.
    pub fn sanitiser<'a>(&self, mte: &'a MteInfo, tag_state: &'a TagStateMap) -> Sanitiser<'a> {
        Sanitiser { mte, tag_state, vm_has_mte: self.identity.mte }
    }

    /// Logs a rate-limited diagnostic about something the guest did (see
    /// [`VmModel::diagnostic_at`]).
    pub fn diagnostic(&self, level: log::Level, message: core::fmt::Arguments) {
        self.model.diagnostic_at(crate::arch::aarch64::cpu::counter(), level, message);
    }

    /// Asks every vCPU of the VM to stop with `status` (the first request wins)
    /// and kicks the CPUs running them.
    pub fn request_stop(&self, status: i64) {
        if self.model.request_stop(status) {
            super::kick::kick_cpus(&self.identity.hosts);
        }
    }

    /// Frees everything the VM owns: TLB entries of its VMID, its private frames
    /// (their sanitised state cleared first, so the next owner re-zeroes them) and
    /// its stage-2 tables. Runs on the CPU that ran its last vCPU, once nothing
    /// else holds the VM. Shared regions are the caller's to free once no VM
    /// needs them.
    ///
    /// No vCPU of the VM can run any more, but this CPU (and the CPUs that ran
    /// its vCPUs) may still have its VTTBR loaded: the flush below loads it once
    /// more, then parks stage 2 (VM off, VTTBR 0) so nothing walks the tables
    /// after they are freed; every guest entry loads its own VM's controls.
    pub fn destroy(self, tag_state: &TagStateMap) {
        // SAFETY: this VM's own tables are still valid; loading them makes the TLB
        // invalidation below apply to its VMID. No guest runs on this CPU now.
        unsafe { self.controls.load() };
        guest::invalidate_vm_tlbs();
        guest::park_stage2();
        let VmMemory { guest: guest_memory, stage2 } = self.memory.into_inner();
        for (pa, size) in guest_memory.private_runs() {
            // Every run was handed out by the frame allocator within RAM.
            let _ = tag_state.clear(pa, size);
            memory::frames().free(pa, size);
        }
        stage2.destroy(|_, table| memory::frames().free(table, crate::mm::PAGE_SIZE));
    }
}

/// Places `data` at `ipa`: the chunks it touches are allocated now, their data
/// zeroed, `data` copied in, and everything written cleaned to the point of
/// coherency once (the guest starts with its MMU and caches off); their tags are
/// sanitised at the first fault.
fn preload(memory: &mut GuestMemory, ipa: u64, data: &[u8], mte: &MteInfo) -> Result<(), CreateError> {
    let mut fresh: Vec<(u64, u64)> = Vec::new();
    let mut copied: Vec<(u64, u64)> = Vec::new();
    memory
        .preload(
            Ipa::new(ipa),
            data,
            &mut GlobalFrames,
            |pa, len| {
                sanitise::zero_data(pa.as_u64(), len, mte);
                fresh.push((pa.as_u64(), len));
            },
            |pa, bytes| {
                // SAFETY: `pa` is in a frame just allocated for this VM, not yet
                // mapped in any guest; `bytes` fits in it (preload splits per run).
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), pa.el2_pointer::<u8>(), bytes.len()) };
                copied.push((pa.as_u64(), bytes.len() as u64));
            },
        )
        .map_err(|e| CreateError::Load(MappingError::Fault(e)))?;
    // Whole fresh runs once; copies into runs an earlier preload allocated on their own.
    for &(pa, len) in &fresh {
        cache::clean_to_poc(pa, len);
    }
    let in_fresh = |pa: u64| fresh.iter().any(|&(start, len)| pa >= start && pa < start + len);
    for &(pa, len) in copied.iter().filter(|&&(pa, _)| !in_fresh(pa)) {
        cache::clean_to_poc(pa, len);
    }
    Ok(())
}
