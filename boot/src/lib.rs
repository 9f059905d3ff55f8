//! Entry assembly and pre-MMU setup of the hypervisor image.
//!
//! `entry.S` holds the Linux arm64 `Image` header (so QEMU `-kernel`, U-Boot and TF-A
//! load us like a kernel), self-relocation of the position-independent image, BSS
//! clearing and the boot stack; it then calls `hypervisor_primary_main(x0, x1, x2, x3)`.
//! Secondary CPUs enter at [`secondary_entry`] with the primary's MMU configuration.

#![no_std]

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(include_str!("entry.S"));

/// What a secondary CPU needs before it can run Rust code. Filled by the primary,
/// read by `secondary_entry` with the MMU off, so it must be cleaned to the point of
/// coherency before `CPU_ON`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SecondaryBootArgs {
    pub stack_top: u64,
    pub ttbr0_el2: u64,
    pub tcr_el2: u64,
    pub mair_el2: u64,
    pub sctlr_el2: u64,
    pub cpu_index: u64,
}

#[cfg(target_arch = "aarch64")]
unsafe extern "C" {
    /// Entry point for secondary CPUs, to be passed to PSCI `CPU_ON` together with
    /// the physical address of a [`SecondaryBootArgs`] as the context ID.
    pub fn secondary_entry();
}

/// Physical addresses and sizes of the image, from the linker script.
#[cfg(target_arch = "aarch64")]
pub mod layout {
    unsafe extern "C" {
        static _start: u8;
        static __text_end: u8;
        static __rodata_end: u8;
        static __data_start: u8;
        static __image_end: u8;
    }

    macro_rules! symbol_address {
        ($name:ident) => {
            // Only the address of the linker-defined symbol is taken, never its value.
            core::ptr::addr_of!($name) as u64
        };
    }

    /// Start of the image (its load address).
    pub fn image_start() -> u64 {
        symbol_address!(_start)
    }
    /// End of executable code; [image_start, text_end) is mapped read-only executable.
    pub fn text_end() -> u64 {
        symbol_address!(__text_end)
    }
    /// End of read-only data; [text_end, rodata_end) is mapped read-only, never executable.
    pub fn rodata_end() -> u64 {
        symbol_address!(__rodata_end)
    }
    /// Start of writable data; [data_start, image_end) is mapped read-write, never executable.
    pub fn data_start() -> u64 {
        symbol_address!(__data_start)
    }
    /// End of the image including BSS and the boot stack.
    pub fn image_end() -> u64 {
        symbol_address!(__image_end)
    }
}
