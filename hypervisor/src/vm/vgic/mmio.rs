//! The vGIC on the guest's MMIO bus: window 0 is the Distributor, window
//! `1 + n` vCPU n's Redistributor (`RD_base` and `SGI_base`, 128 KiB).

use super::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_FRAME_SIZE, MmioResult, Vgic};
use crate::vm::mmio::{BusError, DeviceId, MmioBus, MmioDevice, MmioEffects};

const DISTRIBUTOR_WINDOW: usize = 0;

impl Vgic {
    /// Registers the Distributor and every vCPU's Redistributor on `bus`.
    pub fn register_windows(&self, bus: &mut MmioBus) -> Result<(), BusError> {
        bus.register(GICD_BASE, GICD_SIZE, DeviceId::Vgic, DISTRIBUTOR_WINDOW)?;
        for vcpu in 0..self.vcpu_count() {
            let base = GICR_BASE + vcpu as u64 * GICR_FRAME_SIZE;
            bus.register(base, GICR_FRAME_SIZE, DeviceId::Vgic, DISTRIBUTOR_WINDOW + 1 + vcpu)?;
        }
        Ok(())
    }
}

fn record(result: MmioResult, effects: &mut MmioEffects) -> u64 {
    effects.interrupts_changed |= result.changed;
    effects.unhandled |= result.unhandled;
    result.value
}

impl MmioDevice for Vgic {
    fn mmio_read(&mut self, window: usize, offset: u64, size: u8, effects: &mut MmioEffects) -> u64 {
        let result = match window {
            DISTRIBUTOR_WINDOW => self.distributor_read(offset, size),
            frame => self.redistributor_read(frame - 1, offset, size),
        };
        record(result, effects)
    }

    fn mmio_write(&mut self, window: usize, offset: u64, size: u8, value: u64, effects: &mut MmioEffects) {
        let result = match window {
            DISTRIBUTOR_WINDOW => self.distributor_write(offset, size, value),
            frame => self.redistributor_write(frame - 1, offset, size, value),
        };
        record(result, effects);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_windows_match_the_vgic_regions() {
        let mut vgic = Vgic::new(2);
        let mut bus = MmioBus::new();
        vgic.register_windows(&mut bus).unwrap();
        for ipa in [0x0800_0000, 0x0800_FFFC, 0x080A_0000, 0x080C_FFE8, 0x080D_0100, 0x080E_0000, 0x0809_FFFC] {
            let via_bus = bus.find(ipa).map(|hit| MmioBus::access(&mut vgic, hit, 4, None).0);
            let direct = vgic.mmio_read(ipa, 4).map(|r| r.value);
            assert_eq!(via_bus, direct, "{ipa:#x}");
        }
        // A write through the bus reports the model's "changed".
        let hit = bus.find(0x080D_0100).unwrap();
        assert!(MmioBus::access(&mut vgic, hit, 4, Some(1)).1.interrupts_changed);
    }
}
