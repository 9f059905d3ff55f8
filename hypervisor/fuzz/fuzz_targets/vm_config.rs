//! The `vms.conf` parser and the checks against the machine and bundle, on
//! arbitrary text; every error message is formatted too. A configuration that
//! parses is written back out in canonical form, which must parse to the same
//! configuration (apart from line numbers).

#![no_main]

use core::fmt::Write;

use hypervisor::config::{self, BootProtocol, Config, MAX_NAME_LEN, MAX_SIZE_BYTES, MAX_VCPUS, SIZE_GRANULE_BYTES};
use libfuzzer_sys::fuzz_target;

/// `config` as `vms.conf` text: shared regions first, then the VMs in order,
/// every optional key that differs from its default spelled out.
fn canonical(config: &Config) -> String {
    let mut text = String::new();
    for region in &config.shared {
        let mapping = if region.mapping_bytes == 4 << 10 { "4K" } else { "2M" };
        writeln!(text, "[shared {}]\nsize = {}\nmapping = {mapping}", region.name, region.size).unwrap();
    }
    for vm in &config.vms {
        let cpus: Vec<String> = vm.cpus.iter().map(usize::to_string).collect();
        writeln!(
            text,
            "[vm {}]\nimage = {}\nmemory = {:#x}\ncpus = {}",
            vm.name,
            vm.image,
            vm.memory_bytes,
            cpus.join(",")
        )
        .unwrap();
        writeln!(text, "mte = {}\narg = {:#x}", if vm.mte { "on" } else { "off" }, vm.arg).unwrap();
        writeln!(text, "boot = {}", if vm.boot == BootProtocol::Bare { "bare" } else { "linux" }).unwrap();
        if !vm.shared.is_empty() {
            let names: Vec<&str> = vm.shared.iter().map(|&index| config.shared[index].name.as_str()).collect();
            writeln!(text, "shared = {}", names.join(" , ")).unwrap();
        }
        if let Some(after) = vm.after {
            writeln!(text, "after = {}", config.vms[after].name).unwrap();
        }
        if let Some(initrd) = &vm.initrd {
            writeln!(text, "initrd = {initrd}").unwrap();
        }
        if !vm.bootargs.is_empty() {
            writeln!(text, "bootargs = {}", vm.bootargs).unwrap();
        }
    }
    text
}

/// `config` with every line number zeroed.
fn without_lines(mut config: Config) -> Config {
    for vm in &mut config.vms {
        vm.lines = config::VmLines { header: 0, image: 0, memory: 0, cpus: 0, initrd: 0 };
    }
    for region in &mut config.shared {
        region.line = 0;
    }
    config
}

fuzz_target!(|data: &[u8]| {
    // The first byte is the CPU count of the machine and which images the bundle has.
    let Some((&selector, text)) = data.split_first() else { return };
    let Ok(text) = core::str::from_utf8(text) else { return };
    let config = match config::parse(text) {
        Ok(config) => config,
        Err(error) => {
            assert!(error.line <= text.lines().count() + 1, "{error:?}");
            let _ = error.to_string();
            return;
        }
    };
    assert!(!config.vms.is_empty());
    for (index, vm) in config.vms.iter().enumerate() {
        assert!((1..=MAX_NAME_LEN).contains(&vm.name.len()));
        assert!((1..=MAX_VCPUS).contains(&vm.cpus.len()));
        assert!(vm.memory_bytes >= SIZE_GRANULE_BYTES && vm.memory_bytes <= MAX_SIZE_BYTES);
        assert_eq!(vm.memory_bytes % SIZE_GRANULE_BYTES, 0);
        assert!(vm.after.is_none_or(|after| after < index));
        assert!(vm.shared.iter().all(|&shared| shared < config.shared.len()));
        let mut cpus = vm.cpus.clone();
        cpus.sort_unstable();
        cpus.dedup();
        assert_eq!(cpus.len(), vm.cpus.len(), "duplicate CPU");
    }
    for region in &config.shared {
        assert!(region.size >= SIZE_GRANULE_BYTES && region.size <= MAX_SIZE_BYTES);
    }
    let text = canonical(&config);
    match config::parse(&text) {
        Ok(again) => assert_eq!(without_lines(again), without_lines(config.clone()), "canonical form:\n{text}"),
        Err(error) => panic!("canonical form does not parse: {error}\n{text}"),
    }

    let cpu_count = usize::from(selector & 0x7F);
    let all_images = selector & 0x80 != 0;
    let result = config.validate_against(cpu_count, |name| all_images || name.len() % 2 == 0);
    match result {
        Ok(()) => {
            assert!(config.vms.iter().all(|vm| vm.cpus.iter().all(|&cpu| cpu < cpu_count)));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
