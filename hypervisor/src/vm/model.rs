//! The portable half of a VM: what its guest can see and change (the device
//! models on its MMIO bus, its vCPUs' power state), its statistics and whether
//! it is stopping. The runtime's `Vm` adds the hardware half (VMID, stage-2
//! tables, EL2 controls) around it; exit handlers and host tests only need this.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use hv_abi::machine;
use spin::Mutex;

use crate::mm::Ipa;

use super::mmio::{BusError, DeviceId, MmioBus, MmioEffects};
use super::rate_limit::{RateLimiter, Verdict};
use super::stats::VmStats;
use super::vgic::Vgic;
use super::virtio_mmio::EmptyTransports;
use super::vpl011::VPl011;
use super::vpsci::VmPsci;

/// Who a VM is and what it has, as its configuration says.
#[derive(Debug, Clone)]
pub struct VmIdentity {
    /// Index of the VM in the configuration.
    pub index: usize,
    pub name: String,
    /// The VM has MTE (configured so, and the machine has tag storage).
    pub mte: bool,
    pub ram_bytes: u64,
    /// Physical CPU of each vCPU.
    pub hosts: Vec<usize>,
    /// How many `SYSTEM_RESET`s came before this boot (`HV_STAT` `BootCount`).
    pub boot_count: u64,
}

pub struct VmModel {
    pub identity: VmIdentity,
    /// Where each emulated device sits in the guest-physical map.
    pub bus: MmioBus,
    pub vgic: Mutex<Vgic>,
    pub psci: Mutex<VmPsci>,
    pub uart: Mutex<VPl011>,
    /// Pending `CPU_ON` requests, per vCPU: (entry point, context ID).
    pub start_requests: Mutex<Vec<Option<(u64, u64)>>>,
    pub stats: VmStats,
    /// Set when any vCPU stops the VM; the others stop at their next exit.
    pub stopping: AtomicBool,
    /// The stop is a `SYSTEM_RESET`: create the VM again from its images.
    pub reset_requested: AtomicBool,
    pub exit_status: AtomicI64,
    /// Bumped whenever interrupt state changes (a line moves, a register write,
    /// an SGI): a vCPU refills its list registers only when this moved or one of
    /// them retired, which keeps the common exit path (MMIO, hypercalls) cheap.
    pub interrupt_generation: AtomicU64,
    /// Last level driven onto the PL011's interrupt line.
    uart_line: AtomicBool,
    /// Budget for the VM's diagnostics on the shared console.
    log_limit: Mutex<RateLimiter>,
}

impl VmModel {
    /// A VM at reset: every device at its reset state, only vCPU 0 powered on.
    pub fn new(identity: VmIdentity) -> Result<Self, BusError> {
        let vcpus = identity.hosts.len();
        let vgic = Vgic::new(vcpus);
        let mut bus = MmioBus::new();
        vgic.register_windows(&mut bus)?;
        bus.register(machine::UART_BASE, machine::UART_SIZE, DeviceId::Uart, 0)?;
        for n in 0..machine::VIRTIO_MMIO_COUNT {
            let base = machine::VIRTIO_MMIO_BASE + n as u64 * machine::VIRTIO_MMIO_SIZE;
            bus.register(base, machine::VIRTIO_MMIO_SIZE, DeviceId::VirtioMmio, n)?;
        }
        Ok(Self {
            identity,
            bus,
            vgic: Mutex::new(vgic),
            psci: Mutex::new(VmPsci::new(vcpus)),
            uart: Mutex::new(VPl011::new()),
            start_requests: Mutex::new(alloc::vec![None; vcpus]),
            stats: VmStats::default(),
            stopping: AtomicBool::new(false),
            reset_requested: AtomicBool::new(false),
            exit_status: AtomicI64::new(0),
            interrupt_generation: AtomicU64::new(1),
            uart_line: AtomicBool::new(false),
            log_limit: Mutex::new(RateLimiter::new()),
        })
    }

    pub fn vcpu_count(&self) -> usize {
        self.identity.hosts.len()
    }

    /// Performs a guest load (`value` = `None`) or store of `size` bytes at `ipa`
    /// on the device that decodes it: `None` if no device does.
    pub fn mmio(&self, ipa: Ipa, size: u8, value: Option<u64>) -> Option<(u64, MmioEffects, DeviceId)> {
        let hit = self.bus.find(ipa.as_u64())?;
        let (read, effects) = match hit.device {
            DeviceId::Vgic => MmioBus::access(&mut *self.vgic.lock(), hit, size, value),
            DeviceId::Uart => MmioBus::access(&mut *self.uart.lock(), hit, size, value),
            DeviceId::VirtioMmio => MmioBus::access(&mut EmptyTransports, hit, size, value),
        };
        Some((read, effects, hit.device))
    }

    /// Logs a diagnostic about something the guest did, rate limited per VM (the
    /// guest decides how often it happens; the console is shared): a burst, then
    /// a few lines a second, with a count of what was dropped. `now` and
    /// `frequency` are the generic counter's.
    pub fn diagnostic_at(&self, (now, frequency): (u64, u64), level: log::Level, message: core::fmt::Arguments) {
        if !log::log_enabled!(level) {
            return;
        }
        // Only this VM's vCPUs contend for its limiter, and only for a few instructions.
        let verdict = self.log_limit.lock().check(now, frequency);
        match verdict {
            Verdict::Drop => {}
            Verdict::Print { suppressed: 0 } => log::log!(level, "vm {}: {message}", self.identity.name),
            Verdict::Print { suppressed } => {
                log::log!(level, "vm {}: {message} ({suppressed} earlier messages suppressed)", self.identity.name)
            }
        }
    }

    /// Records that interrupt state changed (see [`VmModel::interrupt_generation`]).
    pub fn interrupts_changed(&self) {
        self.interrupt_generation.fetch_add(1, Ordering::Release);
    }

    /// Marks the VM stopping with `status`. Returns true for the first request
    /// (whose status wins): the caller then kicks every CPU in [`VmModel::hosts`].
    pub fn request_stop(&self, status: i64) -> bool {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.exit_status.store(status, Ordering::Release);
        true
    }

    /// Drives the PL011's interrupt line (SPI 33) from the UART model. Returns
    /// the physical CPU to kick if the interrupt became deliverable to a vCPU.
    pub fn update_uart_line(&self) -> Option<usize> {
        let level = self.uart.lock().irq_level();
        if self.uart_line.swap(level, Ordering::AcqRel) == level {
            return None;
        }
        let kick = self.vgic.lock().set_level(machine::UART_INTID, 0, level);
        self.interrupts_changed();
        self.identity.hosts.get(kick?).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn model(vcpus: usize) -> VmModel {
        VmModel::new(VmIdentity {
            index: 0,
            name: "test".into(),
            mte: true,
            ram_bytes: 64 << 20,
            hosts: (0..vcpus).collect(),
            boot_count: 0,
        })
        .unwrap()
    }

    #[test]
    fn the_bus_reaches_the_vgic_and_the_uart() {
        let vm = model(2);
        // GICD_PIDR2 says GICv3; the PL011's PeriphID0 is 0x11.
        assert_eq!(
            vm.mmio(Ipa::new(machine::GICD_BASE + 0xFFE8), 4, None).map(|(v, _, d)| (v, d)),
            Some((0x3B, DeviceId::Vgic))
        );
        assert_eq!(
            vm.mmio(Ipa::new(machine::UART_BASE + 0xFE0), 4, None).map(|(v, _, d)| (v, d)),
            Some((0x11, DeviceId::Uart))
        );
        assert!(vm.mmio(Ipa::new(machine::UART_BASE + machine::UART_SIZE), 4, None).is_none());
    }

    #[test]
    fn the_first_stop_request_wins() {
        let vm = model(1);
        assert!(vm.request_stop(3));
        assert!(!vm.request_stop(5));
        assert_eq!(vm.exit_status.load(Ordering::Relaxed), 3);
    }
}
