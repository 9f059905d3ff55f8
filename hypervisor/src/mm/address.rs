//! Typed addresses, one type per address space, so that a guest-physical address
//! cannot be handed to something that wants a physical one (or the reverse)
//! without a visible conversion.
//!
//! - [`PhysAddr`]: a physical address. What the frame allocator hands out, what
//!   translation tables point at, what the tag state is indexed by. The EL2 stage-1
//!   map is an identity map of RAM and devices (`arch/aarch64/mmu.rs`), so EL2 also
//!   uses a physical address as the virtual address that reaches it: the EL2
//!   translation tables take `PhysAddr` as their input ([`super::page_table`]), and
//!   [`PhysAddr::el2_pointer`] is the one place that turns one into a pointer.
//! - [`Ipa`]: an intermediate physical address, a guest-physical address. What a
//!   VM's stage-2 tables translate, what a stage-2 abort reports, what guests pass
//!   to hypercalls. Guest-chosen, so hostile: arithmetic on it is checked.
//! - [`GuestVa`]: a guest virtual address, translated by the guest's own stage 1
//!   (the PC, FAR_EL2). The hypervisor never walks those tables itself.
//!
//! Each is a `u64` underneath (`#[repr(transparent)]`), built with `new` and read
//! with `as_u64`; there is deliberately no `From<u64>`, and no conversion between
//! the address spaces other than through a translation.

use core::fmt;
use core::ops::{Add, Sub};

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u64);

        impl $name {
            /// The address whose numeric value is `raw`.
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            /// The numeric value, for registers, descriptors and arithmetic the
            /// type does not offer.
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// `self + bytes`, or `None` past the top of the 64-bit address space.
            pub const fn checked_add(self, bytes: u64) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(raw) => Some(Self(raw)),
                    None => None,
                }
            }

            /// Rounds down to a multiple of `align` (a power of two).
            pub const fn align_down(self, align: u64) -> Self {
                debug_assert!(align.is_power_of_two());
                Self(self.0 & !(align - 1))
            }

            /// Rounds up to a multiple of `align` (a power of two), or `None` if
            /// that is past the top of the address space.
            pub const fn align_up(self, align: u64) -> Option<Self> {
                debug_assert!(align.is_power_of_two());
                match self.0.checked_add(align - 1) {
                    Some(raw) => Some(Self(raw & !(align - 1))),
                    None => None,
                }
            }

            /// Whether the address is a multiple of `align` (a power of two).
            pub const fn is_aligned(self, align: u64) -> bool {
                debug_assert!(align.is_power_of_two());
                self.0 & (align - 1) == 0
            }

            /// The offset of the address within its `align`-aligned block (a power
            /// of two): `self - self.align_down(align)`.
            pub const fn offset_within(self, align: u64) -> u64 {
                debug_assert!(align.is_power_of_two());
                self.0 & (align - 1)
            }
        }

        /// `address + bytes` for offsets known to stay in range (inside a block or
        /// region already validated); overflow is a bug, caught by overflow checks.
        /// Use [`Self::checked_add`] for guest-chosen offsets.
        impl Add<u64> for $name {
            type Output = Self;

            fn add(self, bytes: u64) -> Self {
                Self(self.0 + bytes)
            }
        }

        /// The distance in bytes from `base` up to `self` (`self >= base`).
        impl Sub for $name {
            type Output = u64;

            fn sub(self, base: Self) -> u64 {
                self.0 - base.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        /// `{:x}` and `{:#x}` print the numeric value, as for a `u64`.
        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_type! {
    /// A physical address (see the module documentation).
    PhysAddr
}

address_type! {
    /// An intermediate physical (guest-physical) address: the input of a VM's
    /// stage-2 translation.
    Ipa
}

address_type! {
    /// A guest virtual address: the input of a guest's own stage-1 translation.
    GuestVa
}

impl PhysAddr {
    /// The pointer through which EL2 reaches this physical address. EL2 maps RAM
    /// and devices at their physical addresses (an identity map), so the pointer
    /// has the same value; dereferencing it is sound only where that map covers
    /// the address with suitable attributes, which the caller must know.
    pub const fn el2_pointer<T>(self) -> *mut T {
        self.0 as *mut T
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn arithmetic_and_alignment() {
        let pa = PhysAddr::new(0x4012_3456);
        assert_eq!(pa.align_down(0x1000), PhysAddr::new(0x4012_3000));
        assert_eq!(pa.align_up(0x20_0000), Some(PhysAddr::new(0x4020_0000)));
        assert_eq!(pa.offset_within(0x1000), 0x456);
        assert!(!pa.is_aligned(0x1000) && pa.align_down(0x1000).is_aligned(0x1000));
        assert_eq!(pa + 0x10, PhysAddr::new(0x4012_3466));
        assert_eq!(pa - PhysAddr::new(0x4000_0000), 0x12_3456);
        // An aligned address rounds to itself.
        assert_eq!(PhysAddr::new(0x2000).align_up(0x1000), Some(PhysAddr::new(0x2000)));
    }

    #[test]
    fn hostile_values_do_not_wrap() {
        let top = Ipa::new(u64::MAX - 0xfff);
        assert_eq!(top.checked_add(0xfff), Some(Ipa::new(u64::MAX)));
        assert_eq!(top.checked_add(0x1000), None);
        assert_eq!(Ipa::new(u64::MAX).align_up(0x1000), None);
        assert_eq!(Ipa::new(u64::MAX).align_down(0x1000), top);
    }

    #[test]
    fn ordered_and_printed_as_hex() {
        assert!(Ipa::new(0x1000) < Ipa::new(0x2000));
        assert_eq!(format!("{:?}", PhysAddr::new(0x4000_0000)), "PhysAddr(0x40000000)");
        assert_eq!(format!("{:?}", Ipa::new(0x900_0018)), "Ipa(0x9000018)");
        assert_eq!(format!("{:?}", GuestVa::new(0xffff_8000_0000_0000)), "GuestVa(0xffff800000000000)");
        assert_eq!(format!("{:#x}", Ipa::new(0xab)), "0xab");
        assert_eq!(format!("{:#010x}", PhysAddr::new(0xab)), "0x000000ab");
    }

    #[test]
    fn transparent_over_u64() {
        assert_eq!(core::mem::size_of::<PhysAddr>(), 8);
        assert_eq!(core::mem::align_of::<Ipa>(), core::mem::align_of::<u64>());
    }
}
