//! The guest's MMIO bus: every emulated device implements [`MmioDevice`] and is
//! registered once at the guest-physical windows it decodes; a trapped access is
//! routed by one lookup ([`MmioBus::find`]) to the device and window it hit, with
//! the offset into that window. Devices never look the address up again.
//!
//! A device may own several windows (the vGIC: its Distributor and one
//! Redistributor per vCPU); the bus hands it the window's number, in the order
//! the device registered them.

use alloc::vec::Vec;

use arrayvec::ArrayVec;

/// Which of the VM's device models a window belongs to. The VM holds each model
/// behind its own lock; the bus names it, the VM resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceId {
    Vgic,
    Uart,
    /// The empty virtio-mmio transports (stateless: no lock).
    VirtioMmio,
}

/// Where an access landed: the device, its window, and the offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub device: DeviceId,
    pub window: usize,
    pub offset: u64,
}

/// What an access did, beyond its value.
#[derive(Debug, Default)]
pub struct MmioEffects {
    /// Bytes the device sends out (the PL011's transmitter), at most 8 per access.
    pub output: ArrayVec<u8, 8>,
    /// Interrupt state that affects delivery changed: look for newly deliverable
    /// interrupts and kick the vCPUs' CPUs.
    pub interrupts_changed: bool,
    /// The access hit a reserved offset or used a size the register does not
    /// allow: it read as zero or was ignored (worth a rate-limited log line).
    pub unhandled: bool,
    /// The device does not decode the access at all: the guest gets a
    /// synchronous external abort, as from a bus that answers with an error.
    pub external_abort: bool,
}

/// An emulated device on the bus.
pub trait MmioDevice {
    /// A read of `size` bytes (1, 2, 4 or 8) at `offset` in the device's
    /// `window`. Returns the value, zero-extended.
    fn mmio_read(&mut self, window: usize, offset: u64, size: u8, effects: &mut MmioEffects) -> u64;

    /// A write of the low `size` bytes of `value` at `offset` in `window`.
    fn mmio_write(&mut self, window: usize, offset: u64, size: u8, value: u64, effects: &mut MmioEffects);
}

/// One registered window.
#[derive(Debug, Clone, Copy)]
struct Window {
    base: u64,
    size: u64,
    device: DeviceId,
    window: usize,
}

impl Window {
    fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// Why a window could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusError {
    /// Empty, or it wraps the top of the address space.
    BadWindow { base: u64, size: u64 },
    /// It overlaps an already registered window.
    Overlap { base: u64, size: u64 },
}

impl core::fmt::Display for BusError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadWindow { base, size } => write!(f, "MMIO window {base:#x}+{size:#x} is empty or wraps"),
            Self::Overlap { base, size } => write!(f, "MMIO window {base:#x}+{size:#x} overlaps another device"),
        }
    }
}

/// The VM's device windows, sorted by base address.
#[derive(Debug, Clone, Default)]
pub struct MmioBus {
    windows: Vec<Window>,
}

impl MmioBus {
    pub const fn new() -> Self {
        Self { windows: Vec::new() }
    }

    /// Registers `device`'s `window` at `base`..`base + size`.
    pub fn register(&mut self, base: u64, size: u64, device: DeviceId, window: usize) -> Result<(), BusError> {
        if size == 0 || base.checked_add(size).is_none() {
            return Err(BusError::BadWindow { base, size });
        }
        let new = Window { base, size, device, window };
        let at = self.windows.partition_point(|w| w.base < base);
        let overlaps_previous = at > 0 && self.windows[at - 1].end() > base;
        let overlaps_next = self.windows.get(at).is_some_and(|next| next.base < new.end());
        if overlaps_previous || overlaps_next {
            return Err(BusError::Overlap { base, size });
        }
        self.windows.insert(at, new);
        Ok(())
    }

    /// The device window that decodes `ipa`, if any.
    pub fn find(&self, ipa: u64) -> Option<Hit> {
        let at = self.windows.partition_point(|w| w.base <= ipa);
        let window = self.windows.get(at.checked_sub(1)?)?;
        (ipa < window.end()).then(|| Hit { device: window.device, window: window.window, offset: ipa - window.base })
    }

    /// Performs a read (`value` = `None`) or write on `device` at `hit`: the
    /// value read (zero for a write) and what the access did.
    pub fn access(device: &mut impl MmioDevice, hit: Hit, size: u8, value: Option<u64>) -> (u64, MmioEffects) {
        let mut effects = MmioEffects::default();
        let read = match value {
            Some(value) => {
                device.mmio_write(hit.window, hit.offset, size, value, &mut effects);
                0
            }
            None => device.mmio_read(hit.window, hit.offset, size, &mut effects),
        };
        (read, effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus() -> MmioBus {
        let mut bus = MmioBus::new();
        bus.register(0x0900_0000, 0x1000, DeviceId::Uart, 0).unwrap();
        bus.register(0x0800_0000, 0x1_0000, DeviceId::Vgic, 0).unwrap();
        bus.register(0x080A_0000, 0x2_0000, DeviceId::Vgic, 1).unwrap();
        bus.register(0x080C_0000, 0x2_0000, DeviceId::Vgic, 2).unwrap();
        bus
    }

    #[test]
    fn finds_the_window_and_offset_once() {
        let bus = bus();
        assert_eq!(bus.find(0x0800_0004), Some(Hit { device: DeviceId::Vgic, window: 0, offset: 4 }));
        assert_eq!(bus.find(0x080B_FFFC), Some(Hit { device: DeviceId::Vgic, window: 1, offset: 0x1_FFFC }));
        assert_eq!(bus.find(0x080C_0000), Some(Hit { device: DeviceId::Vgic, window: 2, offset: 0 }));
        assert_eq!(bus.find(0x0900_0FFF), Some(Hit { device: DeviceId::Uart, window: 0, offset: 0xFFF }));
    }

    #[test]
    fn gaps_and_edges_are_not_devices() {
        let bus = bus();
        for ipa in [0, 0x07FF_FFFF, 0x0801_0000, 0x080E_0000, 0x0900_1000, u64::MAX] {
            assert_eq!(bus.find(ipa), None, "{ipa:#x}");
        }
    }

    #[test]
    fn overlapping_or_wrapping_windows_are_refused() {
        let mut bus = bus();
        assert_eq!(
            bus.register(0x0800_F000, 0x2000, DeviceId::Uart, 1),
            Err(BusError::Overlap { base: 0x0800_F000, size: 0x2000 })
        );
        assert_eq!(
            bus.register(0x07FF_F000, 0x2000, DeviceId::Uart, 1),
            Err(BusError::Overlap { base: 0x07FF_F000, size: 0x2000 })
        );
        assert!(matches!(bus.register(u64::MAX - 1, 4, DeviceId::Uart, 1), Err(BusError::BadWindow { .. })));
        assert!(matches!(bus.register(0x1000, 0, DeviceId::Uart, 1), Err(BusError::BadWindow { .. })));
        // Adjacent is fine.
        bus.register(0x0801_0000, 0x1000, DeviceId::Uart, 1).unwrap();
        assert_eq!(bus.find(0x0801_0000).map(|h| h.window), Some(1));
    }
}
