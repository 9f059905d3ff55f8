//! The device-tree reader behind `Platform::from_fdt`, on arbitrary blobs
//! (seeded with real QEMU DTBs) at arbitrary load addresses.

#![no_main]

use hypervisor::platform::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes choose the address the firmware "loaded" the blob at,
    // so the corpus stays plain DTBs with a short prefix.
    let (addr, blob) = match data.split_first_chunk::<8>() {
        Some((addr, blob)) => (u64::from_be_bytes(*addr), blob),
        None => (0x4000_0000, data),
    };
    let Ok(platform) = Platform::from_fdt(addr, blob) else { return };
    assert_eq!(platform.fdt_range.base, addr);
    assert!(platform.fdt_range.base.checked_add(platform.fdt_range.size).is_some());
    assert!(platform.fdt_range.size <= blob.len() as u64, "totalsize beyond the blob");
    for range in platform.ram.iter().chain(platform.reserved.iter()) {
        let _ = range.end();
    }
    assert!(platform.ram.windows(2).all(|pair| pair[0].base <= pair[1].base), "RAM not sorted");
    assert!(platform.reserved.windows(2).all(|pair| pair[0].base <= pair[1].base), "reserved not sorted");
    let _ = format!("{platform:?}");
});
