//! Finding which level of the guest's own (stage-1) translation walk read a
//! table at a given IPA. When that read faults at stage 2 outside the guest's
//! memory, the architecture reports a synchronous external abort *on a
//! translation table walk* with that level (DFSC/IFSC `0b0101LL`, Arm ARM
//! D17.2.40 ESR_ELx ISS); to inject the same, the hypervisor replays the walk
//! from the guest's TTBR/TCR. Everything here is guest-controlled: the walk
//! reads at most four descriptors, through guest RAM only, and gives up on
//! anything it does not model (granules other than 4 KiB, disabled walks).

/// The guest's EL1 translation controls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct El1Translation {
    pub ttbr0: u64,
    pub ttbr1: u64,
    pub tcr: u64,
}

const PAGE_SHIFT: u32 = 12;
const BITS_PER_LEVEL: u32 = 9;
/// Output address bits [47:12] of a table descriptor or TTBR (48-bit OA).
const ADDRESS_MASK: u64 = 0x0000_FFFF_FFFF_F000;

/// The level (0..=3) at which the walk for `va` reads a table in the page
/// holding `table_ipa`, if the guest's tables lead there. `read` returns the
/// 64-bit descriptor at an IPA of guest RAM (`None` outside it).
pub fn level_reading(
    controls: El1Translation,
    va: u64,
    table_ipa: u64,
    mut read: impl FnMut(u64) -> Option<u64>,
) -> Option<u8> {
    let upper = va & (1 << 55) != 0;
    let (size_offset, granule, disabled, ttbr) = if upper {
        (tcr_field(controls.tcr, 16, 6), tcr_field(controls.tcr, 30, 2), controls.tcr & (1 << 23) != 0, controls.ttbr1)
    } else {
        // TG0 encodes 4 KiB as 0b00, TG1 as 0b10: normalise to TG1's encoding.
        let tg0 = match tcr_field(controls.tcr, 14, 2) {
            0b00 => 0b10, // 4 KiB
            0b01 => 0b11, // 64 KiB
            0b10 => 0b01, // 16 KiB
            _ => 0b00,    // reserved
        };
        (tcr_field(controls.tcr, 0, 6), tg0, controls.tcr & (1 << 7) != 0, controls.ttbr0)
    };
    if disabled || granule != 0b10 || !(16..=39).contains(&size_offset) {
        return None;
    }
    let input_bits = 64 - size_offset as u32;
    let levels = (input_bits - PAGE_SHIFT).div_ceil(BITS_PER_LEVEL);
    let start = 4 - levels;
    let page = table_ipa >> PAGE_SHIFT;
    let mut table = ttbr & ADDRESS_MASK;
    for level in start..=3 {
        if table >> PAGE_SHIFT == page {
            return Some(level as u8);
        }
        if level == 3 {
            return None;
        }
        let shift = PAGE_SHIFT + BITS_PER_LEVEL * (3 - level);
        let index_bits = if level == start { input_bits - shift } else { BITS_PER_LEVEL };
        let index = (va >> shift) & ((1 << index_bits) - 1);
        let descriptor = read(table + index * 8)?;
        // Only a valid table descriptor leads further down.
        if descriptor & 0b11 != 0b11 {
            return None;
        }
        table = descriptor & ADDRESS_MASK;
    }
    None
}

fn tcr_field(tcr: u64, shift: u32, bits: u32) -> u64 {
    (tcr >> shift) & ((1 << bits) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// T0SZ = 25 (39-bit VA, walk starts at level 1), TG0 = 4 KiB.
    const TCR_39_BIT: u64 = 25;

    fn tables(entries: &[(u64, u64)]) -> impl FnMut(u64) -> Option<u64> + '_ {
        move |ipa| entries.iter().find(|(at, _)| *at == ipa).map(|&(_, d)| d).or(Some(0))
    }

    #[test]
    fn finds_the_level_of_a_table_outside_ram() {
        let controls = El1Translation { ttbr0: 0x4010_0000, tcr: TCR_39_BIT, ..Default::default() };
        let va = 0x4000_1000u64; // L1 index 1, L2 index 0
        // The L1 entry for VA 1 GiB points at a level-2 table at 0x0B00_0000, outside RAM.
        let read = tables(&[(0x4010_0000 + 8, 0x0B00_0000 | 0b11)]);
        assert_eq!(level_reading(controls, va, 0x0B00_0000, read), Some(2));
        // The root itself.
        assert_eq!(level_reading(controls, va, 0x4010_0000, tables(&[])), Some(1));
    }

    #[test]
    fn gives_up_on_what_it_does_not_model() {
        let controls = El1Translation { ttbr0: 0x4010_0000, tcr: TCR_39_BIT, ..Default::default() };
        // A block at L1: no table below it.
        let read = tables(&[(0x4010_0000 + 8, 0x4000_0000 | 0b01)]);
        assert_eq!(level_reading(controls, 0x4000_1000, 0x0B00_0000, read), None);
        // 64 KiB granule (TG0 = 0b01), walks disabled (EPD0), absurd sizes.
        for tcr in [TCR_39_BIT | (0b01 << 14), TCR_39_BIT | (1 << 7), 0, 63] {
            let controls = El1Translation { tcr, ..controls };
            assert_eq!(level_reading(controls, 0x4000_1000, 0x4010_0000, tables(&[])), None, "{tcr:#x}");
        }
        // A descriptor that cannot be read (outside RAM) ends the walk.
        assert_eq!(level_reading(controls, 0x4000_1000, 0x0B00_0000, |_| None), None);
    }

    #[test]
    fn the_upper_range_uses_ttbr1() {
        // T1SZ = 16 (48-bit), TG1 = 4 KiB (0b10): four levels from 0.
        let tcr = (16 << 16) | (0b10 << 30);
        let controls = El1Translation { ttbr1: 0x4020_0000, tcr, ..Default::default() };
        assert_eq!(level_reading(controls, u64::MAX, 0x4020_0000, tables(&[])), Some(0));
        assert_eq!(level_reading(controls, 0, 0x4020_0000, tables(&[])), None, "TTBR0's range: disabled TG");
    }
}
