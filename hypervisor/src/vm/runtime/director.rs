//! The set of VMs from the boot bundle: creating them (some only after another
//! has stopped), handing their vCPUs to the CPUs they are pinned to, tearing them
//! down, and powering off when the last one is gone.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::{Mutex, Once};

use super::vcpu::Vcpu;
use super::virtual_machine::Vm;
use crate::arch::aarch64::{cpu, sanitise, smp};
use crate::bundle::Bundle;
use crate::config::Config;
use crate::mm::page_table::Stage2Shape;
use crate::mm::tag_state::TagStateMap;
use crate::mte::MteInfo;
use crate::platform::PhysRange;
use crate::vm::memory::SharedMemory;
use crate::vm::runtime::stage2::GlobalFrames;

/// 8-bit VMIDs; 0 is never given to a VM.
const MAX_VMID: u16 = 255;

/// Lifecycle of one configured VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VmState {
    /// Waiting for the VM it runs `after`.
    Pending,
    Running,
    Stopped { status: i64 },
    /// Could not be created; counts as stopped with a failure.
    Failed,
}

struct Lifecycle {
    states: Vec<VmState>,
    vmids_in_use: [bool; MAX_VMID as usize + 1],
    /// VMs that still need each shared region (running or pending).
    shared_users: Vec<usize>,
    shared: Vec<Option<Arc<SharedMemory>>>,
}

/// Everything the CPUs share while running guests.
pub struct Director {
    config: Config,
    bundle: Bundle<'static>,
    pub mte: MteInfo,
    pub tag_state: TagStateMap,
    shape: Stage2Shape,
    pub events: [AtomicU64; hv_abi::EVENTS as usize],
    lifecycle: Mutex<Lifecycle>,
    /// vCPUs handed to each physical CPU, picked up by its scheduler loop.
    pub incoming: [Mutex<Vec<Box<Vcpu>>>; smp::MAX_CPUS],
}

static DIRECTOR: Once<Director> = Once::new();

/// The director, once [`start`] has run.
pub fn get() -> Option<&'static Director> {
    DIRECTOR.get()
}

/// Why the VMs could not be started.
pub enum StartError {
    Bundle(crate::bundle::BundleError),
    NoConfig,
    ConfigNotText,
    Config(crate::config::ConfigError),
    SharedMemory(String, crate::mm::frame_alloc::OutOfMemory),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Bundle(e) => write!(f, "boot bundle: {e}"),
            Self::NoConfig => write!(f, "boot bundle has no vms.conf"),
            Self::ConfigNotText => write!(f, "vms.conf is not UTF-8 text"),
            Self::Config(e) => write!(f, "{e}"),
            Self::SharedMemory(name, e) => write!(f, "shared region {name}: {e}"),
        }
    }
}

/// Reads the bundle, creates the shared regions and every VM that does not wait
/// for another, and publishes the director for all CPUs.
pub fn start(
    bundle_bytes: &'static [u8],
    ram: &[PhysRange],
    mte: MteInfo,
    cpu_count: usize,
) -> Result<&'static Director, StartError> {
    let bundle = Bundle::parse(bundle_bytes).map_err(StartError::Bundle)?;
    let text = bundle.file("vms.conf").ok_or(StartError::NoConfig)?;
    let text = core::str::from_utf8(text).map_err(|_| StartError::ConfigNotText)?;
    let config = crate::config::parse(text).map_err(StartError::Config)?;
    config.validate_against(cpu_count, |name| bundle.file(name).is_some()).map_err(StartError::Config)?;

    let mut shared = Vec::new();
    let mut shared_users = Vec::new();
    for (index, region) in config.shared.iter().enumerate() {
        let memory = SharedMemory::allocate(&region.name, region.size, region.mapping_bytes, &mut GlobalFrames, |pa, len| {
            sanitise::zero_data(pa, len, &mte)
        })
        .map_err(|e| StartError::SharedMemory(region.name.clone(), e))?;
        log::info!("shared region {}: {} MiB, mapped in {} KiB units", region.name, region.size >> 20, region.mapping_bytes >> 10);
        shared.push(Some(Arc::new(memory)));
        shared_users.push(config.vms.iter().filter(|vm| vm.shared.contains(&index)).count());
    }
    let states = config.vms.iter().map(|_| VmState::Pending).collect();
    let director = DIRECTOR.call_once(|| Director {
        bundle,
        mte,
        tag_state: TagStateMap::new(ram),
        shape: Stage2Shape::from_pa_range(cpu::pa_range()),
        events: [const { AtomicU64::new(0) }; hv_abi::EVENTS as usize],
        lifecycle: Mutex::new(Lifecycle { states, vmids_in_use: [false; MAX_VMID as usize + 1], shared_users, shared }),
        incoming: [const { Mutex::new(Vec::new()) }; smp::MAX_CPUS],
        config,
    });
    log::info!(
        "{} VM(s) configured; stage 2: {}-bit IPA, walks start at level {}",
        director.config.vms.len(),
        director.shape.ipa_bits,
        director.shape.start_level
    );
    let ready: Vec<usize> = (0..director.config.vms.len()).filter(|&i| director.config.vms[i].after.is_none()).collect();
    for index in ready {
        director.launch(index);
    }
    director.power_off_if_done();
    Ok(director)
}

impl Director {
    /// Creates VM `index` and queues its vCPUs on their CPUs. A VM that cannot be
    /// created is reported and counts as failed; the others go on.
    fn launch(&self, index: usize) {
        let config = &self.config.vms[index];
        let mut lifecycle = self.lifecycle.lock();
        let Some(vmid) = (1..=MAX_VMID).find(|&id| !lifecycle.vmids_in_use[id as usize]) else {
            log::error!("vm {}: no free VMID", config.name);
            lifecycle.states[index] = VmState::Failed;
            return;
        };
        let shared: Vec<Arc<SharedMemory>> = lifecycle.shared.iter().map(|s| s.clone().expect("region in use")).collect();
        let image = self.bundle.file(&config.image).unwrap_or(&[]);
        match Vm::create(index, config, image, &shared, vmid, self.shape, &self.mte) {
            Ok(vm) => {
                lifecycle.vmids_in_use[vmid as usize] = true;
                lifecycle.states[index] = VmState::Running;
                log::info!(
                    "vm {} started: VMID {vmid}, {} MiB RAM, {} vCPU(s) on CPU(s) {:?}, MTE {}",
                    config.name,
                    config.memory_bytes >> 20,
                    config.cpus.len(),
                    config.cpus,
                    if vm.mte { "on" } else { "off" }
                );
                drop(lifecycle);
                for (vcpu_index, &pcpu) in config.cpus.iter().enumerate() {
                    let vcpu = Box::new(Vcpu::new(vm.clone(), vcpu_index, config.arg));
                    self.incoming[pcpu].lock().push(vcpu);
                }
                aarch64_cpu::asm::sev();
            }
            Err(error) => {
                log::error!("vm {}: cannot create: {error}", config.name);
                lifecycle.states[index] = VmState::Failed;
            }
        }
    }

    /// Called by the scheduler when a vCPU has stopped for good.
    pub fn vcpu_stopped(&self, vcpu: Box<Vcpu>) {
        let vm = vcpu.vm.clone();
        drop(vcpu);
        if vm.live_vcpus.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let status = vm.exit_status.load(Ordering::Acquire);
        let (index, name, vmid) = (vm.index, vm.name.clone(), vm.vmid);
        crate::println!("vm {name} stopped with status {status}: {}", vm.stats);
        vm.destroy(&self.tag_state);

        let to_launch = {
            let mut lifecycle = self.lifecycle.lock();
            lifecycle.states[index] = VmState::Stopped { status };
            lifecycle.vmids_in_use[vmid as usize] = false;
            for &region in &self.config.vms[index].shared {
                lifecycle.shared_users[region] -= 1;
                if lifecycle.shared_users[region] == 0
                    && let Some(memory) = lifecycle.shared[region].take() {
                        self.free_shared(memory);
                    }
            }
            (0..self.config.vms.len())
                .filter(|&i| self.config.vms[i].after == Some(index) && lifecycle.states[i] == VmState::Pending)
                .collect::<Vec<_>>()
        };
        for next in to_launch {
            self.launch(next);
        }
        self.power_off_if_done();
    }

    fn free_shared(&self, memory: Arc<SharedMemory>) {
        match Arc::try_unwrap(memory) {
            Ok(memory) => {
                for (pa, size) in memory.runs() {
                    let _ = self.tag_state.clear(pa, size);
                }
                memory.free(&mut GlobalFrames);
            }
            Err(memory) => log::error!("shared region {} still referenced; not freed", memory.name),
        }
    }

    /// Powers the machine off once no VM runs or waits; the exit status says
    /// whether every VM stopped with status 0.
    fn power_off_if_done(&self) {
        let mut lifecycle = self.lifecycle.lock();
        // VMs waiting for one that failed to start can never run.
        loop {
            let blocked = (0..lifecycle.states.len()).find(|&i| {
                lifecycle.states[i] == VmState::Pending
                    && self.config.vms[i].after.is_some_and(|after| lifecycle.states[after] == VmState::Failed)
            });
            let Some(blocked) = blocked else { break };
            log::error!("vm {}: not started, the VM it runs after failed", self.config.vms[blocked].name);
            lifecycle.states[blocked] = VmState::Failed;
        }
        let done = lifecycle.states.iter().all(|s| matches!(s, VmState::Stopped { .. } | VmState::Failed));
        if !done {
            return;
        }
        let failures = lifecycle.states.iter().filter(|s| !matches!(s, VmState::Stopped { status: 0 })).count();
        drop(lifecycle);
        let counters = self.tag_state.counters();
        crate::println!(
            "all VMs stopped ({failures} failed); sanitiser: {} lock acquisitions, {} contended, {} fast-path hits, {} frames zeroed",
            counters.lock_acquisitions,
            counters.contended_acquisitions,
            counters.fast_path_hits,
            counters.frames_zeroed
        );
        crate::console::flush();
        let outcome = if failures == 0 { crate::arch::aarch64::power::Outcome::Success } else { crate::arch::aarch64::power::Outcome::Failure };
        crate::arch::aarch64::power::power_off(outcome)
    }
}
