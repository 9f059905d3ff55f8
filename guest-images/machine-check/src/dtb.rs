//! The device tree the loader passed in x0, read with the `fdt` crate (after the
//! MMU is on: the tree lies in RAM, which the map covers).

use fdt::Fdt;

/// The tree at `address`, if there is a valid one.
pub fn parse(address: u64) -> Option<Fdt<'static>> {
    if address == 0 || !address.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the boot protocol puts the device tree at x0, in RAM the identity
    // map covers; nothing writes it while the guest runs.
    unsafe { Fdt::from_ptr(address as *const u8) }.ok()
}

/// The big-endian 32-bit cells of a property value.
pub fn cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value.chunks_exact(4).map(|cell| u32::from_be_bytes([cell[0], cell[1], cell[2], cell[3]]))
}
