//! The Memory Tagging Extension for the guests: the tag instructions as wrappers
//! with their safety contracts ([`insn`], aarch64 only) and the arithmetic on
//! tagged pointers they need (everywhere, so it is tested on the host).
//!
//! A logical tag lives in address bits `[59:56]`, which translation ignores under
//! top-byte-ignore (`TCR_ELx.TBI`); an allocation tag covers one [`GRANULE`] of
//! memory. Tags are `u8` values `0..=15`; addresses are `u64`, the register width
//! the instructions work on.
//!
//! Used by the bare-metal test guest (EL1) and by `mte-check` (Linux EL0). Only
//! [`insn::ldgm`] and [`insn::stgm`] are EL1-only.

#![cfg_attr(not(test), no_std)]

#[cfg(target_arch = "aarch64")]
pub mod insn;
#[cfg(target_arch = "aarch64")]
pub use insn::*;

/// Bytes covered by one allocation tag.
pub const GRANULE: u64 = 16;
/// Lowest bit of the logical tag in an address.
pub const TAG_SHIFT: u32 = 56;
/// The logical-tag bits `[59:56]` of an address.
pub const TAG_MASK: u64 = 0xf << TAG_SHIFT;
/// The address bits below the top byte: what translation uses under
/// top-byte-ignore, and what Linux reports as a fault address.
pub const ADDRESS_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// `addr` with its logical tag replaced by `tag` (its low four bits); every other
/// bit, including `[63:60]`, is kept.
pub const fn with_tag(addr: u64, tag: u8) -> u64 {
    (addr & !TAG_MASK) | (((tag & 0xf) as u64) << TAG_SHIFT)
}

/// The logical tag of `addr`.
pub const fn tag_of(addr: u64) -> u8 {
    ((addr & TAG_MASK) >> TAG_SHIFT) as u8
}

/// `addr` with logical tag 0.
pub const fn untagged(addr: u64) -> u64 {
    addr & !TAG_MASK
}

/// `ptr` with logical tag `tag`, keeping its provenance.
#[cfg(target_pointer_width = "64")]
pub fn with_tag_ptr<T>(ptr: *mut T, tag: u8) -> *mut T {
    ptr.map_addr(|addr| with_tag(addr as u64, tag) as usize)
}

/// The exclusion mask for [`insn::irg`] that leaves only `tag` to choose from
/// (bit n set = tag n excluded).
pub const fn exclude_all_but(tag: u8) -> u16 {
    !(1 << (tag & 0xf))
}

/// Where the tag of the granule at `addr` sits in the word `LDGM` reads and
/// `STGM` writes: four bits per granule, indexed by address bits `[7:4]`.
pub const fn tag_word_shift(addr: u64) -> u32 {
    4 * ((addr >> 4) & 0xf) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_go_in_bits_59_to_56_only() {
        assert_eq!(with_tag(0x4000_1230, 0xa), 0x0a00_0000_4000_1230);
        assert_eq!(tag_of(0x0a00_0000_4000_1230), 0xa);
        // A tag is four bits; the bits above it are the address's own.
        assert_eq!(with_tag(0x0500_0000_4000_0000, 0x13), 0x0300_0000_4000_0000);
        assert_eq!(with_tag(0xFFFF_FF80_0000_1000, 0), 0xF0FF_FF80_0000_1000);
        assert_eq!(tag_of(0xF3FF_FF80_0000_1000), 3);
        assert_eq!(untagged(0xF3FF_FF80_0000_1000), 0xF0FF_FF80_0000_1000);
        assert_eq!(untagged(with_tag(0x1234_5670, 9)), 0x1234_5670);
        assert_eq!(0x0a12_3456_789a_bcde & ADDRESS_MASK, 0x0012_3456_789a_bcde);
    }

    #[test]
    fn tagged_pointers_keep_their_address() {
        let mut word = 0u64;
        let ptr: *mut u64 = &mut word;
        let tagged = with_tag_ptr(ptr, 5);
        assert_eq!(tag_of(tagged.addr() as u64), 5);
        assert_eq!(untagged(tagged.addr() as u64), ptr.addr() as u64);
    }

    #[test]
    fn exclusion_masks_and_tag_words() {
        assert_eq!(exclude_all_but(7), 0xff7f);
        assert_eq!(exclude_all_but(0), 0xfffe);
        // Granule n of a 256-byte LDGM block is nibble n of the word.
        assert_eq!(tag_word_shift(0x4000_0000), 0);
        assert_eq!(tag_word_shift(0x4000_0010), 4);
        assert_eq!(tag_word_shift(0x4000_00f0), 60);
        assert_eq!(tag_word_shift(0x4000_0100), 0);
    }
}
