//! Bare-metal EL1 test guest for the hypervisor: one binary, many scenarios,
//! selected by the VM's `arg` (x0 at entry). See `scenarios` for the list.
//!
//! Built for `aarch64-unknown-none-softfloat` and linked at `hv_abi::machine::RAM_BASE`
//! with `linker/test-guest.ld`. For the host (workspace builds) it is an empty
//! program.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod hypercall;
#[cfg(target_os = "none")]
mod mmu;
#[cfg(target_os = "none")]
mod mte;
#[cfg(target_os = "none")]
mod psci;
#[cfg(target_os = "none")]
mod scenarios;
#[cfg(all(target_os = "none", feature = "semihosting-console"))]
mod semihosting;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod sysreg;

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use hv_abi::machine;

    use crate::boot::layout;
    use crate::console::println;
    use crate::mmu::{self, MemType, Region};
    use crate::scenarios::{self, Env, Mte, fail};
    use crate::{hypercall, mte};

    /// HV_EXIT status after a panic.
    const EXIT_PANIC: u64 = 0xE2;
    /// Most of a shared region that is mapped (the scenarios use far less): its
    /// window in the machine map.
    const SHARED_MAP_LIMIT: u64 = machine::SHARED_STRIDE;
    /// Size of each `bad-access` window mapped in stage 1.
    const BAD_WINDOW_SIZE: u64 = 2 << 20;
    /// The device windows every VM sees (GICD, GICR, PL011), mapped Device and
    /// EL0-accessible (the hostile scenario's EL0 code touches the PL011).
    const DEVICES: (u64, u64) = (machine::DEVICES_BASE, machine::DEVICES_END);

    /// Called by `_start` with the entry registers x0-x4, MMU off.
    #[unsafe(no_mangle)]
    extern "C" fn guest_main(arg: u64, ram_base: u64, ram_size: u64, shared_base: u64, shared_size: u64) -> ! {
        #[cfg(feature = "semihosting-console")]
        let entry_regs = [arg, ram_base, ram_size, shared_base, shared_size];
        #[cfg(feature = "semihosting-console")]
        let (arg, ram_base, ram_size, shared_base, shared_size) =
            (smoke::ARG, machine::RAM_BASE, smoke::RAM_MIB << 20, 0, 0);

        scenarios::set_current(arg);
        let scenario = scenarios::find(arg);
        let cpu_mte = mte::available();
        let mte = cpu_mte && scenario.is_some_and(|s| s.mte != Mte::Unused);
        let ram_mem = if mte { MemType::Tagged } else { MemType::Normal };

        let (image_start, image_end) = (layout::image_start(), layout::image_end());
        let (regions, count) = memory_map(ram_base, ram_size, shared_base, shared_size, ram_mem);
        let mapped = mmu::enable(&regions[..count], mte);

        // From here on the MMU and caches are on.
        let Some(scenario) = scenario else {
            fail!("arg={arg} selects no scenario (1-15)");
        };
        let name = scenario.name;
        if let Err(error) = mapped {
            fail!("stage-1 map failed: {error}");
        }
        #[cfg(feature = "semihosting-console")]
        println!(
            "{name}: smoke test without the hypervisor: semihosting console, arg {arg}, {} MiB RAM (entry x0-x4 were {:x?})",
            ram_size >> 20,
            entry_regs
        );
        let ram_ok = ram_base == image_start && ram_size != 0 && image_end <= ram_base.saturating_add(ram_size);
        if !ram_ok {
            fail!(
                "image [0x{image_start:x}, 0x{image_end:x}) is not inside RAM at 0x{ram_base:x} of 0x{ram_size:x} bytes"
            );
        }
        if scenario.mte == Mte::Required && !cpu_mte {
            fail!("the CPU offers no MTE2 (ID_AA64PFR1_EL1.MTE = {}), the scenario needs it", mte::cpu_level());
        }
        if mte {
            mte::init();
        }

        let env = Env { ram_base, ram_size, shared_base, shared_size, image_start, image_end };
        let detail = (scenario.run)(&env);
        println!("PASS {name}: {detail}");
        hypercall::exit(0)
    }

    /// What the stage-1 identity map covers: the image and RAM (executable),
    /// the first shared region (at most 1 GiB of it) with RAM's memory type, the
    /// `bad-access` windows as plain Normal memory, and the device windows.
    fn memory_map(
        ram_base: u64,
        ram_size: u64,
        shared_base: u64,
        shared_size: u64,
        ram_mem: MemType,
    ) -> ([Region; 7], usize) {
        let (image_start, image_end) = (layout::image_start(), layout::image_end());
        let image =
            Region { base: image_start, size: image_end - image_start, mem: ram_mem, executable: true, el0: false };
        let mut regions = [image; 7];
        let mut count = 1;
        let mut add = |region: Region| {
            regions[count] = region;
            count += 1;
        };
        if ram_size != 0 {
            add(Region { base: ram_base, size: ram_size, mem: ram_mem, executable: true, el0: false });
        }
        if shared_base != 0 && shared_size != 0 {
            let size = shared_size.min(SHARED_MAP_LIMIT);
            add(Region { base: shared_base, size, mem: ram_mem, executable: false, el0: false });
        }
        for base in scenarios::BAD_WINDOWS {
            add(Region { base, size: BAD_WINDOW_SIZE, mem: MemType::Normal, executable: false, el0: false });
        }
        let (base, end) = DEVICES;
        add(Region { base, size: end - base, mem: MemType::Device, executable: false, el0: true });
        (regions, count)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        println!("FAIL {}: panic: {info}", scenarios::current_name());
        hypercall::exit(EXIT_PANIC)
    }

    /// Stand-ins for the entry registers in smoke tests on bare QEMU.
    #[cfg(feature = "semihosting-console")]
    mod smoke {
        /// Scenario `arg`, from `TEST_GUEST_SMOKE_ARG` at build time (default 1).
        pub const ARG: u64 = parse(option_env!("TEST_GUEST_SMOKE_ARG"), 1);
        /// RAM size in MiB (QEMU `-m`), from `TEST_GUEST_SMOKE_RAM_MIB` (default 256).
        pub const RAM_MIB: u64 = parse(option_env!("TEST_GUEST_SMOKE_RAM_MIB"), 256);

        const fn parse(text: Option<&str>, default: u64) -> u64 {
            let Some(text) = text else { return default };
            let bytes = text.as_bytes();
            let mut value = 0u64;
            let mut i = 0;
            while i < bytes.len() {
                assert!(bytes[i].is_ascii_digit(), "not a decimal number");
                value = value * 10 + (bytes[i] - b'0') as u64;
                i += 1;
            }
            value
        }
    }
}
