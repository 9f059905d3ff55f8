//! QEMU `virt`'s virtio-mmio transports, all empty: software written for `virt`
//! probes them (Linux, from the device tree; benchmarks, to time an MMIO exit)
//! and expects each to answer as a transport with no device behind it (Virtio
//! 1.2, 4.2.2 "MMIO Device Register Layout": magic "virt", device ID 0, which a
//! driver must ignore; version 1, the legacy layout, as QEMU's answer). Everything else reads as zero and ignores
//! writes, as QEMU's transport without a backend does.

use crate::vm::mmio::{MmioDevice, MmioEffects};

/// `MagicValue` (offset 0x000): "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// `Version` (0x004): 1, the legacy interface, which is what QEMU `virt`'s
/// transports report (`virtio-mmio` defaults to `force-legacy`); a guest
/// probing an empty slot sees what it sees there.
pub const VERSION: u32 = 1;
/// `VendorID` (0x00c): QEMU's ("QEMU" in little-endian), as on `virt`.
pub const VENDOR_ID: u32 = 0x554D_4551;

const MAGIC_VALUE: u64 = 0x000;
const VERSION_REGISTER: u64 = 0x004;
const DEVICE_ID: u64 = 0x008;
const VENDOR_ID_REGISTER: u64 = 0x00C;
/// Registers below this offset are 32-bit; from it on is device configuration
/// space, which an empty transport does not have.
const CONFIG_SPACE: u64 = 0x100;

/// Every empty transport (the bus window number is the transport's index; they
/// hold no state).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EmptyTransports;

impl MmioDevice for EmptyTransports {
    fn mmio_read(&mut self, _window: usize, offset: u64, size: u8, effects: &mut MmioEffects) -> u64 {
        if offset < CONFIG_SPACE && size != 4 {
            // The register interface is 32-bit only: a narrower or wider access reads as zero.
            effects.unhandled = true;
            return 0;
        }
        u64::from(match offset {
            MAGIC_VALUE => MAGIC,
            VERSION_REGISTER => VERSION,
            DEVICE_ID => 0,
            VENDOR_ID_REGISTER => VENDOR_ID,
            _ => 0,
        })
    }

    fn mmio_write(&mut self, _window: usize, _offset: u64, _size: u8, _value: u64, _effects: &mut MmioEffects) {
        // Nothing to configure: there is no device to reset, select or notify.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_transport_identifies_itself_and_nothing_more() {
        let mut transports = EmptyTransports;
        let mut effects = MmioEffects::default();
        let mut read = |offset, size| transports.mmio_read(31, offset, size, &mut effects);
        assert_eq!(read(0x000, 4), 0x7472_6976);
        assert_eq!(read(0x004, 4), 1, "legacy, as on QEMU virt");
        assert_eq!(read(0x008, 4), 0, "no device");
        assert_eq!(read(0x00C, 4), 0x554D_4551);
        assert_eq!(read(0x070, 4), 0, "Status");
        assert_eq!(read(0x000, 1), 0, "byte access to a register");
        assert_eq!(read(0x1FC, 1), 0, "configuration space");
        transports.mmio_write(0, 0x070, 4, 0xFF, &mut MmioEffects::default());
        assert_eq!(transports.mmio_read(0, 0x070, 4, &mut MmioEffects::default()), 0);
    }
}
