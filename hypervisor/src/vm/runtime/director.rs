//! The set of VMs from the boot bundle: creating them (some only after another
//! has stopped), handing their vCPUs to the CPUs they are pinned to, tearing them
//! down, and powering off when the last one is gone.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use spin::{Mutex, Once};

use super::console_input::ConsoleInput;
use super::host::Host;
use super::vcpu::Vcpu;
use super::virtual_machine::{Images, Incarnation, Vm};
use crate::arch::aarch64::{cpu, gic, sanitise};
use crate::bundle::Bundle;
use crate::config::Config;
use crate::cpus::MAX_CPUS;
use crate::mm::page_table::Stage2Shape;
use crate::mm::tag_state::TagStateMap;
use crate::mte::MteInfo;
use crate::platform::PhysRange;
use crate::shutdown::{Outcome, power_off};
use crate::vm::events::EventDomains;
use crate::vm::memory::SharedMemory;
use crate::vm::runtime::stage2::GlobalFrames;
use crate::vm::vgic::vcpu_lrs::MAX_LIST_REGISTERS;

/// 8-bit VMIDs; 0 is never given to a VM.
const MAX_VMID: u16 = 255;

/// Lifecycle of one configured VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VmState {
    /// Waiting for the VM it runs `after`.
    Pending,
    Running,
    Stopped {
        status: i64,
    },
    /// Could not be created; counts as stopped with a failure.
    Failed,
}

struct Lifecycle {
    states: Vec<VmState>,
    /// How many times each VM has been (re)started.
    boots: Vec<u64>,
    vmids_in_use: [bool; MAX_VMID as usize + 1],
    /// VMs that still need each shared region (running or pending).
    shared_users: Vec<usize>,
    shared: Vec<Option<Arc<SharedMemory>>>,
    /// A CPU found every VM stopped and is powering the machine off.
    powering_off: bool,
}

/// Everything the CPUs share while running guests.
pub struct Director {
    config: Config,
    bundle: Bundle<'static>,
    /// What the CPUs read while running vCPUs.
    pub host: Host,
    shape: Stage2Shape,
    lifecycle: Mutex<Lifecycle>,
    /// vCPUs handed to each physical CPU, picked up by its scheduler loop.
    pub incoming: [Mutex<Vec<Box<Vcpu>>>; MAX_CPUS],
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
        let memory =
            SharedMemory::allocate(&region.name, region.size, region.mapping_bytes, &mut GlobalFrames, |pa, len| {
                sanitise::zero_data(pa.as_u64(), len, &mte);
                // VMs without MTE map it as is, and may read it with caches off.
                crate::arch::aarch64::cache::clean_to_poc(pa.as_u64(), len);
            })
            .map_err(|e| StartError::SharedMemory(region.name.clone(), e))?;
        log::info!(
            "shared region {}: {} MiB, mapped in {} KiB units",
            region.name,
            region.size >> 20,
            region.mapping_bytes >> 10
        );
        shared.push(Some(Arc::new(memory)));
        shared_users.push(config.vms.iter().filter(|vm| vm.shared.contains(&index)).count());
    }
    let states = config.vms.iter().map(|_| VmState::Pending).collect();
    let boots = config.vms.iter().map(|_| 0).collect();
    let director = DIRECTOR.call_once(|| Director {
        bundle,
        host: Host {
            mte,
            tag_state: TagStateMap::new(ram),
            events: EventDomains::new(&config.vms.iter().map(|vm| vm.shared.as_slice()).collect::<Vec<_>>()),
            list_registers: gic::list_register_count().min(MAX_LIST_REGISTERS),
            pointer_authentication: crate::arch::aarch64::guest::has_pointer_authentication(),
            wfxt: crate::arch::aarch64::guest::has_wfxt(),
            console: ConsoleInput::new(),
        },
        shape: Stage2Shape::from_pa_range(cpu::pa_range()),
        lifecycle: Mutex::new(Lifecycle {
            states,
            boots,
            vmids_in_use: [false; MAX_VMID as usize + 1],
            shared_users,
            shared,
            powering_off: false,
        }),
        incoming: [const { Mutex::new(Vec::new()) }; MAX_CPUS],
        config,
    });
    if let Some(spi) = gic::layout().console_spi {
        gic::enable_spi_here(spi);
        crate::console::enable_input_interrupt();
    }
    log::info!(
        "{} VM(s) configured; stage 2: {}-bit IPA, walks start at level {}",
        director.config.vms.len(),
        director.shape.ipa_bits,
        director.shape.start_level
    );
    let ready: Vec<usize> =
        (0..director.config.vms.len()).filter(|&i| director.config.vms[i].after.is_none()).collect();
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
        // The regions this VM names, in its order; they stay allocated while any
        // running or pending VM names them.
        let Some(shared) = config.shared.iter().map(|&i| lifecycle.shared[i].clone()).collect::<Option<Vec<_>>>()
        else {
            log::error!("vm {}: a shared region it names was already freed", config.name);
            lifecycle.states[index] = VmState::Failed;
            return;
        };
        // validate_against checked that the bundle holds every file named.
        let images = Images {
            kernel: self.bundle.file(&config.image).unwrap_or(&[]),
            initrd: config.initrd.as_deref().and_then(|name| self.bundle.file(name)),
        };
        // Linux guests learn which boot this is (SYSTEM_RESET restarts count up).
        let boot_number = lifecycle.boots[index];
        lifecycle.boots[index] += 1;
        // The VMID is taken now; the VM is built without the lifecycle lock, which
        // every stopping VM needs (copying a Linux kernel and initramfs takes a
        // good fraction of a second).
        lifecycle.vmids_in_use[vmid as usize] = true;
        drop(lifecycle);
        let created = Vm::create(
            index,
            config,
            &images,
            &shared,
            Incarnation { vmid, boot_count: boot_number },
            self.shape,
            &self.host.mte,
        );
        let mut lifecycle = self.lifecycle.lock();
        match created {
            Ok(vm) => {
                lifecycle.states[index] = VmState::Running;
                log::info!(
                    "vm {} started: VMID {vmid}, {} MiB RAM, {} vCPU(s) on CPU(s) {:?}, MTE {}",
                    config.name,
                    config.memory_bytes >> 20,
                    config.cpus.len(),
                    config.cpus,
                    if vm.identity.mte { "on" } else { "off" }
                );
                drop(lifecycle);
                self.host.console.offer(&vm);
                let vcpus: Vec<Box<Vcpu>> =
                    (0..config.cpus.len()).map(|vcpu_index| Box::new(Vcpu::new(vm.clone(), vcpu_index))).collect();
                // Only vCPUs hold the VM from here on, so the last one to stop destroys it.
                drop(vm);
                for (vcpu, &pcpu) in vcpus.into_iter().zip(&config.cpus) {
                    self.incoming[pcpu].lock().push(vcpu);
                }
                aarch64_cpu::asm::sev();
                super::kick::kick_cpus(&config.cpus);
            }
            Err(error) => {
                log::error!("vm {}: cannot create: {error}", config.name);
                lifecycle.vmids_in_use[vmid as usize] = false;
                lifecycle.states[index] = VmState::Failed;
                self.release_shared(&mut lifecycle, index);
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
        // From here on nothing may take a new reference: console input finds the
        // VM through its weak link, so that link goes first (under its lock, which
        // every upgrade takes). Other CPUs may still hold the VM for a moment (a
        // vCPU that stopped just before us, input delivery in progress); wait for
        // them to let go, then the VM is ours alone.
        self.host.console.withdraw(&vm);
        let mut vm = vm;
        let vm = loop {
            match Arc::try_unwrap(vm) {
                Ok(vm) => break vm,
                Err(still_shared) => {
                    vm = still_shared;
                    core::hint::spin_loop();
                }
            }
        };
        let status = vm.exit_status.load(Ordering::Acquire);
        let reset = vm.reset_requested.load(Ordering::Acquire);
        let (index, name, vmid) = (vm.identity.index, vm.identity.name.clone(), vm.vmid);
        crate::println!("vm {name} stopped with status {status}: {}", vm.stats);
        vm.destroy(&self.host.tag_state);
        if reset {
            crate::println!("vm {name} restarting (SYSTEM_RESET) with fresh memory");
            self.lifecycle.lock().vmids_in_use[vmid as usize] = false;
            self.launch(index);
            // The new instance may have failed to start and been the last VM.
            self.power_off_if_done();
            return;
        }

        let to_launch = {
            let mut lifecycle = self.lifecycle.lock();
            lifecycle.states[index] = VmState::Stopped { status };
            lifecycle.vmids_in_use[vmid as usize] = false;
            self.release_shared(&mut lifecycle, index);
            (0..self.config.vms.len())
                .filter(|&i| self.config.vms[i].after == Some(index) && lifecycle.states[i] == VmState::Pending)
                .collect::<Vec<_>>()
        };
        for next in to_launch {
            self.launch(next);
        }
        self.power_off_if_done();
    }

    /// VM `index` no longer needs its shared regions: free those no other VM needs.
    fn release_shared(&self, lifecycle: &mut Lifecycle, index: usize) {
        for &region in &self.config.vms[index].shared {
            lifecycle.shared_users[region] -= 1;
            if lifecycle.shared_users[region] == 0
                && let Some(memory) = lifecycle.shared[region].take()
            {
                self.free_shared(memory);
            }
        }
    }

    fn free_shared(&self, memory: Arc<SharedMemory>) {
        match Arc::try_unwrap(memory) {
            Ok(memory) => {
                for (pa, size) in memory.runs() {
                    let _ = self.host.tag_state.clear(pa, size);
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
            self.release_shared(&mut lifecycle, blocked);
        }
        let done = lifecycle.states.iter().all(|s| matches!(s, VmState::Stopped { .. } | VmState::Failed));
        // The last two VMs may stop at once on two CPUs: one of them reports.
        if !done || lifecycle.powering_off {
            return;
        }
        lifecycle.powering_off = true;
        let failures = lifecycle.states.iter().filter(|s| !matches!(s, VmState::Stopped { status: 0 })).count();
        drop(lifecycle);
        let counters = self.host.tag_state.counters();
        crate::println!(
            "all VMs stopped ({failures} failed); sanitiser: {} lock acquisitions, {} contended, {} fast-path hits, {} frames zeroed",
            counters.lock_acquisitions,
            counters.contended_acquisitions,
            counters.fast_path_hits,
            counters.frames_zeroed
        );
        crate::console::flush();
        power_off(if failures == 0 { Outcome::Success } else { Outcome::Failure })
    }
}
